#pragma once
// Assertions for programming errors (bugs): abort with file, line and the failed condition.
// Never use these for bad user input; that is what Result<T> is for.
#include <cstdio>
#include <cstdlib>

#define NIMBUS_CHECK(cond)                                                              \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

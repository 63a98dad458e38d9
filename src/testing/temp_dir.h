#pragma once
// A fresh directory under $TMPDIR (else /tmp) for one test, removed with everything in it
// when the object goes away. Header-only; for tests.
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include "common/check.h"

namespace nimbus::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "nimbus-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
    NIMBUS_CHECK(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace nimbus::testing

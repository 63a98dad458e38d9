#pragma once
// Starting launcher processes. The child gets /dev/null as stdin, pipes for stdout and
// stderr, only the descriptors it is given (everything else is closed before exec, since
// the server's sockets are not close-on-exec), its own process group, and SIGKILL when the
// thread that spawned it (the worker thread) dies, so a crashed server leaves no instances
// behind. The sandbox (namespaces, cgroups, seccomp) will wrap this step.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace nimbus::worker {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is the program (PATH is searched when no '/')
  std::vector<std::string> env;   // "KEY=VALUE"; the whole environment of the child
  std::string cwd;                // empty: inherit
};

struct Child {
  pid_t pid = -1;
  int pidfd = -1;      // readable when the child exits (pidfd_open); close-on-exec
  int stdoutFd = -1;   // read ends, non-blocking, close-on-exec
  int stderrFd = -1;
};

// Errors name the program and the errno text.
Result<Child> spawnChild(const SpawnSpec& spec);

// Reaps an exited child and describes how it ended ("exited with status 1", "killed by
// signal 9 (Killed)"); "" when it has not exited yet.
std::string reapChild(pid_t pid);

// How a child ended if it has exited, without reaping it (it stays a zombie for
// reapChild); "" while it runs or when it was reaped already.
std::string peekExit(pid_t pid);

// Resolves `program` against PATH (as execvp would); the program itself when it has a '/'.
std::string findProgram(const std::string& program);

}  // namespace nimbus::worker

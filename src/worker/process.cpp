#include "worker/process.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nimbus::worker {

namespace {

// What the child does between vfork and exec; only async-signal-safe calls on memory the
// parent prepared.
struct ChildPlan {
  const char* path;
  char** argv;
  char** envp;
  const char* cwd;
  int stdinFd, stdoutFd, stderrFd;
  pid_t parent;
};

[[noreturn]] __attribute__((noinline)) void runChild(const ChildPlan* plan) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != plan->parent) ::_exit(126);
  ::setpgid(0, 0);
  if (plan->stdinFd >= 0) ::dup2(plan->stdinFd, 0);
  ::dup2(plan->stdoutFd, 1);
  ::dup2(plan->stderrFd, 2);
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  if (plan->cwd && ::chdir(plan->cwd) != 0) ::_exit(126);
  ::execve(plan->path, plan->argv, plan->envp);
  ::_exit(127);
}

void closeBoth(int fds[2]) {
  if (fds[0] >= 0) ::close(fds[0]);
  if (fds[1] >= 0) ::close(fds[1]);
}

}  // namespace

std::string findProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    auto colon = rest.find(':');
    std::string_view dir = rest.substr(0, colon);
    std::string candidate = fmt::format("{}/{}", dir.empty() ? std::string_view(".") : dir, program);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return program;
}

Result<Child> spawnChild(const SpawnSpec& spec) {
  if (spec.argv.empty()) return makeError(ErrorKind::Invalid, "spawn: no program given");
  std::string program = findProgram(spec.argv[0]);
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    closeBoth(out);
    closeBoth(err);
    return makeError(ErrorKind::Io, fmt::format("cannot create pipes for {}: {}", program,
                                                std::strerror(e)));
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Everything the child touches is prepared before vfork: it may only call
  // async-signal-safe functions on the parent's memory.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  ChildPlan plan{program.c_str(), argv.data(), envp.data(),
                 spec.cwd.empty() ? nullptr : spec.cwd.c_str(), devnull, out[1], err[1],
                 ::getpid()};
  pid_t pid = ::vfork();
  if (pid == 0) runChild(&plan);
  int spawnErrno = errno;
  if (devnull >= 0) ::close(devnull);
  ::close(out[1]);
  ::close(err[1]);
  if (pid < 0) {
    ::close(out[0]);
    ::close(err[0]);
    return makeError(ErrorKind::Io,
                     fmt::format("cannot start {}: {}", program, std::strerror(spawnErrno)));
  }
  Child c;
  c.pid = pid;
  c.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  c.stdoutFd = out[0];
  c.stderrFd = err[0];
  ::fcntl(c.stdoutFd, F_SETFL, O_NONBLOCK);
  ::fcntl(c.stderrFd, F_SETFL, O_NONBLOCK);
  return c;
}

namespace {
std::string describeSignal(int sig) {
  const char* name = ::strsignal(sig);
  return fmt::format("killed by signal {} ({})", sig, name ? name : "?");
}
}  // namespace

std::string peekExit(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid == 0) {
    return {};
  }
  if (info.si_code == CLD_EXITED) return fmt::format("exited with status {}", info.si_status);
  return describeSignal(info.si_status);
}

std::string reapChild(pid_t pid) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r != pid) return {};
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return describeSignal(WTERMSIG(status));
  return "ended";
}

}  // namespace nimbus::worker

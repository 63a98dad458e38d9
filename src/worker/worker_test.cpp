// Unit tests of the worker's parts that need no launcher: process spawning, the function
// log, histograms and .vc-config.json parsing. The worker itself is tested end to end
// (tests/e2e/test_functions.py) with real launchers.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "testing/temp_dir.h"
#include "worker/process.h"
#include "worker/store_catalog.h"
#include "worker/telemetry.h"

namespace nimbus::worker {
namespace {

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  for (int i = 0; i < 500; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string waitReaped(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::string r = reapChild(pid);
    if (!r.empty()) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return {};
}

TEST(Process, ChildGetsOnlyItsEnvironmentAndPipes) {
  int leaked = ::open("/dev/null", O_RDONLY);  // not close-on-exec, like Asio's sockets
  ASSERT_GE(leaked, 0);
  SpawnSpec spec;
  spec.argv = {"sh", "-c", "echo out:$FOO; echo err >&2; ls /proc/self/fd | wc -l; exit 3"};
  spec.env = {"FOO=bar", "PATH=/usr/bin:/bin"};
  auto child = spawnChild(spec);
  ASSERT_TRUE(child) << child.error().message;
  std::string out = readAll(child->stdoutFd);
  std::string err = readAll(child->stderrFd);
  EXPECT_EQ(waitReaped(child->pid), "exited with status 3");
  // stdin, stdout, stderr and the descriptor `ls` opens for /proc/self/fd.
  EXPECT_EQ(out, "out:bar\n4\n");
  EXPECT_EQ(err, "err\n");
  ::close(child->stdoutFd);
  ::close(child->stderrFd);
  ::close(child->pidfd);
  ::close(leaked);
}

TEST(Process, ReportsSignalsAndMissingPrograms) {
  SpawnSpec spec;
  spec.argv = {"sleep", "30"};
  spec.env = {"PATH=/usr/bin:/bin"};
  auto child = spawnChild(spec);
  ASSERT_TRUE(child);
  EXPECT_EQ(reapChild(child->pid), "");
  ::kill(child->pid, SIGKILL);
  EXPECT_EQ(waitReaped(child->pid).rfind("killed by signal 9", 0), 0u);
  ::close(child->stdoutFd);
  ::close(child->stderrFd);
  ::close(child->pidfd);

  spec.argv = {"/nonexistent/program"};
  auto missing = spawnChild(spec);
  ASSERT_TRUE(missing);  // exec fails in the child: it exits 127
  EXPECT_EQ(waitReaped(missing->pid), "exited with status 127");
  ::close(missing->stdoutFd);
  ::close(missing->stderrFd);
  ::close(missing->pidfd);
}

TEST(FunctionLog, AppendsAndReadsCompleteLines) {
  testing::TempDir dir;
  FunctionLog log(dir.path());
  log.append("dpl1", R"({"n":1})");
  log.append("dpl1", R"({"n":2})");
  log.append("dpl2", R"({"n":3})");
  auto empty = readFunctionLog(dir.path(), "dpl1", 0, 1024);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->records, "");  // buffered until flush
  log.flush();
  auto all = readFunctionLog(dir.path(), "dpl1", 0, 1024);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->records, "{\"n\":1}\n{\"n\":2}\n");
  EXPECT_EQ(all->nextOffset, 16u);
  auto part = readFunctionLog(dir.path(), "dpl1", 0, 10);  // stops at a line end
  ASSERT_TRUE(part);
  EXPECT_EQ(part->records, "{\"n\":1}\n");
  auto rest = readFunctionLog(dir.path(), "dpl1", part->nextOffset, 1024);
  EXPECT_EQ(rest->records, "{\"n\":2}\n");
  auto none = readFunctionLog(dir.path(), "missing", 0, 1024);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->records, "");
}

TEST(Histogram, CumulativeBuckets) {
  Histogram h;
  h.observe(0.0005);
  h.observe(0.003);
  h.observe(100);
  std::string out;
  h.render(&out, "x", "f=\"a\"");
  EXPECT_NE(out.find("x_bucket{f=\"a\",le=\"0.001\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{f=\"a\",le=\"0.005\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{f=\"a\",le=\"60\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_bucket{f=\"a\",le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_count{f=\"a\"} 3\n"), std::string::npos) << out;
  EXPECT_EQ(promLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(FunctionConfig, RuntimesAndLimits) {
  FunctionDef def;
  ASSERT_TRUE(parseFunctionConfig(
      R"({"runtime":"nodejs20.x","handler":"index.js","launcherType":"Nodejs","memory":1024,"maxDuration":10,"maxConcurrency":4})",
      &def));
  EXPECT_EQ(def.runtime, Runtime::Node);
  EXPECT_EQ(def.memoryMb, 1024);
  EXPECT_EQ(def.maxDurationS, 10);
  EXPECT_EQ(def.concurrency, 4);

  FunctionDef edge;
  ASSERT_TRUE(parseFunctionConfig(R"({"runtime":"edge","entrypoint":"index.js"})", &edge));
  EXPECT_EQ(edge.runtime, Runtime::Edge);

  FunctionDef max;
  ASSERT_TRUE(parseFunctionConfig(R"({"runtime":"nodejs22.x","handler":"a.js","maxDuration":"max"})", &max));
  EXPECT_EQ(max.maxDurationS, 800);

  FunctionDef bad;
  auto python = parseFunctionConfig(R"({"runtime":"python3.12","handler":"a.handler"})", &bad);
  ASSERT_FALSE(python);
  EXPECT_NE(python.error().message.find("python3.12"), std::string::npos);
  auto memory = parseFunctionConfig(R"({"runtime":"nodejs20.x","handler":"a.js","memory":-1})", &bad);
  ASSERT_FALSE(memory);
  EXPECT_NE(memory.error().message.find("\"memory\""), std::string::npos);
  EXPECT_FALSE(parseFunctionConfig(R"({"runtime":"edge"})", &bad));
  EXPECT_FALSE(parseFunctionConfig("[1]", &bad));
}

}  // namespace
}  // namespace nimbus::worker

namespace nimbus::worker {
namespace {

TEST(Telemetry, JsonStringEscapes) {
  EXPECT_EQ(jsonString("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\u000a\\u0001\"");
  EXPECT_EQ(jsonString(""), "\"\"");
}

}  // namespace
}  // namespace nimbus::worker

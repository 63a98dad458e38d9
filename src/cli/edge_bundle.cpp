#include "cli/edge_bundle.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/sha256.h"
#include "worker/process.h"

extern char** environ;

namespace nimbus::cli {

namespace json = boost::json;

std::string runtimesDir() {
  const char* env = std::getenv("NIMBUS_RUNTIMES");
  return env && *env ? env : NIMBUS_RUNTIMES_DIR;
}

namespace {

struct Ran {
  std::string out, err, status;
};

// Runs a command to completion with the caller's environment, collecting its output.
Result<Ran> runCommand(const std::vector<std::string>& argv) {
  worker::SpawnSpec spec;
  spec.argv = argv;
  for (char** e = environ; e && *e; ++e) spec.env.emplace_back(*e);
  auto child = worker::spawnChild(spec);
  if (!child) return child.error();
  Ran ran;
  pollfd fds[2] = {{child->stdoutFd, POLLIN, 0}, {child->stderrFd, POLLIN, 0}};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    if (::poll(fds, 2, 120'000) <= 0) break;  // a bundler silent for two minutes is stuck
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? ran.out : ran.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  if (open > 0) ::kill(child->pid, SIGKILL);
  for (int i = 0; i < 1000 && ran.status.empty(); ++i) {
    ran.status = worker::reapChild(child->pid);
    if (ran.status.empty()) ::usleep(2000);
  }
  if (child->pidfd >= 0) ::close(child->pidfd);
  return ran;
}

}  // namespace

Result<std::vector<EdgeBundle>> bundleEdgeFunctions(const std::string& root,
                                                    output::Manifest* manifest,
                                                    const std::string& workDir,
                                                    std::map<std::string, std::string>* localFiles) {
  std::vector<std::string> edgeDirs;
  for (const auto& e : *manifest) {
    constexpr std::string_view kConfig = ".func/.vc-config.json";
    if (e.isSymlink() || !e.path.starts_with("functions/") || !e.path.ends_with(kConfig)) continue;
    std::ifstream in(root + "/" + e.path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) continue;  // scanOutputDir already reported it
    auto* runtime = v.as_object().if_contains("runtime");
    if (!runtime || !runtime->is_string() || runtime->as_string() != "edge") continue;
    edgeDirs.push_back(e.path.substr(0, e.path.size() - std::string_view("/.vc-config.json").size()));
  }
  std::vector<EdgeBundle> bundles;
  if (edgeDirs.empty()) return bundles;
  std::string bundler = runtimesDir() + "/edge/bundle.mjs";
  for (const auto& dir : edgeDirs) {
    std::string entryPath = dir + "/.nimbus/edge-bundle.mjs";
    bool present = std::any_of(manifest->begin(), manifest->end(),
                               [&](const auto& e) { return e.path == entryPath; });
    if (present) continue;  // bundled already (an output deployed before)
    std::string out = fmt::format("{}/{}.mjs", workDir, bundles.size() + localFiles->size());
    auto ran = runCommand({"node", bundler, root + "/" + dir, out});
    if (!ran) return ran.error().context("bundling edge function " + dir);
    if (ran->status != "exited with status 0") {
      std::string err = ran->err.empty() ? ran->out : ran->err;
      while (!err.empty() && err.back() == '\n') err.pop_back();
      return makeError(ErrorKind::Invalid,
                       fmt::format("edge function {} could not be bundled ({}):\n{}\n(the bundler "
                                   "is {}; it needs Node.js and `npm ci` in runtimes/edge)",
                                   dir, ran->status, err, bundler));
    }
    boost::system::error_code ec;
    auto v = json::parse(ran->out, ec);
    if (ec || !v.is_object()) {
      return makeError(ErrorKind::Internal, fmt::format("the edge bundler printed '{}' for {}",
                                                        ran->out.substr(0, 200), dir));
    }
    const auto& o = v.as_object();
    if (!o.contains("bundled") || !o.at("bundled").as_bool()) continue;
    auto hash = sha256File(out);
    if (!hash) return hash.error();
    std::error_code fec;
    uint64_t size = std::filesystem::file_size(out, fec);
    output::ManifestEntry entry;
    entry.path = entryPath;
    entry.hash = *hash;
    entry.size = size;
    entry.mode = 0644;
    manifest->push_back(entry);
    (*localFiles)[entryPath] = out;
    std::string reason = o.contains("reason") && o.at("reason").is_string()
                             ? std::string(o.at("reason").as_string())
                             : std::string();
    bundles.push_back({dir, out, size, reason});
  }
  std::sort(manifest->begin(), manifest->end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  return bundles;
}

}  // namespace nimbus::cli

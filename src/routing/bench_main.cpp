// routing_bench: nanoseconds per RouteTable::evaluate for a config and a list of request
// paths. Usage and output format: src/routing/README.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "output/build_output.h"
#include "routing/output_listing.h"
#include "routing/routing.h"

namespace {

using nimbus::routing::Decision;
using nimbus::routing::DecisionKind;
using nimbus::routing::Request;
using nimbus::routing::RouteTable;
using Clock = std::chrono::steady_clock;

constexpr int kLoops = 7;               // timed loops per path; the median is reported
constexpr int kMaxIterations = 200000;  // per loop
constexpr auto kMaxLoopTime = std::chrono::milliseconds(100);

int usage() {
  std::fprintf(stderr,
               "usage: routing_bench (CONFIG_JSON | --synthetic N) [PATH...]\n"
               "  CONFIG_JSON   a config.json; static/ and functions/ beside it are the outputs\n"
               "  --synthetic N N generated routes (regex rewrites with named groups, header\n"
               "                rules, redirects) over a small output set\n"
               "  PATH          request path with optional ?query (default: a built-in list)\n"
               "prints one line per path: <ns per evaluation>\\t<path>\\t<decision>, then\n"
               "'median_ns <n>' over all paths\n");
  return 2;
}

std::string syntheticConfig(int n, nimbus::output::DeploymentOutput& out) {
  std::string routes;
  auto add = [&routes](const std::string& r) {
    if (!routes.empty()) routes += ",\n";
    routes += r;
  };
  for (int i = 0; i < n; ++i) {
    std::string id = std::to_string(i);
    switch (i % 4) {
      case 0:
        add(R"({"src": "^/r)" + id + R"(/(?<slug>[^/]+)/?$", "dest": "/api/r)" + id +
            R"(?slug=$slug", "check": true})");
        break;
      case 1:
        add(R"({"src": "^/old)" + id + R"(/(.*)$", "status": 308, "headers": {"Location": "/new)" +
            id + R"(/$1"}})");
        break;
      case 2:
        add(R"({"src": "^/h)" + id + R"((?:/.*)?$", "headers": {"x-rule": ")" + id +
            R"("}, "continue": true})");
        break;
      default:
        add(R"({"src": "^/m)" + id + R"(/([0-9]+)$", "methods": ["GET", "HEAD"], "dest": "/api/r)" +
            std::to_string(i - 3) + R"(?id=$1"})");
        break;
    }
    if (i == n / 2) add(R"({"handle": "filesystem"})");
  }
  for (int i = 0; i < n; i += 4)
    out.functions.emplace("api/r" + std::to_string(i), nimbus::output::FunctionRef{});
  out.statics.emplace("index.html", nimbus::output::StaticFile{});
  return R"({"version": 3, "routes": [)" + routes + "]}";
}

std::string describe(const Decision& d) {
  switch (d.kind) {
    case DecisionKind::Static:
      return "static " + d.key;
    case DecisionKind::Function:
      return "function " + d.key + " " + d.path + (d.query.empty() ? "" : "?" + d.query);
    case DecisionKind::Redirect:
      return "redirect " + std::to_string(d.status) + " " + d.location;
    case DecisionKind::Proxy:
      return "proxy " + d.url;
    case DecisionKind::Error:
      return "error " + std::to_string(d.status) + " " + d.errorCode +
             (d.key.empty() ? "" : " " + d.key);
    case DecisionKind::Middleware:
      return "middleware " + d.middlewareKey;
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) return usage();
  nimbus::output::DeploymentOutput out;
  std::string configJson;
  std::vector<std::string> paths;
  int argi = 1;
  if (std::strcmp(argv[1], "--synthetic") == 0) {
    if (argc < 3) return usage();
    int n = std::atoi(argv[2]);
    if (n < 1) return usage();
    configJson = syntheticConfig(n, out);
    argi = 3;
    int last = (n - 1) / 4 * 4;
    paths = {"/",       "/r0/hello", "/r" + std::to_string(last) + "/hello",
             "/old1/x", "/h2/page",  "/nope/at/all"};
  } else {
    std::filesystem::path config(argv[1]);
    auto listed = nimbus::routing::listOutputKeys(config.parent_path().string());
    if (!listed) {
      std::fprintf(stderr, "error: %s\n", listed.error().message.c_str());
      return 1;
    }
    out = std::move(*listed);
    configJson = out.configJson;
    argi = 2;
    paths = {"/", "/api/hello?name=bob", "/about", "/nope", "/hello.txt"};
  }
  if (argi < argc) paths.assign(argv + argi, argv + argc);

  auto table = RouteTable::compile(configJson);
  if (!table) {
    std::fprintf(stderr, "error: %s\n", table.error().message.c_str());
    return 1;
  }
  auto index = nimbus::routing::makeOutputIndex(out);
  std::printf("# %zu routes, %zu statics, %zu functions\n", (*table)->routeCount(),
              out.statics.size(), out.functions.size());

  std::vector<double> perPath;
  for (const std::string& url : paths) {
    Request req;
    req.method = "GET";
    req.host = "example.com";
    size_t q = url.find('?');
    req.path = url.substr(0, q);
    if (q != std::string::npos) req.query = url.substr(q + 1);
    req.headers = {{"host", "example.com"},
                   {"user-agent", "routing_bench"},
                   {"accept", "*/*"},
                   {"accept-language", "en"}};
    Decision first = (*table)->evaluate(req, *index);
    for (int i = 0; i < 1000; ++i) (*table)->evaluate(req, *index);  // warm up
    std::vector<double> loops;
    for (int l = 0; l < kLoops; ++l) {
      auto start = Clock::now();
      int done = 0;
      while (done < kMaxIterations) {
        for (int k = 0; k < 100; ++k) {
          Decision d = (*table)->evaluate(req, *index);
          asm volatile("" : : "r"(&d) : "memory");
        }
        done += 100;
        if (Clock::now() - start > kMaxLoopTime) break;
      }
      auto ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
      loops.push_back(ns / done);
    }
    std::sort(loops.begin(), loops.end());
    double median = loops[loops.size() / 2];
    perPath.push_back(median);
    std::printf("%.0f\t%s\t%s\n", median, url.c_str(), describe(first).c_str());
  }
  std::sort(perPath.begin(), perPath.end());
  std::printf("median_ns %.0f\n", perPath[perPath.size() / 2]);
  return 0;
}

// `nimbus serve`: wires the store, content store, router and control API into one process.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <thread>

#include "cli/cli.h"
#include "cli/edge_bundle.h"
#include "common/clock.h"
#include "common/random.h"
#include "common/secret_box.h"
#include "common/sha256.h"
#include "content/content_store.h"
#include "control/control_server.h"
#include "http/server.h"
#include "router/router.h"
#include "store/store.h"
#include "worker/store_catalog.h"
#include "worker/worker.h"

namespace nimbus::cli {

namespace asio = boost::asio;

std::string defaultDataDir() {
  if (const char* v = std::getenv("NIMBUS_DATA"); v && *v) return v;
  if (const char* v = std::getenv("XDG_DATA_HOME"); v && *v) return std::string(v) + "/nimbus";
  if (const char* v = std::getenv("HOME"); v && *v) return std::string(v) + "/.local/share/nimbus";
  return "/var/lib/nimbus";
}

int fail(const std::string& message) {
  fmt::print(stderr, "error: {}\n", message);
  return 1;
}

namespace {

Result<void> makeDirs(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return makeError(ErrorKind::Io, fmt::format("cannot create directory {}: {}; choose another "
                                                "location with --data",
                                                path, ec.message()));
  }
  ::chmod(path.c_str(), mode);
  return success();
}

// Creates the admin token on first start: stored hashed, the secret written once to a 0600
// file. Returns a line to print, or an error.
Result<std::string> ensureAdminToken(store::Store* store, const std::string& path) {
  if (store->tokenCount() > 0) {
    if (::access(path.c_str(), F_OK) == 0) return fmt::format("admin token: {}", path);
    return fmt::format("tokens exist but {} is gone; use a token you kept (NIMBUS_TOKEN)", path);
  }
  std::string secret = randomToken();
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return makeError(ErrorKind::Io, fmt::format("cannot write the admin token to {}: {}", tmp,
                                                std::strerror(errno)));
  }
  std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return makeError(ErrorKind::Io, fmt::format("cannot write the admin token to {}: {}", path,
                                                std::strerror(errno)));
  }
  auto created = store->createToken("admin", sha256Hex(secret));
  if (!created) return created.error().context("registering the admin token");
  return fmt::format("admin token created: {} (mode 0600; the CLI reads it from there)", path);
}

}  // namespace

int runServe(const GlobalOptions& g, const ServeOptions& o) {
  // A peer that closes mid-response must cost an EPIPE, not the process (sendfile(2) has
  // no MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  const std::string data = std::filesystem::absolute(g.data).lexically_normal().string();
  if (auto r = makeDirs(data, 0700); !r) return fail(r.error().message);
  if (auto r = makeDirs(data + "/logs", 0700); !r) return fail(r.error().message);

  SystemClock clock;
  auto store = store::openSqliteStore(data + "/nimbus.db", &clock);
  if (!store) return fail(store.error().message);
  auto content = content::openLocalContentStore(data + "/blobs");
  if (!content) return fail(content.error().message);
  auto secrets = SecretBox::loadOrCreate(data + "/secret.key");
  if (!secrets) return fail(secrets.error().message);
  std::string tokenPath = data + "/admin-token";
  auto tokenLine = ensureAdminToken(store->get(), tokenPath);
  if (!tokenLine) return fail(tokenLine.error().message);

  auto accessLog = http::AccessLog::open(o.accessLog.empty() ? data + "/logs/access.log" : o.accessLog);
  if (!accessLog) return fail(accessLog.error().message);

  unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<asio::io_context>> routerContexts;
  std::vector<asio::io_context*> routerPtrs;
  for (unsigned i = 0; i < threads; ++i) {
    routerContexts.push_back(std::make_unique<asio::io_context>(1));
    routerPtrs.push_back(routerContexts.back().get());
  }
  asio::io_context apiContext(1);

  // The router's port is known only once it is bound; the catalog asks for it lazily.
  std::atomic<uint16_t> routerPort{0};
  auto withPort = [&routerPort](std::string host) {
    uint16_t port = routerPort.load();
    return port == 80 || port == 0 ? host : fmt::format("{}:{}", host, port);
  };
  worker::CatalogOptions catalogOptions;
  catalogOptions.deploymentHost = [&](const store::Deployment& d) {
    return withPort(router::previewHost(d.projectName, d.id, o.domain));
  };
  catalogOptions.productionHost = [&](const store::Deployment& d) {
    return withPort(router::productionHost(d.projectName, o.domain));
  };
  worker::StoreCatalog catalog(catalogOptions, store->get(), content->get(), &*secrets);
  worker::WorkerOptions workerOptions;
  workerOptions.runtimesDir = o.runtimesDir;
  if (workerOptions.runtimesDir.empty()) {
    workerOptions.runtimesDir = runtimesDir();
  }
  workerOptions.nodeBinary = o.node;
  workerOptions.stateDir = data + "/run/worker";
  workerOptions.logDir = data + "/logs/functions";
  workerOptions.stemCells = o.stemCells;
  workerOptions.keepAlive = std::chrono::milliseconds(static_cast<int64_t>(o.keepAliveS * 1000));
  workerOptions.maxInstances = o.maxInstances;
  workerOptions.nodeConcurrency = o.concurrency;
  workerOptions.edgeConcurrency = o.concurrency * 4;
  workerOptions.queueTimeout =
      std::chrono::milliseconds(static_cast<int64_t>(o.queueTimeoutS * 1000));
  workerOptions.defaultMaxDurationS = o.maxDurationS;
  auto worker = worker::Worker::create(workerOptions, &catalog);
  if (!worker) return fail(worker.error().message);

  router::RouterOptions routerOptions;
  routerOptions.domain = o.domain;
  routerOptions.stateDir = data + "/run";
  router::Router router(routerOptions, store->get(), content->get(), worker->get());
  auto routerServer = http::Server::create({"router", o.listen, {}}, routerPtrs, &router,
                                           accessLog->get());
  if (!routerServer) return fail(routerServer.error().message);
  routerPort = (*routerServer)->port();

  control::ControlOptions controlOptions;
  controlOptions.domain = o.domain;
  controlOptions.routerPort = (*routerServer)->port();
  controlOptions.adminTokenPath = tokenPath;
  controlOptions.maxBlobBytes = o.maxBlobMb * 1024 * 1024;
  controlOptions.metricsText = [w = worker->get()] { return w->metricsText(); };
  controlOptions.workerStatus = [w = worker->get()] { return w->statusJson(); };
  controlOptions.functionLogDir = workerOptions.logDir;
  control::ControlServer controlServer(controlOptions, store->get(), content->get(), &*secrets,
                                       [&router] { router.refresh(); });
  http::Limits apiLimits;
  apiLimits.maxUrlBytes = 16 * 1024;
  auto apiServer = http::Server::create({"api", o.apiListen, apiLimits}, {&apiContext},
                                        &controlServer, accessLog->get());
  if (!apiServer) return fail(apiServer.error().message);

  (*routerServer)->start();
  (*apiServer)->start();

  asio::signal_set signals(apiContext, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", sig);
    (*routerServer)->stop();
    (*apiServer)->stop();
    for (auto& c : routerContexts) c->stop();
    apiContext.stop();
  });

  std::string routerAddr = (*routerServer)->boundAddress();
  std::string apiAddr = (*apiServer)->boundAddress();
  uint16_t port = (*routerServer)->port();
  std::string example = control::urlForHost(fmt::format("<project>.{}", o.domain), port);
  fmt::print("nimbus 0.1.0\n");
  fmt::print("  data:    {} (SQLite store, blobs, logs)\n", data);
  fmt::print("  {}\n", *tokenLine);
  fmt::print("  router:  http://{}  (sites at {}/)\n", routerAddr, example);
  fmt::print("  api:     http://{}\n", apiAddr);
  fmt::print("  threads: {} router, 1 api\n", threads);
  fmt::print("  functions: node {} (runtimes {}), {} stem cells per pool, keep-alive {} s, "
             "up to {} instances per function; no sandbox yet\n",
             o.node, workerOptions.runtimesDir, o.stemCells, o.keepAliveS, o.maxInstances);
  fmt::print("nimbus ready {{\"router\":\"{}\",\"api\":\"{}\",\"data\":\"{}\",\"domain\":\"{}\"}}\n",
             routerAddr, apiAddr, data, o.domain);
  std::fflush(stdout);

  std::vector<std::thread> workers;
  for (auto& c : routerContexts) {
    workers.emplace_back([ctx = c.get()] { ctx->run(); });
  }
  apiContext.run();
  for (auto& c : routerContexts) c->stop();
  for (auto& t : workers) t.join();
  (*worker)->shutdown();
  (*accessLog)->flush();
  return 0;
}

}  // namespace nimbus::cli

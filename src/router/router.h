#pragma once
// The public HTTP entry: Host -> deployment -> route phases (src/routing) -> a static
// file, a redirect, an external upstream (src/proxy), an error page, or a function (served
// run by the worker). Serves from immutable
// deployment snapshots, so a request that started on a deployment finishes on it even if
// production moves meanwhile.
//
// Thread rules: serve() runs on every router thread at once; the host table is an immutable
// snapshot swapped whole by refresh(); the caches are internally synchronised.
#include <atomic>
#include <condition_variable>
#include <list>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "content/content_store.h"
#include "http/server.h"
#include "output/build_output.h"
#include "proxy/proxy.h"
#include "router/host_table.h"
#include "router/static_files.h"
#include "routing/routing.h"
#include "store/store.h"
#include "worker/worker.h"

namespace nimbus::router {

struct RouterOptions {
  std::string domain = "localhost";
  // Identity bodies at least this large go out with sendfile(2) from the blob file.
  uint64_t sendfileMinBytes = 32 * 1024;
  size_t cacheBytes = 256 * 1024 * 1024;   // file bytes and compressed variants in memory
  std::chrono::milliseconds pollInterval{1000};  // store routing-version poll; 0 disables
  // Where per-project upstream TLS material is written for the proxy (mode 0600 files);
  // empty: a temporary directory.
  std::string stateDir;
  proxy::ProxyOptions proxy;
};

// Response headers in the order of spec 2.8: route headers, then the origin's (which win),
// then `important` route headers (which win over both).
class HeaderSet {
 public:
  void set(std::string_view name, std::string_view value);
  void append(std::string_view name, std::string_view value);
  void remove(std::string_view name);
  bool has(std::string_view name) const;
  // Route headers: set-cookie appends, everything else replaces.
  void applyRoute(const routing::Headers& headers);
  // `important` headers (docs/routing.md): every name they carry is removed, then all of
  // their entries are added, so several entries of one name survive.
  void applyImportant(const routing::Headers& headers);
  void emit(http::Exchange* ex) const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// A deployment ready to serve: its output map, compiled routes and output index.
struct LoadedDeployment {
  output::DeploymentOutput output;
  std::shared_ptr<const routing::RouteTable> routes;
  std::unique_ptr<routing::OutputIndex> index;
};

class Router final : public http::Handler {
 public:
  // `worker` runs function and middleware routes; null answers them with 501.
  Router(RouterOptions options, store::Store* store, content::ContentStore* content,
         worker::Worker* worker = nullptr);
  ~Router() override;

  // Reloads the host table when the store's routing version changed. Thread-safe; cheap
  // when nothing changed. The control API calls it after every change it makes; a poll
  // thread calls it for changes made by other processes.
  void refresh();

  boost::asio::awaitable<void> serve(http::Exchange* ex) override;

 private:
  using DeploymentPtr = std::shared_ptr<const LoadedDeployment>;
  Result<DeploymentPtr> loadDeployment(const ResolvedHost& host);
  boost::asio::awaitable<void> serveDecision(http::Exchange* ex, const LoadedDeployment* dep,
                                             const routing::Request* req,
                                             const routing::Decision* d,
                                             const ResolvedHost* host);
  boost::asio::awaitable<void> serveFunction(http::Exchange* ex, const routing::Decision* d,
                                             const ResolvedHost* host);
  boost::asio::awaitable<void> serveMiddleware(http::Exchange* ex, const LoadedDeployment* dep,
                                               const routing::Request* req,
                                               const routing::Decision* d,
                                               const ResolvedHost* host);
  void prepareInvocation(http::Exchange* ex, const routing::Decision* d, const ResolvedHost* host,
                         worker::Invocation* inv) const;
  boost::asio::awaitable<void> serveProxy(http::Exchange* ex, const routing::Decision* d,
                                          const ResolvedHost* host);
  // The project's upstream TLS settings as files the proxy can load; null when none.
  std::shared_ptr<const proxy::UpstreamTls> upstreamTls(const std::string& project);
  // `forcedStatus` 0 serves with conditional/range semantics; otherwise the whole file with
  // that status (error pages, status routes).
  boost::asio::awaitable<void> serveStatic(http::Exchange* ex, const output::StaticFile* file,
                                           HostKind kind, const routing::Decision* d,
                                           int forcedStatus);
  boost::asio::awaitable<void> serveRedirect(http::Exchange* ex, const routing::Decision* d);
  boost::asio::awaitable<void> serveError(http::Exchange* ex, const routing::Decision* d,
                                          int status, std::string_view code,
                                          std::string_view message);
  Result<ByteCache::Bytes> fileBytes(const output::StaticFile& file);
  Result<ByteCache::Bytes> encodedBytes(const output::StaticFile& file, Encoding e,
                                        const ByteCache::Bytes& identity);
  void pollLoop();
  // An open descriptor of a blob file, shared by concurrent responses.
  struct OpenFile {
    int fd = -1;
    ~OpenFile();
  };
  std::shared_ptr<OpenFile> openBlob(const std::string& hash);

  RouterOptions options_;
  store::Store* store_;
  content::ContentStore* content_;
  worker::Worker* worker_;
  std::atomic<std::shared_ptr<const HostTable>> table_;
  std::mutex refreshMu_;
  std::mutex outputsMu_;
  std::map<std::string, DeploymentPtr, std::less<>> outputs_;  // by manifest hash
  ByteCache cache_;
  std::mutex filesMu_;
  std::list<std::string> filesLru_;  // front = most recent
  std::unordered_map<std::string, std::pair<std::shared_ptr<OpenFile>, std::list<std::string>::iterator>> files_;

  proxy::Proxy proxy_;
  std::mutex tlsMu_;
  std::map<std::string, std::shared_ptr<const proxy::UpstreamTls>, std::less<>> tls_;

  std::mutex pollMu_;
  std::condition_variable pollCv_;
  bool stopping_ = false;
  std::thread poller_;
};

// Percent-decodes a URL path. nullopt when an escape is malformed or decodes to NUL.
std::optional<std::string> decodePath(std::string_view path);

}  // namespace nimbus::router

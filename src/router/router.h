#pragma once
// The public HTTP entry: Host -> deployment -> static file (route phases and functions come
// with the route engine and the worker). Serves from immutable deployment snapshots, so a
// request that started on a deployment finishes on it even if production moves meanwhile.
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
#include "router/host_table.h"
#include "router/static_files.h"
#include "store/store.h"

namespace nimbus::router {

struct RouterOptions {
  std::string domain = "localhost";
  // Identity bodies at least this large go out with sendfile(2) from the blob file.
  uint64_t sendfileMinBytes = 32 * 1024;
  size_t cacheBytes = 256 * 1024 * 1024;   // file bytes and compressed variants in memory
  std::chrono::milliseconds pollInterval{1000};  // store routing-version poll; 0 disables
};

class Router final : public http::Handler {
 public:
  Router(RouterOptions options, store::Store* store, content::ContentStore* content);
  ~Router() override;

  // Reloads the host table when the store's routing version changed. Thread-safe; cheap
  // when nothing changed. The control API calls it after every change it makes; a poll
  // thread calls it for changes made by other processes.
  void refresh();

  boost::asio::awaitable<void> serve(http::Exchange* ex) override;

 private:
  using OutputPtr = std::shared_ptr<const output::DeploymentOutput>;
  Result<OutputPtr> deploymentOutput(const ResolvedHost& host);
  boost::asio::awaitable<void> serveStatic(http::Exchange* ex, const output::StaticFile* file,
                                           HostKind kind, OutputPtr keepAlive);
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
  std::atomic<std::shared_ptr<const HostTable>> table_;
  std::mutex refreshMu_;
  std::mutex outputsMu_;
  std::map<std::string, OutputPtr, std::less<>> outputs_;  // by manifest hash
  ByteCache cache_;
  std::mutex filesMu_;
  std::list<std::string> filesLru_;  // front = most recent
  std::unordered_map<std::string, std::pair<std::shared_ptr<OpenFile>, std::list<std::string>::iterator>> files_;

  std::mutex pollMu_;
  std::condition_variable pollCv_;
  bool stopping_ = false;
  std::thread poller_;
};

// Percent-decodes a URL path. nullopt when an escape is malformed or decodes to NUL.
std::optional<std::string> decodePath(std::string_view path);

}  // namespace nimbus::router

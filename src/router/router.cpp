#include "router/router.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "output/manifest.h"

namespace nimbus::router {

namespace asio = boost::asio;

std::optional<std::string> decodePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (i + 2 >= path.size()) return std::nullopt;
    auto hex = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'a' && h <= 'f') return h - 'a' + 10;
      if (h >= 'A' && h <= 'F') return h - 'A' + 10;
      return -1;
    };
    int hi = hex(path[i + 1]);
    int lo = hex(path[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

Router::Router(RouterOptions options, store::Store* store, content::ContentStore* content)
    : options_(std::move(options)), store_(store), content_(content), cache_(options_.cacheBytes) {
  table_.store(std::make_shared<const HostTable>(store_->loadRoutingSnapshot(), options_.domain));
  if (options_.pollInterval.count() > 0) poller_ = std::thread([this] { pollLoop(); });
}

Router::~Router() {
  {
    std::lock_guard lock(pollMu_);
    stopping_ = true;
  }
  pollCv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void Router::pollLoop() {
  std::unique_lock lock(pollMu_);
  while (!stopping_) {
    pollCv_.wait_for(lock, options_.pollInterval);
    if (stopping_) break;
    lock.unlock();
    refresh();
    lock.lock();
  }
}

void Router::refresh() {
  std::lock_guard lock(refreshMu_);
  auto current = table_.load();
  if (store_->routingVersion() == current->version()) return;
  auto snapshot = store_->loadRoutingSnapshot();
  table_.store(std::make_shared<const HostTable>(snapshot, options_.domain));
  // Deployment outputs no longer reachable are dropped; requests still using one keep it
  // alive through their own reference.
  std::set<std::string_view> live;
  for (const auto& d : snapshot.deployments) live.insert(d.manifestHash);
  std::lock_guard outLock(outputsMu_);
  for (auto it = outputs_.begin(); it != outputs_.end();) {
    it = live.contains(it->first) ? std::next(it) : outputs_.erase(it);
  }
}

Result<Router::OutputPtr> Router::deploymentOutput(const ResolvedHost& host) {
  {
    std::lock_guard lock(outputsMu_);
    if (auto it = outputs_.find(host.manifestHash); it != outputs_.end()) return it->second;
  }
  auto manifestJson = content_->read(host.manifestHash);
  if (!manifestJson) return manifestJson.error().context("reading the deployment manifest");
  auto manifest = output::manifestFromJson(*manifestJson);
  if (!manifest) return manifest.error().context("parsing the deployment manifest");
  auto loaded = output::loadDeploymentOutput(
      *manifest, [this](std::string_view hash) { return content_->read(hash); });
  if (!loaded) return loaded.error().context("loading deployment " + host.deploymentId);
  auto ptr = std::make_shared<const output::DeploymentOutput>(std::move(*loaded));
  std::lock_guard lock(outputsMu_);
  outputs_.emplace(host.manifestHash, ptr);
  return ptr;
}

asio::awaitable<void> Router::serve(http::Exchange* ex) {
  auto table = table_.load();
  auto resolved = table->resolve(ex->host());
  if (!resolved) {
    std::string message =
        ex->host().empty()
            ? std::string("the request has no Host header; Nimbus picks the deployment by host")
            : fmt::format("no deployment is served at host '{}'. Production URLs look like "
                          "http://<project>.{}:<port>/ and previews like "
                          "http://<project>-<id>.{}:<port>/; `nimbus projects` lists them",
                          ex->host(), table->domain(), table->domain());
    co_await http::sendError(ex, 404, "DEPLOYMENT_NOT_FOUND", message);
    co_return;
  }
  auto out = deploymentOutput(*resolved);
  if (!out) {
    spdlog::error("request {}: {}", ex->requestId(), out.error().message);
    co_await http::sendError(ex, 500, "DEPLOYMENT_LOAD_FAILED",
                             "this deployment could not be loaded; the server log has details");
    co_return;
  }
  std::string_view target = ex->target();
  std::string_view rawPath = target.substr(0, target.find('?'));
  auto path = decodePath(rawPath);
  if (!path || path->empty() || path->front() != '/') {
    co_await http::sendError(ex, 400, "MALFORMED_REQUEST_PATH",
                             "the request path is not a valid percent-encoded absolute path");
    co_return;
  }
  const output::StaticFile* file = output::findStatic(**out, *path);
  if (!file) {
    co_await http::sendError(ex, 404, "NOT_FOUND", "The page could not be found");
    co_return;
  }
  co_await serveStatic(ex, file, resolved->kind, *out);
}

Router::OpenFile::~OpenFile() {
  if (fd >= 0) ::close(fd);
}

std::shared_ptr<Router::OpenFile> Router::openBlob(const std::string& hash) {
  constexpr size_t kMaxOpenFiles = 256;
  {
    std::lock_guard lock(filesMu_);
    if (auto it = files_.find(hash); it != files_.end()) {
      filesLru_.splice(filesLru_.begin(), filesLru_, it->second.second);
      return it->second.first;
    }
  }
  auto path = content_->localPath(hash);
  if (!path) return nullptr;
  auto file = std::make_shared<OpenFile>();
  file->fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd < 0) return nullptr;
  std::lock_guard lock(filesMu_);
  if (auto it = files_.find(hash); it != files_.end()) return it->second.first;
  while (files_.size() >= kMaxOpenFiles) {
    files_.erase(filesLru_.back());
    filesLru_.pop_back();
  }
  filesLru_.push_front(hash);
  files_.emplace(hash, std::make_pair(file, filesLru_.begin()));
  return file;
}

Result<ByteCache::Bytes> Router::fileBytes(const output::StaticFile& file) {
  if (auto hit = cache_.get(file.hash)) return hit;
  auto bytes = content_->read(file.hash);
  if (!bytes) return bytes.error();
  auto ptr = std::make_shared<const std::string>(std::move(*bytes));
  cache_.put(file.hash, ptr);
  return ptr;
}

Result<ByteCache::Bytes> Router::encodedBytes(const output::StaticFile& file, Encoding e,
                                              const ByteCache::Bytes& identity) {
  std::string key = file.hash;
  key += e == Encoding::Brotli ? ".br" : ".gz";
  if (auto hit = cache_.get(key)) return hit;
  auto compressed = e == Encoding::Brotli ? compressBrotli(*identity) : compressGzip(*identity);
  if (!compressed) return compressed.error();
  auto ptr = std::make_shared<const std::string>(std::move(*compressed));
  cache_.put(key, ptr);
  return ptr;
}

namespace {

// Streams a blob too large for the memory cache from its file.
class FileReader final : public http::Exchange::ChunkSource {
 public:
  ~FileReader() override {
    if (fd >= 0) ::close(fd);
  }
  Result<std::string_view> next() override {
    if (remaining == 0) return std::string_view();
    buffer.resize(std::min<uint64_t>(256 * 1024, remaining));
    ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(offset));
    if (n <= 0) {
      return makeError(ErrorKind::Io, n == 0 ? "blob file is shorter than its manifest size"
                                             : std::strerror(errno));
    }
    offset += static_cast<uint64_t>(n);
    remaining -= static_cast<uint64_t>(n);
    return std::string_view(buffer.data(), static_cast<size_t>(n));
  }

  int fd = -1;
  uint64_t offset = 0;
  uint64_t remaining = 0;
  std::string buffer;
};

}  // namespace

asio::awaitable<void> Router::serveStatic(http::Exchange* ex, const output::StaticFile* file,
                                          HostKind kind, OutputPtr keepAlive) {
  StaticRequest req{ex->method(), ex->header("if-none-match"), ex->header("if-range"),
                    ex->header("range"), ex->header("accept-encoding")};
  bool compressible = isCompressibleType(file->contentType);
  StaticDecision d = decideStatic(req, StaticFileFacts{file->hash, file->size, compressible});
  if (d.status == 405) {
    ex->beginResponse(405);
    ex->addHeader("allow", "GET, HEAD");
    ex->addHeader("content-type", "text/plain; charset=utf-8");
    ex->addHeader("x-nimbus-error", "INVALID_REQUEST_METHOD");
    std::string message =
        fmt::format("405: {} is not allowed on a static file; use GET or HEAD\n", ex->method());
    co_await ex->send(message);
    co_return;
  }

  // Large identity bodies go out with sendfile from the blob file; the rest from memory
  // (compressed variants always from memory).
  std::shared_ptr<OpenFile> open;
  if ((d.status == 200 || d.status == 206) && file->size >= options_.sendfileMinBytes &&
      (d.encoding == Encoding::Identity || file->size > options_.cacheBytes / 4)) {
    open = openBlob(file->hash);
    if (open) d.encoding = Encoding::Identity;
  }
  // Memory-cached bytes for everything that fits; bigger files stream from disk.
  bool cached = !open && file->size <= options_.cacheBytes / 4;
  ByteCache::Bytes identity;
  ByteCache::Bytes body;
  if (cached && d.status != 304 && d.status != 416) {
    auto bytes = fileBytes(*file);
    if (!bytes) {
      spdlog::error("request {}: reading blob {}: {}", ex->requestId(), file->hash,
                    bytes.error().message);
      co_await http::sendError(ex, 500, "STATIC_FILE_UNAVAILABLE",
                               "the file exists in the deployment but could not be read");
      co_return;
    }
    identity = *bytes;
    body = identity;
    if (d.encoding != Encoding::Identity) {
      auto enc = encodedBytes(*file, d.encoding, identity);
      if (enc && (*enc)->size() < identity->size()) {
        body = *enc;
      } else {
        d.encoding = Encoding::Identity;
      }
    }
  } else if (!cached && !open) {
    d.encoding = Encoding::Identity;
  }

  ex->beginResponse(d.status);
  ex->addHeader("content-type", file->contentType);
  ex->addHeader("etag", etagFor(file->hash, d.encoding));
  ex->addHeader("cache-control", "public, max-age=0, must-revalidate");
  ex->addHeader("accept-ranges", "bytes");
  if (compressible) ex->addHeader("vary", "accept-encoding");
  if (d.encoding != Encoding::Identity) ex->addHeader("content-encoding", encodingToken(d.encoding));
  if (kind == HostKind::Preview) ex->addHeader("x-robots-tag", "noindex");
  if (d.status == 304) {
    co_await ex->send({});
    co_return;
  }
  if (d.status == 416) {
    ex->addHeader("content-range", fmt::format("bytes */{}", file->size));
    co_await ex->send({});
    co_return;
  }
  if (d.status == 206) {
    ex->addHeader("content-range",
                  fmt::format("bytes {}-{}/{}", d.offset, d.offset + d.length - 1, file->size));
  }
  if (open) {
    co_await ex->sendFile(open->fd, d.status == 206 ? d.offset : 0, d.status == 206 ? d.length : file->size);
    co_return;
  }
  if (cached) {
    std::string_view view(*body);
    if (d.status == 206) view = view.substr(d.offset, d.length);
    co_await ex->send(view);
    co_return;
  }
  auto path = content_->localPath(file->hash);
  auto reader = std::make_unique<FileReader>();
  if (path) reader->fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  if (reader->fd < 0) {
    spdlog::error("request {}: opening blob {}: {}", ex->requestId(), file->hash,
                  std::strerror(errno));
    co_await http::sendError(ex, 500, "STATIC_FILE_UNAVAILABLE",
                             "the file exists in the deployment but could not be read");
    co_return;
  }
  reader->offset = d.status == 206 ? d.offset : 0;
  reader->remaining = d.status == 206 ? d.length : file->size;
  uint64_t length = reader->remaining;
  co_await ex->sendStream(length, reader.get());
  (void)keepAlive;
}

}  // namespace nimbus::router

#include "router/router.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <filesystem>
#include <sys/stat.h>

#include "common/sha256.h"
#include "http/header_rules.h"

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

Router::Router(RouterOptions options, store::Store* store, content::ContentStore* content,
               worker::Worker* worker)
    : options_(std::move(options)),
      store_(store),
      content_(content),
      worker_(worker),
      cache_(options_.cacheBytes),
      proxy_(options_.proxy) {
  if (options_.stateDir.empty()) {
    char tmpl[] = "/tmp/nimbus-router-XXXXXX";
    if (char* dir = ::mkdtemp(tmpl)) options_.stateDir = dir;
  }
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
  {
    std::lock_guard tlsLock(tlsMu_);
    tls_.clear();  // upstream TLS changes bump the routing version too
  }
  // Deployment outputs no longer reachable are dropped; requests still using one keep it
  // alive through their own reference.
  std::set<std::string_view> live;
  for (const auto& d : snapshot.deployments) live.insert(d.manifestHash);
  std::lock_guard outLock(outputsMu_);
  for (auto it = outputs_.begin(); it != outputs_.end();) {
    it = live.contains(it->first) ? std::next(it) : outputs_.erase(it);
  }
}

Result<Router::DeploymentPtr> Router::loadDeployment(const ResolvedHost& host) {
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
  auto dep = std::make_shared<LoadedDeployment>();
  dep->output = std::move(*loaded);
  auto routes = routing::RouteTable::compile(dep->output.configJson);
  if (!routes) return routes.error().context("compiling the routes of " + host.deploymentId);
  dep->routes = std::move(*routes);
  dep->index = routing::makeOutputIndex(dep->output);
  DeploymentPtr ptr = std::move(dep);
  std::lock_guard lock(outputsMu_);
  outputs_.emplace(host.manifestHash, ptr);
  return ptr;
}

// ---- HeaderSet

namespace {
bool sameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

void HeaderSet::set(std::string_view name, std::string_view value) {
  remove(name);
  items_.emplace_back(std::string(name), std::string(value));
}

void HeaderSet::append(std::string_view name, std::string_view value) {
  items_.emplace_back(std::string(name), std::string(value));
}

void HeaderSet::remove(std::string_view name) {
  std::erase_if(items_, [&](const auto& kv) { return sameName(kv.first, name); });
}

bool HeaderSet::has(std::string_view name) const {
  return std::any_of(items_.begin(), items_.end(),
                     [&](const auto& kv) { return sameName(kv.first, name); });
}

void HeaderSet::applyRoute(const routing::Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (sameName(name, "set-cookie")) {
      append(name, value);
    } else {
      set(name, value);
    }
  }
}

void HeaderSet::applyImportant(const routing::Headers& headers) {
  for (const auto& kv : headers) remove(kv.first);
  for (const auto& [name, value] : headers) append(name, value);
}

void HeaderSet::emit(http::Exchange* ex) const {
  for (const auto& [name, value] : items_) ex->addHeader(name, value);
}

// ---- serving

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
  auto dep = loadDeployment(*resolved);
  if (!dep) {
    spdlog::error("request {}: {}", ex->requestId(), dep.error().message);
    co_await http::sendError(ex, 500, "DEPLOYMENT_LOAD_FAILED",
                             "this deployment could not be loaded; the server log has details");
    co_return;
  }
  std::string_view target = ex->target();
  size_t q = target.find('?');
  routing::Request req;
  req.method = std::string(ex->method());
  req.host = ex->host();
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  if (req.path.empty() || req.path.front() != '/' || !decodePath(req.path)) {
    co_await http::sendError(ex, 400, "MALFORMED_REQUEST_PATH",
                             "the request path is not a valid percent-encoded absolute path");
    co_return;
  }
  ex->forEachHeader([&req](std::string_view name, std::string_view value) {
    std::string lower(name);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.emplace_back(std::move(lower), std::string(value));
  });
  routing::Decision d = (*dep)->routes->evaluate(req, *(*dep)->index);
  co_await serveDecision(ex, dep->get(), &req, &d, &*resolved);
}

asio::awaitable<void> Router::serveDecision(http::Exchange* ex, const LoadedDeployment* dep,
                                            const routing::Request* req,
                                            const routing::Decision* d,
                                            const ResolvedHost* host) {
  using routing::DecisionKind;
  HostKind kind = host->kind;
  switch (d->kind) {
    case DecisionKind::Static: {
      auto it = dep->output.statics.find(d->key);
      if (it == dep->output.statics.end()) {
        co_await serveError(ex, d, 404, "NOT_FOUND", "The page could not be found");
        co_return;
      }
      co_await serveStatic(ex, &it->second, kind, d, d->status);
      co_return;
    }
    case DecisionKind::Redirect:
      co_await serveRedirect(ex, d);
      co_return;
    case DecisionKind::Error: {
      int status = d->status ? d->status : 404;
      if (!d->key.empty()) {
        if (auto it = dep->output.statics.find(d->key); it != dep->output.statics.end()) {
          co_await serveStatic(ex, &it->second, kind, d, status);
          co_return;
        }
      }
      std::string code = d->errorCode.empty() ? std::string("NOT_FOUND") : d->errorCode;
      std::string message = status == 404 ? std::string("The page could not be found")
                                          : fmt::format("routing ended with status {}", status);
      co_await serveError(ex, d, status, code, message);
      co_return;
    }
    case DecisionKind::Proxy:
      co_await serveProxy(ex, d, host);
      co_return;
    case DecisionKind::Function:
    case DecisionKind::Middleware: {
      if (!worker_) {
        std::string key = d->kind == DecisionKind::Function ? d->key : d->middlewareKey;
        std::string message = fmt::format(
            "this deployment routes the request to function '{}'; this server runs without "
            "a function worker",
            key);
        co_await serveError(ex, d, 501, "FUNCTION_RUNTIME_UNAVAILABLE", message);
      } else if (d->kind == DecisionKind::Function) {
        co_await serveFunction(ex, d, host);
      } else {
        co_await serveMiddleware(ex, dep, req, d, host);
      }
      co_return;
    }
  }
}

void Router::prepareInvocation(http::Exchange* ex, const routing::Decision* d,
                               const ResolvedHost* host, worker::Invocation* inv) const {
  inv->deploymentId = host->deploymentId;
  inv->path = d->path;
  inv->query = d->query;
  inv->requestHeaders = d->requestHeaders;
  inv->responseHeaders = d->headers;
  inv->importantHeaders = d->importantHeaders;
  inv->responseHeaderDeletes = d->responseHeaderDeletes;
  inv->status = d->status;
  std::string_view clientHost = ex->header("host");
  inv->publicHost = clientHost.empty() ? ex->host() : std::string(clientHost);
}

asio::awaitable<void> Router::serveFunction(http::Exchange* ex, const routing::Decision* d,
                                            const ResolvedHost* host) {
  worker::Invocation inv;
  prepareInvocation(ex, d, host, &inv);
  inv.functionKey = d->key;
  co_await worker_->invoke(ex, &inv);
}

namespace {

// Reads a middleware's response per spec 3.6.
routing::MiddlewareOutcome decodeMiddleware(const worker::BufferedResponse& r,
                                            std::string_view requestHost) {
  using Action = routing::MiddlewareOutcome::Action;
  routing::MiddlewareOutcome out;
  std::string_view next, rewrite, location, overrides;
  for (const auto& [name, value] : r.headers) {
    if (name == "x-middleware-next") next = value;
    else if (name == "x-middleware-rewrite") rewrite = value;
    else if (name == "location") location = value;
    else if (name == "x-middleware-override-headers") overrides = value;
  }
  out.responseHeaders = r.headers;
  out.status = r.status;
  if (!overrides.empty() || std::any_of(r.headers.begin(), r.headers.end(), [](const auto& kv) {
        return kv.first == "x-middleware-override-headers";
      })) {
    routing::Headers list;
    std::string_view rest = overrides;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string name(http::hdr::trim(rest.substr(0, comma)));
      name = http::hdr::lower(name);
      if (!name.empty()) {
        std::string key = "x-middleware-request-" + name;
        for (const auto& [k, v] : r.headers) {
          if (k == key) list.emplace_back(name, v);
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    out.overrideRequestHeaders = std::move(list);
  }
  if (!rewrite.empty()) {
    out.action = Action::Rewrite;
    std::string url(rewrite);
    // Same origin: only the path and query matter.
    for (std::string_view scheme : {"http://", "https://"}) {
      if (url.rfind(scheme, 0) != 0) continue;
      size_t slash = url.find('/', scheme.size());
      std::string authority = url.substr(scheme.size(), slash - scheme.size());
      std::string hostOnly = authority.substr(0, authority.rfind(':'));
      if (http::hdr::iequals(authority, requestHost) || http::hdr::iequals(hostOnly, requestHost)) {
        url = slash == std::string::npos ? std::string("/") : url.substr(slash);
      }
    }
    out.rewriteUrl = std::move(url);
  } else if (!next.empty()) {
    out.action = Action::Next;
  } else if (!location.empty() && r.status >= 300 && r.status < 400) {
    out.action = Action::Redirect;
  } else {
    out.action = Action::Respond;
  }
  return out;
}

}  // namespace

asio::awaitable<void> Router::serveMiddleware(http::Exchange* ex, const LoadedDeployment* dep,
                                              const routing::Request* req,
                                              const routing::Decision* d,
                                              const ResolvedHost* host) {
  worker::Invocation inv;
  prepareInvocation(ex, d, host, &inv);
  inv.functionKey = d->middlewareKey;
  worker::Worker::MiddlewareResult result;
  co_await worker_->invokeMiddleware(ex, &inv, &result);
  if (!result.ok) {
    if (result.errorCode.empty()) co_return;  // the client left
    co_await serveError(ex, d, result.errorStatus, result.errorCode, result.errorMessage);
    co_return;
  }
  auto outcome = decodeMiddleware(result.response, ex->host());
  if (!d->continuation) {
    co_await serveError(ex, d, 500, "MIDDLEWARE_INVOCATION_FAILED",
                        "routing stopped at a middleware without a way to continue");
    co_return;
  }
  routing::Decision next = dep->routes->resume(*req, *dep->index, *d->continuation, outcome);
  if (outcome.action == routing::MiddlewareOutcome::Action::Respond) {
    // The middleware's own response is the answer, with the route headers.
    HeaderSet headers;
    headers.applyRoute(next.headers);
    for (const auto& [name, value] : result.response.headers) {
      if (name.rfind("x-middleware-", 0) == 0 || name == "content-length" ||
          name == "transfer-encoding" || name == "connection" || name == "date" ||
          name == "server" || name == "x-nimbus-id") {
        continue;
      }
      if (name == "set-cookie") headers.append(name, value); else headers.set(name, value);
    }
    headers.applyImportant(next.importantHeaders);
    for (const auto& name : next.responseHeaderDeletes) headers.remove(name);
    if (!headers.has("cache-control")) {
      headers.set("cache-control", "public, max-age=0, must-revalidate");
    }
    ex->beginResponse(result.response.status);
    headers.emit(ex);
    co_await ex->send(result.response.body);
    co_return;
  }
  co_await serveDecision(ex, dep, req, &next, host);
}

std::shared_ptr<const proxy::UpstreamTls> Router::upstreamTls(const std::string& project) {
  std::lock_guard lock(tlsMu_);
  if (auto it = tls_.find(project); it != tls_.end()) return it->second;
  std::shared_ptr<const proxy::UpstreamTls> result;
  if (auto config = store_->upstreamTls(project)) {
    // Content-addressed directory: a changed setting gets new files, so connections that
    // still use the old ones are unaffected.
    std::string dir = fmt::format("{}/upstream-tls/{}-{}", options_.stateDir, project,
                                  sha256Hex(config->caPem + '\0' + config->certPem + '\0' +
                                            config->keyPem).substr(0, 16));
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    ::chmod(dir.c_str(), 0700);
    auto writeFile = [&](const std::string& name, const std::string& text) -> std::string {
      std::string path = dir + "/" + name;
      if (text.empty()) return {};
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return {};
      bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::close(fd);
      return ok ? path : std::string();
    };
    auto tls = std::make_shared<proxy::UpstreamTls>();
    tls->caFile = writeFile("ca.pem", config->caPem);
    tls->clientCertFile = writeFile("client.pem", config->certPem);
    tls->clientKeyFile = writeFile("client.key", config->keyPem);
    tls->verify = config->verify;
    result = std::move(tls);
  }
  tls_.emplace(project, result);
  return result;
}

asio::awaitable<void> Router::serveProxy(http::Exchange* ex, const routing::Decision* d,
                                         const ResolvedHost* host) {
  std::shared_ptr<const proxy::UpstreamTls> tls;
  if (d->url.starts_with("https://") || d->url.starts_with("HTTPS://")) {
    tls = upstreamTls(host->projectName);
  }
  proxy::ProxyRequest req;
  req.url = d->url;
  req.headers = d->requestHeaders;
  req.responseHeaders = d->headers;
  req.importantHeaders = d->importantHeaders;
  req.responseHeaderDeletes = d->responseHeaderDeletes;
  req.status = d->status;
  req.tls = tls.get();
  req.requestId = ex->requestId();
  co_await proxy_.forward(ex, &req);
}

asio::awaitable<void> Router::serveRedirect(http::Exchange* ex, const routing::Decision* d) {
  HeaderSet headers;
  headers.applyRoute(d->headers);
  headers.set("location", d->location);
  headers.applyImportant(d->importantHeaders);
  for (const auto& name : d->responseHeaderDeletes) headers.remove(name);
  std::string_view accept = ex->header("accept");
  std::string body;
  if (accept.find("json") != std::string_view::npos) {
    headers.set("content-type", "application/json; charset=utf-8");
    body = fmt::format("{{\"redirect\":\"{}\",\"status\":\"{}\"}}\n", d->location, d->status);
  } else if (accept.find("html") != std::string_view::npos) {
    headers.set("content-type", "text/html; charset=utf-8");
    std::string escaped;
    for (char c : d->location) {
      if (c == '"') escaped += "&quot;";
      else if (c == '<') escaped += "&lt;";
      else if (c == '&') escaped += "&amp;";
      else escaped.push_back(c);
    }
    body = fmt::format("<!doctype html><meta http-equiv=\"refresh\" content=\"0;url={0}\">"
                       "<a href=\"{0}\">Redirecting to {0}</a>\n",
                       escaped);
  } else {
    headers.set("content-type", "text/plain; charset=utf-8");
    body = fmt::format("Redirecting to {} ({})\n", d->location, d->status);
  }
  if (!headers.has("cache-control")) headers.set("cache-control", "public, max-age=0, must-revalidate");
  ex->beginResponse(d->status);
  headers.emit(ex);
  co_await ex->send(body);
}

asio::awaitable<void> Router::serveError(http::Exchange* ex, const routing::Decision* d,
                                         int status, std::string_view code,
                                         std::string_view message) {
  HeaderSet headers;
  headers.applyRoute(d->headers);
  std::string contentType;
  std::string body = http::renderErrorBody(status, code, message, ex->requestId(),
                                           ex->header("accept"), &contentType);
  headers.set("content-type", contentType);
  headers.set("x-nimbus-error", code);
  headers.applyImportant(d->importantHeaders);
  for (const auto& name : d->responseHeaderDeletes) headers.remove(name);
  if (!headers.has("cache-control")) headers.set("cache-control", "no-store");
  ex->beginResponse(status);
  headers.emit(ex);
  co_await ex->send(body);
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
                                          HostKind kind, const routing::Decision* route,
                                          int forcedStatus) {
  StaticRequest req{ex->method(), ex->header("if-none-match"), ex->header("if-range"),
                    ex->header("range"), ex->header("accept-encoding")};
  if (forcedStatus != 0) {
    // An error page or a status route: the whole representation, whatever the method.
    req = StaticRequest{"GET", {}, {}, {}, ex->header("accept-encoding")};
  }
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

  HeaderSet headers;
  headers.applyRoute(route->headers);
  headers.set("content-type", file->contentType);
  headers.set("etag", etagFor(file->hash, d.encoding));
  headers.set("accept-ranges", "bytes");
  if (compressible) headers.set("vary", "accept-encoding");
  if (d.encoding != Encoding::Identity) headers.set("content-encoding", encodingToken(d.encoding));
  if (d.status == 416) headers.set("content-range", fmt::format("bytes */{}", file->size));
  if (d.status == 206) {
    headers.set("content-range",
                fmt::format("bytes {}-{}/{}", d.offset, d.offset + d.length - 1, file->size));
  }
  headers.applyImportant(route->importantHeaders);
  for (const auto& name : route->responseHeaderDeletes) headers.remove(name);
  if (!headers.has("cache-control")) headers.set("cache-control", "public, max-age=0, must-revalidate");
  if (kind == HostKind::Preview) headers.set("x-robots-tag", "noindex");
  ex->beginResponse(forcedStatus != 0 ? forcedStatus : d.status);
  headers.emit(ex);
  if (d.status == 304 || d.status == 416) {
    co_await ex->send({});
    co_return;
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
}

}  // namespace nimbus::router

#include "control/control_server.h"

#include <filesystem>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <set>

#include "common/random.h"
#include "common/sha256.h"
#include "control/pem_check.h"
#include "worker/telemetry.h"
#include "output/build_output.h"
#include "output/manifest.h"
#include "router/host_table.h"
#include "routing/routing.h"

namespace nimbus::control {

namespace asio = boost::asio;
namespace json = boost::json;

std::string urlForHost(std::string_view host, uint16_t port) {
  if (port == 80) return fmt::format("http://{}", host);
  return fmt::format("http://{}:{}", host, port);
}

namespace {

// The parts of a request path after /v1/, split on '/'.
std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) parts.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return parts;
}

std::string queryParam(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string_view item = query.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    auto eq = item.find('=');
    if (item.substr(0, eq) == name) {
      std::string value;
      std::string_view raw = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '+') {
          value.push_back(' ');
        } else if (raw[i] == '%' && i + 2 < raw.size()) {
          value.push_back(static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16)));
          i += 2;
        } else {
          value.push_back(raw[i]);
        }
      }
      return value;
    }
    if (amp == std::string_view::npos) break;
    pos = amp + 1;
  }
  return {};
}

int statusFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Invalid: return 400;
    case ErrorKind::NotFound: return 404;
    case ErrorKind::Conflict: return 409;
    case ErrorKind::Unauthorized: return 401;
    case ErrorKind::TooLarge: return 413;
    case ErrorKind::Io:
    case ErrorKind::Internal: break;
  }
  return 500;
}

std::string_view codeFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Invalid: return "invalid_request";
    case ErrorKind::NotFound: return "not_found";
    case ErrorKind::Conflict: return "conflict";
    case ErrorKind::Unauthorized: return "unauthorized";
    case ErrorKind::TooLarge: return "too_large";
    case ErrorKind::Io: return "io_error";
    case ErrorKind::Internal: break;
  }
  return "internal_error";
}

}  // namespace

struct ControlServer::Call {
  http::Exchange* ex;
  std::string method;
  std::string path;                 // without query
  std::vector<std::string> parts;   // after "v1"
};

ControlServer::ControlServer(ControlOptions options, store::Store* store,
                             content::ContentStore* content, const SecretBox* secrets,
                             std::function<void()> onRoutingChange)
    : options_(std::move(options)),
      store_(store),
      content_(content),
      secrets_(secrets),
      onRoutingChange_(std::move(onRoutingChange)) {}

namespace {

asio::awaitable<void> sendReply(http::Exchange* ex, int status, std::string* text) {
  ex->beginResponse(status);
  ex->addHeader("content-type", "application/json");
  ex->addHeader("cache-control", "no-store");
  text->push_back('\n');
  co_await ex->send(*text);
}

// Writes upload bytes into a blob writer.
class BlobSink final : public http::Exchange::BodySink {
 public:
  explicit BlobSink(content::BlobWriter* writer) : writer_(writer) {}
  Result<void> write(const char* data, size_t size) override { return writer_->write(data, size); }

 private:
  content::BlobWriter* writer_;
};

}  // namespace

struct ControlServer::Reply {
  int status = 200;
  json::value body;
};

namespace {

ControlServer::Reply okReply() {
  json::object o;
  o["ok"] = true;
  return {200, std::move(o)};
}

ControlServer::Reply errorReply(int status, std::string_view code, std::string_view message,
                                json::object extra = {}) {
  json::object err;
  err["code"] = code;
  err["message"] = message;
  for (auto& kv : extra) err[kv.key()] = kv.value();
  json::object root;
  root["error"] = std::move(err);
  return {status, std::move(root)};
}

ControlServer::Reply resultError(const Error& e) {
  return errorReply(statusFor(e.kind), codeFor(e.kind), e.message);
}

}  // namespace

asio::awaitable<void> ControlServer::serve(http::Exchange* ex) {
  Call call;
  call.ex = ex;
  call.method = std::string(ex->method());
  std::string_view target = ex->target();
  call.path = std::string(target.substr(0, target.find('?')));
  auto parts = splitPath(call.path);
  if (call.path == "/metrics" && (call.method == "GET" || call.method == "HEAD")) {
    // Prometheus scrapes without a token; the API should listen on a private address.
    std::string text = options_.metricsText ? options_.metricsText() : std::string();
    co_await ex->respond(200, "text/plain; version=0.0.4; charset=utf-8", text);
    co_return;
  }
  if (parts.empty() || parts[0] != "v1") {
    Reply reply = errorReply(404, "not_found",
                             fmt::format("no API endpoint at {}; the API lives under /v1 (see "
                                         "docs/api.md)",
                                         call.path));
    co_await sendReplyOf(ex, &reply);
    co_return;
  }
  call.parts.assign(parts.begin() + 1, parts.end());
  if (call.parts.size() == 1 && call.parts[0] == "health") {
    Reply reply = okReply();
    co_await sendReplyOf(ex, &reply);
    co_return;
  }

  std::string_view auth = ex->header("authorization");
  std::string howTo = fmt::format(
      "pass --token or set NIMBUS_TOKEN; the admin token that `nimbus serve` created is in {}, "
      "and `nimbus token create` makes more",
      options_.adminTokenPath.empty() ? std::string("<data dir>/admin-token")
                                      : options_.adminTokenPath);
  if (auth.empty()) {
    {
      Reply reply = errorReply(401, "unauthorized", "missing bearer token: " + howTo);
      co_await sendReplyOf(ex, &reply);
    }
    co_return;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() <= kBearer.size() || !std::equal(kBearer.begin(), kBearer.end(), auth.begin(),
                                                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    {
      Reply reply = errorReply(401, "unauthorized", "the Authorization header must be 'Bearer <token>': " + howTo);
      co_await sendReplyOf(ex, &reply);
    }
    co_return;
  }
  if (!store_->authenticate(sha256Hex(auth.substr(kBearer.size())))) {
    {
      Reply reply = errorReply(401, "unauthorized", "the token is not valid (revoked or mistyped): " + howTo);
      co_await sendReplyOf(ex, &reply);
    }
    co_return;
  }
  co_await dispatch(&call);
}

namespace {

// Parses a non-negative integer query value; `fallback` when absent or malformed.
uint64_t queryNumber(std::string_view target, std::string_view name, uint64_t fallback) {
  std::string v = queryParam(target, name);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    return fallback;
  }
  return std::stoull(v);
}

json::value blobReplyBody(const std::string& hash, uint64_t size, bool existed) {
  json::object o;
  o["hash"] = hash;
  o["size"] = size;
  o["existed"] = existed;
  return o;
}

}  // namespace

asio::awaitable<void> ControlServer::sendReplyOf(http::Exchange* ex, const Reply* reply) {
  std::string text = json::serialize(reply->body);
  co_await sendReply(ex, reply->status, &text);
}

asio::awaitable<void> ControlServer::dispatch(Call* call) {
  http::Exchange* ex = call->ex;
  const auto& p = call->parts;
  if (p.size() == 2 && p[0] == "blobs" && call->method == "PUT") {
    Reply reply = co_await uploadBlob(ex, p[1]);
    co_await sendReplyOf(ex, &reply);
    co_return;
  }
  std::string body;
  if (call->method == "POST" || call->method == "PUT" || call->method == "PATCH") {
    auto read = co_await ex->readBody(options_.maxJsonBytes);
    if (!read) {
      Reply reply = resultError(read.error());
      co_await sendReplyOf(ex, &reply);
      co_return;
    }
    body = std::move(*read);
  }
  Reply reply = route(call, body);
  co_await sendReplyOf(ex, &reply);
}

// Streams one blob into the content store; it becomes visible only once verified.
asio::awaitable<ControlServer::Reply> ControlServer::uploadBlob(http::Exchange* ex, std::string hash) {
  Reply reply = precheckBlob(ex, hash);
  if (reply.status != 0) co_return reply;
  uint64_t length = *ex->contentLength();
  if (content_->has(hash)) {
    auto drained = co_await ex->discardBody(options_.maxBlobBytes);
    if (!drained) ex->closeAfterResponse();
    reply = Reply{200, blobReplyBody(hash, length, true)};
    co_return reply;
  }
  auto writer = content_->beginWrite(hash, length);
  if (!writer) {
    reply = resultError(writer.error());
    co_return reply;
  }
  BlobSink sink(writer->get());
  auto received = co_await ex->readBodyTo(&sink, options_.maxBlobBytes);
  reply = finishBlob(ex, hash, length, received, writer->get());
  co_return reply;
}

ControlServer::Reply ControlServer::precheckBlob(http::Exchange* ex, const std::string& hash) {
  if (!isSha256Hex(hash)) {
    return errorReply(400, "invalid_hash",
                      fmt::format("'{}' is not a blob name: use the SHA-256 of the bytes as "
                                  "64 lower-case hex characters",
                                  hash.substr(0, 80)));
  }
  auto length = ex->contentLength();
  if (!length) {
    ex->closeAfterResponse();
    return errorReply(411, "length_required",
                      "send the blob with a Content-Length header (not chunked)");
  }
  if (*length > options_.maxBlobBytes) {
    ex->closeAfterResponse();
    return errorReply(413, "blob_too_large",
                      fmt::format("the file is {} bytes; the limit is {} bytes per file (raise "
                                  "it with `nimbus serve --max-file-mb`)",
                                  *length, options_.maxBlobBytes));
  }
  return Reply{0, nullptr};
}

ControlServer::Reply ControlServer::finishBlob(http::Exchange* ex, const std::string& hash,
                                               uint64_t length, const Result<uint64_t>& received,
                                               content::BlobWriter* writer) {
  if (!received) {
    ex->closeAfterResponse();
    const Error& e = received.error();
    int status = e.kind == ErrorKind::Invalid ? 400 : statusFor(e.kind);
    return errorReply(status, status == 400 ? "hash_mismatch" : codeFor(e.kind),
                      "receiving blob " + hash + ": " + e.message);
  }
  if (auto r = writer->commit(); !r) {
    int status = r.error().kind == ErrorKind::Invalid ? 400 : 500;
    return errorReply(status, status == 400 ? "hash_mismatch" : "io_error", r.error().message);
  }
  return Reply{201, blobReplyBody(hash, length, false)};
}

namespace {

json::object deploymentJson(const store::Deployment& d, const ControlOptions& o,
                            const std::optional<std::string>& productionId) {
  json::object out;
  out["id"] = d.id;
  out["project"] = d.projectName;
  out["target"] = store::toString(d.target);
  out["createdAt"] = d.createdAtMs;
  out["files"] = d.fileCount;
  out["bytes"] = d.totalBytes;
  out["isProduction"] = productionId && *productionId == d.id;
  out["url"] = urlForHost(router::previewHost(d.projectName, d.id, o.domain), o.routerPort);
  out["productionUrl"] = urlForHost(router::productionHost(d.projectName, o.domain), o.routerPort);
  return out;
}

Result<json::object> parseJsonObject(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    return makeError(ErrorKind::Invalid, "the request body is not valid JSON: " + ec.message());
  }
  if (!v.is_object()) return makeError(ErrorKind::Invalid, "the request body must be a JSON object");
  return std::move(v.as_object());
}

json::array stringArray(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& s : items) out.emplace_back(s);
  return out;
}

}  // namespace

ControlServer::Reply ControlServer::deploymentReply(int status, const store::Deployment& d) {
  return Reply{status, deploymentJson(d, options_, store_->productionDeploymentId(d.projectName))};
}

void ControlServer::routingChanged() {
  if (onRoutingChange_) onRoutingChange_();
}

// Records of the deployment's function log: `after=<offset>` continues from a previous
// answer's `next`; without it, the last `tail` records (default 100).
ControlServer::Reply ControlServer::functionLogs(Call* call, const std::string& deploymentId) {
  if (options_.functionLogDir.empty()) {
    return errorReply(503, "no_worker", "this server runs without a function worker");
  }
  constexpr uint64_t kChunk = 1 << 20;
  std::string_view target = call->ex->target();
  uint64_t after = queryNumber(target, "after", UINT64_MAX);
  uint64_t tail = queryNumber(target, "tail", 100);
  std::string path = fmt::format("{}/{}.jsonl", options_.functionLogDir, deploymentId);
  std::error_code fec;
  uint64_t size = std::filesystem::file_size(path, fec);
  if (fec) size = 0;
  bool tailMode = after == UINT64_MAX;
  uint64_t from = tailMode ? (size > 4 * kChunk ? size - 4 * kChunk : 0) : std::min(after, size);
  auto chunk = worker::readFunctionLog(options_.functionLogDir, deploymentId, from,
                                       tailMode ? 4 * kChunk : kChunk);
  if (!chunk) return resultError(chunk.error());
  std::vector<std::string_view> lines;
  std::string_view rest = chunk->records;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    lines.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  // A tail read that started mid-file begins with a partial line.
  if (tailMode && from > 0 && !lines.empty()) lines.erase(lines.begin());
  if (tailMode && lines.size() > tail) lines.erase(lines.begin(), lines.end() - static_cast<long>(tail));
  json::array records;
  for (auto line : lines) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    if (!ec) records.push_back(std::move(v));
  }
  json::object out;
  out["records"] = std::move(records);
  out["next"] = chunk->nextOffset;
  return Reply{200, std::move(out)};
}

ControlServer::Reply ControlServer::route(Call* call, const std::string& body) {
  const auto& p = call->parts;
  const std::string& m = call->method;
  if (p.size() == 2 && p[0] == "blobs" && p[1] == "missing" && m == "POST") {
    return missingBlobs(body);
  }
  if (p.size() == 1 && p[0] == "deployments" && m == "POST") return createDeployment(body);
  if (p.size() == 1 && p[0] == "deployments" && m == "GET") {
    std::string project = queryParam(call->ex->target(), "project");
    if (!project.empty() && !store_->findProject(project)) {
      return errorReply(404, "not_found",
                        fmt::format("there is no project '{}'; `nimbus projects` lists them", project));
    }
    json::array list;
    for (const auto& d : store_->listDeployments(project)) {
      list.emplace_back(deploymentReply(200, d).body);
    }
    json::object out;
    out["deployments"] = std::move(list);
    return Reply{200, std::move(out)};
  }
  if (p.size() >= 2 && p[0] == "deployments") {
    const std::string& id = p[1];
    auto d = store_->findDeployment(id);
    if (!d) {
      return errorReply(404, "not_found",
                        fmt::format("there is no deployment '{}'; `nimbus ls` lists them", id));
    }
    if (p.size() == 2 && m == "GET") return deploymentReply(200, *d);
    if (p.size() == 3 && p[2] == "logs" && m == "GET") return functionLogs(call, id);
    if (p.size() == 2 && m == "DELETE") {
      auto r = store_->deleteDeployment(id);
      if (!r) {
        if (r.error().kind == ErrorKind::Conflict) {
          return errorReply(409, "is_production", r.error().message);
        }
        return resultError(r.error());
      }
      routingChanged();
      json::object out;
      out["deleted"] = id;
      return Reply{200, std::move(out)};
    }
    if (p.size() == 3 && p[2] == "promote" && m == "POST") {
      auto r = store_->promote(id);
      if (!r) return resultError(r.error());
      routingChanged();
      return deploymentReply(200, *r);
    }
  }
  if (p.size() == 1 && p[0] == "resolve" && m == "GET") {
    std::string host = queryParam(call->ex->target(), "host");
    for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (auto colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
    router::HostTable table(store_->loadRoutingSnapshot(), options_.domain);
    auto resolved = table.resolve(host);
    auto d = resolved ? store_->findDeployment(resolved->deploymentId) : std::nullopt;
    if (!d) {
      return errorReply(404, "not_found",
                        fmt::format("no deployment is served at '{}'; `nimbus ls` lists them", host));
    }
    return deploymentReply(200, *d);
  }
  if (p.size() == 1 && p[0] == "instances" && m == "GET") {
    if (!options_.workerStatus) {
      return errorReply(503, "no_worker", "this server runs without a function worker");
    }
    boost::system::error_code ec;
    auto v = json::parse(options_.workerStatus(), ec);
    if (ec || !v.is_object()) return errorReply(500, "internal", "worker status unreadable");
    return Reply{200, std::move(v.as_object())};
  }
  if (p.size() == 1 && p[0] == "projects" && m == "GET") {
    json::array list;
    for (const auto& proj : store_->listProjects()) {
      auto prod = store_->productionDeploymentId(proj.name);
      json::object o;
      o["id"] = proj.id;
      o["name"] = proj.name;
      o["createdAt"] = proj.createdAtMs;
      o["production"] = prod ? json::value(*prod) : json::value(nullptr);
      o["url"] = urlForHost(router::productionHost(proj.name, options_.domain), options_.routerPort);
      list.emplace_back(std::move(o));
    }
    json::object out;
    out["projects"] = std::move(list);
    return Reply{200, std::move(out)};
  }
  if (p.size() >= 3 && p.size() <= 4 && p[0] == "projects" && p[2] == "env") {
    return envVars(call, body);
  }
  if (p.size() == 3 && p[0] == "projects" && p[2] == "upstream-tls") {
    return upstreamTls(p[1], m, body);
  }
  if (p.size() == 3 && p[0] == "projects" && p[2] == "rollback" && m == "POST") {
    if (!store_->findProject(p[1])) {
      return errorReply(404, "not_found",
                        fmt::format("there is no project '{}'; `nimbus projects` lists them", p[1]));
    }
    auto r = store_->rollback(p[1]);
    if (!r) return errorReply(409, "nothing_to_roll_back", r.error().message);
    routingChanged();
    return deploymentReply(200, *r);
  }
  if (p.size() == 1 && p[0] == "aliases" && m == "GET") {
    json::array list;
    for (const auto& a : store_->listAliases()) list.emplace_back(aliasJson(a));
    json::object out;
    out["aliases"] = std::move(list);
    return Reply{200, std::move(out)};
  }
  if (p.size() == 2 && p[0] == "aliases" && (m == "PUT" || m == "DELETE")) {
    std::string host = p[1];
    for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (m == "DELETE") {
      auto r = store_->removeAlias(host);
      if (!r) return resultError(r.error());
      routingChanged();
      json::object out;
      out["deleted"] = host;
      return Reply{200, std::move(out)};
    }
    auto obj = parseJsonObject(body);
    if (!obj) return resultError(obj.error());
    auto* dep = obj->if_contains("deployment");
    if (!dep || !dep->is_string()) {
      return errorReply(400, "invalid_request", "expected {\"deployment\": \"<id>\"}");
    }
    auto r = store_->setAlias(host, dep->as_string());
    if (!r) return resultError(r.error());
    routingChanged();
    return Reply{200, aliasJson(*r)};
  }
  if (p.size() == 1 && p[0] == "tokens" && m == "GET") {
    json::array list;
    for (const auto& t : store_->listTokens()) {
      json::object o;
      o["id"] = t.id;
      o["name"] = t.name;
      o["createdAt"] = t.createdAtMs;
      o["lastUsedAt"] = t.lastUsedAtMs ? json::value(*t.lastUsedAtMs) : json::value(nullptr);
      list.emplace_back(std::move(o));
    }
    json::object out;
    out["tokens"] = std::move(list);
    return Reply{200, std::move(out)};
  }
  if (p.size() == 1 && p[0] == "tokens" && m == "POST") {
    std::string name = "cli";
    if (!body.empty()) {
      auto obj = parseJsonObject(body);
      if (!obj) return resultError(obj.error());
      if (auto* n = obj->if_contains("name"); n && n->is_string()) name = std::string(n->as_string());
    }
    if (name.empty() || name.size() > 100) {
      return errorReply(400, "invalid_request", "a token name has 1 to 100 characters");
    }
    std::string secret = randomToken();
    auto t = store_->createToken(name, sha256Hex(secret));
    if (!t) return resultError(t.error());
    json::object out;
    out["id"] = t->id;
    out["name"] = t->name;
    out["token"] = secret;
    return Reply{201, std::move(out)};
  }
  if (p.size() == 2 && p[0] == "tokens" && m == "DELETE") {
    auto r = store_->revokeToken(p[1]);
    if (!r) return resultError(r.error());
    json::object out;
    out["revoked"] = p[1];
    return Reply{200, std::move(out)};
  }
  return errorReply(404, "not_found",
                    fmt::format("no API endpoint {} {}; see docs/api.md for the list",
                                call->method, call->path));
}

json::object ControlServer::aliasJson(const store::Alias& a) const {
  json::object o;
  o["host"] = a.host;
  o["deployment"] = a.deploymentId;
  o["updatedAt"] = a.updatedAtMs;
  o["url"] = urlForHost(a.host, options_.routerPort);
  return o;
}

namespace {

json::object upstreamTlsJson(std::string_view project, const store::UpstreamTlsConfig& c) {
  json::object o;
  o["project"] = project;
  o["customCa"] = !c.caPem.empty();
  o["clientCertificate"] = !c.certPem.empty();
  o["verify"] = c.verify;
  o["updatedAt"] = c.updatedAtMs;
  return o;
}

}  // namespace

// The private key never leaves the server: GET reports what is configured, not the PEM.
ControlServer::Reply ControlServer::upstreamTls(const std::string& project, const std::string& m,
                                                const std::string& body) {
  if (!store_->findProject(project)) {
    return errorReply(404, "not_found",
                      fmt::format("there is no project '{}'; `nimbus projects` lists them", project));
  }
  if (m == "GET") {
    auto c = store_->upstreamTls(project);
    if (!c) {
      return errorReply(404, "not_found",
                        fmt::format("project '{}' has no upstream TLS settings; HTTPS upstreams "
                                    "are verified against the system trust store",
                                    project));
    }
    return Reply{200, upstreamTlsJson(project, *c)};
  }
  if (m == "DELETE") {
    auto r = store_->clearUpstreamTls(project);
    if (!r) return resultError(r.error());
    routingChanged();
    json::object out;
    out["cleared"] = project;
    return Reply{200, std::move(out)};
  }
  if (m != "PUT") {
    return errorReply(405, "method_not_allowed", "use GET, PUT or DELETE on upstream-tls");
  }
  auto obj = parseJsonObject(body);
  if (!obj) return resultError(obj.error());
  store::UpstreamTlsConfig c;
  auto text = [&](std::string_view key, std::string* out) -> bool {
    auto* v = obj->if_contains(key);
    if (!v || v->is_null()) return true;
    if (!v->is_string()) return false;
    *out = std::string(v->as_string());
    return true;
  };
  if (!text("ca", &c.caPem) || !text("cert", &c.certPem) || !text("key", &c.keyPem)) {
    return errorReply(400, "invalid_request",
                      "\"ca\", \"cert\" and \"key\" must be PEM text strings");
  }
  if (auto* v = obj->if_contains("verify")) {
    if (!v->is_bool()) return errorReply(400, "invalid_request", "\"verify\" must be true or false");
    c.verify = v->as_bool();
  }
  if (auto ok = checkUpstreamTlsPem(c.caPem, c.certPem, c.keyPem); !ok) {
    return errorReply(400, "invalid_pem", ok.error().message);
  }
  auto r = store_->setUpstreamTls(project, c);
  if (!r) return resultError(r.error());
  routingChanged();
  auto saved = store_->upstreamTls(project);
  return Reply{200, upstreamTlsJson(project, saved ? *saved : c)};
}

Result<std::string> ControlServer::envSnapshot(const std::string& project, store::Target target,
                                               std::vector<std::string>* keys) {
  json::object vars;
  for (const auto& v : store_->listEnvVars(project)) {
    if (v.environment != target) continue;
    auto value = secrets_->open(v.sealedValue);
    if (!value) return value.error().context("reading variable " + v.key);
    vars[v.key] = *value;
    keys->push_back(v.key);
  }
  if (vars.empty()) return std::string();
  return secrets_->seal(json::serialize(vars));
}

// Values are write-only unless asked for with ?values=1 (what `nimbus env ls --values` and a
// future `env pull` use); they are sealed at rest either way.
ControlServer::Reply ControlServer::envVars(Call* call, const std::string& body) {
  const auto& p = call->parts;
  const std::string& project = p[1];
  const std::string& m = call->method;
  if (p.size() == 3 && m == "GET") {
    if (!store_->findProject(project)) {
      return errorReply(404, "not_found",
                        fmt::format("there is no project '{}'; `nimbus projects` lists them", project));
    }
    bool withValues = queryParam(call->ex->target(), "values") == "1";
    json::array list;
    for (const auto& v : store_->listEnvVars(project)) {
      json::object o;
      o["key"] = v.key;
      o["environment"] = store::toString(v.environment);
      o["updatedAt"] = v.updatedAtMs;
      if (withValues) {
        auto value = secrets_->open(v.sealedValue);
        if (!value) return resultError(value.error());
        o["value"] = *value;
      }
      list.emplace_back(std::move(o));
    }
    json::object out;
    out["env"] = std::move(list);
    return Reply{200, std::move(out)};
  }
  if (p.size() != 4) return errorReply(404, "not_found", "use /v1/projects/<name>/env/<KEY>");
  const std::string& key = p[3];
  if (m == "DELETE") {
    std::string env = queryParam(call->ex->target(), "environment");
    std::optional<store::Target> target;
    if (!env.empty()) {
      target = store::parseTarget(env);
      if (!target) {
        return errorReply(400, "invalid_environment",
                          "environment must be \"production\" or \"preview\"");
      }
    }
    auto r = store_->removeEnvVar(project, key, target);
    if (!r) return resultError(r.error());
    json::object out;
    out["deleted"] = key;
    return Reply{200, std::move(out)};
  }
  if (m != "PUT") return errorReply(405, "method_not_allowed", "use GET, PUT or DELETE");
  if (!store::isValidProjectName(project)) {
    return errorReply(400, "invalid_project", "the project name must be 1-48 characters of a-z, 0-9 and '-'");
  }
  auto obj = parseJsonObject(body);
  if (!obj) return resultError(obj.error());
  auto* value = obj->if_contains("value");
  if (!value || !value->is_string()) {
    return errorReply(400, "invalid_request", "expected {\"value\": \"...\", \"environments\": [...]}");
  }
  if (value->as_string().size() > 64 * 1024) {
    return errorReply(413, "too_large", "a variable's value is limited to 64 KiB");
  }
  std::vector<store::Target> targets{store::Target::Production, store::Target::Preview};
  if (auto* envs = obj->if_contains("environments")) {
    targets.clear();
    if (!envs->is_array() || envs->as_array().empty()) {
      return errorReply(400, "invalid_environment",
                        "\"environments\" must list \"production\" and/or \"preview\"");
    }
    for (const auto& e : envs->as_array()) {
      auto t = e.is_string() ? store::parseTarget(e.as_string()) : std::nullopt;
      if (!t) {
        return errorReply(400, "invalid_environment",
                          "environment must be \"production\" or \"preview\"");
      }
      targets.push_back(*t);
    }
  }
  std::string sealed = secrets_->seal(value->as_string());
  json::array saved;
  for (auto t : targets) {
    auto r = store_->setEnvVar(project, store::EnvVar{key, t, sealed, 0});
    if (!r) return resultError(r.error());
    saved.emplace_back(store::toString(t));
  }
  json::object out;
  out["key"] = key;
  out["environments"] = std::move(saved);
  out["note"] = "new deployments get it; existing deployments keep their snapshot";
  return Reply{200, std::move(out)};
}

ControlServer::Reply ControlServer::missingBlobs(const std::string& body) {
  auto obj = parseJsonObject(body);
  if (!obj) return resultError(obj.error());
  auto* hashes = obj->if_contains("hashes");
  if (!hashes || !hashes->is_array()) {
    return errorReply(400, "invalid_request", "expected {\"hashes\": [\"<sha256>\", ...]}");
  }
  std::vector<std::string> list;
  for (const auto& h : hashes->as_array()) {
    if (!h.is_string() || !isSha256Hex(h.as_string())) {
      return errorReply(400, "invalid_hash",
                        "every hash must be 64 lower-case hex characters (SHA-256)");
    }
    list.emplace_back(h.as_string());
  }
  json::object out;
  out["missing"] = stringArray(content_->missing(list));
  return Reply{200, std::move(out)};
}

ControlServer::Reply ControlServer::createDeployment(const std::string& body) {
  auto obj = parseJsonObject(body);
  if (!obj) return resultError(obj.error());
  store::NewDeployment nd;
  auto* project = obj->if_contains("project");
  if (!project || !project->is_string() || !store::isValidProjectName(project->as_string())) {
    return errorReply(400, "invalid_project",
                      "\"project\" must be a name of 1-48 characters from a-z, 0-9 and '-', not "
                      "starting or ending with '-' (it becomes part of the host name); pass "
                      "--project NAME");
  }
  nd.projectName = std::string(project->as_string());
  if (auto* t = obj->if_contains("target")) {
    auto parsed = t->is_string() ? store::parseTarget(t->as_string()) : std::nullopt;
    if (!parsed) {
      return errorReply(400, "invalid_target", "\"target\" must be \"preview\" or \"production\"");
    }
    nd.target = *parsed;
  }
  auto* files = obj->if_contains("files");
  if (!files || !files->is_array()) {
    return errorReply(400, "invalid_manifest",
                      "\"files\" must be an array of manifest entries (see docs/api.md)");
  }
  json::object wrapper;
  wrapper["files"] = std::move(*files);
  auto manifest = output::manifestFromJson(json::serialize(wrapper));
  if (!manifest) return errorReply(400, "invalid_manifest", manifest.error().message);
  if (auto v = output::validateManifest(*manifest); !v) {
    return errorReply(400, "invalid_manifest", v.error().message);
  }
  std::vector<std::string> hashes;
  for (const auto& e : *manifest) {
    if (!e.isSymlink()) hashes.push_back(e.hash);
  }
  auto missing = content_->missing(hashes);
  if (!missing.empty()) {
    json::object extra;
    extra["missing"] = stringArray(missing);
    return errorReply(409, "missing_blobs",
                      fmt::format("{} file(s) of the manifest were never uploaded; upload them "
                                  "with PUT /v1/blobs/<hash> first",
                                  missing.size()),
                      std::move(extra));
  }
  // The hash proves the bytes; the size a client claims must match them too.
  for (const auto& e : *manifest) {
    if (e.isSymlink()) continue;
    auto local = content_->localPath(e.hash);
    struct stat st {};
    if (local && ::stat(local->c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) != e.size) {
      return errorReply(400, "invalid_manifest",
                        fmt::format("{}: the manifest says {} bytes but blob {} has {}", e.path,
                                    e.size, e.hash, st.st_size));
    }
    nd.fileCount += 1;
    nd.totalBytes += static_cast<int64_t>(e.size);
  }
  auto loaded = output::loadDeploymentOutput(
      *manifest, [this](std::string_view h) { return content_->read(h); });
  if (!loaded) return errorReply(400, "invalid_output", loaded.error().message);
  if (auto routes = routing::RouteTable::compile(loaded->configJson); !routes) {
    return errorReply(400, "invalid_routes",
                      "config.json routes cannot be used: " + routes.error().message);
  }
  std::vector<std::string> envKeys;
  auto snapshot = envSnapshot(nd.projectName, nd.target, &envKeys);
  if (!snapshot) return resultError(snapshot.error());
  nd.envSnapshotSealed = std::move(*snapshot);
  auto manifestHash = content_->put(output::manifestToJson(*manifest));
  if (!manifestHash) return resultError(manifestHash.error().context("storing the manifest"));
  nd.manifestHash = *manifestHash;
  auto created = store_->createDeployment(nd);
  if (!created) return resultError(created.error());
  routingChanged();
  spdlog::info("deployment {} of project {} created ({} files, {} bytes, {})", created->id,
               created->projectName, created->fileCount, created->totalBytes,
               store::toString(created->target));
  Reply reply = deploymentReply(201, *created);
  reply.body.as_object()["warnings"] = stringArray(loaded->warnings);
  reply.body.as_object()["env"] = stringArray(envKeys);
  return reply;
}

}  // namespace nimbus::control

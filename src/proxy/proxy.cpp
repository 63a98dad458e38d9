#include "proxy/proxy.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "http/header_rules.h"
#include "http/server.h"

namespace nimbus::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kBufferBytes = 64 * 1024;

namespace {

using namespace http::hdr;  // NOLINT: header rules shared with the worker

// How many times a request already passed through a proxy calling itself `name`, from the
// elements ("1.1 nimbus", "HTTP/1.1 nimbus (comment)") of its via headers.
int countViaHops(const Headers& headers, std::string_view name) {
  int hops = 0;
  for (const auto& [k, v] : headers) {
    if (!iequals(k, "via")) continue;
    std::string_view rest = v;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto element = trim(rest.substr(0, comma));
      auto space = element.find(' ');
      if (space != std::string_view::npos) {
        auto by = trim(element.substr(space + 1));
        by = by.substr(0, by.find(' '));
        if (iequals(by, name)) ++hops;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return hops;
}

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

bool isTlsError(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec.category() == ssl::error::get_stream_category();
}

bool isTruncated(const error_code& ec) { return ec == ssl::error::stream_truncated; }

// The connection ended under us: the peer closed or reset it, or it was never usable.
bool isConnectionGone(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || isTruncated(ec);
}

// The OpenSSL error queue of this thread as "reason (library); ...", emptied.
std::string drainOpensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(e);
    const char* lib = ERR_lib_error_string(e);
    out += reason ? reason : fmt::format("OpenSSL error {:#x}", e);
    if (lib) out += fmt::format(" ({})", lib);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// What identifies a version of a file on disk, to notice rotated certificates.
struct FileStamp {
  int64_t mtimeNs = 0;
  int64_t size = -1;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stampOf(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
}

struct TlsEntry {
  std::shared_ptr<ssl::context> ctx;
  uint64_t id = 0;  // distinguishes pools of connections made with different contexts
  FileStamp ca, cert, key;
};

// OpenSSL's messages for a missing file are cryptic; say it plainly first.
Result<void> checkReadable(const std::string& path, std::string_view what) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) {
    return makeError(ErrorKind::Invalid,
                     fmt::format("cannot read the {} {}: {}", what, path, std::strerror(errno)));
  }
  std::fclose(f);
  return success();
}

Result<std::shared_ptr<ssl::context>> buildTlsContext(const UpstreamTls& t) {
  for (const auto& [path, what] : {std::pair{&t.caFile, "upstream CA file"},
                                   std::pair{&t.clientCertFile, "client certificate"},
                                   std::pair{&t.clientKeyFile, "client key"}}) {
    if (path->empty()) continue;
    if (auto r = checkReadable(*path, what); !r) return r.error();
  }
  ERR_clear_error();
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn);
  if (t.verify) {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    if (t.caFile.empty()) {
      if (SSL_CTX_set_default_verify_paths(c) != 1) {
        return makeError(ErrorKind::Invalid,
                         "cannot load the system trust store: " + drainOpensslErrors() +
                             "; set a CA file for this upstream");
      }
    } else if (SSL_CTX_load_verify_locations(c, t.caFile.c_str(), nullptr) != 1) {
      return makeError(ErrorKind::Invalid,
                       fmt::format("cannot load the upstream CA file {}: {}; it must be a "
                                   "readable PEM file of CA certificates",
                                   t.caFile, drainOpensslErrors()));
    }
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  if (!t.clientCertFile.empty()) {
    const std::string& keyFile = t.clientKeyFile.empty() ? t.clientCertFile : t.clientKeyFile;
    if (SSL_CTX_use_certificate_chain_file(c, t.clientCertFile.c_str()) != 1) {
      return makeError(ErrorKind::Invalid,
                       fmt::format("cannot load the client certificate {}: {}; it must be a "
                                   "readable PEM certificate chain",
                                   t.clientCertFile, drainOpensslErrors()));
    }
    if (SSL_CTX_use_PrivateKey_file(c, keyFile.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
      return makeError(ErrorKind::Invalid,
                       fmt::format("cannot use the client key {} with certificate {}: {}", keyFile,
                                   t.clientCertFile, drainOpensslErrors()));
    }
  }
  return ctx;
}

// An upstream connection: TCP or TLS over TCP, with bytes read past the last response.
struct Conn {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<ssl::stream<beast::tcp_stream>> tls;
  std::shared_ptr<ssl::context> ctx;
  beast::flat_buffer buffer;
  SteadyClock::time_point idleSince;
  beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }
};

// Idle connections of one io_context, newest at the back of each list.
struct Pool {
  std::unordered_map<std::string, std::deque<std::unique_ptr<Conn>>> idle;
  size_t total = 0;
  SteadyClock::time_point nextSweep;
};

enum class Attempt {
  Done,    // a response went out (or the client left); see Call::reusable
  Failed,  // Call holds the error to answer
  Stale,   // the connection was gone before any response byte; retryable
};

// One forward() call.
struct Call {
  http::Exchange* ex = nullptr;
  const ProxyRequest* req = nullptr;
  std::string requestId;
  UpstreamUrl url;
  std::string origin;  // "host:port" for messages
  std::string poolKey;
  std::shared_ptr<ssl::context> tlsCtx;
  bool verify = true;
  std::string head;  // the request head for the upstream
  bool requestHasBody = false;
  bool chunkedRequest = false;
  bool idempotent = false;
  bool isHead = false;
  uint64_t bodyConsumed = 0;   // request body bytes taken from the client
  bool responseBytes = false;  // any response byte arrived on the current connection
  bool reusable = false;       // the connection may serve another request
  bool clientFailed = false;   // the client connection broke; answer nothing
  std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(kBufferBytes);
  // The error to answer.
  int status = 0;
  std::string_view code;
  std::string message;

  void fail(int s, std::string_view c, std::string m) {
    status = s;
    code = c;
    message = std::move(m);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------

Result<UpstreamUrl> parseUpstreamUrl(std::string_view url) {
  auto invalid = [&](std::string_view why) {
    return makeError(ErrorKind::Invalid,
                     fmt::format("'{}' is not a usable upstream URL: {}", url, why));
  };
  UpstreamUrl out;
  auto schemeEnd = url.find("://");
  if (schemeEnd == std::string_view::npos) return invalid("it must start with http:// or https://");
  std::string scheme = lower(url.substr(0, schemeEnd));
  if (scheme == "https") {
    out.https = true;
  } else if (scheme != "http") {
    return invalid("only http and https are supported");
  }
  std::string_view rest = url.substr(schemeEnd + 3);
  auto authorityEnd = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authorityEnd);
  std::string_view pathEtc =
      authorityEnd == std::string_view::npos ? std::string_view{} : rest.substr(authorityEnd);
  if (auto hash = pathEtc.find('#'); hash != std::string_view::npos)
    pathEtc = pathEtc.substr(0, hash);
  if (authority.find('@') != std::string_view::npos) {
    return invalid("credentials in the URL are not supported; send an authorization header");
  }

  std::string_view host;
  std::string_view port;
  bool v6 = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return invalid("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    v6 = true;
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalid("junk after the IPv6 address");
      port = after.substr(1);
    }
    for (char c : host) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return invalid("bad IPv6 address");
      }
    }
  } else {
    auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    for (char c : host) {
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
      if (!ok) return invalid("the host name has characters outside [A-Za-z0-9._-]");
    }
  }
  out.host = lower(host);
  if (!out.host.empty() && out.host.back() == '.') out.host.pop_back();
  if (out.host.empty()) return invalid("no host");

  uint32_t portValue = out.https ? 443 : 80;
  if (!port.empty()) {
    if (port.size() > 5) return invalid("bad port");
    portValue = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return invalid("bad port");
      portValue = portValue * 10 + static_cast<uint32_t>(c - '0');
    }
    if (portValue == 0 || portValue > 65535) return invalid("port must be 1-65535");
  }
  out.port = static_cast<uint16_t>(portValue);
  out.authority = v6 ? "[" + out.host + "]" : out.host;
  if (out.port != (out.https ? 443 : 80)) out.authority += fmt::format(":{}", out.port);

  // Routing hands over encoded paths; escape whatever would still break the request line.
  if (pathEtc.empty() || pathEtc.front() != '/') out.target = "/";
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : pathEtc) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f || std::strchr("\"<>\\^`{|}", ch) != nullptr) {
      out.target.push_back('%');
      out.target.push_back(kHex[c >> 4]);
      out.target.push_back(kHex[c & 15]);
    } else {
      out.target.push_back(ch);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------

struct Proxy::State {
  explicit State(ProxyOptions o) : options(std::move(o)) {}

  ProxyOptions options;
  std::mutex mu;  // guards pools (the map, not the pools) and tlsContexts
  std::unordered_map<asio::execution_context*, std::unique_ptr<Pool>> pools;
  std::unordered_map<std::string, TlsEntry> tlsContexts;
  uint64_t nextTlsId = 1;

  Pool* poolFor(asio::execution_context* ctx) {
    std::lock_guard lock(mu);
    auto& p = pools[ctx];
    if (!p) p = std::make_unique<Pool>();
    return p.get();
  }

  Result<TlsEntry> tlsContextFor(const UpstreamTls& t) {
    std::string key = fmt::format("{}\n{}\n{}\n{}", t.caFile, t.clientCertFile, t.clientKeyFile,
                                  t.verify ? 1 : 0);
    FileStamp ca = stampOf(t.caFile);
    FileStamp cert = stampOf(t.clientCertFile);
    FileStamp keyStamp = stampOf(t.clientKeyFile);
    {
      std::lock_guard lock(mu);
      auto it = tlsContexts.find(key);
      if (it != tlsContexts.end() && it->second.ca == ca && it->second.cert == cert &&
          it->second.key == keyStamp) {
        return it->second;
      }
    }
    // Built outside the lock: loading a CA bundle takes milliseconds.
    auto ctx = buildTlsContext(t);
    if (!ctx) return ctx.error();
    std::lock_guard lock(mu);
    TlsEntry entry{std::move(*ctx), nextTlsId++, ca, cert, keyStamp};
    tlsContexts[key] = entry;
    return entry;
  }

  bool stillUsable(Conn* c, SteadyClock::time_point now) const {
    if (now - c->idleSince >= options.idleTimeout) return false;
    auto& sock = c->tcp().socket();
    if (!sock.is_open()) return false;
    char byte;
    ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    // An idle keep-alive connection has nothing to say: EOF, stray bytes (a TLS alert,
    // garbage) and errors all mean the upstream is done with it.
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // Closes connections idle past idleTimeout on every origin, at most once a second (there
  // is no background task: idle sockets of an origin nobody asks for again go here).
  void sweepIdle(Pool* pool, SteadyClock::time_point now, bool force) {
    if (!force && now < pool->nextSweep) return;
    pool->nextSweep = now + std::chrono::seconds(1);
    for (auto it = pool->idle.begin(); it != pool->idle.end();) {
      auto& l = it->second;
      while (!l.empty() && now - l.front()->idleSince >= options.idleTimeout) {
        l.pop_front();
        --pool->total;
      }
      if (l.empty()) {
        it = pool->idle.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::unique_ptr<Conn> takeIdle(Pool* pool, const std::string& key) {
    auto now = SteadyClock::now();
    sweepIdle(pool, now, false);
    auto it = pool->idle.find(key);
    if (it == pool->idle.end()) return nullptr;
    auto& list = it->second;
    while (!list.empty()) {
      std::unique_ptr<Conn> c = std::move(list.back());
      list.pop_back();
      --pool->total;
      if (stillUsable(c.get(), now)) return c;
    }
    return nullptr;
  }

  void putIdle(Pool* pool, const std::string& key, std::unique_ptr<Conn> c) {
    auto now = SteadyClock::now();
    c->tcp().expires_never();
    c->idleSince = now;
    sweepIdle(pool, now, pool->total >= options.maxIdleTotal);
    if (pool->total >= options.maxIdleTotal || options.maxIdlePerOrigin == 0) return;
    auto& list = pool->idle[key];
    while (list.size() >= options.maxIdlePerOrigin) {
      list.pop_front();
      --pool->total;
    }
    list.push_back(std::move(c));
    ++pool->total;
  }

  // Checks the request and builds the upstream request head. False with the error in `call`.
  bool prepare(Call* call) {
    http::Exchange* ex = call->ex;
    const ProxyRequest* req = call->req;
    std::string_view method = ex->method();
    if (method == "CONNECT") {
      call->fail(405, "INVALID_REQUEST_METHOD", "CONNECT cannot be proxied to a route's dest");
      return false;
    }
    auto url = parseUpstreamUrl(req->url);
    if (!url) {
      call->fail(502, "ROUTER_EXTERNAL_TARGET_ERROR",
                 url.error().message + "; fix the route's dest in the deployment");
      return false;
    }
    call->url = std::move(*url);
    call->origin = call->url.host.find(':') != std::string::npos
                       ? fmt::format("[{}]:{}", call->url.host, call->url.port)
                       : fmt::format("{}:{}", call->url.host, call->url.port);
    if (countViaHops(req->headers, options.viaName) >= options.maxViaHops) {
      call->fail(508, "INFINITE_LOOP_DETECTED",
                 fmt::format("the request passed through this platform {} times; the route's "
                             "dest {} leads back here",
                             options.maxViaHops, call->origin));
      return false;
    }
    if (auto cl = ex->contentLength(); cl && *cl > options.maxRequestBodyBytes) {
      call->fail(413, "PAYLOAD_TOO_LARGE",
                 fmt::format("the request body of {} bytes exceeds the proxy limit of {} bytes",
                             *cl, options.maxRequestBodyBytes));
      return false;
    }
    call->poolKey = call->origin;
    if (call->url.https) {
      static const UpstreamTls kDefaultTls;
      const UpstreamTls& t = req->tls ? *req->tls : kDefaultTls;
      auto entry = tlsContextFor(t);
      if (!entry) {
        call->fail(502, "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR",
                   fmt::format("TLS setup for {} failed: {}", call->origin, entry.error().message));
        return false;
      }
      call->tlsCtx = entry->ctx;
      call->verify = t.verify;
      call->poolKey += fmt::format(" tls#{}", entry->id);
    }
    call->idempotent = isIdempotent(method);
    call->isHead = method == "HEAD";

    std::string& h = call->head;
    h.reserve(1024);
    h += method;
    h += ' ';
    h += call->url.target;
    h += " HTTP/1.1\r\nhost: ";
    h += call->url.authority;
    h += "\r\n";
    std::vector<std::string> connectionTokens;
    for (const auto& [k, v] : req->headers) {
      if (iequals(k, "connection")) addConnectionTokens(v, &connectionTokens);
    }
    std::string via;
    for (const auto& [k, v] : req->headers) {
      std::string name = lower(k);
      if (!isToken(name) || isHopByHop(name) || name == "host" || name == "content-length" ||
          name == "expect" || name == "x-forwarded-for" || name == "x-forwarded-host" ||
          name == "x-forwarded-proto" || contains(connectionTokens, name)) {
        continue;
      }
      if (name == "via") {
        if (!via.empty()) via += ", ";
        via += cleanValue(v);
        continue;
      }
      h += name;
      h += ": ";
      h += cleanValue(v);
      h += "\r\n";
    }
    std::string_view clientHost = ex->header("host");
    h += "x-forwarded-host: ";
    h += cleanValue(clientHost.empty() ? std::string_view(ex->host()) : clientHost);
    h += "\r\nx-forwarded-proto: ";
    h += cleanValue(req->forwardedProto);
    h += "\r\n";
    if (!ex->remoteAddress().empty()) {
      h += "x-forwarded-for: ";
      h += ex->remoteAddress();
      h += "\r\n";
    }
    h += "via: ";
    if (!via.empty()) h += via + ", ";
    h += "1.1 ";
    h += options.viaName;
    h += "\r\n";
    if (auto cl = ex->contentLength()) {
      h += fmt::format("content-length: {}\r\n", *cl);
      call->requestHasBody = *cl > 0;
    } else if (ex->hasBody()) {
      h += "transfer-encoding: chunked\r\n";
      call->requestHasBody = true;
      call->chunkedRequest = true;
    }
    h += "\r\n";
    return true;
  }

  // Resolves, connects and (for https) handshakes within connectTimeout. Null with the
  // error in `call`.
  asio::awaitable<std::unique_ptr<Conn>> connect(Call* call) {
    auto exec = co_await asio::this_coro::executor;
    auto deadline = SteadyClock::now() + options.connectTimeout;
    const std::string& host = call->url.host;
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    auto literal = asio::ip::make_address(host, ec);
    bool hostIsIp = !ec;
    if (hostIsIp) {
      endpoints.emplace_back(literal, call->url.port);
    } else {
      bool resolved = co_await resolve(call, &endpoints, deadline);
      if (!resolved) co_return nullptr;
    }

    auto conn = std::make_unique<Conn>();
    if (call->url.https) {
      conn->ctx = call->tlsCtx;
      conn->tls = std::make_unique<ssl::stream<beast::tcp_stream>>(exec, *conn->ctx);
    } else {
      conn->plain = std::make_unique<beast::tcp_stream>(exec);
    }
    beast::tcp_stream& tcpStream = conn->tcp();
    tcpStream.expires_at(deadline);
    auto [cec, endpoint] = co_await tcpStream.async_connect(endpoints, kTuple);
    if (cec) {
      if (cec == beast::error::timeout) {
        call->fail(504, "GATEWAY_TIMEOUT",
                   fmt::format("connecting to {} timed out after {} ms; check that the "
                               "upstream is reachable from the router",
                               call->origin, options.connectTimeout.count()));
      } else {
        call->fail(502, "ROUTER_EXTERNAL_TARGET_CONNECTION_ERROR",
                   fmt::format("cannot connect to {}: {}; check that the upstream runs and is "
                               "reachable from the router",
                               call->origin, cec.message()));
      }
      co_return nullptr;
    }
    tcpStream.socket().set_option(tcp::no_delay(true), ec);
    if (!call->url.https) co_return conn;

    SSL* s = conn->tls->native_handle();
    if (!hostIsIp) SSL_set_tlsext_host_name(s, host.c_str());
    if (call->verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(s);
      if (hostIsIp) {
        X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
      } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
      }
    }
    conn->tls->next_layer().expires_at(deadline);
    auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, kTuple);
    if (hec) {
      if (hec == beast::error::timeout) {
        call->fail(504, "GATEWAY_TIMEOUT",
                   fmt::format("the TLS handshake with {} timed out after {} ms", call->origin,
                               options.connectTimeout.count()));
      } else {
        call->fail(502, "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR",
                   fmt::format("TLS handshake with {} failed: {}; check the upstream's "
                               "certificate and the project's upstream CA and client "
                               "certificate settings",
                               call->origin, describeTlsError(hec, s)));
      }
      co_return nullptr;
    }
    co_return conn;
  }

  // The resolver runs getaddrinfo on a helper thread that cannot be interrupted, so the
  // deadline is enforced by not waiting for it: the completion handler owns what it
  // touches and only wakes us.
  struct Resolution {
    explicit Resolution(const asio::any_io_executor& exec) : resolver(exec), wake(exec) {}
    tcp::resolver resolver;
    asio::steady_timer wake;
    bool finished = false;
    error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };

  asio::awaitable<bool> resolve(Call* call, std::vector<tcp::endpoint>* endpoints,
                                SteadyClock::time_point deadline) {
    auto exec = co_await asio::this_coro::executor;
    auto r = std::make_shared<Resolution>(exec);
    r->wake.expires_at(deadline);
    std::string service = std::to_string(call->url.port);
    r->resolver.async_resolve(call->url.host, service, tcp::resolver::numeric_service,
                              [r](const error_code& ec, tcp::resolver::results_type results) {
                                r->finished = true;
                                r->ec = ec;
                                for (const auto& e : results) r->endpoints.push_back(e.endpoint());
                                r->wake.cancel();
                              });
    co_await r->wake.async_wait(kTuple);
    const std::string& host = call->url.host;
    if (!r->finished) {
      r->resolver.cancel();
      call->fail(502, "DNS_HOSTNAME_RESOLVE_FAILED",
                 fmt::format("resolving {} took longer than {} ms; check the route's dest "
                             "and the router's DNS",
                             host, options.connectTimeout.count()));
      co_return false;
    }
    if (r->ec == asio::error::host_not_found) {
      call->fail(502, "DNS_HOSTNAME_NOT_FOUND",
                 fmt::format("the upstream host {} does not exist in DNS ({}); check the "
                             "route's dest",
                             host, r->ec.message()));
      co_return false;
    }
    if (r->ec == asio::error::no_data || (!r->ec && r->endpoints.empty())) {
      call->fail(502, "DNS_HOSTNAME_EMPTY",
                 fmt::format("the upstream host {} has no addresses", host));
      co_return false;
    }
    if (r->ec == asio::error::host_not_found_try_again) {
      call->fail(
          502, "DNS_HOSTNAME_SERVER_ERROR",
          fmt::format("DNS could not answer for {} ({}); try again later", host, r->ec.message()));
      co_return false;
    }
    if (r->ec) {
      call->fail(502, "DNS_HOSTNAME_RESOLVE_FAILED",
                 fmt::format("resolving {} failed: {}", host, r->ec.message()));
      co_return false;
    }
    *endpoints = std::move(r->endpoints);
    co_return true;
  }

  static std::string describeTlsError(const error_code& ec, SSL* s) {
    std::string out = ec.message();
    if (isTruncated(ec)) out = "the upstream closed the TLS connection";
    long verify = s ? SSL_get_verify_result(s) : X509_V_OK;
    if (verify != X509_V_OK) {
      out += fmt::format(" ({})", X509_verify_cert_error_string(verify));
    }
    return out;
  }

  // Sends the request and relays the response on one connection.
  template <class Stream>
  asio::awaitable<Attempt> exchange(Stream* s, Conn* c, Call* call) {
    http::Exchange* ex = call->ex;
    call->responseBytes = false;
    call->reusable = false;
    beast::tcp_stream& lowest = c->tcp();
    SSL* ssl = nullptr;
    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) ssl = s->native_handle();

    // 1. The request head and body.
    lowest.expires_after(options.ioTimeout);
    auto [hec, hn] = co_await asio::async_write(*s, asio::buffer(call->head), kTuple);
    error_code writeError = hec;
    bool bodySent = !call->requestHasBody;
    if (!writeError && call->requestHasBody) {
      for (;;) {
        auto got =
            co_await ex->readBodySome(call->buf.get(), kBufferBytes, options.maxRequestBodyBytes);
        if (!got) {
          if (got.error().kind == ErrorKind::TooLarge) {
            call->fail(413, "PAYLOAD_TOO_LARGE", got.error().message);
          } else {
            call->clientFailed = true;
          }
          co_return Attempt::Failed;
        }
        size_t n = *got;
        call->bodyConsumed += n;
        lowest.expires_after(options.ioTimeout);
        if (call->chunkedRequest) {
          char sizeLine[24];
          int len = n == 0 ? std::snprintf(sizeLine, sizeof sizeLine, "0\r\n\r\n")
                           : std::snprintf(sizeLine, sizeof sizeLine, "%zx\r\n", n);
          std::array<asio::const_buffer, 3> bufs{asio::buffer(sizeLine, static_cast<size_t>(len)),
                                                 asio::buffer(call->buf.get(), n),
                                                 asio::buffer("\r\n", n == 0 ? 0 : 2)};
          auto [wec, wn] = co_await asio::async_write(*s, bufs, kTuple);
          writeError = wec;
        } else if (n > 0) {
          auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(call->buf.get(), n), kTuple);
          writeError = wec;
        }
        if (writeError) break;
        if (n == 0) {
          bodySent = true;
          break;
        }
      }
    }
    if (writeError == beast::error::timeout) {
      call->fail(504, "GATEWAY_TIMEOUT",
                 fmt::format("sending the request to {} stalled for {} ms", call->origin,
                             options.ioTimeout.count()));
      co_return Attempt::Failed;
    }
    // After a failed write the upstream may still have answered (an early 413 or 401
    // before closing); relay that answer when there is one.

    // 2. The response head; 1xx interim responses are dropped.
    std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
    error_code rec;
    for (;;) {
      parser.emplace();
      parser->header_limit(options.maxResponseHeaderBytes);
      parser->body_limit(boost::none);
      if (call->isHead) parser->skip(true);
      lowest.expires_after(options.responseTimeout);
      auto [ec, n] = co_await bhttp::async_read_header(*s, c->buffer, *parser, kTuple);
      rec = ec;
      if (parser->got_some()) call->responseBytes = true;
      if (rec) break;
      int st = parser->get().result_int();
      if (st < 100 || st >= 200) break;
      if (st == 101) {
        rec = bhttp::error::bad_status;
        break;
      }
    }
    if (rec) {
      if (rec == beast::error::timeout) {
        call->fail(504, "GATEWAY_TIMEOUT",
                   fmt::format("the upstream {} did not answer within {} ms", call->origin,
                               options.responseTimeout.count()));
        co_return Attempt::Failed;
      }
      if (!call->responseBytes && isTlsError(rec) && !isTruncated(rec)) {
        // TLS 1.3 servers reject a client certificate after the client's handshake ended.
        call->fail(502, "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR",
                   fmt::format("TLS with {} failed: {}; check the project's upstream client "
                               "certificate and CA settings",
                               call->origin, describeTlsError(rec, ssl)));
        co_return Attempt::Failed;
      }
      if (!call->responseBytes &&
          (writeError ? isConnectionGone(writeError) : isConnectionGone(rec))) {
        call->fail(502, "ROUTER_EXTERNAL_TARGET_ERROR",
                   fmt::format("the upstream {} closed the connection without answering ({})",
                               call->origin, (writeError ? writeError : rec).message()));
        co_return Attempt::Stale;
      }
      if (writeError && !call->responseBytes) {
        call->fail(502, "ROUTER_EXTERNAL_TARGET_ERROR",
                   fmt::format("sending the request to {} failed: {}", call->origin,
                               writeError.message()));
        co_return Attempt::Failed;
      }
      call->fail(502, "ROUTER_EXTERNAL_TARGET_ERROR",
                 fmt::format("the upstream {} sent a malformed response: {}", call->origin,
                             rec.message()));
      co_return Attempt::Failed;
    }

    // 3. The response: head, then the body as it arrives.
    auto& res = parser->get();
    Headers headers = composeResponseHeaders(res, call->req);
    ex->beginResponse(call->req->status != 0 ? call->req->status : res.result_int());
    for (const auto& [k, v] : headers) ex->addHeader(k, v);
    std::optional<uint64_t> length;
    if (auto cl = parser->content_length(); cl && !parser->chunked()) length = *cl;
    if (!co_await ex->startBody(length)) {
      call->clientFailed = true;
      co_return Attempt::Done;
    }
    char* buf = call->buf.get();
    while (!parser->is_done()) {
      parser->get().body().data = buf;
      parser->get().body().size = kBufferBytes;
      lowest.expires_after(options.ioTimeout);
      auto [ec, n] = co_await bhttp::async_read_some(*s, c->buffer, *parser, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (isTruncated(ec) && parser->need_eof()) parser->put_eof(ec);  // no close_notify
      size_t got = kBufferBytes - parser->get().body().size;
      if (got > 0 && !co_await ex->writeBody(std::string_view(buf, got))) {
        call->clientFailed = true;
        co_return Attempt::Done;
      }
      if (ec) {
        spdlog::warn(
            "request {}: the upstream {} failed mid-response: {}; cutting the client "
            "connection",
            call->requestId, call->origin,
            ec == beast::error::timeout ? "read timed out" : ec.message());
        ex->closeAfterResponse();
        co_return Attempt::Done;
      }
    }
    if (!co_await ex->endBody()) {
      call->clientFailed = true;
      co_return Attempt::Done;
    }
    call->reusable = !writeError && bodySent && parser->keep_alive() && c->buffer.size() == 0;
    co_return Attempt::Done;
  }

  // Response headers in the order of spec 2.8, hop-by-hop and framing headers dropped.
  template <class Fields>
  static Headers composeResponseHeaders(const Fields& upstream, const ProxyRequest* req) {
    http::hdr::HeaderViews origin;
    for (const auto& f : upstream) origin.emplace_back(f.name_string(), f.value());
    return http::hdr::composeResponseHeaders(origin, req->responseHeaders, req->importantHeaders,
                                             req->responseHeaderDeletes);
  }

  asio::awaitable<void> answerFailure(Call* call) {
    if (call->clientFailed) co_return;
    if (call->ex->responseStarted()) {
      call->ex->closeAfterResponse();
      co_return;
    }
    spdlog::warn("request {}: proxy: {} {} ({})", call->requestId, call->status, call->message,
                 call->code);
    co_await http::sendError(call->ex, call->status, call->code, call->message);
  }

  asio::awaitable<void> forward(http::Exchange* ex, const ProxyRequest* req) {
    Call call;
    call.ex = ex;
    call.req = req;
    call.requestId = req->requestId.empty() ? ex->requestId() : req->requestId;
    if (!prepare(&call)) {
      co_await answerFailure(&call);
      co_return;
    }
    auto exec = co_await asio::this_coro::executor;
    Pool* pool = poolFor(&asio::query(exec, asio::execution::context));
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<Conn> conn = takeIdle(pool, call.poolKey);
      bool reused = conn != nullptr;
      if (!conn) {
        conn = co_await connect(&call);
        if (!conn) break;
      }
      Attempt result;
      if (conn->tls) {
        result = co_await exchange(conn->tls.get(), conn.get(), &call);
      } else {
        result = co_await exchange(conn->plain.get(), conn.get(), &call);
      }
      if (result == Attempt::Done) {
        if (call.reusable) putIdle(pool, call.poolKey, std::move(conn));
        co_return;
      }
      // A pooled connection the upstream closed while we picked it: once more on a fresh
      // one, when sending the request again cannot repeat a side effect.
      if (result == Attempt::Stale && reused && attempt == 0 && call.idempotent &&
          call.bodyConsumed == 0) {
        spdlog::debug("request {}: pooled connection to {} was closed; retrying on a new one",
                      call.requestId, call.origin);
        continue;
      }
      break;
    }
    co_await answerFailure(&call);
  }
};

Proxy::Proxy(ProxyOptions options) : state_(std::make_unique<State>(std::move(options))) {}
Proxy::~Proxy() = default;

asio::awaitable<void> Proxy::forward(http::Exchange* ex, const ProxyRequest* req) {
  co_await state_->forward(ex, req);
}

}  // namespace nimbus::proxy

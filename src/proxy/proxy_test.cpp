#include "proxy/proxy.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/server.h"

namespace nimbus::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

void logSpawnError(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    ADD_FAILURE() << "test coroutine threw: " << ex.what();
  }
}

// ---------------------------------------------------------------------------------------
// Throwaway PKI: two CAs, a server certificate for 127.0.0.1/localhost, a client certificate.

struct Pki {
  std::filesystem::path dir;
  std::string caCert, otherCaCert, serverCert, serverKey, clientCert, clientKey;
};

EVP_PKEY* newKey() { return EVP_EC_gen("P-256"); }

void addExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << "extension " << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

enum class CertKind { Ca, Server, Client };

// A certificate for `key` named `cn`, signed by (issuer, issuerKey), or self-signed.
X509* makeCert(EVP_PKEY* key, const char* cn, CertKind kind, X509* issuer, EVP_PKEY* issuerKey) {
  static long serial = 1;
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer ? issuer : x;
  addExt(x, signer, NID_subject_key_identifier, "hash");
  switch (kind) {
    case CertKind::Ca:
      addExt(x, signer, NID_basic_constraints, "critical,CA:TRUE");
      addExt(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case CertKind::Server:
      addExt(x, signer, NID_authority_key_identifier, "keyid:always");
      addExt(x, signer, NID_basic_constraints, "CA:FALSE");
      addExt(x, signer, NID_key_usage, "critical,digitalSignature");
      addExt(x, signer, NID_ext_key_usage, "serverAuth");
      addExt(x, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
      break;
    case CertKind::Client:
      addExt(x, signer, NID_authority_key_identifier, "keyid:always");
      addExt(x, signer, NID_basic_constraints, "CA:FALSE");
      addExt(x, signer, NID_key_usage, "critical,digitalSignature");
      addExt(x, signer, NID_ext_key_usage, "clientAuth");
      break;
  }
  X509_sign(x, issuerKey ? issuerKey : key, EVP_sha256());
  return x;
}

void writePem(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  PEM_write_X509(f, cert);
  std::fclose(f);
}

void writePem(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

Pki* makePki() {
  auto* pki = new Pki;
  char tmpl[] = "/tmp/nimbus-proxy-test-XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  pki->dir = tmpl;
  auto path = [&](const char* name) { return (pki->dir / name).string(); };
  pki->caCert = path("ca.pem");
  pki->otherCaCert = path("other-ca.pem");
  pki->serverCert = path("server.pem");
  pki->serverKey = path("server-key.pem");
  pki->clientCert = path("client.pem");
  pki->clientKey = path("client-key.pem");

  EVP_PKEY* caKey = newKey();
  X509* ca = makeCert(caKey, "Nimbus Test CA", CertKind::Ca, nullptr, nullptr);
  EVP_PKEY* otherKey = newKey();
  X509* other = makeCert(otherKey, "Unrelated CA", CertKind::Ca, nullptr, nullptr);
  EVP_PKEY* serverKey = newKey();
  X509* server = makeCert(serverKey, "127.0.0.1", CertKind::Server, ca, caKey);
  EVP_PKEY* clientKey = newKey();
  X509* client = makeCert(clientKey, "project-client", CertKind::Client, ca, caKey);
  writePem(pki->caCert, ca);
  writePem(pki->otherCaCert, other);
  writePem(pki->serverCert, server);
  writePem(pki->serverKey, serverKey);
  writePem(pki->clientCert, client);
  writePem(pki->clientKey, clientKey);
  for (X509* x : {ca, other, server, client}) X509_free(x);
  for (EVP_PKEY* k : {caKey, otherKey, serverKey, clientKey}) EVP_PKEY_free(k);
  return pki;
}

// ---------------------------------------------------------------------------------------
// Upstreams.

// An upstream on nimbus::http::Server. "/stream" sends one event, waits for release(),
// sends another; anything else echoes the request (method, target, headers, body).
class EchoUpstream final : public http::Handler {
 public:
  explicit EchoUpstream(asio::io_context* ioc) : gate_(*ioc) {
    gate_.expires_at(asio::steady_timer::time_point::max());
  }

  // Lets "/stream" send its second event. Call from any thread.
  void release() {
    asio::post(gate_.get_executor(), [this] {
      released_ = true;
      gate_.cancel();
    });
  }

  asio::awaitable<void> serve(http::Exchange* ex) override {
    if (ex->target() == "/stream") {
      ex->beginResponse(200);
      ex->addHeader("content-type", "text/event-stream");
      if (!co_await ex->startBody(std::nullopt)) co_return;
      if (!co_await ex->writeBody("data: first\n\n")) co_return;
      while (!released_) co_await gate_.async_wait(kTuple);
      if (!co_await ex->writeBody("data: second\n\n")) co_return;
      co_await ex->endBody();
      co_return;
    }
    if (ex->target() == "/origin-headers") {
      ex->beginResponse(201);
      ex->addHeader("content-type", "text/plain");
      ex->addHeader("x-both", "origin");
      ex->addHeader("x-important", "origin");
      ex->addHeader("x-deleted", "origin");
      ex->addHeader("set-cookie", "b=2");
      ex->addHeader("connection", "x-hop");
      ex->addHeader("x-hop", "secret");
      ex->addHeader("keep-alive", "timeout=5");
      co_await ex->send("headers");
      co_return;
    }
    auto body = co_await ex->readBody(64 << 20);
    std::string reply = std::string(ex->method()) + " " + std::string(ex->target()) + "\n";
    ex->forEachHeader([&](std::string_view k, std::string_view v) {
      reply += std::string(k) + ": " + std::string(v) + "\n";
    });
    reply += "\n";
    reply += body ? *body : "<body error>";
    co_await ex->respond(200, "text/plain", reply);
  }

 private:
  asio::steady_timer gate_;
  bool released_ = false;
};

// A hand-written upstream, plain or TLS, that counts connections and misbehaves on
// request: "/silent" never answers, "/garbage" is not HTTP, "/short" closes mid-body,
// "/eof" delimits its body by closing, "/interim" sends a 103 first; anything else
// answers "hello". With answerOncePerConnection, a connection's second request is met by
// closing it (an upstream that timed out the idle connection just as it was reused).
class TinyUpstream {
 public:
  TinyUpstream(asio::io_context* ioc, ssl::context* tls) : acceptor_(*ioc), tls_(tls) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(*ioc, acceptLoop(this), logSpawnError);
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::atomic<bool> answerOncePerConnection{false};

 private:
  static asio::awaitable<void> acceptLoop(TinyUpstream* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor_.async_accept(kTuple);
      if (ec) co_return;
      ++self->accepted_;
      if (self->tls_) {
        asio::co_spawn(self->acceptor_.get_executor(), serveTls(self, std::move(socket)),
                       logSpawnError);
      } else {
        asio::co_spawn(self->acceptor_.get_executor(), servePlain(self, std::move(socket)),
                       logSpawnError);
      }
    }
  }

  static asio::awaitable<void> servePlain(TinyUpstream* self, tcp::socket socket) {
    co_await serveRequests(self, &socket);
  }

  static asio::awaitable<void> serveTls(TinyUpstream* self, tcp::socket socket) {
    ssl::stream<tcp::socket> stream(std::move(socket), *self->tls_);
    auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, kTuple);
    if (ec) co_return;
    co_await serveRequests(self, &stream);
  }

  template <class Stream>
  static asio::awaitable<void> serveRequests(TinyUpstream* self, Stream* s) {
    beast::flat_buffer buffer;
    for (int served = 0;; ++served) {
      bhttp::request<bhttp::string_body> req;
      auto [ec, n] = co_await bhttp::async_read(*s, buffer, req, kTuple);
      if (ec) co_return;
      if (served > 0 && self->answerOncePerConnection) co_return;
      std::string_view target = req.target();
      std::string out;
      bool close = false;
      if (target == "/silent") {
        char c;
        co_await s->async_read_some(asio::buffer(&c, 1), kTuple);  // until the proxy gives up
        co_return;
      } else if (target == "/garbage") {
        out = "THIS IS NOT HTTP\r\n\r\n";
        close = true;
      } else if (target == "/short") {
        out = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789";
        close = true;
      } else if (target == "/eof") {
        out = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nbody until close";
        close = true;
      } else if (target == "/interim") {
        out =
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal";
      } else {
        out = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n";
        if (req.method() != bhttp::verb::head) out += "hello";
      }
      auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(out), kTuple);
      if (wec || close) co_return;
    }
  }

  tcp::acceptor acceptor_;
  ssl::context* tls_;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
};

// ---------------------------------------------------------------------------------------
// The front: a Server whose handler proxies every request to `base` + target.

struct Route {
  std::string base;  // upstream origin; the request target is appended
  Proxy* proxy = nullptr;
  const UpstreamTls* tls = nullptr;
  Headers responseHeaders;
  Headers importantHeaders;
  std::vector<std::string> deletes;
  int status = 0;
};

Route makeRoute(std::string base, Proxy* proxy, const UpstreamTls* tls = nullptr) {
  Route r;
  r.base = std::move(base);
  r.proxy = proxy;
  r.tls = tls;
  return r;
}

class FrontHandler final : public http::Handler {
 public:
  void set(Route r) {
    std::lock_guard lock(mu_);
    route_ = std::move(r);
  }

  asio::awaitable<void> serve(http::Exchange* ex) override {
    Route route;
    {
      std::lock_guard lock(mu_);
      route = route_;
    }
    ProxyRequest req;
    req.url = route.base + std::string(ex->target());
    ex->forEachHeader([&](std::string_view k, std::string_view v) {
      req.headers.emplace_back(std::string(k), std::string(v));
    });
    req.responseHeaders = route.responseHeaders;
    req.importantHeaders = route.importantHeaders;
    req.responseHeaderDeletes = route.deletes;
    req.status = route.status;
    req.tls = route.tls;
    co_await route.proxy->forward(ex, &req);
  }

 private:
  std::mutex mu_;
  Route route_;
};

// A blocking client on a raw socket, for what http::Client cannot show (pieces of a
// streamed body, chunked uploads). Reads give up after 10 s so a bug fails, not hangs.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(ioc_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void send(std::string_view data) { asio::write(socket_, asio::buffer(data)); }
  // Reads until `needle` was received; false on EOF or error first.
  bool readUntil(std::string_view needle) {
    for (int i = 0; i < 10000 && received.find(needle) == std::string::npos; ++i) {
      char buf[4096];
      boost::system::error_code ec;
      size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec) return false;
      received.append(buf, n);
    }
    return received.find(needle) != std::string::npos;
  }
  std::string received;

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
};

class ProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = makePki(); }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(pki_->dir);
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    echo_ = std::make_unique<EchoUpstream>(&upstreamIoc_);
    auto echoServer =
        http::Server::create({"echo", "127.0.0.1:0", {}}, {&upstreamIoc_}, echo_.get(), nullptr);
    ASSERT_TRUE(echoServer.ok()) << echoServer.error().message;
    echoServer_ = std::move(*echoServer);
    echoServer_->start();
    echoBase_ = "http://" + echoServer_->boundAddress();

    tiny_ = std::make_unique<TinyUpstream>(&upstreamIoc_, nullptr);
    tinyBase_ = "http://127.0.0.1:" + std::to_string(tiny_->port());

    serverTls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    serverTls_->use_certificate_chain_file(pki_->serverCert);
    serverTls_->use_private_key_file(pki_->serverKey, ssl::context::pem);
    tlsUpstream_ = std::make_unique<TinyUpstream>(&upstreamIoc_, serverTls_.get());
    mtlsServerTls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
    mtlsServerTls_->use_certificate_chain_file(pki_->serverCert);
    mtlsServerTls_->use_private_key_file(pki_->serverKey, ssl::context::pem);
    mtlsServerTls_->load_verify_file(pki_->caCert);
    mtlsServerTls_->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    mtlsUpstream_ = std::make_unique<TinyUpstream>(&upstreamIoc_, mtlsServerTls_.get());

    proxy_ = std::make_unique<Proxy>(ProxyOptions{});
    ProxyOptions fast;
    fast.connectTimeout = std::chrono::milliseconds(2000);
    fast.responseTimeout = std::chrono::milliseconds(200);
    fast.maxRequestBodyBytes = 1000;
    fastProxy_ = std::make_unique<Proxy>(fast);

    auto front = http::Server::create({"front", "127.0.0.1:0", {}}, {&frontIoc_}, &front_, nullptr);
    ASSERT_TRUE(front.ok()) << front.error().message;
    frontServer_ = std::move(*front);
    frontServer_->start();
    front_.set(makeRoute(echoBase_, proxy_.get()));

    upstreamThread_ = std::thread([this] { upstreamIoc_.run(); });
    frontThread_ = std::thread([this] { frontIoc_.run(); });
    auto client = http::Client::create("http://" + frontServer_->boundAddress());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  void TearDown() override {
    frontIoc_.stop();
    upstreamIoc_.stop();
    if (frontThread_.joinable()) frontThread_.join();
    if (upstreamThread_.joinable()) upstreamThread_.join();
  }

  Result<http::ClientResponse> get(std::string_view target, const http::Client::Headers& h = {}) {
    return client_->request("GET", target, h, "");
  }

  static Pki* pki_;
  // Declaration order is destruction order reversed: contexts outlive everything on them.
  asio::io_context upstreamIoc_;
  asio::io_context frontIoc_;
  std::unique_ptr<EchoUpstream> echo_;
  std::unique_ptr<http::Server> echoServer_;
  std::string echoBase_;
  std::unique_ptr<TinyUpstream> tiny_;
  std::string tinyBase_;
  std::unique_ptr<ssl::context> serverTls_;
  std::unique_ptr<TinyUpstream> tlsUpstream_;
  std::unique_ptr<ssl::context> mtlsServerTls_;
  std::unique_ptr<TinyUpstream> mtlsUpstream_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<Proxy> fastProxy_;
  FrontHandler front_;
  std::unique_ptr<http::Server> frontServer_;
  std::unique_ptr<http::Client> client_;
  std::thread upstreamThread_;
  std::thread frontThread_;
};

Pki* ProxyTest::pki_ = nullptr;

bool hasLine(const std::string& body, std::string_view line) {
  return body.find("\n" + std::string(line) + "\n") != std::string::npos;
}

// ---------------------------------------------------------------------------------------

TEST_F(ProxyTest, ForwardsGetAndPostBodiesBothWays) {
  auto g = get("/hello");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->status, 200);
  EXPECT_EQ(g->body.substr(0, 11), "GET /hello\n");

  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  for (const std::string& body : {std::string("small body"), big}) {
    auto p = client_->request("POST", "/submit", {{"content-type", "text/plain"}}, body);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->status, 200);
    EXPECT_EQ(p->body.substr(0, 13), "POST /submit\n");
    EXPECT_TRUE(hasLine(p->body, "content-length: " + std::to_string(body.size())));
    ASSERT_GE(p->body.size(), body.size());
    EXPECT_TRUE(p->body.ends_with("\n\n" + body)) << "body differs, size " << body.size();
  }
}

TEST_F(ProxyTest, SendsChunkedRequestBodyUpstreamWhenLengthUnknown) {
  RawClient c(frontServer_->port());
  c.send(
      "POST /chunked-up HTTP/1.1\r\nhost: front\r\ntransfer-encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_TRUE(c.readUntil("hello world"));
  EXPECT_NE(c.received.find("transfer-encoding: chunked"), std::string::npos);
  EXPECT_NE(c.received.find("POST /chunked-up\n"), std::string::npos);
}

TEST_F(ProxyTest, AnswersExpectContinueItselfAndStreamsTheBody) {
  RawClient c(frontServer_->port());
  c.send(
      "POST /expect HTTP/1.1\r\nhost: front\r\ncontent-length: 5\r\n"
      "expect: 100-continue\r\n\r\n");
  ASSERT_TRUE(c.readUntil("HTTP/1.1 100 Continue\r\n\r\n"));
  c.send("hello");
  ASSERT_TRUE(c.readUntil("\n\nhello"));
  EXPECT_NE(c.received.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(c.received.find("\nexpect:"), std::string::npos) << c.received;
}

TEST_F(ProxyTest, PreservesPathAndQuery) {
  auto r = get("/a%20b/c/?x=1&y=%2F&x=2");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body.substr(0, r->body.find('\n')), "GET /a%20b/c/?x=1&y=%2F&x=2");
}

TEST_F(ProxyTest, DropsHopByHopHeadersAndSetsForwardingHeaders) {
  auto r = get("/h", {{"host", "app.example.com"},
                      {"connection", "keep-alive, x-private"},
                      {"x-private", "drop me"},
                      {"keep-alive", "timeout=5"},
                      {"te", "trailers"},
                      {"proxy-authorization", "Basic eA=="},
                      {"upgrade", "websocket"},
                      {"x-forwarded-for", "6.6.6.6"},
                      {"via", "1.1 cdn"},
                      {"x-custom", "kept"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string& b = r->body;
  for (const char* gone :
       {"x-private:", "keep-alive:", "te:", "proxy-authorization:", "upgrade:", "6.6.6.6"}) {
    EXPECT_EQ(b.find(std::string("\n") + gone), std::string::npos) << gone << "\n" << b;
  }
  EXPECT_EQ(b.find("6.6.6.6"), std::string::npos);
  EXPECT_TRUE(hasLine(b, "x-custom: kept")) << b;
  EXPECT_TRUE(hasLine(b, "host: " + echoServer_->boundAddress())) << b;
  EXPECT_TRUE(hasLine(b, "x-forwarded-host: app.example.com")) << b;
  EXPECT_TRUE(hasLine(b, "x-forwarded-proto: http")) << b;
  EXPECT_TRUE(hasLine(b, "x-forwarded-for: 127.0.0.1")) << b;
  EXPECT_TRUE(hasLine(b, "via: 1.1 cdn, 1.1 nimbus")) << b;
}

TEST_F(ProxyTest, OrdersRouteOriginAndImportantResponseHeaders) {
  Route route = makeRoute(echoBase_, proxy_.get());
  route.responseHeaders = {{"x-route", "route"}, {"x-both", "route"}, {"set-cookie", "a=1"}};
  route.importantHeaders = {{"x-important", "important"}};
  route.deletes = {"x-deleted"};
  front_.set(route);
  auto r = get("/origin-headers");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "headers");
  EXPECT_EQ(r->header("x-route"), "route");
  EXPECT_EQ(r->header("x-both"), "origin");
  EXPECT_EQ(r->header("x-important"), "important");
  EXPECT_EQ(r->header("x-deleted"), "");
  EXPECT_EQ(r->header("x-hop"), "");
  EXPECT_EQ(r->header("keep-alive"), "");
  int cookies = 0, boths = 0;
  for (const auto& [k, v] : r->headers) {
    if (k == "set-cookie") ++cookies;
    if (k == "x-both") ++boths;
  }
  EXPECT_EQ(cookies, 2);
  EXPECT_EQ(boths, 1);

  route.status = 203;
  front_.set(route);
  auto s = get("/origin-headers");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, 203);
}

TEST_F(ProxyTest, StreamsResponseBodyPieceByPiece) {
  RawClient c(frontServer_->port());
  c.send("GET /stream HTTP/1.1\r\nhost: front\r\n\r\n");
  ASSERT_TRUE(c.readUntil("data: first\n\n"));
  EXPECT_EQ(c.received.find("data: second"), std::string::npos);
  EXPECT_NE(c.received.find("transfer-encoding: chunked"), std::string::npos);
  EXPECT_NE(c.received.find("content-type: text/event-stream"), std::string::npos);
  echo_->release();
  ASSERT_TRUE(c.readUntil("0\r\n\r\n"));
  EXPECT_NE(c.received.find("data: second\n\n"), std::string::npos);
}

TEST_F(ProxyTest, ReusesUpstreamConnections) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  for (int i = 0; i < 5; ++i) {
    auto r = get("/hello");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(tiny_->accepted(), 1);
}

TEST_F(ProxyTest, RetriesIdempotentRequestOnceWhenPooledConnectionDied) {
  tiny_->answerOncePerConnection = true;
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  for (int i = 0; i < 3; ++i) {
    auto r = get("/hello");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(tiny_->accepted(), 3);
}

TEST_F(ProxyTest, DoesNotRetryPostOnDeadPooledConnection) {
  tiny_->answerOncePerConnection = true;
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  auto first = client_->request("POST", "/hello", {}, "payload");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->status, 200);
  auto second = client_->request("POST", "/hello", {}, "payload");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->status, 502);
  EXPECT_EQ(second->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_ERROR");
  EXPECT_EQ(tiny_->accepted(), 1);
}

TEST_F(ProxyTest, RefusedUpstreamAnswers502ConnectionError) {
  uint16_t port;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  front_.set(makeRoute("http://127.0.0.1:" + std::to_string(port), proxy_.get()));
  auto r = get("/x", {{"accept", "application/json"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_CONNECTION_ERROR");
  EXPECT_NE(r->body.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << r->body;
}

TEST_F(ProxyTest, UnresolvableHostAnswers502DnsError) {
  front_.set(makeRoute("http://nimbus-proxy-test.invalid", fastProxy_.get()));
  auto r = get("/x");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502);
  EXPECT_TRUE(r->header("x-nimbus-error").starts_with("DNS_HOSTNAME_"))
      << r->header("x-nimbus-error");
}

TEST_F(ProxyTest, SilentUpstreamAnswers504AfterResponseTimeout) {
  front_.set(makeRoute(tinyBase_, fastProxy_.get()));
  auto r = get("/silent");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 504);
  EXPECT_EQ(r->header("x-nimbus-error"), "GATEWAY_TIMEOUT");
}

TEST_F(ProxyTest, MalformedUpstreamResponseAnswers502TargetError) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  auto r = get("/garbage");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_ERROR");
}

TEST_F(ProxyTest, CutsClientConnectionWhenUpstreamDiesMidBody) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  RawClient c(frontServer_->port());
  c.send("GET /short HTTP/1.1\r\nhost: front\r\n\r\n");
  EXPECT_FALSE(c.readUntil("never arrives"));  // the connection ends instead
  EXPECT_NE(c.received.find("content-length: 100"), std::string::npos);
  EXPECT_TRUE(c.received.ends_with("0123456789")) << c.received;
}

TEST_F(ProxyTest, RelaysBodyDelimitedByUpstreamClose) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  auto r = get("/eof");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "body until close");
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  auto again = get("/hello");  // a fresh upstream connection
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->body, "hello");
}

TEST_F(ProxyTest, SkipsInterimResponses) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  auto r = get("/interim");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "final");
}

TEST_F(ProxyTest, HeadRequestKeepsUpstreamContentLength) {
  front_.set(makeRoute(tinyBase_, proxy_.get()));
  RawClient c(frontServer_->port());
  c.send("HEAD /hello HTTP/1.1\r\nhost: front\r\n\r\nGET /hello HTTP/1.1\r\nhost: front\r\n\r\n");
  ASSERT_TRUE(c.readUntil("\r\n\r\nhello"));
  auto first = c.received.substr(0, c.received.find("\r\n\r\n"));
  EXPECT_NE(first.find("content-length: 5"), std::string::npos) << c.received;
  EXPECT_EQ(c.received.find("hello"), c.received.rfind("hello"));  // only the GET's body
  EXPECT_EQ(tiny_->accepted(), 1);
}

TEST_F(ProxyTest, RejectsOversizedRequestBodyWith413) {
  front_.set(makeRoute(echoBase_, fastProxy_.get()));
  auto r = client_->request("POST", "/big", {}, std::string(5000, 'b'));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->header("x-nimbus-error"), "PAYLOAD_TOO_LARGE");
}

TEST_F(ProxyTest, StopsForwardingLoopsWith508) {
  front_.set(makeRoute("http://" + frontServer_->boundAddress(), proxy_.get()));
  auto r = get("/loop");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 508);
  EXPECT_EQ(r->header("x-nimbus-error"), "INFINITE_LOOP_DETECTED");
}

// ---------------------------------------------------------------------------------------
// TLS

TEST_F(ProxyTest, VerifiesTlsUpstreamAgainstConfiguredCa) {
  UpstreamTls tls;
  tls.caFile = pki_->caCert;
  std::string port = std::to_string(tlsUpstream_->port());
  // By IP (checked against the IP SAN) and by name (SNI, DNS SAN; localhost may try ::1
  // first, where nothing listens).
  for (const std::string& base : {"https://127.0.0.1:" + port, "https://localhost:" + port}) {
    front_.set(makeRoute(base, proxy_.get(), &tls));
    auto r = get("/hello");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200) << base << ": " << r->body;
    EXPECT_EQ(r->body, "hello");
  }
}

TEST_F(ProxyTest, ReusesTlsUpstreamConnections) {
  UpstreamTls tls;
  tls.caFile = pki_->caCert;
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(tlsUpstream_->port()), proxy_.get(), &tls));
  for (int i = 0; i < 3; ++i) {
    auto r = get("/hello");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(tlsUpstream_->accepted(), 1);
}

TEST_F(ProxyTest, WrongCaAnswers502HandshakeError) {
  UpstreamTls tls;
  tls.caFile = pki_->otherCaCert;
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(tlsUpstream_->port()), proxy_.get(), &tls));
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR");
  EXPECT_NE(r->body.find("127.0.0.1:" + std::to_string(tlsUpstream_->port())), std::string::npos)
      << r->body;
  EXPECT_NE(r->body.find("certificate verify failed"), std::string::npos) << r->body;
}

TEST_F(ProxyTest, AcceptsAnyCertificateWhenVerificationIsOff) {
  UpstreamTls tls;
  tls.caFile = pki_->otherCaCert;
  tls.verify = false;
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(tlsUpstream_->port()), proxy_.get(), &tls));
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(ProxyTest, PresentsClientCertificateForMutualTls) {
  UpstreamTls tls;
  tls.caFile = pki_->caCert;
  tls.clientCertFile = pki_->clientCert;
  tls.clientKeyFile = pki_->clientKey;
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(mtlsUpstream_->port()), proxy_.get(), &tls));
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body, "hello");
}

TEST_F(ProxyTest, MutualTlsWithoutClientCertificateAnswers502HandshakeError) {
  UpstreamTls tls;
  tls.caFile = pki_->caCert;
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(mtlsUpstream_->port()), proxy_.get(), &tls));
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502) << r->body;
  EXPECT_EQ(r->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR") << r->body;
}

TEST_F(ProxyTest, MissingCaFileAnswers502NamingTheFile) {
  UpstreamTls tls;
  tls.caFile = (pki_->dir / "missing.pem").string();
  front_.set(
      makeRoute("https://127.0.0.1:" + std::to_string(tlsUpstream_->port()), proxy_.get(), &tls));
  auto r = get("/hello");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->header("x-nimbus-error"), "ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR");
  EXPECT_NE(r->body.find("missing.pem"), std::string::npos) << r->body;
}

// ---------------------------------------------------------------------------------------

TEST(ParseUpstreamUrl, SplitsSchemeHostPortAndTarget) {
  auto a = parseUpstreamUrl("https://API.Example.com./v1/x?q=1#frag");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->https);
  EXPECT_EQ(a->host, "api.example.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->target, "/v1/x?q=1");
  EXPECT_EQ(a->authority, "api.example.com");

  auto b = parseUpstreamUrl("http://[::1]:8080?x=1");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 8080);
  EXPECT_EQ(b->target, "/?x=1");
  EXPECT_EQ(b->authority, "[::1]:8080");

  auto c = parseUpstreamUrl("http://svc.ns.svc.cluster.local:80/a b\xc3\xa9");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->target, "/a%20b%C3%A9");
  EXPECT_EQ(c->authority, "svc.ns.svc.cluster.local");
}

TEST(ParseUpstreamUrl, RejectsWhatCannotBeProxied) {
  for (const char* bad :
       {"/relative", "ftp://host/", "http://", "http://user:pw@host/", "http://host:0/",
        "http://host:70000/", "http://ho st/", "http://[::1/"}) {
    EXPECT_FALSE(parseUpstreamUrl(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace nimbus::proxy

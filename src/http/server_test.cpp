#include "http/server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "http/client.h"

namespace nimbus::http {
namespace {

class EchoHandler final : public Handler {
 public:
  boost::asio::awaitable<void> serve(Exchange* ex) override {
    if (ex->method() == "POST" && ex->target() != "/pull") {
      auto body = co_await ex->readBody(ex->target() == "/big" ? 1 << 20 : 16);
      if (!body) {
        co_await sendError(ex, 413, "PAYLOAD_TOO_LARGE", body.error().message);
        co_return;
      }
      std::string reply = "got:" + *body;
      co_await ex->respond(200, "text/plain", reply);
      co_return;
    }
    if (ex->target() == "/chunked") {
      ex->beginResponse(200);
      ex->addHeader("content-type", "text/plain");
      if (!co_await ex->startBody(std::nullopt)) co_return;
      std::string_view parts[] = {"one ", "two ", "three"};
      for (auto part : parts) {
        if (!co_await ex->writeBody(part)) co_return;
      }
      co_await ex->endBody();
      co_return;
    }
    if (ex->target() == "/slow") {
      // Longer than every client-side timeout of the test server: the handler waiting on
      // something else must not lose its client.
      boost::asio::steady_timer wait(co_await boost::asio::this_coro::executor);
      wait.expires_after(std::chrono::milliseconds(2500));
      co_await wait.async_wait(boost::asio::use_awaitable);
      co_await ex->respond(200, "text/plain", "slow but here");
      co_return;
    }
    if (ex->target() == "/pull") {
      std::string got;
      char buf[7];
      for (;;) {
        auto n = co_await ex->readBodySome(buf, sizeof buf, 1 << 20);
        if (!n || *n == 0) break;
        got.append(buf, *n);
      }
      std::string reply = "pulled:" + got;
      co_await ex->respond(200, "text/plain", reply);
      co_return;
    }
    std::string reply = std::string(ex->target()) + " host=" + ex->host();
    co_await ex->respond(200, "text/plain", reply);
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);  // as `nimbus serve` does
    auto server = Server::create({"test", "127.0.0.1:0", {}}, {&ioc_}, &handler_, nullptr);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
    auto client = Client::create("http://" + server_->boundAddress());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }
  void TearDown() override {
    ioc_.stop();
    thread_.join();
  }

  boost::asio::io_context ioc_;
  EchoHandler handler_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
  std::thread thread_;
};

TEST_F(ServerTest, AnswersWithRequestIdAndKeepsConnectionAlive) {
  auto a = client_->request("GET", "/a?x=1", {{"host", "Example.COM:80"}}, "");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "/a?x=1 host=example.com");
  EXPECT_EQ(a->header("x-nimbus-id").size(), 20u);
  auto b = client_->request("GET", "/b", {}, "");
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->header("x-nimbus-id"), b->header("x-nimbus-id"));
}

TEST_F(ServerTest, RejectsOversizedHeadersWith431) {
  auto r = client_->request("GET", "/", {{"x-big", std::string(40000, 'a')}}, "");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->header("x-nimbus-error"), "REQUEST_HEADER_TOO_LARGE");
}

TEST_F(ServerTest, RejectsLongUrlsWith414) {
  auto r = client_->request("GET", "/" + std::string(9000, 'a'), {}, "");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->status, 414);
}

TEST_F(ServerTest, EnforcesHandlerBodyLimit) {
  auto ok = client_->request("POST", "/", {}, "small");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->body, "got:small");
  auto big = client_->request("POST", "/", {}, std::string(100, 'x'));
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->status, 413);
}

TEST_F(ServerTest, ReadsBodiesLargerThanTheFirstPacket) {
  for (size_t size : {80u, 5000u, 200000u}) {
    std::string body(size, 'b');
    auto r = client_->request("POST", "/big", {}, body);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body, "got:" + body) << size;
  }
}

TEST_F(ServerTest, StreamsChunkedResponsesAndPullsBodies) {
  auto r = client_->request("GET", "/chunked", {}, "");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "one two three");
  EXPECT_EQ(r->header("transfer-encoding"), "chunked");
  std::string body(10000, 'p');
  auto p = client_->request("POST", "/pull", {}, body);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->body, "pulled:" + body);
  auto again = client_->request("GET", "/chunked", {}, "");  // same connection still usable
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->body, "one two three");
}

TEST(ServerTimeouts, HandlerSlowerThanClientTimeoutsStillAnswersAndIdleClientsAreClosed) {
  std::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context ioc;
  EchoHandler handler;
  Limits limits;
  limits.headerTimeout = std::chrono::seconds(1);
  limits.idleTimeout = std::chrono::seconds(1);
  limits.ioTimeout = std::chrono::seconds(1);
  auto server = Server::create({"test", "127.0.0.1:0", limits}, {&ioc}, &handler, nullptr);
  ASSERT_TRUE(server.ok());
  (*server)->start();
  std::thread t([&] { ioc.run(); });
  auto hp = parseHostPort((*server)->boundAddress());
  boost::asio::io_context cio;
  {
    // The slow answer arrives, and the same connection then serves another request: the
    // handler's wait is not a client timeout.
    boost::asio::ip::tcp::socket conn(cio);
    conn.connect({boost::asio::ip::make_address(hp->first), hp->second});
    boost::beast::flat_buffer buf;
    for (std::string target : {"/slow", "/after"}) {
      std::string req = "GET " + target + " HTTP/1.1\r\nhost: t\r\n\r\n";
      boost::asio::write(conn, boost::asio::buffer(req));
      boost::beast::http::response<boost::beast::http::string_body> res;
      boost::system::error_code rec;
      boost::beast::http::read(conn, buf, res, rec);
      ASSERT_FALSE(rec) << target << ": " << rec.message();
      EXPECT_EQ(res.result_int(), 200u);
      if (target == "/slow") {
        EXPECT_EQ(res.body(), "slow but here");
      }
    }
  }
  // An idle keep-alive connection is closed by the server within a bounded time.
  boost::asio::ip::tcp::socket s(cio);
  s.connect({boost::asio::ip::make_address(hp->first), hp->second});
  char byte;
  boost::system::error_code ec;
  s.read_some(boost::asio::buffer(&byte, 1), ec);  // returns when the server closes (<= ~3 s)
  EXPECT_TRUE(ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset)
      << ec.message();
  ioc.stop();
  t.join();
}

TEST(RenderErrorBody, NegotiatesJsonHtmlAndText) {
  std::string type;
  auto json = renderErrorBody(404, "NOT_FOUND", "no \"x\"", "id1", "application/json", &type);
  EXPECT_EQ(type, "application/json; charset=utf-8");
  EXPECT_NE(json.find("\"code\":\"NOT_FOUND\""), std::string::npos);
  EXPECT_NE(json.find("no \\\"x\\\""), std::string::npos);
  auto html = renderErrorBody(404, "NOT_FOUND", "<b>", "id1", "text/html", &type);
  EXPECT_NE(html.find("&lt;b&gt;"), std::string::npos);
  auto text = renderErrorBody(404, "NOT_FOUND", "gone", "id1", "*/*", &type);
  EXPECT_EQ(type, "text/plain; charset=utf-8");
  EXPECT_NE(text.find("NOT_FOUND"), std::string::npos);
}

TEST(ParseHostPort, AcceptsV4V6AndRejectsGarbage) {
  auto a = parseHostPort("127.0.0.1:3000");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 3000);
  auto b = parseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "::1");
  EXPECT_FALSE(parseHostPort("localhost").ok());
  EXPECT_FALSE(parseHostPort("1.2.3.4:99999").ok());
}

}  // namespace
}  // namespace nimbus::http

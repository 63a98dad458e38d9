#include "http/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <sys/sendfile.h>
#include <sys/time.h>

#include <sys/socket.h>

#include <array>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <atomic>
#include <cctype>
#include <ctime>

#include "common/random.h"

namespace nimbus::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 508: return "Loop Detected";
    default: return "Status";
  }
}

// The Date header value, recomputed at most once a second per thread.
std::string_view httpDate() {
  thread_local time_t cachedSecond = 0;
  thread_local char buf[64];
  thread_local size_t len = 0;
  time_t now = ::time(nullptr);
  if (now != cachedSecond) {
    struct tm tm;
    ::gmtime_r(&now, &tm);
    len = ::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cachedSecond = now;
  }
  return {buf, len};
}

int64_t monotonicUs() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void appendHtmlEscaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Connection: a socket and the deadline of the client operation under way. beginOp moves
// the deadline (a plain store, no timer syscall) and endOp marks the operation finished; one
// watchdog timer per connection wakes at the deadline it last saw and cancels the socket
// only when an operation is still pending then. While the handler works on something else
// (a slow upstream, a function) nothing is pending and the watchdog just looks again later,
// so a new, earlier deadline is enforced at most `recheck` late.

struct Connection {
  Connection(tcp::socket s, std::chrono::steady_clock::duration recheckEvery)
      : socket(std::move(s)), watchdog(socket.get_executor()), recheck(recheckEvery) {}
  void beginOp(std::chrono::steady_clock::duration d) {
    deadline = std::chrono::steady_clock::now() + d;
    pending = true;
  }
  void endOp() { pending = false; }
  tcp::socket socket;
  asio::steady_timer watchdog;
  std::chrono::steady_clock::duration recheck;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  bool pending = false;
  bool closed = false;
  bool timedOut = false;
};

namespace {

// How late a new deadline may be noticed while the watchdog sleeps: the shortest timeout.
std::chrono::steady_clock::duration recheckPeriod(const Limits& l) {
  return std::min(l.headerTimeout, std::min(l.idleTimeout, l.ioTimeout));
}

asio::awaitable<void> watchConnection(std::shared_ptr<Connection> c) {
  for (;;) {
    if (c->closed) co_return;
    auto now = std::chrono::steady_clock::now();
    if (c->deadline <= now) {
      if (c->pending) {
        c->timedOut = true;
        boost::system::error_code ignored;
        c->socket.cancel(ignored);
        co_return;
      }
      c->deadline = now + c->recheck;
    }
    c->watchdog.expires_at(c->deadline);
    co_await c->watchdog.async_wait(kTuple);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Exchange

struct Exchange::Impl {
  Connection* conn = nullptr;
  beast::flat_buffer* buffer = nullptr;
  bhttp::request_parser<bhttp::buffer_body>* parser = nullptr;
  const Limits* limits = nullptr;
  std::string host;
  std::string requestId;
  std::string remote;
  std::string head;          // response head being built
  int status = 0;
  bool started = false;      // beginResponse called
  bool sent = false;         // a send* completed or failed
  bool closeAfter = false;
  bool failed = false;       // connection unusable
  bool continueSent = false;
  uint64_t bytesSent = 0;
  bool isHead = false;
  bool chunked = false;       // startBody without a length
  uint64_t bodyRead = 0;      // readBodySome total
};

std::string_view Exchange::method() const { return impl_->parser->get().method_string(); }
std::string_view Exchange::target() const { return impl_->parser->get().target(); }

std::string_view Exchange::header(std::string_view name) const {
  const auto& fields = impl_->parser->get();
  auto it = fields.find(name);
  if (it == fields.end()) return {};
  return it->value();
}

bool Exchange::hasHeader(std::string_view name) const {
  return impl_->parser->get().find(name) != impl_->parser->get().end();
}

void Exchange::forEachHeader(
    const std::function<void(std::string_view, std::string_view)>& fn) const {
  for (const auto& f : impl_->parser->get()) fn(f.name_string(), f.value());
}

const std::string& Exchange::host() const { return impl_->host; }
const std::string& Exchange::requestId() const { return impl_->requestId; }
const std::string& Exchange::remoteAddress() const { return impl_->remote; }

std::optional<uint64_t> Exchange::contentLength() const {
  auto cl = impl_->parser->content_length();
  if (cl) return *cl;
  return std::nullopt;
}

bool Exchange::hasBody() const {
  return !impl_->parser->is_done();
}

asio::awaitable<Result<uint64_t>> Exchange::readBodyTo(BodySink* sink, uint64_t limit) {
  std::array<char, 64 * 1024> chunk;
  uint64_t total = 0;
  for (;;) {
    Result<size_t> n = co_await readBodySome(chunk.data(), chunk.size(), limit);
    if (!n) co_return n.error();
    if (*n == 0) co_return total;
    total += *n;
    if (auto r = sink->write(chunk.data(), *n); !r) {
      impl_->closeAfter = true;
      co_return r.error();
    }
  }
}

namespace {

class StringSink final : public Exchange::BodySink {
 public:
  Result<void> write(const char* data, size_t size) override {
    bytes.append(data, size);
    return success();
  }
  std::string bytes;
};

class DiscardSink final : public Exchange::BodySink {
 public:
  Result<void> write(const char*, size_t) override { return success(); }
};

}  // namespace

asio::awaitable<Result<std::string>> Exchange::readBody(uint64_t limit) {
  StringSink sink;
  if (auto cl = contentLength(); cl && *cl <= limit) sink.bytes.reserve(*cl);
  Result<uint64_t> r = co_await readBodyTo(&sink, limit);
  Result<std::string> out = r ? Result<std::string>(std::move(sink.bytes)) : Result<std::string>(r.error());
  co_return out;
}

namespace {
void finishHead(Exchange::Impl& s, uint64_t length);
}  // namespace

asio::awaitable<Result<size_t>> Exchange::readBodySome(char* buf, size_t size, uint64_t limit) {
  Impl& s = *impl_;
  auto& parser = *s.parser;
  if (parser.is_done()) co_return size_t{0};
  if (auto cl = parser.content_length(); cl && *cl > limit) {
    s.closeAfter = true;
    co_return makeError(ErrorKind::TooLarge,
                        fmt::format("request body of {} bytes exceeds the limit of {} bytes",
                                    *cl, limit));
  }
  if (!s.continueSent && iequals(header("expect"), "100-continue")) {
    s.continueSent = true;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    s.conn->beginOp(s.limits->ioTimeout);
    auto [ec, n] = co_await asio::async_write(s.conn->socket, asio::buffer(kContinue), kTuple);
    s.conn->endOp();
    if (ec) {
      s.failed = true;
      co_return makeError(ErrorKind::Io, "writing 100-continue: " + ec.message());
    }
  }
  for (;;) {
    parser.get().body().data = buf;
    parser.get().body().size = size;
    s.conn->beginOp(s.limits->ioTimeout);
    auto [ec, n] = co_await bhttp::async_read_some(s.conn->socket, *s.buffer, parser, kTuple);
    s.conn->endOp();
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      s.failed = true;
      co_return makeError(ErrorKind::Io, "reading request body: " + ec.message());
    }
    size_t got = size - parser.get().body().size;
    s.bodyRead += got;
    if (s.bodyRead > limit) {
      s.closeAfter = true;
      co_return makeError(ErrorKind::TooLarge,
                          fmt::format("request body exceeds the limit of {} bytes", limit));
    }
    if (got > 0 || parser.is_done()) co_return got;
  }
}

asio::awaitable<bool> Exchange::startBody(std::optional<uint64_t> length) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.started && !s.sent);
  s.sent = true;
  bool noBodyStatus = s.status == 304 || s.status == 204 || (s.status >= 100 && s.status < 200);
  if (length || noBodyStatus || s.isHead) {
    finishHead(s, length.value_or(0));
  } else {
    bool keepAlive = !s.closeAfter && s.parser->get().keep_alive();
    if (!keepAlive) s.closeAfter = true;
    s.chunked = true;
    s.head += "transfer-encoding: chunked\r\n";
    if (!keepAlive) s.head += "connection: close\r\n";
    s.head += "\r\n";
  }
  s.conn->beginOp(s.limits->ioTimeout);
  auto [ec, n] = co_await asio::async_write(s.conn->socket, asio::buffer(s.head), kTuple);
  s.conn->endOp();
  if (ec) s.failed = true;
  co_return !s.failed;
}

asio::awaitable<bool> Exchange::writeBody(std::string_view data) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.sent);
  if (s.failed) co_return false;
  if (data.empty() || s.isHead || s.status == 304 || s.status == 204) co_return true;
  s.conn->beginOp(s.limits->ioTimeout);
  if (s.chunked) {
    char sizeLine[24];
    int len = std::snprintf(sizeLine, sizeof sizeLine, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> bufs{asio::buffer(sizeLine, static_cast<size_t>(len)),
                                           asio::buffer(data.data(), data.size()),
                                           asio::buffer("\r\n", 2)};
    auto [ec, n] = co_await asio::async_write(s.conn->socket, bufs, kTuple);
    if (ec) s.failed = true;
  } else {
    auto [ec, n] = co_await asio::async_write(s.conn->socket, asio::buffer(data.data(), data.size()), kTuple);
    if (ec) s.failed = true;
  }
  s.conn->endOp();
  if (!s.failed) s.bytesSent += data.size();
  co_return !s.failed;
}

asio::awaitable<bool> Exchange::endBody() {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.sent);
  if (s.failed) co_return false;
  if (s.chunked && !s.isHead) {
    static constexpr std::string_view kLast = "0\r\n\r\n";
    s.conn->beginOp(s.limits->ioTimeout);
    auto [ec, n] = co_await asio::async_write(s.conn->socket, asio::buffer(kLast), kTuple);
    s.conn->endOp();
    if (ec) s.failed = true;
  }
  co_return !s.failed;
}

asio::awaitable<Result<uint64_t>> Exchange::discardBody(uint64_t limit) {
  DiscardSink sink;
  Result<uint64_t> r = co_await readBodyTo(&sink, limit);
  co_return r;
}

void Exchange::beginResponse(int status) {
  Impl& s = *impl_;
  NIMBUS_CHECK(!s.sent);
  s.started = true;
  s.status = status;
  s.head.clear();
  s.head += "HTTP/1.1 ";
  s.head += std::to_string(status);
  s.head.push_back(' ');
  s.head += reasonPhrase(status);
  s.head += "\r\nserver: nimbus\r\ndate: ";
  s.head += httpDate();
  s.head += "\r\nx-nimbus-id: ";
  s.head += s.requestId;
  s.head += "\r\n";
}

void Exchange::addHeader(std::string_view name, std::string_view value) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.started && !s.sent);
  s.head += name;
  s.head += ": ";
  // Header values never carry line breaks; drop any a caller passed through.
  for (char c : value) {
    if (c != '\r' && c != '\n') s.head.push_back(c);
  }
  s.head += "\r\n";
}

void Exchange::closeAfterResponse() { impl_->closeAfter = true; }
bool Exchange::responseStarted() const { return impl_->sent; }

namespace {
void finishHead(Exchange::Impl& s, uint64_t length) {
  bool keepAlive = !s.closeAfter && s.parser->get().keep_alive();
  if (!keepAlive) s.closeAfter = true;
  bool noBodyStatus = s.status == 304 || s.status == 204 || (s.status >= 100 && s.status < 200);
  if (!noBodyStatus) {
    s.head += "content-length: ";
    s.head += std::to_string(length);
    s.head += "\r\n";
  }
  if (!keepAlive) s.head += "connection: close\r\n";
  s.head += "\r\n";
}
}  // namespace

asio::awaitable<void> Exchange::send(std::string_view body) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.started && !s.sent);
  s.sent = true;
  finishHead(s, body.size());
  bool withBody = !s.isHead && s.status != 304 && s.status != 204;
  std::array<asio::const_buffer, 2> bufs{asio::buffer(s.head),
                                         asio::buffer(body.data(), withBody ? body.size() : 0)};
  s.conn->beginOp(s.limits->ioTimeout);
  auto [ec, n] = co_await asio::async_write(s.conn->socket, bufs, kTuple);
  s.conn->endOp();
  if (ec) {
    s.failed = true;
    co_return;
  }
  s.bytesSent = withBody ? body.size() : 0;
}

asio::awaitable<void> Exchange::sendStream(uint64_t length, ChunkSource* source) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.started && !s.sent);
  s.sent = true;
  finishHead(s, length);
  s.conn->beginOp(s.limits->ioTimeout);
  auto [ec, n] = co_await asio::async_write(s.conn->socket, asio::buffer(s.head), kTuple);
  s.conn->endOp();
  if (ec) {
    s.failed = true;
    co_return;
  }
  if (s.isHead || s.status == 304) co_return;
  uint64_t sent = 0;
  while (sent < length) {
    auto chunk = source->next();
    if (!chunk || chunk->empty()) {
      // The source failed mid-body: the only honest signal left is closing the connection.
      if (!chunk) spdlog::warn("request {}: response body failed: {}", s.requestId,
                               chunk.error().message);
      s.failed = true;
      co_return;
    }
    s.conn->beginOp(s.limits->ioTimeout);
    auto [wec, wn] = co_await asio::async_write(s.conn->socket, asio::buffer(*chunk), kTuple);
    s.conn->endOp();
    if (wec) {
      s.failed = true;
      co_return;
    }
    sent += wn;
    s.bytesSent = sent;
  }
}

namespace {

// Waits until the socket takes more bytes; false (and the exchange failed) on error or
// timeout.
asio::awaitable<bool> waitWritable(Exchange::Impl* s) {
  s->conn->beginOp(s->limits->ioTimeout);
  auto [ec] = co_await s->conn->socket.async_wait(tcp::socket::wait_write, kTuple);
  s->conn->endOp();
  if (ec) s->failed = true;
  co_return !ec;
}

}  // namespace

asio::awaitable<void> Exchange::sendFile(int fd, uint64_t offset, uint64_t length) {
  Impl& s = *impl_;
  NIMBUS_CHECK(s.started && !s.sent);
  s.sent = true;
  finishHead(s, length);
  bool withBody = !s.isHead && s.status != 304 && s.status != 204 && length > 0;
  int sock = s.conn->socket.native_handle();
  // The head goes out with MSG_MORE so it shares a segment with the first file bytes.
  size_t headSent = 0;
  for (;;) {
    ssize_t n = ::send(sock, s.head.data() + headSent, s.head.size() - headSent,
                       MSG_NOSIGNAL | (withBody ? MSG_MORE : 0));
    if (n > 0) {
      headSent += static_cast<size_t>(n);
      if (headSent == s.head.size()) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!co_await waitWritable(&s)) co_return;
      continue;
    }
    s.failed = true;
    co_return;
  }
  if (!withBody) co_return;
  off_t pos = static_cast<off_t>(offset);
  uint64_t remaining = length;
  while (remaining > 0) {
    ssize_t n = ::sendfile(sock, fd, &pos, std::min<uint64_t>(remaining, 4u << 20));
    if (n > 0) {
      remaining -= static_cast<uint64_t>(n);
      s.bytesSent += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!co_await waitWritable(&s)) co_return;
      continue;
    }
    // n == 0: the file is shorter than promised; the client must not take a short body.
    if (n == 0) spdlog::warn("request {}: file ended {} bytes early", s.requestId, remaining);
    s.failed = true;
    co_return;
  }
}

asio::awaitable<void> Exchange::respond(int status, std::string_view contentType,
                                        std::string_view body) {
  beginResponse(status);
  if (!contentType.empty()) addHeader("content-type", contentType);
  co_await send(body);
}

// ---------------------------------------------------------------------------------------
// Error bodies

std::string renderErrorBody(int status, std::string_view code, std::string_view message,
                            std::string_view requestId, std::string_view accept,
                            std::string* contentType) {
  std::string out;
  if (accept.find("json") != std::string_view::npos) {
    *contentType = "application/json; charset=utf-8";
    out += "{\"error\":{\"code\":";
    appendJsonString(out, code);
    out += ",\"status\":";
    out += std::to_string(status);
    out += ",\"message\":";
    appendJsonString(out, message);
    out += ",\"requestId\":";
    appendJsonString(out, requestId);
    out += "}}\n";
  } else if (accept.find("html") != std::string_view::npos) {
    *contentType = "text/html; charset=utf-8";
    out += "<!doctype html><html><head><meta charset=\"utf-8\"><title>";
    out += std::to_string(status);
    out += ": ";
    appendHtmlEscaped(out, code);
    out +=
        "</title><style>body{font-family:system-ui,sans-serif;margin:15vh auto;max-width:40em;"
        "padding:0 1em;color:#222}code{background:#f3f3f3;padding:.1em .3em}"
        "small{color:#777}</style></head><body><h1>";
    out += std::to_string(status);
    out += "</h1><p>";
    appendHtmlEscaped(out, message);
    out += "</p><p><code>";
    appendHtmlEscaped(out, code);
    out += "</code></p><p><small>request id ";
    appendHtmlEscaped(out, requestId);
    out += "</small></p></body></html>\n";
  } else {
    *contentType = "text/plain; charset=utf-8";
    out += std::to_string(status);
    out += ": ";
    out += message;
    out += "\n\nCode: ";
    out += code;
    out += "\nID: ";
    out += requestId;
    out += "\n";
  }
  return out;
}

asio::awaitable<void> sendError(Exchange* ex, int status, std::string_view code,
                                std::string_view message) {
  std::string contentType;
  std::string body =
      renderErrorBody(status, code, message, ex->requestId(), ex->header("accept"), &contentType);
  ex->beginResponse(status);
  ex->addHeader("content-type", contentType);
  ex->addHeader("cache-control", "no-store");
  ex->addHeader("x-nimbus-error", code);
  co_await ex->send(body);
}

// ---------------------------------------------------------------------------------------
// Access log

namespace {

class FileAccessLog final : public AccessLog {
 public:
  FileAccessLog(std::FILE* file, bool owned) : file_(file), owned_(owned) {
    flusher_ = std::thread([this] { flushLoop(); });
  }
  ~FileAccessLog() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    flusher_.join();
    flush();
    if (owned_) std::fclose(file_);
  }

  void record(const Record& r) override {
    std::string line;
    line.reserve(256);
    line += "{\"ts\":";
    struct timeval tv;
    ::gettimeofday(&tv, nullptr);
    line += std::to_string(static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000);
    line += ",\"id\":";
    appendJsonString(line, r.requestId);
    line += ",\"remote\":";
    appendJsonString(line, r.remote);
    line += ",\"host\":";
    appendJsonString(line, r.host);
    line += ",\"method\":";
    appendJsonString(line, r.method);
    line += ",\"target\":";
    appendJsonString(line, r.target);
    line += ",\"status\":";
    line += std::to_string(r.status);
    line += ",\"bytes\":";
    line += std::to_string(r.bytesSent);
    line += ",\"durationUs\":";
    line += std::to_string(r.durationUs);
    line += ",\"ua\":";
    appendJsonString(line, r.userAgent);
    line += "}\n";
    std::lock_guard lock(mu_);
    buffer_ += line;
    if (buffer_.size() > 64 * 1024) writeLocked();
  }

  void flush() override {
    std::lock_guard lock(mu_);
    writeLocked();
  }

 private:
  void writeLocked() {
    if (buffer_.empty()) return;
    std::fwrite(buffer_.data(), 1, buffer_.size(), file_);
    std::fflush(file_);
    buffer_.clear();
  }

  void flushLoop() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(500));
      writeLocked();
    }
  }

  std::FILE* file_;
  bool owned_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::string buffer_;
  std::thread flusher_;
};

class NullAccessLog final : public AccessLog {
 public:
  void record(const Record&) override {}
  void flush() override {}
};

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& path) {
  if (path.empty() || path == "off") return std::unique_ptr<AccessLog>(new NullAccessLog());
  if (path == "-") return std::unique_ptr<AccessLog>(new FileAccessLog(stdout, false));
  std::FILE* f = std::fopen(path.c_str(), "ae");
  if (!f) {
    return makeError(ErrorKind::Io, fmt::format("cannot open access log {}: {}; pass "
                                                "--access-log with a writable path, or off",
                                                path, std::strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new FileAccessLog(f, true));
}

// ---------------------------------------------------------------------------------------
// Server

Result<std::pair<std::string, uint16_t>> parseHostPort(std::string_view s) {
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return makeError(ErrorKind::Invalid,
                       fmt::format("'{}' is not HOST:PORT (write IPv6 as [::1]:3000)", s));
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      return makeError(ErrorKind::Invalid,
                       fmt::format("'{}' is not HOST:PORT (for example 127.0.0.1:3000)", s));
    }
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  unsigned value = 0;
  if (port.empty() || port.size() > 5) {
    return makeError(ErrorKind::Invalid, fmt::format("'{}': port must be 0-65535", s));
  }
  for (char c : port) {
    if (c < '0' || c > '9') {
      return makeError(ErrorKind::Invalid, fmt::format("'{}': port must be 0-65535", s));
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) {
    return makeError(ErrorKind::Invalid, fmt::format("'{}': port must be 0-65535", s));
  }
  if (host.empty()) host = "0.0.0.0";
  return std::make_pair(std::string(host), static_cast<uint16_t>(value));
}

namespace {

std::string lowerHostWithoutPort(std::string_view h) {
  std::string out;
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    h = h.substr(0, close == std::string_view::npos ? h.size() : close + 1);
  } else if (auto colon = h.rfind(':'); colon != std::string_view::npos) {
    h = h.substr(0, colon);
  }
  out.reserve(h.size());
  for (char c : h) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

class BeastServer final : public Server {
 public:
  BeastServer(Options options, std::vector<asio::io_context*> contexts, Handler* handler,
               AccessLog* accessLog)
      : options_(std::move(options)),
        contexts_(std::move(contexts)),
        handler_(handler),
        accessLog_(accessLog) {}

  Result<void> bind() {
    auto hp = parseHostPort(options_.listen);
    if (!hp) return hp.error();
    boost::system::error_code ec;
    auto address = asio::ip::make_address(hp->first, ec);
    if (ec) {
      return makeError(ErrorKind::Invalid,
                       fmt::format("'{}' is not an IP address; --listen takes IP:PORT such as "
                                   "127.0.0.1:3000",
                                   hp->first));
    }
    uint16_t port = hp->second;
    for (auto* ioc : contexts_) {
      auto acceptor = std::make_unique<tcp::acceptor>(*ioc);
      tcp::endpoint ep(address, port);
      acceptor->open(ep.protocol(), ec);
      if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        int one = 1;
        if (::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one,
                         sizeof one) != 0) {
          ec.assign(errno, boost::system::system_category());
        }
      }
      if (!ec) acceptor->bind(ep, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return makeError(ErrorKind::Io,
                         fmt::format("{}: cannot listen on {}: {}; pick another address with "
                                     "--listen/--api-listen (port 0 picks a free one)",
                                     options_.name, options_.listen, ec.message()));
      }
      if (port == 0) port = acceptor->local_endpoint().port();
      acceptors_.push_back(std::move(acceptor));
    }
    boundPort_ = port;
    bound_ = address.is_v6() ? fmt::format("[{}]:{}", address.to_string(), port)
                             : fmt::format("{}:{}", address.to_string(), port);
    return success();
  }

  std::string boundAddress() const override { return bound_; }
  uint16_t port() const override { return boundPort_; }

  void start() override {
    for (auto& acceptor : acceptors_) {
      asio::co_spawn(acceptor->get_executor(), acceptLoop(this, acceptor.get()),
                     [name = options_.name](std::exception_ptr e) {
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         spdlog::error("{}: accept loop ended: {}", name, ex.what());
                       }
                     });
    }
  }

  void stop() override {
    for (auto& acceptor : acceptors_) {
      asio::post(acceptor->get_executor(), [a = acceptor.get()] {
        boost::system::error_code ec;
        a->close(ec);
      });
    }
  }

 private:
  static asio::awaitable<void> acceptLoop(BeastServer* self, tcp::acceptor* acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        // EMFILE and friends: log and keep accepting rather than dying.
        spdlog::warn("{}: accept failed: {}", self->options_.name, ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      asio::co_spawn(acceptor->get_executor(), session(self, std::move(socket)),
                     [](std::exception_ptr e) {
                       if (!e) return;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         spdlog::error("connection ended by exception: {}", ex.what());
                       }
                     });
    }
  }

  static asio::awaitable<void> respondEarly(Exchange::Impl* impl, int status,
                                            std::string_view code, std::string_view message) {
    Exchange ex(impl);
    impl->closeAfter = true;
    co_await sendError(&ex, status, code, message);
  }

  static asio::awaitable<void> session(BeastServer* self, tcp::socket socket) {
    const Limits& limits = self->options_.limits;
    auto conn = std::make_shared<Connection>(std::move(socket), recheckPeriod(limits));
    beast::flat_buffer buffer;
    std::string remote;
    {
      boost::system::error_code ec;
      auto ep = conn->socket.remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string();
    }
    conn->beginOp(limits.headerTimeout);
    asio::co_spawn(conn->socket.get_executor(), watchConnection(conn), asio::detached);
    bool first = true;
    for (;;) {
      bhttp::request_parser<bhttp::buffer_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.maxHeaderBytes));
      parser.body_limit(boost::none);  // handlers enforce their own limits
      if (!first) conn->beginOp(limits.idleTimeout);
      first = false;
      auto [ec, n] = co_await bhttp::async_read_header(conn->socket, buffer, parser, kTuple);
      conn->endOp();
      int64_t startUs = monotonicUs();

      Exchange::Impl impl;
      impl.conn = conn.get();
      impl.buffer = &buffer;
      impl.parser = &parser;
      impl.limits = &limits;
      impl.remote = remote;
      impl.requestId = fastId();

      if (ec) {
        if (conn->timedOut && buffer.size() > 0) {
          // Best effort: the client stalled mid-head; tell it why before closing.
          static constexpr std::string_view k408 =
              "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
          ::send(conn->socket.native_handle(), k408.data(), k408.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          break;
        }
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
            conn->timedOut) {
          break;
        }
        if (ec == bhttp::error::header_limit) {
          std::string message = fmt::format("request headers exceed {} bytes; send fewer or "
                                            "smaller headers (cookies, most often)",
                                            limits.maxHeaderBytes);
          co_await respondEarly(&impl, 431, "REQUEST_HEADER_TOO_LARGE", message);
        } else {
          std::string message = "the request is not valid HTTP/1.1: " + ec.message();
          co_await respondEarly(&impl, 400, "MALFORMED_REQUEST", message);
        }
        self->log(impl, startUs);
        break;
      }

      impl.host = lowerHostWithoutPort(parser.get()[bhttp::field::host]);
      impl.isHead = parser.get().method() == bhttp::verb::head;

      Exchange ex(&impl);
      if (parser.get().target().size() > limits.maxUrlBytes) {
        std::string message = fmt::format("the URL is longer than {} bytes", limits.maxUrlBytes);
        co_await respondEarly(&impl, 414, "URL_TOO_LONG", message);
      } else {
        try {
          co_await self->handler_->serve(&ex);
        } catch (const std::exception& e) {
          spdlog::error("{}: request {} {} {}: {}", self->options_.name, impl.requestId,
                        ex.method(), ex.target(), e.what());
          impl.closeAfter = true;
        }
        if (!impl.sent && !impl.failed) {
          impl.closeAfter = true;
          co_await sendError(&ex, 500, "INTERNAL_SERVER_ERROR",
                             "the server failed while handling this request");
        }
      }
      self->log(impl, startUs);
      if (impl.failed || impl.closeAfter || conn->timedOut) break;
      if (!parser.is_done()) {
        // The handler left a body unread: skip it when small, else close.
        auto cl = parser.content_length();
        if (!cl || *cl > 64 * 1024) break;
        auto r = co_await ex.discardBody(64 * 1024);
        if (!r || impl.failed) break;
      }
    }
    conn->closed = true;
    boost::system::error_code ignored;
    conn->watchdog.cancel();
    conn->socket.shutdown(tcp::socket::shutdown_send, ignored);
    conn->socket.close(ignored);
  }

  void log(const Exchange::Impl& impl, int64_t startUs) {
    if (!accessLog_) return;
    AccessLog::Record r;
    r.requestId = impl.requestId;
    r.remote = impl.remote;
    r.host = impl.host;
    if (impl.parser->is_header_done()) {
      r.method = impl.parser->get().method_string();
      r.target = impl.parser->get().target();
      r.userAgent = impl.parser->get()[bhttp::field::user_agent];
    }
    r.status = impl.status;
    r.bytesSent = impl.bytesSent;
    r.durationUs = monotonicUs() - startUs;
    accessLog_->record(r);
  }

  Options options_;
  std::vector<asio::io_context*> contexts_;
  Handler* handler_;
  AccessLog* accessLog_;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors_;
  std::string bound_;
  uint16_t boundPort_ = 0;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::create(Options options,
                                               std::vector<asio::io_context*> contexts,
                                               Handler* handler, AccessLog* accessLog) {
  NIMBUS_CHECK(!contexts.empty());
  auto server = std::make_unique<BeastServer>(std::move(options), std::move(contexts), handler,
                                              accessLog);
  if (auto r = server->bind(); !r) return r.error();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace nimbus::http

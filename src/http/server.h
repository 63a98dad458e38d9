#pragma once
// A small HTTP/1.1 server on Boost.Beast with C++20 coroutines, shared by the router and
// the control API. It owns connections, request parsing with limits, keep-alive, timeouts,
// request ids and the access log; a Handler decides what each request gets.
//
// Coroutine rule (GCC 12 destroys class-type temporaries of a co_await full-expression
// twice): pass coroutines pointers, views of named locals or trivially destructible values,
// never class-type temporaries.
//
// Thread rules: one acceptor per io_context (SO_REUSEPORT); a connection lives on the
// io_context that accepted it and never migrates. Handler::serve may run concurrently on
// several threads.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace boost::asio {
class io_context;
}

namespace nimbus::http {

class AccessLog;

struct Limits {
  size_t maxHeaderBytes = 32 * 1024;  // whole request head; over -> 431
  size_t maxUrlBytes = 8 * 1024;      // request target; over -> 414
  std::chrono::seconds headerTimeout{30};  // time to receive a complete request head
  std::chrono::seconds idleTimeout{75};    // keep-alive idle time between requests
  std::chrono::seconds ioTimeout{120};     // any single body read or response write
};

// One request and its response. Valid only during Handler::serve.
class Exchange {
 public:
  struct Impl;
  explicit Exchange(Impl* impl) : impl_(impl) {}

  std::string_view method() const;
  std::string_view target() const;   // as sent: path and query
  // A request header's value; "" when absent. Names are case-insensitive.
  std::string_view header(std::string_view name) const;
  bool hasHeader(std::string_view name) const;
  // Iterates every header as (name, value).
  void forEachHeader(const std::function<void(std::string_view, std::string_view)>& fn) const;
  // Host without port, lower-cased.
  const std::string& host() const;
  const std::string& requestId() const;
  const std::string& remoteAddress() const;
  // Declared body length; nullopt for chunked or no body.
  std::optional<uint64_t> contentLength() const;
  bool hasBody() const;

  // Reads the whole body. Errors: TooLarge over `limit` (the connection is closed after the
  // response), Io when the peer fails or times out.
  boost::asio::awaitable<Result<std::string>> readBody(uint64_t limit);
  // Receives body bytes chunk by chunk.
  class BodySink {
   public:
    virtual ~BodySink() = default;
    virtual Result<void> write(const char* data, size_t size) = 0;
  };
  // Streams the body to `sink` (which must outlive the call) in chunks; returns the byte
  // count.
  boost::asio::awaitable<Result<uint64_t>> readBodyTo(BodySink* sink, uint64_t limit);
  // Pull-style body reading: reads the next piece of the body into `buf` (at most `size`
  // bytes); 0 means the body is complete. Errors: TooLarge past `limit` in total, Io.
  boost::asio::awaitable<Result<size_t>> readBodySome(char* buf, size_t size, uint64_t limit);
  // Reads and discards the body.
  boost::asio::awaitable<Result<uint64_t>> discardBody(uint64_t limit);

  // Building a response: beginResponse, any addHeader calls, then exactly one send*.
  // The server adds date, server, x-nimbus-id, content-length and connection headers.
  void beginResponse(int status);
  void addHeader(std::string_view name, std::string_view value);
  // Sends the head and `body` (omitted for HEAD requests; content-length still says
  // body.size()).
  boost::asio::awaitable<void> send(std::string_view body);
  // Produces a response body piece by piece; each view stays valid until the next call.
  class ChunkSource {
   public:
    virtual ~ChunkSource() = default;
    virtual Result<std::string_view> next() = 0;
  };
  // Sends the head with content-length `length`, then the bytes `source` (which must
  // outlive the call) produces (no body for HEAD requests).
  boost::asio::awaitable<void> sendStream(uint64_t length, ChunkSource* source);

  // Sends the head with content-length `length`, then `length` bytes of file `fd` from
  // `offset` with sendfile(2) (no body for HEAD). The caller keeps `fd` open until the
  // call completes.
  boost::asio::awaitable<void> sendFile(int fd, uint64_t offset, uint64_t length);

  // Incremental response body (proxying, streaming functions): after beginResponse and
  // addHeader, startBody sends the head — with content-length when `length` is given,
  // else with chunked transfer-encoding — then writeBody as often as needed and endBody
  // once. Each returns false when the client is gone (stop producing then).
  boost::asio::awaitable<bool> startBody(std::optional<uint64_t> length);
  boost::asio::awaitable<bool> writeBody(std::string_view data);
  boost::asio::awaitable<bool> endBody();

  // Convenience: a complete response with a content type.
  boost::asio::awaitable<void> respond(int status, std::string_view contentType,
                                       std::string_view body);
  // Closes the connection after this response.
  void closeAfterResponse();
  bool responseStarted() const;

 private:
  Impl* impl_;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Must send exactly one response (the server answers 500 if it throws or sends none).
  virtual boost::asio::awaitable<void> serve(Exchange* ex) = 0;
};

// Writes one JSON line per request. Thread-safe; buffered, flushed at least every 500 ms.
class AccessLog {
 public:
  struct Record {
    std::string_view requestId, remote, host, method, target, userAgent;
    int status = 0;
    uint64_t bytesSent = 0;
    int64_t durationUs = 0;
  };
  // `path` "-" writes to stdout; "off" (or empty) disables the log.
  static Result<std::unique_ptr<AccessLog>> open(const std::string& path);
  virtual ~AccessLog() = default;
  virtual void record(const Record& r) = 0;
  virtual void flush() = 0;
};

// Returns the platform's error body for a status/code, as JSON when `accept` asks for JSON,
// else HTML when it asks for HTML, else plain text. Sets *contentType.
std::string renderErrorBody(int status, std::string_view code, std::string_view message,
                            std::string_view requestId, std::string_view accept,
                            std::string* contentType);

// Sends a platform error response with `x-nimbus-error: <code>`.
boost::asio::awaitable<void> sendError(Exchange* ex, int status, std::string_view code,
                                       std::string_view message);

class Server {
 public:
  struct Options {
    std::string name;           // "router" or "api", used in logs
    std::string listen;         // "host:port"
    Limits limits;
  };
  // Binds on every io_context (SO_REUSEPORT); errors name the address and errno text.
  static Result<std::unique_ptr<Server>> create(Options options,
                                                std::vector<boost::asio::io_context*> contexts,
                                                Handler* handler, AccessLog* accessLog);
  virtual ~Server() = default;
  // "host:port" actually bound (port 0 resolved).
  virtual std::string boundAddress() const = 0;
  virtual uint16_t port() const = 0;
  // Starts accepting on every context.
  virtual void start() = 0;
  // Stops accepting; open connections end with their io_context.
  virtual void stop() = 0;
};

// Splits "host:port" ("[v6]:port" too). Invalid when malformed.
Result<std::pair<std::string, uint16_t>> parseHostPort(std::string_view s);

}  // namespace nimbus::http

#include "http/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace nimbus::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

std::string ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        }))
      return v;
  }
  return {};
}

namespace {

class BeastClient final : public Client {
 public:
  BeastClient(std::string host, std::string port, std::string origin)
      : host_(std::move(host)), port_(std::move(port)), origin_(std::move(origin)), socket_(ioc_) {}

  Result<ClientResponse> request(std::string_view method, std::string_view target,
                                 const Headers& headers, std::string_view body) override {
    std::string head = buildHead(method, target, headers, body.size());
    return exchange(head, [&](tcp::socket& s, boost::system::error_code& ec) {
      if (!body.empty()) asio::write(s, asio::buffer(body.data(), body.size()), ec);
    });
  }

  Result<ClientResponse> upload(std::string_view method, std::string_view target,
                                const Headers& headers, const std::string& path, uint64_t size,
                                const std::function<void(uint64_t)>& progress) override {
    std::string head = buildHead(method, target, headers, size);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return makeError(ErrorKind::Io,
                       fmt::format("cannot open {}: {}", path, std::strerror(errno)));
    }
    std::string readError;
    auto r = exchange(head, [&](tcp::socket& s, boost::system::error_code& ec) {
      ::lseek(fd, 0, SEEK_SET);
      std::vector<char> buf(256 * 1024);
      uint64_t sent = 0;
      while (sent < size) {
        ssize_t n = ::read(fd, buf.data(), std::min<uint64_t>(buf.size(), size - sent));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          readError = n == 0 ? "file shrank while uploading" : std::strerror(errno);
          ec = asio::error::eof;
          return;
        }
        asio::write(s, asio::buffer(buf.data(), static_cast<size_t>(n)), ec);
        if (ec) return;
        sent += static_cast<uint64_t>(n);
        if (progress) progress(sent);
      }
    });
    ::close(fd);
    if (!readError.empty()) {
      return makeError(ErrorKind::Io, fmt::format("reading {}: {}", path, readError));
    }
    return r;
  }

 private:
  std::string buildHead(std::string_view method, std::string_view target, const Headers& headers,
                        uint64_t bodySize) {
    std::string head = fmt::format("{} {} HTTP/1.1\r\n", method, target);
    bool hasHost = false;
    for (const auto& h : headers) hasHost = hasHost || h.first == "host";
    if (!hasHost) head += fmt::format("host: {}:{}\r\n", host_, port_);
    bool hasType = false;
    for (const auto& [k, v] : headers) {
      head += k;
      head += ": ";
      head += v;
      head += "\r\n";
      if (k == "content-type") hasType = true;
    }
    if (bodySize > 0 || (method != "GET" && method != "HEAD")) {
      head += fmt::format("content-length: {}\r\n", bodySize);
      if (!hasType) head += "content-type: application/octet-stream\r\n";
    }
    head += "\r\n";
    return head;
  }

  Result<void> connect() {
    boost::system::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host_, port_, ec);
    if (!ec) {
      socket_ = tcp::socket(ioc_);
      asio::connect(socket_, results, ec);
    }
    if (ec) {
      return makeError(ErrorKind::Io,
                       fmt::format("cannot reach the Nimbus API at {}: {}; is `nimbus serve` "
                                   "running? Point the CLI at it with --api or NIMBUS_API",
                                   origin_, ec.message()));
    }
    socket_.set_option(tcp::no_delay(true), ec);
    connected_ = true;
    buffer_.clear();
    return success();
  }

  template <class WriteBody>
  Result<ClientResponse> exchange(const std::string& head, WriteBody writeBody) {
    // A reused connection may have been closed by the server while idle: retry once on a
    // fresh connection when nothing of the response arrived.
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool reused = connected_;
      if (!connected_) {
        if (auto r = connect(); !r) return r.error();
      }
      boost::system::error_code ec;
      asio::write(socket_, asio::buffer(head), ec);
      if (!ec) writeBody(socket_, ec);
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(512ull * 1024 * 1024);
      parser.header_limit(64 * 1024);
      boost::system::error_code rec;
      bhttp::read(socket_, buffer_, parser, rec);
      if (rec) {
        connected_ = false;
        boost::system::error_code ignored;
        socket_.close(ignored);
        if (reused && attempt == 0 && (rec == bhttp::error::end_of_stream ||
                                       rec == asio::error::connection_reset ||
                                       rec == asio::error::eof)) {
          continue;
        }
        // The server may answer early (413, 401) and close while we were still writing.
        return makeError(ErrorKind::Io, fmt::format("no answer from {}: {}{}", origin_,
                                                    rec.message(),
                                                    ec ? " (while sending: " + ec.message() + ")"
                                                       : ""));
      }
      auto& msg = parser.get();
      ClientResponse out;
      out.status = static_cast<int>(msg.result_int());
      for (const auto& f : msg) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers.emplace_back(std::move(name), std::string(f.value()));
      }
      out.body = std::move(msg.body());
      if (!msg.keep_alive()) {
        connected_ = false;
        boost::system::error_code ignored;
        socket_.close(ignored);
      }
      return out;
    }
    return makeError(ErrorKind::Io, fmt::format("{} closed the connection", origin_));
  }

  std::string host_;
  std::string port_;
  std::string origin_;
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::create(std::string_view origin) {
  std::string_view rest = origin;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return makeError(ErrorKind::Invalid,
                     fmt::format("'{}': only http:// API addresses are supported", origin));
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string host;
  std::string port = "80";
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return makeError(ErrorKind::Invalid, fmt::format("'{}' is not a valid address", origin));
    }
    host = std::string(rest.substr(1, close - 1));
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = std::string(rest.substr(close + 2));
  } else {
    auto colon = rest.rfind(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = std::string(rest.substr(colon + 1));
  }
  if (host.empty()) {
    return makeError(ErrorKind::Invalid,
                     fmt::format("'{}' is not an address like http://127.0.0.1:3001", origin));
  }
  return std::unique_ptr<Client>(new BeastClient(host, port, std::string(origin)));
}

}  // namespace nimbus::http

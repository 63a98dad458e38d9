#pragma once
// A blocking HTTP/1.1 client for the CLI and tests: one keep-alive connection to one
// origin ("http://host:port"), reconnecting when the server closed it.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace nimbus::http {

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string header(std::string_view name) const;
};

class Client {
 public:
  // `origin` is "http://host:port" (https is not supported by this client).
  static Result<std::unique_ptr<Client>> create(std::string_view origin);
  virtual ~Client() = default;

  using Headers = std::vector<std::pair<std::string, std::string>>;
  // Errors (Io) name the origin and the system error, and say whether the server runs.
  virtual Result<ClientResponse> request(std::string_view method, std::string_view target,
                                         const Headers& headers, std::string_view body) = 0;
  // Sends the file at `path` (`size` bytes) as the body; `progress(bytesSent)` is called as
  // the upload advances.
  virtual Result<ClientResponse> upload(std::string_view method, std::string_view target,
                                        const Headers& headers, const std::string& path,
                                        uint64_t size,
                                        const std::function<void(uint64_t)>& progress) = 0;
};

}  // namespace nimbus::http

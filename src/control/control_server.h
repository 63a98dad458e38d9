#pragma once
// The control API (`/v1/...`, see docs/api.md): tokens, uploads, deployments, promote and
// rollback, aliases. Every call but /v1/health needs a bearer token.
//
// Thread rules: serve() may run on several threads; the store and content store are
// thread-safe, and the handler keeps no mutable state of its own.
#include <boost/json/object.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "common/clock.h"
#include "common/secret_box.h"
#include "content/content_store.h"
#include "http/server.h"
#include "store/store.h"

namespace nimbus::control {

struct ControlOptions {
  std::string domain = "localhost";
  uint16_t routerPort = 3000;           // for the URLs it reports
  std::string adminTokenPath;           // named in 401 messages
  uint64_t maxBlobBytes = 512ull * 1024 * 1024;
  uint64_t maxJsonBytes = 64ull * 1024 * 1024;
  // The function worker's introspection (unset: the endpoints answer 503).
  std::function<std::string()> metricsText;   // GET /metrics (Prometheus text, no token)
  std::function<std::string()> workerStatus;  // GET /v1/instances (JSON)
  std::string functionLogDir;                 // GET /v1/deployments/<id>/logs
};

class ControlServer final : public http::Handler {
 public:
  // `onRoutingChange` runs after every change that moves a host (the router refreshes).
  // `secrets` seals environment variable values at rest.
  ControlServer(ControlOptions options, store::Store* store, content::ContentStore* content,
                const SecretBox* secrets, std::function<void()> onRoutingChange);

  boost::asio::awaitable<void> serve(http::Exchange* ex) override;

  struct Reply;

 private:
  struct Call;
  boost::asio::awaitable<void> dispatch(Call* call);
  boost::asio::awaitable<Reply> uploadBlob(http::Exchange* ex, std::string hash);
  Reply precheckBlob(http::Exchange* ex, const std::string& hash);  // status 0: go on
  Reply finishBlob(http::Exchange* ex, const std::string& hash, uint64_t length,
                   const Result<uint64_t>& received, content::BlobWriter* writer);
  static boost::asio::awaitable<void> sendReplyOf(http::Exchange* ex, const Reply* reply);
  // Every endpoint but blob upload: synchronous, on the already-read request body.
  Reply route(Call* call, const std::string& body);
  Reply missingBlobs(const std::string& body);
  Reply createDeployment(const std::string& body);
  Reply upstreamTls(const std::string& project, const std::string& method,
                    const std::string& body);
  Reply envVars(Call* call, const std::string& body);
  // The sealed snapshot of the project's variables for `target` ("" when none) and their keys.
  Result<std::string> envSnapshot(const std::string& project, store::Target target,
                                  std::vector<std::string>* keys);
  Reply deploymentReply(int status, const store::Deployment& d);
  Reply functionLogs(Call* call, const std::string& deploymentId);
  boost::json::object aliasJson(const store::Alias& a) const;
  void routingChanged();

  ControlOptions options_;
  store::Store* store_;
  content::ContentStore* content_;
  const SecretBox* secrets_;
  std::function<void()> onRoutingChange_;
};

// "http://<host>" plus ":<port>" unless the port is 80.
std::string urlForHost(std::string_view host, uint16_t port);

}  // namespace nimbus::control

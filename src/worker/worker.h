#pragma once
// The worker runs functions: it owns instances (one launcher process each, spoken to with
// HTTP/1.1 over a Unix socket), keeps pools of stem cells (launchers started ahead of need
// with no user code), specializes one on a cold start, scales each function between zero
// and its maximum by in-flight requests against a target concurrency, queues requests
// that find no free slot (with a deadline), evicts idle instances after the keep-alive
// time, enforces the limits (maxDuration, body size, V8 heap), and records logs and
// metrics. In `nimbus serve` it runs in-process behind this interface; the router only
// calls invoke()/invokeMiddleware().
//
// Thread rules: invoke() runs on any router thread (on the io_context owning the
// exchange); function and instance state is guarded by one mutex held only for
// bookkeeping; process management (spawning, log pipes, exit watching, eviction) runs on
// the worker's own thread.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace nimbus::http {
class Exchange;
}

namespace nimbus::worker {

using Headers = std::vector<std::pair<std::string, std::string>>;

enum class Runtime { Node, Edge };

// Everything the worker needs to run one function of one deployment. Immutable; shared.
struct FunctionDef {
  std::string deploymentId;
  std::string projectName;
  std::string key;          // function key, e.g. "api/hello"
  Runtime runtime = Runtime::Node;
  std::string configJson;   // the .vc-config.json text
  int memoryMb = 0;         // from the config, or the runtime's default
  int maxDurationS = 0;     // from the config, or the worker's default
  int concurrency = 0;      // target in-flight requests per instance (config maxConcurrency)
  // Files of the function: manifest paths relative to the output dir with their blob
  // hashes (or symlink texts); `dir` is the .func directory among them.
  struct File {
    std::string path;
    std::string hash;
    std::string symlinkTarget;
    uint32_t mode = 0644;
  };
  std::vector<File> files;
  std::string dir;          // e.g. "functions/api/hello.func"
  // The deployment's own host (x-vercel-deployment-url; VERCEL_URL), port included.
  std::string deploymentHost;
  // Environment: project variables, then the platform's (spec 3.11), as the launcher's
  // `env`. VERCEL_REGION and VERCEL_DEPLOYMENT_ID are set by the launcher.
  Headers env;
};

// Finds function definitions (in-process: the store and content store).
class FunctionCatalog {
 public:
  virtual ~FunctionCatalog() = default;
  // NotFound when the deployment or function does not exist; Invalid when its config is
  // unusable (unsupported runtime, malformed .vc-config.json), naming what to fix.
  virtual Result<std::shared_ptr<const FunctionDef>> lookup(std::string_view deploymentId,
                                                            std::string_view key) = 0;
  // The keys of every function of a deployment (empty when it does not exist).
  virtual std::vector<std::string> functionKeys(std::string_view deploymentId) = 0;
  // Where a blob's bytes are on this machine (for hard-linking function files).
  virtual std::optional<std::string> blobPath(std::string_view hash) = 0;
  virtual Result<std::string> readBlob(std::string_view hash) = 0;
};

struct WorkerOptions {
  std::string runtimesDir;            // holds node/launcher.mjs and edge/launcher.mjs
  std::string nodeBinary = "node";
  std::string stateDir;               // function files and sockets (created)
  std::string logDir;                 // per-deployment function logs (created)
  int stemCells = 2;                  // per runtime pool, 0 disables pre-starting
  int nodeConcurrency = 64;           // default target concurrency per Node instance
  int edgeConcurrency = 256;          // default per edge instance
  int maxInstances = 20;              // per function
  std::chrono::milliseconds keepAlive{60000};     // idle instance -> stopped
  std::chrono::milliseconds queueTimeout{30000};  // wait for a slot -> 503
  std::chrono::milliseconds specializeTimeout{10000};
  std::chrono::milliseconds spawnTimeout{10000};
  std::chrono::milliseconds waitUntilTimeout{30000};  // waitUntil work after the response
  int defaultMaxDurationS = 300;      // spec 6.5
  int defaultMemoryMb = 2048;         // spec 3.1 plan default
  int edgeMemoryMb = 128;
  uint64_t maxRequestBodyBytes = 4'500'000;  // spec 6.5, 413 FUNCTION_PAYLOAD_TOO_LARGE
  uint64_t maxMiddlewareResponseBytes = 4'500'000;
  std::string region = "lcl1";
};

// One request for a function, prepared by routing.
struct Invocation {
  std::string deploymentId;
  std::string functionKey;
  // The path and merged query the function sees (spec 2.7), encoded, query without '?'.
  std::string path;
  std::string query;
  // The client's headers after routing transforms and middleware overrides.
  Headers requestHeaders;
  // Route response headers (spec 2.8) and a status routing fixed (0 = the function's).
  Headers responseHeaders;
  Headers importantHeaders;
  std::vector<std::string> responseHeaderDeletes;
  int status = 0;
  std::string publicHost;       // the Host the client used (host and port)
};

// A middleware's answer, read whole.
struct BufferedResponse {
  int status = 0;
  Headers headers;   // names lower-case
  std::string body;
};

class Worker {
 public:
  static Result<std::unique_ptr<Worker>> create(WorkerOptions options, FunctionCatalog* catalog);
  virtual ~Worker() = default;

  // Runs the function for `ex` and sends its response (streamed), or a platform error:
  //   function missing/unusable   500 FUNCTION_INVOCATION_FAILED (message names why)
  //   body over the limit         413 FUNCTION_PAYLOAD_TOO_LARGE
  //   no slot before the deadline 503 FUNCTION_THROTTLED
  //   initialization failed       500 FUNCTION_INVOCATION_FAILED
  //   over maxDuration            504 FUNCTION_INVOCATION_TIMEOUT (instance recycled)
  //   process gone before answer  502 NO_RESPONSE_FROM_FUNCTION (fresh instance next time)
  // Once the response started, a failure can only cut the client connection.
  virtual boost::asio::awaitable<void> invoke(http::Exchange* ex, const Invocation* inv) = 0;

  // Runs a middleware function without a request body and reads its whole response.
  // Errors carry the platform status in `kind`-independent text; see invoke for codes
  // (MIDDLEWARE_INVOCATION_FAILED / _TIMEOUT).
  struct MiddlewareResult {
    bool ok = false;
    BufferedResponse response;
    int errorStatus = 0;
    std::string errorCode;
    std::string errorMessage;
  };
  virtual boost::asio::awaitable<void> invokeMiddleware(http::Exchange* ex,
                                                        const Invocation* inv,
                                                        MiddlewareResult* out) = 0;

  // Prometheus text exposition of the worker's metrics.
  virtual std::string metricsText() = 0;
  // JSON: {"instances":[{...}],"stemCells":{...},"functions":[...]} for `nimbus ps`.
  virtual std::string statusJson() = 0;
  // Stops every instance and stem cell (also done by the destructor).
  virtual void shutdown() = 0;
};

}  // namespace nimbus::worker

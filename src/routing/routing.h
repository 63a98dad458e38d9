#pragma once
// The route engine: evaluates a request against a deployment's `config.json` routes (Build
// Output API v3, spec section 2) into a Decision — serve a static file, call a function,
// redirect, proxy to an external URL, or answer with an error status (custom page or
// platform page).
//
// Compile once per deployment (RouteTable::compile; PCRE2 with JIT, match limits), share
// the immutable table between threads, evaluate per request without locks.
//
// Middleware (`middlewarePath`) needs a function call in the middle of routing. Evaluation
// therefore stops with a Decision of kind Middleware carrying a Continuation; the caller
// runs the middleware function and calls resume() with its outcome, which continues from
// the route after the middleware route.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace nimbus::output {
struct DeploymentOutput;
}

namespace nimbus::routing {

// Header lists keep order; names are lower-case.
using Headers = std::vector<std::pair<std::string, std::string>>;

// What a deployment serves at an output path, for the filesystem checks of routing.
enum class OutputKind { None, Static, Function };
struct OutputMatch {
  OutputKind kind = OutputKind::None;
  std::string key;  // output key: static key (after overrides) or function key
};

class OutputIndex {
 public:
  virtual ~OutputIndex() = default;
  // `path` is a routed path (percent-decoded, starts with '/'). Rules of spec 1.3 / 2.6
  // "FOUND": leading and trailing '/' stripped; a function key wins over a static key;
  // function keys ending in "index" also answer at their directory; static directory
  // index files (<dir>/index.html, <dir>/index); overrides already applied.
  virtual OutputMatch find(std::string_view path) const = 0;
};

// The index of a loaded deployment.
std::unique_ptr<OutputIndex> makeOutputIndex(const output::DeploymentOutput& out);

struct Request {
  std::string method;      // upper-case
  std::string host;        // lower-case, no port
  std::string path;        // as sent: percent-encoded, starts with '/', no query
  std::string query;       // as sent, without '?'; may be empty
  Headers headers;         // request headers, names lower-case, in order
};

enum class DecisionKind { Static, Function, Redirect, Proxy, Error, Middleware };

// Opaque state of an evaluation stopped at a middleware route.
struct Continuation;

struct Decision {
  DecisionKind kind = DecisionKind::Error;
  // The status routing fixed: redirect status, error status, or a status route's status that
  // overrides the origin's (0 = the origin decides).
  int status = 0;
  // Static: the output key served. Function: the function key. Error: the output key of the
  // custom error page to serve with `status` (empty: the platform's error page).
  std::string key;
  // Function: the path the function sees (the original request path unless a
  // `transforms` request.path rewrote it) and the merged query (spec 2.7), encoded,
  // without '?'.
  std::string path;
  std::string query;
  // Redirect: the Location. Proxy: the absolute upstream URL including the merged query.
  std::string location;
  std::string url;
  // Error: the platform error code of spec 6.4 (NOT_FOUND, TOO_MANY_FILESYSTEM_CHECKS, ...).
  std::string errorCode;
  // Response headers from routes, applied before the origin's headers (origin wins), and
  // `important` ones applied after (they win). Transforms on response.headers are folded
  // into these two lists; `responseHeaderDeletes` are removed from the final response.
  Headers headers;
  Headers importantHeaders;
  std::vector<std::string> responseHeaderDeletes;
  // The request headers the origin (function, proxy, middleware) must receive: the
  // original ones after request.headers transforms and middleware overrides.
  Headers requestHeaders;
  // Middleware: the function key to invoke and how to continue.
  std::string middlewareKey;
  std::shared_ptr<const Continuation> continuation;
};

// What the middleware function answered, decoded by the caller per spec 3.6.
struct MiddlewareOutcome {
  enum class Action {
    Next,       // x-middleware-next (or no special header and no body): continue routing
    Rewrite,    // x-middleware-rewrite: continue with this path/query (or external URL)
    Respond,    // the middleware's own response is the answer: the caller sends it (with
                // the Decision's route headers); resume returns a Middleware decision
                // without continuation and routes nothing further
    Redirect,   // 3xx with Location (the `location` entry of responseHeaders; status)
  };
  Action action = Action::Next;
  std::string rewriteUrl;                 // Rewrite: path?query, or absolute URL
  Headers responseHeaders;                // headers to add to the final response
  std::optional<Headers> overrideRequestHeaders;  // x-middleware-override-headers set
  int status = 0;                         // Redirect: the middleware's 3xx status (0 = 307)
};

class RouteTable {
 public:
  // Compiles config.json's routes (plus `wildcard`). Errors (Invalid) name the route's
  // index, the field and the reason, e.g. "routes[3].src: invalid regular expression at
  // offset 5: missing closing parenthesis".
  static Result<std::shared_ptr<const RouteTable>> compile(std::string_view configJson);
  virtual ~RouteTable() = default;

  virtual Decision evaluate(const Request& request, const OutputIndex& index) const = 0;
  // Continues an evaluation that stopped at a middleware route; `request` and `index` must
  // be those given to evaluate. `at` is not consumed: the same continuation may be resumed
  // again, on any thread. For Respond see above.
  virtual Decision resume(const Request& request, const OutputIndex& index,
                          const Continuation& at, const MiddlewareOutcome& outcome) const = 0;
  virtual size_t routeCount() const = 0;
  // How many regular-expression matches hit the PCRE2 match/depth limit (counted as no
  // match) since compile; a metric for catastrophic patterns. Thread-safe.
  virtual uint64_t regexLimitHits() const { return 0; }
};

}  // namespace nimbus::routing

#pragma once
// The external reverse proxy: forwards a request whose route has an absolute `dest` URL
// (spec 2.6 "External dest") to that URL over HTTP/1.1 or HTTPS, streams both bodies, and
// answers a platform error (spec 6.4) when the upstream cannot be used. This is also how a
// deployment reaches a backend in a Kubernetes cluster, hence HTTPS with verification
// against a configurable CA and an optional client certificate (mTLS).
//
// Error mapping (only while nothing of the response was sent; afterwards a failure can only
// cut the client connection):
//   dest is not a usable http(s) URL            502 ROUTER_EXTERNAL_TARGET_ERROR
//   DNS: no such name                           502 DNS_HOSTNAME_NOT_FOUND
//        name without addresses                 502 DNS_HOSTNAME_EMPTY
//        resolver temporarily failing           502 DNS_HOSTNAME_SERVER_ERROR
//        anything else, or over connectTimeout  502 DNS_HOSTNAME_RESOLVE_FAILED
//   refused / unreachable / reset on connect    502 ROUTER_EXTERNAL_TARGET_CONNECTION_ERROR
//   TLS setup, handshake or verification, and
//     TLS alerts before any response byte
//     (TLS 1.3 reports a rejected client
//     certificate only after the handshake)     502 ROUTER_EXTERNAL_TARGET_HANDSHAKE_ERROR
//   malformed response, or the upstream closed
//     before answering                          502 ROUTER_EXTERNAL_TARGET_ERROR
//   connect, head or body-read timeout          504 GATEWAY_TIMEOUT (6.4 lists no ROUTER_*
//                                                   code for 504; this is Vercel dev's generic
//                                                   504 label from the same section)
//   request body over maxRequestBodyBytes       413 PAYLOAD_TOO_LARGE
//   `via` shows maxViaHops passes through us    508 INFINITE_LOOP_DETECTED
//   CONNECT requests                            405 INVALID_REQUEST_METHOD
//
// Thread rules: one Proxy may serve every router thread. Upstream connections are pooled per
// io_context, and each pool is only touched by the thread running its io_context (each
// io_context must be run by exactly one thread, as the router does). The map of pools and
// the TLS context cache are guarded by a mutex held only for a lookup.
// Lifetime: the Proxy outlives every forward() call; destroy it after the io_contexts it
// served stopped running and before they are destroyed (pooled sockets belong to them).
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace nimbus::http {
class Exchange;
}

namespace nimbus::proxy {

// Header lists keep order; names in any case (compared case-insensitively).
using Headers = std::vector<std::pair<std::string, std::string>>;

// How to talk TLS to an upstream (per project). Files are PEM; a file that changes on disk
// (certificate rotation) is picked up by the next request.
struct UpstreamTls {
  std::string caFile;          // trust anchors; empty: the system trust store
  std::string clientCertFile;  // client certificate chain for mTLS; empty: none
  std::string clientKeyFile;   // its private key; empty: taken from clientCertFile
  bool verify = true;          // false: accept any certificate (still sends SNI)
};

struct ProxyOptions {
  std::chrono::milliseconds connectTimeout{5000};    // DNS + TCP connect + TLS handshake
  std::chrono::milliseconds responseTimeout{60000};  // request sent -> response head
  std::chrono::milliseconds ioTimeout{300000};       // any single body read/write upstream
  std::chrono::milliseconds idleTimeout{30000};      // pooled connection unused -> closed
  size_t maxIdlePerOrigin = 32;                      // per io_context
  size_t maxIdleTotal = 1024;                        // per io_context
  uint64_t maxRequestBodyBytes = 100ull << 20;       // streamed, so only a sanity bound
  uint32_t maxResponseHeaderBytes = 64 * 1024;
  int maxViaHops = 10;             // loop guard, see the table above
  std::string viaName = "nimbus";  // our token in `via: 1.1 <viaName>`
};

// One proxied request, prepared by routing. Read-only during forward().
struct ProxyRequest {
  // Absolute http:// or https:// URL with the path and the merged query (spec 2.7); a
  // fragment is dropped, user info is rejected.
  std::string url;
  // Headers for the upstream: the client's after routing transforms. Hop-by-hop headers
  // (connection and what it names, keep-alive, proxy-*, te, trailer, transfer-encoding,
  // upgrade), expect, host, content-length and the forwarding headers are replaced:
  // host = the upstream's authority; x-forwarded-for = the client address (set, not
  // appended: client-supplied values are not trusted, spec 6.1); x-forwarded-host = the
  // client's Host; x-forwarded-proto = `forwardedProto`; via gains "1.1 <viaName>".
  Headers headers;
  std::string forwardedProto = "http";
  // Response headers in the order of spec 2.8: `responseHeaders` (route headers) first,
  // the upstream's replace them by name, `importantHeaders` replace both; set-cookie is
  // always appended. Then every name in `responseHeaderDeletes` is removed.
  Headers responseHeaders;
  Headers importantHeaders;
  std::vector<std::string> responseHeaderDeletes;
  // A status routing fixed; 0: the upstream's status.
  int status = 0;
  // TLS settings for https URLs; null: system trust store, verification on, no client
  // certificate. Must outlive forward().
  const UpstreamTls* tls = nullptr;
  // For log lines; empty: the exchange's request id.
  std::string requestId;
};

class Proxy {
 public:
  explicit Proxy(ProxyOptions options);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Proxies `ex` (method, body) to `req->url` and sends the upstream's response, or a
  // platform error (table above). Always sends exactly one response unless the client went
  // away. Both bodies stream through a fixed buffer; a response without a known length goes
  // out chunked, piece by piece as the upstream produces it (server-sent events work).
  // Idle keep-alive connections are reused per origin and TLS identity; a reused
  // connection found dead before any response byte is retried once on a fresh one when the
  // method is idempotent and no request body byte was consumed.
  // Not supported: protocol upgrades (WebSocket), full-duplex bodies (the response is read
  // after the whole request body was sent), HTTP/2 upstreams.
  // `ex` and `req` must stay valid until the returned awaitable completes; run it on the
  // io_context that owns `ex`.
  boost::asio::awaitable<void> forward(http::Exchange* ex, const ProxyRequest* req);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A parsed upstream URL. `host` is lower-case, without brackets or a trailing dot.
struct UpstreamUrl {
  bool https = false;
  std::string host;
  uint16_t port = 0;
  std::string target;     // path and query, never empty; bytes outside URL syntax escaped
  std::string authority;  // for the Host header: host (v6 bracketed), ":port" unless default
};

// Parses an absolute http(s) URL. Invalid names the URL and what is wrong with it.
Result<UpstreamUrl> parseUpstreamUrl(std::string_view url);

}  // namespace nimbus::proxy

// Route evaluation (spec 2.4-2.8): the phase machine of docs/routing.md.
//
// Evaluation is an explicit state machine (EvalState + a frame stack of at most two phase
// runs) rather than recursion, so that a middleware route can stop it anywhere and the
// whole state can be parked in a Continuation and resumed later on any thread.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>

#include "common/check.h"
#include "routing/route_model.h"
#include "routing/routing.h"
#include "routing/url_text.h"

namespace nimbus::routing {

namespace {

// Filesystem lookups per request before routing gives up (spec 6.4 TOO_MANY_FILESYSTEM_CHECKS).
// The phase machine never restarts, so only a table with dozens of matching `check`
// rewrites can get here.
constexpr uint32_t kMaxFilesystemChecks = 64;
// PCRE2 limits. Real route patterns need a few hundred steps; the limit bounds a
// catastrophic pattern to well under a millisecond.
constexpr uint32_t kMatchLimit = 100000;
constexpr uint32_t kDepthLimit = 1000;

constexpr std::array<Phase, 4> kMainPhases = {Phase::None, Phase::Filesystem, Phase::Rewrite,
                                              Phase::Resource};

bool isRedirectStatus(int status) { return status >= 300 && status <= 399; }

std::string errorCodeFor(int status) {
  switch (status) {
    case 400:
      return "BAD_REQUEST";
    case 401:
      return "UNAUTHORIZED";
    case 402:
      return "PAYMENT_REQUIRED";
    case 403:
      return "FORBIDDEN";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "NOT_ALLOWED";
    case 406:
      return "NOT_ACCEPTABLE";
    case 408:
      return "REQUEST_TIMEOUT";
    case 409:
      return "CONFLICT";
    case 410:
      return "GONE";
    case 413:
      return "PAYLOAD_TOO_LARGE";
    case 414:
      return "URL_TOO_LONG";
    case 429:
      return "RATE_LIMITED";
    case 451:
      return "UNAVAILABLE_FOR_LEGAL_REASONS";
    case 500:
      return "INTERNAL_SERVER_ERROR";
    case 501:
      return "NOT_IMPLEMENTED";
    case 502:
      return "BAD_GATEWAY";
    case 503:
      return "SERVICE_UNAVAILABLE";
    case 504:
      return "GATEWAY_TIMEOUT";
    case 508:
      return "INFINITE_LOOP";
    default:
      return status >= 500 ? "INTERNAL_SERVER_ERROR" : "ERROR";
  }
}

// Header list helpers (names lower-case).
const std::string* findHeader(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

void eraseHeader(Headers& headers, std::string_view name) {
  std::erase_if(headers, [name](const auto& h) { return h.first == name; });
}

enum class Overwrite { Yes, No };

// Route header semantics of spec 2.6: set-cookie accumulates; otherwise the later route
// replaces, except in `hit`/`miss` where an existing name is kept.
void putHeader(Headers& headers, std::string_view name, std::string value, Overwrite overwrite) {
  if (name == "set-cookie") {
    headers.emplace_back(std::string(name), std::move(value));
    return;
  }
  auto it = std::find_if(headers.begin(), headers.end(),
                         [name](const auto& h) { return h.first == name; });
  if (it == headers.end()) {
    headers.emplace_back(std::string(name), std::move(value));
    return;
  }
  if (overwrite == Overwrite::No) return;
  it->second = std::move(value);
  auto next = it + 1;
  headers.erase(
      std::remove_if(next, headers.end(), [name](const auto& h) { return h.first == name; }),
      headers.end());
}

// Vercel dev's validation for header transforms (invalid ones are skipped).
bool isTransformHeaderName(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool isTransformHeaderValue(std::string_view s) {
  if (s.empty()) return false;
  static constexpr std::string_view kExtra = "-_:;.,/\\\"'?!(){}[]@<>=+*#$&`|~%^ ";
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           kExtra.find(c) != std::string_view::npos;
  });
}

bool isValidRequestPath(std::string_view p) {
  if (p.empty() || p.size() > 2048 || p[0] != '/' || (p.size() > 1 && p[1] == '/')) return false;
  return std::none_of(p.begin(), p.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return c == '?' || c == '#' || u <= 0x20 || u == 0x7f;
  });
}

std::optional<double> parseNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string text(s);
  char* end = nullptr;
  double d = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return d;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Accept-Language tags ordered by q (stable for equal q), without "*".
std::vector<std::string> acceptLanguages(std::string_view header) {
  std::vector<std::pair<double, std::string>> tags;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view item = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view tag = trim(item.substr(0, semi));
    double q = 1.0;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      size_t qpos = params.find("q=");
      if (qpos != std::string_view::npos) {
        if (auto n = parseNumber(trim(params.substr(qpos + 2)))) q = *n;
      }
    }
    if (tag.empty() || tag == "*" || q <= 0) continue;
    tags.emplace_back(q, toLower(tag));
  }
  std::stable_sort(tags.begin(), tags.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [q, tag] : tags) out.push_back(std::move(tag));
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// State

namespace machine {

struct EvalState {
  std::string path;  // routed path, percent-encoded as sent
  Query query;
  bool requestHeadersChanged = false;
  Headers requestHeaders;  // valid when requestHeadersChanged
  Headers headers;
  Headers importantHeaders;
  std::vector<std::string> deletes;
  int status = 0;
  int missStatus = 0;      // a `miss` check route's status whose dest did not exist
  bool errorDest = false;  // an error-phase route set a dest
  std::optional<std::string> functionPath;  // request.path transform
  std::string externalUrl;                  // an external dest with `continue`
  OutputMatch found;
  uint32_t filesystemChecks = 0;
  bool loopAborted = false;
  std::vector<std::string> middlewareThisPass;
};

enum class FrameKind : uint8_t { Main, MissAfterMain, MissAfterCheck, Hit, Error };

struct Frame {
  FrameKind kind = FrameKind::Main;
  Phase phase = Phase::None;
  uint32_t pos = 0;                           // next route of the phase bucket
  uint8_t mainIndex = 0;                      // Main / MissAfterMain: index into kMainPhases
  std::shared_ptr<const EvalState> snapshot;  // miss frames: state to restore when nothing found
};

}  // namespace machine

using machine::EvalState;
using machine::Frame;
using machine::FrameKind;

struct Continuation {
  const RouteTable* table = nullptr;
  EvalState state;
  std::array<Frame, 2> frames;
  uint8_t depth = 0;
  // The middleware route: its groups, to finish it (headers, dest, ...) after the middleware.
  Captures captures;
  std::vector<std::string> hasValues;
  std::string middlewareKey;
};

namespace {

// Per-thread scratch buffers so evaluation reuses capacity instead of allocating.
struct Scratch {
  Captures captures;
  Captures hasCaptures;
  std::vector<std::string> hasValues;
  std::string text;
  std::string decoded;
  std::string joined;
};
thread_local Scratch threadScratch;

enum class StepKind : uint8_t {
  Continue,    // go on with the next route
  Stop,        // a non-continue route matched: the phase ends
  Found,       // a check route's destination exists
  StatusStop,  // routing ends with `status` (error phase next)
  CheckMiss,   // a check route's destination does not exist: try `miss` on it
  Finished,    // `decision` is the answer
};

struct Step {
  StepKind kind = StepKind::Continue;
  bool statusRoute = false;          // Stop: the stopping route set a status
  int status = 0;                    // StatusStop
  std::optional<Decision> decision;  // Finished

  static Step of(StepKind kind) {
    Step s;
    s.kind = kind;
    return s;
  }
  static Step stop(bool statusRoute) {
    Step s = of(StepKind::Stop);
    s.statusRoute = statusRoute;
    return s;
  }
  static Step statusStop(int status) {
    Step s = of(StepKind::StatusStop);
    s.status = status;
    return s;
  }
  static Step finished(Decision d) {
    Step s = of(StepKind::Finished);
    s.decision = std::move(d);
    return s;
  }
};

class CompiledRouteTable;

class Evaluator {
 public:
  Evaluator(const CompiledRouteTable& table, const Request& request, const OutputIndex& index);
  Decision start();
  Decision resume(const Continuation& at, const MiddlewareOutcome& outcome);

 private:
  Decision run(bool finishPending);
  Step runRoutes(Frame& frame, bool finishPending);
  bool matchRoute(const Route& route, Phase phase);
  bool evalCondition(const HasCondition& cond, bool isHas);
  std::optional<std::string_view> conditionValue(const HasCondition& cond);
  bool evalMatchable(const Matchable& m, std::string_view value, const HasCondition* slotsFor);
  Step applyRoute(const Route& route, Phase phase, bool resumed);
  void applyHeaders(const Route& route, Phase phase);
  void applyTransforms(const Route& route);
  void applyQueryTransform(const Transform& t);
  void applyRequestHeaderTransform(const Transform& t);
  void applyResponseHeaderTransform(const Transform& t);
  bool selectorMatches(const KeySelector& sel, std::string_view keyLower,
                       std::string_view literalLower) const;
  void substitute(const Template& t, std::string& out) const;
  void setPathFromDest(std::string_view dest);
  std::optional<Decision> localeRedirect(const Locale& locale);
  Decision middlewareStop(const Route& route);
  bool checkExists();

  // Transitions between phase runs; nullopt = keep running frames.
  std::optional<Decision> onFrameEnd(const Step& step);
  std::optional<Decision> advanceMain(uint8_t nextIndex);
  std::optional<Decision> enterMissAfterMain(uint8_t mainIndex);
  std::optional<Decision> enterHit();
  std::optional<Decision> enterError(int status);
  void pushFrame(FrameKind kind, Phase phase, uint8_t mainIndex);
  void resetFrames(FrameKind kind, Phase phase, uint8_t mainIndex);

  Decision serveDecision(const OutputMatch& match);
  Decision errorDecision(int status, std::string errorCode);
  Decision redirectDecision(std::string location, int status, bool fromMiddleware);
  Decision proxyDecision();
  std::optional<Decision> pendingLocationRedirect();
  // Copies the accumulated response headers into `d`; Consume moves them (terminal
  // decisions: the state is not used afterwards).
  enum class Take { Copy, Consume };
  void fillCommon(Decision& d, Take take = Take::Consume);
  void fillOriginRequest(Decision& d);

  const Headers& requestHeaders() const {
    return st_.requestHeadersChanged ? st_.requestHeaders : request_.headers;
  }
  Headers& mutableRequestHeaders() {
    if (!st_.requestHeadersChanged) {
      st_.requestHeaders = request_.headers;
      st_.requestHeadersChanged = true;
    }
    return st_.requestHeaders;
  }
  std::string_view wildcardValue() const;

  const CompiledRouteTable& table_;
  const CompiledConfig& config_;
  const Request& request_;
  const OutputIndex& index_;
  Scratch& scratch_;
  EvalState st_;
  std::array<Frame, 2> frames_;
  uint8_t depth_ = 0;
};

class CompiledRouteTable final : public RouteTable {
 public:
  explicit CompiledRouteTable(CompiledConfig config)
      : config_(std::move(config)), limits_(kMatchLimit, kDepthLimit) {}

  Decision evaluate(const Request& request, const OutputIndex& index) const override {
    return Evaluator(*this, request, index).start();
  }
  Decision resume(const Request& request, const OutputIndex& index, const Continuation& at,
                  const MiddlewareOutcome& outcome) const override {
    NIMBUS_CHECK(at.table == this);
    return Evaluator(*this, request, index).resume(at, outcome);
  }
  size_t routeCount() const override { return config_.routeCount; }
  uint64_t regexLimitHits() const override { return limitHits_.load(std::memory_order_relaxed); }

  const CompiledConfig& config() const { return config_; }
  const MatchLimits& limits() const { return limits_; }
  MatchStatus match(const Regex& re, std::string_view subject, Captures* captures) const {
    MatchStatus s = re.match(subject, limits_, captures);
    if (s == MatchStatus::LimitHit) limitHits_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  bool isMiddlewareKey(std::string_view key) const {
    return std::find(config_.middlewareKeys.begin(), config_.middlewareKeys.end(), key) !=
           config_.middlewareKeys.end();
  }

 private:
  CompiledConfig config_;
  MatchLimits limits_;
  mutable std::atomic<uint64_t> limitHits_{0};
};

// ---------------------------------------------------------------------------------------
// Evaluator

Evaluator::Evaluator(const CompiledRouteTable& table, const Request& request,
                     const OutputIndex& index)
    : table_(table),
      config_(table.config()),
      request_(request),
      index_(index),
      scratch_(threadScratch) {}

Decision Evaluator::start() {
  st_.path = request_.path.empty() ? std::string("/") : request_.path;
  parseQuery(request_.query, st_.query);
  resetFrames(FrameKind::Main, kMainPhases[0], 0);
  return run(false);
}

Decision Evaluator::resume(const Continuation& at, const MiddlewareOutcome& outcome) {
  st_ = at.state;
  frames_ = at.frames;
  depth_ = at.depth;
  scratch_.captures = at.captures;
  scratch_.hasValues = at.hasValues;

  using Action = MiddlewareOutcome::Action;
  if (outcome.action == Action::Respond) {
    Decision d;
    d.kind = DecisionKind::Middleware;
    d.middlewareKey = at.middlewareKey;
    fillCommon(d);
    fillOriginRequest(d);
    return d;
  }

  // Response headers of the middleware go to the final response and onto the request
  // (spec 3.6); control headers are the caller's business but are dropped here too.
  static constexpr std::array<std::string_view, 5> kSkip = {"date", "connection", "content-length",
                                                            "transfer-encoding", "content-type"};
  if (outcome.overrideRequestHeaders) {
    // Vercel dev semantics: the list is the complete new set; hop-by-hop and framing
    // headers cannot be overridden and are kept.
    static constexpr std::array<std::string_view, 8> kProtected = {
        "host",       "connection", "content-length", "transfer-encoding",
        "keep-alive", "te",         "upgrade",        "trailer"};
    Headers next;
    for (const auto& [name, value] : requestHeaders()) {
      if (std::find(kProtected.begin(), kProtected.end(), name) != kProtected.end()) {
        next.emplace_back(name, value);
      }
    }
    for (const auto& [name, value] : *outcome.overrideRequestHeaders) {
      std::string lower = toLower(name);
      if (std::find(kProtected.begin(), kProtected.end(), lower) != kProtected.end()) continue;
      next.emplace_back(std::move(lower), value);
    }
    st_.requestHeaders = std::move(next);
    st_.requestHeadersChanged = true;
  }
  std::string location;
  for (const auto& [rawName, value] : outcome.responseHeaders) {
    std::string name = toLower(rawName);
    if (name.rfind("x-middleware-", 0) == 0 ||
        std::find(kSkip.begin(), kSkip.end(), name) != kSkip.end()) {
      continue;
    }
    if (outcome.action == Action::Redirect && name == "location") {
      location = value;
      continue;
    }
    putHeader(st_.headers, name, value, Overwrite::Yes);
    if (outcome.action != Action::Redirect) {
      putHeader(mutableRequestHeaders(), name, value, Overwrite::Yes);
    }
  }
  if (outcome.action == Action::Redirect) {
    int status = isRedirectStatus(outcome.status) ? outcome.status : 307;
    return redirectDecision(std::move(location), status, true);
  }
  if (outcome.action == Action::Rewrite && !outcome.rewriteUrl.empty()) {
    std::string_view url = outcome.rewriteUrl;
    if (isAbsoluteHttpUrl(url)) {
      // Same host: a path rewrite; another origin: proxy (spec 3.6).
      size_t schemeEnd = url.find("://") + 3;
      size_t pathStart = url.find_first_of("/?#", schemeEnd);
      std::string_view authority = url.substr(schemeEnd, pathStart - schemeEnd);
      std::string_view hostOnly = authority.substr(0, authority.rfind(':') == std::string_view::npos
                                                          ? authority.size()
                                                          : authority.rfind(':'));
      if (!equalsIgnoreCase(hostOnly, request_.host) &&
          !equalsIgnoreCase(authority, request_.host)) {
        st_.externalUrl = std::string(url);
        st_.query.clear();  // the middleware built the whole upstream URL
        return proxyDecision();
      }
      url = pathStart == std::string_view::npos ? std::string_view("/") : url.substr(pathStart);
    }
    url = url.substr(0, url.find('#'));
    size_t q = url.find('?');
    std::string_view path = url.substr(0, q);
    st_.path = path.empty() || path.front() != '/' ? "/" + std::string(path) : std::string(path);
    st_.externalUrl.clear();
    if (q != std::string_view::npos) {
      // The middleware computed this URL from the request: its parameters replace those of
      // the same name; others are kept.
      Query rewritten;
      parseQuery(url.substr(q + 1), rewritten);
      std::erase_if(st_.query, [&rewritten](const QueryParam& p) {
        return std::any_of(rewritten.begin(), rewritten.end(),
                           [&p](const QueryParam& r) { return r.name == p.name; });
      });
      for (auto& p : rewritten) st_.query.push_back(std::move(p));
    }
  }
  return run(true);
}

Decision Evaluator::run(bool finishPending) {
  while (true) {
    Frame& frame = frames_[depth_ - 1];
    Step step = runRoutes(frame, finishPending);
    finishPending = false;
    if (step.kind == StepKind::Finished) return std::move(*step.decision);
    if (st_.loopAborted) return errorDecision(502, "TOO_MANY_FILESYSTEM_CHECKS");
    if (auto d = onFrameEnd(step)) return std::move(*d);
    if (st_.loopAborted) return errorDecision(502, "TOO_MANY_FILESYSTEM_CHECKS");
  }
}

Step Evaluator::runRoutes(Frame& frame, bool finishPending) {
  const std::vector<Route>& bucket = config_.phases[static_cast<size_t>(frame.phase)];
  auto handle = [&](const Route& route, bool resumed) -> std::optional<Step> {
    Step step = applyRoute(route, frame.phase, resumed);
    if (step.kind == StepKind::Continue) return std::nullopt;
    if (step.kind == StepKind::CheckMiss) {
      // Vercel dev: a check rewrite whose destination is missing tries the `miss` bucket
      // on the new path; when that finds nothing, the current phase goes on from the next
      // route with the new path.
      if (config_.phases[static_cast<size_t>(Phase::Miss)].empty()) return std::nullopt;
    }
    if (step.kind == StepKind::Finished && step.decision->kind == DecisionKind::Middleware &&
        step.decision->continuation == nullptr) {
      step.decision = middlewareStop(route);
    }
    return std::optional<Step>(std::move(step));
  };
  if (finishPending) {
    NIMBUS_CHECK(frame.pos > 0 && frame.pos <= bucket.size());
    if (auto step = handle(bucket[frame.pos - 1], true)) return std::move(*step);
  }
  while (frame.pos < bucket.size()) {
    const Route& route = bucket[frame.pos];
    ++frame.pos;
    if (!matchRoute(route, frame.phase)) continue;
    if (auto step = handle(route, false)) return std::move(*step);
  }
  return Step{};  // fell through: Continue
}

bool Evaluator::matchRoute(const Route& route, Phase phase) {
  if (!route.methods.empty() && std::find(route.methods.begin(), route.methods.end(),
                                          request_.method) == route.methods.end()) {
    return false;
  }
  // In `error`, a route's status is a condition: it matches only that routing status.
  if (phase == Phase::Error && route.status != 0 && route.status != st_.status) return false;

  const Regex& src = *route.src;
  std::string_view path = st_.path;
  MatchStatus s = table_.match(src, path, &scratch_.captures);
  if (s == MatchStatus::NoMatch && !path.empty() && path.front() == '/') {
    // Legacy retry on the path without its leading '/' (Vercel dev, Fastly; spec 2.4.3).
    std::string_view rest = path.substr(1);
    if (!src.startsWithSlash() || (!rest.empty() && rest.front() == '/')) {
      s = table_.match(src, rest, &scratch_.captures);
    }
  }
  if (s != MatchStatus::Matched) return false;

  if (!route.has.empty() || !route.missing.empty()) {
    auto& values = scratch_.hasValues;
    if (values.size() < route.hasSlotCount) values.resize(route.hasSlotCount);
    for (uint32_t i = 0; i < route.hasSlotCount; ++i) values[i].clear();
    for (const HasCondition& cond : route.has) {
      if (!evalCondition(cond, true)) return false;
    }
    for (const HasCondition& cond : route.missing) {
      if (evalCondition(cond, false)) return false;
    }
  }
  return true;
}

std::optional<std::string_view> Evaluator::conditionValue(const HasCondition& cond) {
  switch (cond.type) {
    case HasType::Host:
      return std::string_view(request_.host);
    case HasType::Header: {
      const std::string* first = nullptr;
      bool many = false;
      for (const auto& [name, value] : requestHeaders()) {
        if (name != cond.key) continue;
        if (first == nullptr) {
          first = &value;
        } else {
          if (!many) scratch_.joined = *first;
          many = true;
          scratch_.joined += cond.key == "cookie" ? "; " : ", ";
          scratch_.joined += value;
        }
      }
      if (first == nullptr) return std::nullopt;
      return many ? std::string_view(scratch_.joined) : std::string_view(*first);
    }
    case HasType::Cookie: {
      for (const auto& [name, value] : requestHeaders()) {
        if (name != "cookie") continue;
        std::string_view rest = value;
        while (!rest.empty()) {
          size_t semi = rest.find(';');
          std::string_view pair = trim(rest.substr(0, semi));
          rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
          size_t eq = pair.find('=');
          if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != cond.key) continue;
          std::string_view v = trim(pair.substr(eq + 1));
          if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
          scratch_.decoded.clear();
          appendPercentDecoded(v, PlusMode::Literal, scratch_.decoded);
          return std::string_view(scratch_.decoded);
        }
      }
      return std::nullopt;
    }
    case HasType::Query: {
      const QueryParam* p = findLastParam(st_.query, cond.key);
      if (p == nullptr) return std::nullopt;
      scratch_.decoded.clear();
      appendPercentDecoded(p->value, PlusMode::Space, scratch_.decoded);
      return std::string_view(scratch_.decoded);
    }
  }
  return std::nullopt;
}

bool Evaluator::evalCondition(const HasCondition& cond, bool isHas) {
  std::optional<std::string_view> value = conditionValue(cond);
  if (!value) return false;
  if (!cond.value) {
    if (isHas) {
      for (uint32_t slot : cond.presenceSlots) scratch_.hasValues[slot].assign(*value);
    }
    return true;
  }
  return evalMatchable(*cond.value, *value, isHas ? &cond : nullptr);
}

bool Evaluator::evalMatchable(const Matchable& m, std::string_view value,
                              const HasCondition* slotsFor) {
  if (m.eq && value != *m.eq) return false;
  if (m.neq && value == *m.neq) return false;
  if (m.pre && value.substr(0, m.pre->size()) != *m.pre) return false;
  if (m.suf &&
      (value.size() < m.suf->size() || value.substr(value.size() - m.suf->size()) != *m.suf)) {
    return false;
  }
  if (!m.inc.empty() && std::find(m.inc.begin(), m.inc.end(), value) == m.inc.end()) return false;
  if (!m.ninc.empty() && std::find(m.ninc.begin(), m.ninc.end(), value) != m.ninc.end()) {
    return false;
  }
  if (m.gt || m.gte || m.lt || m.lte) {
    std::optional<double> n = parseNumber(value);
    if (!n) return false;
    if ((m.gt && !(*n > *m.gt)) || (m.gte && !(*n >= *m.gte)) || (m.lt && !(*n < *m.lt)) ||
        (m.lte && !(*n <= *m.lte))) {
      return false;
    }
  }
  if (m.re) {
    // `value` may point into scratch_.decoded, which the match copies before anything
    // else touches it.
    if (table_.match(*m.re, value, &scratch_.hasCaptures) != MatchStatus::Matched) return false;
    if (slotsFor != nullptr) {
      for (const auto& [group, slot] : m.captureSlots) {
        scratch_.hasValues[slot].assign(scratch_.hasCaptures.group(group));
      }
      if (slotsFor->hostSlot) {
        scratch_.hasValues[*slotsFor->hostSlot].assign(scratch_.hasCaptures.group(0));
      }
    }
  }
  return true;
}

std::string_view Evaluator::wildcardValue() const {
  for (const auto& [domain, value] : config_.wildcard) {
    if (equalsIgnoreCase(domain, request_.host)) return value;
  }
  return {};
}

void Evaluator::substitute(const Template& t, std::string& out) const {
  out.clear();
  for (const TemplatePiece& piece : t.pieces) {
    switch (piece.kind) {
      case TemplatePiece::Kind::Literal:
        out += piece.text;
        break;
      case TemplatePiece::Kind::Group:
        out += scratch_.captures.group(piece.index);
        break;
      case TemplatePiece::Kind::HasValue:
        if (piece.index < scratch_.hasValues.size()) out += scratch_.hasValues[piece.index];
        break;
      case TemplatePiece::Kind::Wildcard:
        out += wildcardValue();
        break;
    }
  }
}

void Evaluator::setPathFromDest(std::string_view dest) {
  dest = dest.substr(0, dest.find('#'));
  size_t q = dest.find('?');
  std::string_view path = dest.substr(0, q);
  if (path.empty() || path.front() != '/') {
    // Astro emits "_render": a relative dest gets a leading '/'.
    st_.path.assign("/");
    st_.path.append(path);
  } else {
    st_.path.assign(path);
  }
  if (q == std::string_view::npos || q + 1 == dest.size()) return;
  // Spec 2.7, Vercel dev: on a name collision the value already in the request wins.
  Query destQuery;
  parseQuery(dest.substr(q + 1), destQuery);
  size_t before = st_.query.size();
  for (QueryParam& p : destQuery) {
    bool present = std::any_of(st_.query.begin(), st_.query.begin() + static_cast<long>(before),
                               [&p](const QueryParam& e) { return e.name == p.name; });
    if (!present) st_.query.push_back(std::move(p));
  }
}

std::optional<Decision> Evaluator::localeRedirect(const Locale& locale) {
  if (locale.redirect.empty()) return std::nullopt;
  std::vector<std::string> preferred;
  if (!locale.cookie.empty()) {
    HasCondition cookie;
    cookie.type = HasType::Cookie;
    cookie.key = locale.cookie;
    if (auto v = conditionValue(cookie)) preferred.push_back(toLower(*v));
  }
  if (const std::string* accept = findHeader(requestHeaders(), "accept-language")) {
    for (auto& tag : acceptLanguages(*accept)) preferred.push_back(std::move(tag));
  }
  auto lookup = [&locale](std::string_view lang) -> const std::string* {
    for (const auto& [l, target] : locale.redirect) {
      if (l == lang) return &target;
    }
    return nullptr;
  };
  for (const std::string& lang : preferred) {
    const std::string* target = lookup(lang);
    if (target == nullptr) {
      size_t dash = lang.find('-');
      if (dash != std::string::npos) target = lookup(std::string_view(lang).substr(0, dash));
    }
    if (target == nullptr) continue;
    if (st_.path.rfind(*target, 0) == 0) return std::nullopt;
    return redirectDecision(*target, 307, false);
  }
  return std::nullopt;
}

void Evaluator::applyHeaders(const Route& route, Phase phase) {
  Overwrite overwrite =
      (phase == Phase::Hit || phase == Phase::Miss) ? Overwrite::No : Overwrite::Yes;
  for (const HeaderRule& rule : route.headers) {
    std::string value;
    if (rule.value.isLiteral()) {
      if (!rule.value.pieces.empty()) value = rule.value.pieces[0].text;
    } else {
      substitute(rule.value, scratch_.text);
      value = scratch_.text;
    }
    if (route.important) putHeader(st_.importantHeaders, rule.name, value, overwrite);
    putHeader(st_.headers, rule.name, std::move(value), overwrite);
    if (!st_.deletes.empty()) std::erase(st_.deletes, rule.name);
  }
}

bool Evaluator::selectorMatches(const KeySelector& sel, std::string_view keyLower,
                                std::string_view literalLower) const {
  if (sel.key) return keyLower == literalLower;
  if (sel.eq && keyLower != *sel.eq) return false;
  if (sel.neq && keyLower == *sel.neq) return false;
  if (sel.pre && keyLower.substr(0, sel.pre->size()) != *sel.pre) return false;
  if (sel.suf && (keyLower.size() < sel.suf->size() ||
                  keyLower.substr(keyLower.size() - sel.suf->size()) != *sel.suf)) {
    return false;
  }
  if (sel.sub && keyLower.find(*sel.sub) == std::string_view::npos) return false;
  if (!sel.inc.empty() && std::find(sel.inc.begin(), sel.inc.end(), keyLower) == sel.inc.end()) {
    return false;
  }
  if (!sel.ninc.empty() &&
      std::find(sel.ninc.begin(), sel.ninc.end(), keyLower) != sel.ninc.end()) {
    return false;
  }
  if (sel.gt || sel.gte || sel.lt || sel.lte) {
    std::optional<double> n = parseNumber(keyLower);
    if (!n) return false;
    if ((sel.gt && !(*n > *sel.gt)) || (sel.gte && !(*n >= *sel.gte)) ||
        (sel.lt && !(*n < *sel.lt)) || (sel.lte && !(*n <= *sel.lte))) {
      return false;
    }
  }
  return true;
}

void Evaluator::applyTransforms(const Route& route) {
  for (const Transform& t : route.transforms) {
    switch (t.type) {
      case TransformType::RequestPath: {
        std::string path;
        substitute(t.args[0], path);
        // Vercel dev ignores a path that could smuggle a second request line or a query.
        if (isValidRequestPath(path)) st_.functionPath = std::move(path);
        break;
      }
      case TransformType::RequestQuery:
        applyQueryTransform(t);
        break;
      case TransformType::RequestHeaders:
        applyRequestHeaderTransform(t);
        break;
      case TransformType::ResponseHeaders:
        applyResponseHeaderTransform(t);
        break;
    }
  }
}

namespace {

std::vector<std::string> substitutedArgs(
    const Transform& t, const std::function<void(const Template&, std::string&)>& sub) {
  std::vector<std::string> out;
  for (const Template& a : t.args) {
    std::string s;
    sub(a, s);
    out.push_back(std::move(s));
  }
  return out;
}

// Splits a header value on commas (Vercel dev treats header values as comma lists).
std::vector<std::string> headerValueList(std::string_view v) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = v.find(',');
    std::string_view item = trim(v.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    v = v.substr(comma + 1);
  }
  return out;
}

std::string joinValues(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

// set/append/delete over a header list (names lower-case) per Vercel dev transforms.
template <class Matches>
void transformHeaderList(Headers& headers, TransformOp op, const std::string& literalKey,
                         bool literal, const std::vector<std::string>& args, bool hasArgs,
                         const Matches& matches) {
  std::vector<std::string> names;
  for (const auto& [name, value] : headers) {
    if (matches(name) && std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  switch (op) {
    case TransformOp::Set:
      for (const std::string& name : names) {
        eraseHeader(headers, name);
        for (const auto& a : args) headers.emplace_back(name, a);
      }
      if (names.empty() && literal && !args.empty() && !(args.size() == 1 && args[0].empty())) {
        for (const auto& a : args) headers.emplace_back(literalKey, a);
      }
      break;
    case TransformOp::Append:
      if (args.empty() || (args.size() == 1 && args[0].empty())) break;
      for (const std::string& name : names) {
        for (const auto& a : args) headers.emplace_back(name, a);
      }
      if (names.empty() && literal) {
        for (const auto& a : args) headers.emplace_back(literalKey, a);
      }
      break;
    case TransformOp::Delete:
      if (!hasArgs) {
        for (const std::string& name : names) eraseHeader(headers, name);
        break;
      }
      for (auto& [name, value] : headers) {
        if (std::find(names.begin(), names.end(), name) == names.end()) continue;
        std::vector<std::string> kept;
        for (auto& v : headerValueList(value)) {
          bool drop = std::any_of(args.begin(), args.end(),
                                  [&v](const std::string& a) { return equalsIgnoreCase(a, v); });
          if (!drop) kept.push_back(std::move(v));
        }
        value = joinValues(kept);
      }
      std::erase_if(headers, [](const auto& h) { return h.second.empty(); });
      break;
  }
}

}  // namespace

void Evaluator::applyQueryTransform(const Transform& t) {
  auto sub = [this](const Template& tpl, std::string& out) { substitute(tpl, out); };
  std::vector<std::string> args = substitutedArgs(t, sub);
  std::string literal;
  if (t.target.key) substitute(*t.target.key, literal);
  std::string literalLower = toLower(literal);
  auto matches = [&](const QueryParam& p) {
    return selectorMatches(t.target, toLower(p.name), literalLower);
  };
  std::vector<std::string> names;
  for (const QueryParam& p : st_.query) {
    if (matches(p) && std::find(names.begin(), names.end(), p.name) == names.end()) {
      names.push_back(p.name);
    }
  }
  auto makeParam = [](std::string key, std::string value) {
    QueryParam p;
    p.name = percentDecoded(key, PlusMode::Space);
    p.key = std::move(key);
    p.value = std::move(value);
    p.hasEquals = true;
    return p;
  };
  bool emptyArgs = args.empty() || (args.size() == 1 && args[0].empty());
  switch (t.op) {
    case TransformOp::Set: {
      for (const std::string& name : names) {
        auto first = std::find_if(st_.query.begin(), st_.query.end(),
                                  [&name](const QueryParam& p) { return p.name == name; });
        std::string key = first->key;
        size_t at = static_cast<size_t>(first - st_.query.begin());
        std::erase_if(st_.query, [&name](const QueryParam& p) { return p.name == name; });
        for (const auto& a : args) {
          st_.query.insert(st_.query.begin() + static_cast<long>(at++), makeParam(key, a));
        }
      }
      if (names.empty() && t.target.key && !emptyArgs) {
        for (const auto& a : args) st_.query.push_back(makeParam(literal, a));
      }
      break;
    }
    case TransformOp::Append:
      if (emptyArgs) break;
      for (const std::string& name : names) {
        auto last = std::find_if(st_.query.rbegin(), st_.query.rend(),
                                 [&name](const QueryParam& p) { return p.name == name; });
        std::string key = last->key;
        for (const auto& a : args) st_.query.push_back(makeParam(key, a));
      }
      if (names.empty() && t.target.key) {
        for (const auto& a : args) st_.query.push_back(makeParam(literal, a));
      }
      break;
    case TransformOp::Delete:
      std::erase_if(st_.query, [&](const QueryParam& p) {
        if (std::find(names.begin(), names.end(), p.name) == names.end()) return false;
        if (t.args.empty()) return true;
        std::string value = percentDecoded(p.value, PlusMode::Space);
        return std::any_of(args.begin(), args.end(),
                           [&value](const std::string& a) { return equalsIgnoreCase(a, value); });
      });
      break;
  }
}

void Evaluator::applyRequestHeaderTransform(const Transform& t) {
  auto sub = [this](const Template& tpl, std::string& out) { substitute(tpl, out); };
  std::vector<std::string> args = substitutedArgs(t, sub);
  std::string literal;
  if (t.target.key) substitute(*t.target.key, literal);
  std::string literalLower = toLower(literal);
  if (t.op != TransformOp::Delete) {
    if (t.target.key && !isTransformHeaderName(literal)) return;
    if (args.empty() || !std::all_of(args.begin(), args.end(), isTransformHeaderValue)) return;
  }
  transformHeaderList(
      mutableRequestHeaders(), t.op, literalLower, t.target.key.has_value(), args, !t.args.empty(),
      [&](std::string_view name) { return selectorMatches(t.target, name, literalLower); });
}

void Evaluator::applyResponseHeaderTransform(const Transform& t) {
  auto sub = [this](const Template& tpl, std::string& out) { substitute(tpl, out); };
  std::vector<std::string> args = substitutedArgs(t, sub);
  std::string literal;
  if (t.target.key) substitute(*t.target.key, literal);
  std::string literalLower = toLower(literal);
  if (t.op != TransformOp::Delete) {
    if (t.target.key && !isTransformHeaderName(literal)) return;
    if (args.empty() || !std::all_of(args.begin(), args.end(), isTransformHeaderValue)) return;
  }
  auto matches = [&](std::string_view name) {
    return selectorMatches(t.target, name, literalLower);
  };
  // Response transforms act on the final response (origin included), so they are folded
  // into importantHeaders (applied after the origin) and deletes.
  if (t.op == TransformOp::Delete && t.args.empty()) {
    std::vector<std::string> names;
    for (const Headers* list : {&st_.headers, &st_.importantHeaders}) {
      for (const auto& [name, value] : *list) {
        if (matches(name) && std::find(names.begin(), names.end(), name) == names.end()) {
          names.push_back(name);
        }
      }
    }
    if (t.target.key && std::find(names.begin(), names.end(), literalLower) == names.end()) {
      names.push_back(literalLower);
    }
    for (const std::string& name : names) {
      eraseHeader(st_.headers, name);
      eraseHeader(st_.importantHeaders, name);
      if (std::find(st_.deletes.begin(), st_.deletes.end(), name) == st_.deletes.end()) {
        st_.deletes.push_back(name);
      }
    }
    return;
  }
  // Move route headers the transform touches into the important list so the result is
  // applied as a whole after the origin.
  std::vector<std::string> touched;
  for (const auto& [name, value] : st_.headers) {
    if (matches(name) && std::find(touched.begin(), touched.end(), name) == touched.end()) {
      touched.push_back(name);
    }
  }
  for (const std::string& name : touched) {
    if (findHeader(st_.importantHeaders, name) == nullptr) {
      for (const auto& [n, v] : st_.headers) {
        if (n == name) st_.importantHeaders.emplace_back(n, v);
      }
    }
    eraseHeader(st_.headers, name);
  }
  transformHeaderList(st_.importantHeaders, t.op, literalLower, t.target.key.has_value(), args,
                      !t.args.empty(), matches);
  if (t.op != TransformOp::Delete) {
    std::erase_if(st_.deletes, [&](const std::string& name) { return matches(name); });
  }
}

Step Evaluator::applyRoute(const Route& route, Phase phase, bool resumed) {
  if (!resumed) {
    if (route.overrides) {
      st_.status = 0;
      st_.headers.clear();
      st_.importantHeaders.clear();
      st_.deletes.clear();
    }
    if (route.locale) {
      if (auto d = localeRedirect(*route.locale)) return Step::finished(std::move(*d));
    }
    if (!route.middlewarePath.empty()) {
      std::string_view key = route.middlewarePath;
      while (!key.empty() && key.front() == '/') key.remove_prefix(1);
      auto& ran = st_.middlewareThisPass;
      if (std::find(ran.begin(), ran.end(), key) == ran.end()) {
        // runRoutes turns this marker into the stop with its continuation.
        Decision marker;
        marker.kind = DecisionKind::Middleware;
        return Step::finished(std::move(marker));
      }
    }
  }

  applyHeaders(route, phase);
  if (!route.transforms.empty()) applyTransforms(route);
  // `hit` routes only add headers (routing-utils rejects dest/status there).
  if (phase == Phase::Hit) return Step::of(route.continues ? StepKind::Continue : StepKind::Stop);

  if (route.status != 0) st_.status = route.status;
  bool external = false;
  std::string destText;
  if (route.dest) {
    substitute(*route.dest, destText);
    if (isAbsoluteHttpUrl(destText)) {
      external = true;
      st_.externalUrl = destText;
    } else {
      setPathFromDest(destText);
      st_.externalUrl.clear();
      if (phase == Phase::Error) st_.errorDest = true;
    }
  }

  if (isRedirectStatus(st_.status)) {
    // Redirects finish at once, even with `continue` (Next.js trailing-slash 308).
    const std::string* header = findHeader(st_.headers, "location");
    if (header != nullptr || route.dest) {
      return Step::finished(
          redirectDecision(header != nullptr ? *header : destText, st_.status, false));
    }
  }
  if (external && !route.continues) return Step::finished(proxyDecision());

  if (route.check && !external && phase != Phase::Error) {
    if (checkExists()) return Step::of(StepKind::Found);
    if (st_.loopAborted) {
      return Step::finished(errorDecision(502, "TOO_MANY_FILESYSTEM_CHECKS"));
    }
    if (route.status != 0 && phase != Phase::Miss) {
      return Step::statusStop(route.status);
    }
    if (phase == Phase::Miss) {
      if (route.status != 0) st_.missStatus = route.status;
      return Step{};
    }
    return Step::of(StepKind::CheckMiss);
  }
  if (!route.continues) return Step::stop(route.status != 0);
  return Step{};
}

Decision Evaluator::middlewareStop(const Route& route) {
  std::string key = route.middlewarePath;
  while (!key.empty() && key.front() == '/') key.erase(key.begin());
  st_.middlewareThisPass.push_back(key);
  auto c = std::make_shared<Continuation>();
  c->table = &table_;
  c->state = st_;
  c->frames = frames_;
  c->depth = depth_;
  c->captures = scratch_.captures;
  c->hasValues.assign(
      scratch_.hasValues.begin(),
      scratch_.hasValues.begin() + std::min<size_t>(route.hasSlotCount, scratch_.hasValues.size()));
  c->middlewareKey = key;
  Decision d;
  d.kind = DecisionKind::Middleware;
  d.middlewareKey = std::move(key);
  fillCommon(d);
  fillOriginRequest(d);
  d.continuation = std::move(c);
  return d;
}

bool Evaluator::checkExists() {
  if (++st_.filesystemChecks > kMaxFilesystemChecks) {
    st_.loopAborted = true;
    st_.found = {};
    return false;
  }
  scratch_.decoded.clear();
  appendPercentDecoded(st_.path, PlusMode::Literal, scratch_.decoded);
  st_.found = index_.find(scratch_.decoded);
  // Functions referenced by `middlewarePath` are not routable on their own (spec 3.6).
  if (st_.found.kind == OutputKind::Function && table_.isMiddlewareKey(st_.found.key)) {
    st_.found = {};
  }
  return st_.found.kind != OutputKind::None;
}

void Evaluator::resetFrames(FrameKind kind, Phase phase, uint8_t mainIndex) {
  depth_ = 0;
  pushFrame(kind, phase, mainIndex);
}

void Evaluator::pushFrame(FrameKind kind, Phase phase, uint8_t mainIndex) {
  NIMBUS_CHECK(depth_ < frames_.size());
  Frame& f = frames_[depth_++];
  f = Frame{};
  f.kind = kind;
  f.phase = phase;
  f.mainIndex = mainIndex;
  if (kind == FrameKind::MissAfterMain || kind == FrameKind::MissAfterCheck) {
    st_.missStatus = 0;
    f.snapshot = std::make_shared<const EvalState>(st_);
  }
  if (kind != FrameKind::MissAfterCheck) st_.middlewareThisPass.clear();
}

std::optional<Decision> Evaluator::advanceMain(uint8_t nextIndex) {
  if (nextIndex < kMainPhases.size()) {
    resetFrames(FrameKind::Main, kMainPhases[nextIndex], nextIndex);
    return std::nullopt;
  }
  return enterError(st_.status >= 400 ? st_.status : 404);
}

std::optional<Decision> Evaluator::enterMissAfterMain(uint8_t mainIndex) {
  if (config_.phases[static_cast<size_t>(Phase::Miss)].empty()) return advanceMain(mainIndex + 1);
  resetFrames(FrameKind::MissAfterMain, Phase::Miss, mainIndex);
  return std::nullopt;
}

std::optional<Decision> Evaluator::enterHit() {
  if (config_.phases[static_cast<size_t>(Phase::Hit)].empty()) return serveDecision(st_.found);
  resetFrames(FrameKind::Hit, Phase::Hit, 0);
  return std::nullopt;
}

std::optional<Decision> Evaluator::enterError(int status) {
  st_.status = status;
  st_.errorDest = false;
  st_.externalUrl.clear();
  if (config_.phases[static_cast<size_t>(Phase::Error)].empty()) {
    return errorDecision(status, errorCodeFor(status));
  }
  resetFrames(FrameKind::Error, Phase::Error, 0);
  return std::nullopt;
}

std::optional<Decision> Evaluator::onFrameEnd(const Step& step) {
  Frame& frame = frames_[depth_ - 1];
  switch (frame.kind) {
    case FrameKind::Hit:
      return serveDecision(st_.found);

    case FrameKind::Error: {
      if (!st_.externalUrl.empty()) return proxyDecision();
      if (st_.errorDest && checkExists()) {
        if (st_.found.kind == OutputKind::Function) return serveDecision(st_.found);
        Decision d = errorDecision(st_.status, errorCodeFor(st_.status));
        if (d.kind == DecisionKind::Error) d.key = st_.found.key;
        return d;
      }
      return errorDecision(st_.status, errorCodeFor(st_.status));
    }

    case FrameKind::Main: {
      switch (step.kind) {
        case StepKind::CheckMiss:
          pushFrame(FrameKind::MissAfterCheck, Phase::Miss, frame.mainIndex);
          return std::nullopt;
        case StepKind::Found:
          return enterHit();
        case StepKind::StatusStop:
          return enterError(step.status);
        default:
          break;
      }
      if (!st_.externalUrl.empty()) return proxyDecision();
      if (checkExists()) return enterHit();
      if (st_.loopAborted) return std::nullopt;
      // A non-continue route with an error status ends routing when nothing was found.
      if (step.kind == StepKind::Stop && step.statusRoute && st_.status >= 400) {
        return enterError(st_.status);
      }
      return enterMissAfterMain(frame.mainIndex);
    }

    case FrameKind::MissAfterMain:
    case FrameKind::MissAfterCheck: {
      if (step.kind == StepKind::Found) return enterHit();
      if (step.kind == StepKind::StatusStop) return enterError(step.status);
      if (!st_.externalUrl.empty()) return proxyDecision();
      if (checkExists()) return enterHit();
      if (st_.loopAborted) return std::nullopt;
      // Miss-phase changes only stick when they found something (spec 2.6); a miss check
      // route's status (Next.js: 404 for a missing /_next/static file) ends routing.
      int missStatus = st_.missStatus;
      uint32_t checks = st_.filesystemChecks;
      std::vector<std::string> ran = std::move(st_.middlewareThisPass);
      st_ = *frame.snapshot;
      st_.filesystemChecks = checks;
      st_.middlewareThisPass = std::move(ran);
      if (missStatus >= 400) return enterError(missStatus);
      if (frame.kind == FrameKind::MissAfterMain) return advanceMain(frame.mainIndex + 1);
      --depth_;  // back to the phase that did the check rewrite, at its next route
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void Evaluator::fillCommon(Decision& d, Take take) {
  if (take == Take::Consume) {
    d.headers = std::move(st_.headers);
    d.importantHeaders = std::move(st_.importantHeaders);
    d.responseHeaderDeletes = std::move(st_.deletes);
  } else {
    d.headers = st_.headers;
    d.importantHeaders = st_.importantHeaders;
    d.responseHeaderDeletes = st_.deletes;
  }
}

void Evaluator::fillOriginRequest(Decision& d) {
  // Functions see the original path (unless a request.path transform set it) with the
  // merged query; see docs/routing.md "What a function sees".
  d.path = st_.functionPath ? *st_.functionPath : request_.path;
  d.query = formatQuery(st_.query);
  d.requestHeaders = requestHeaders();
}

std::optional<Decision> Evaluator::pendingLocationRedirect() {
  // A Location set by routing with a non-3xx status becomes a 307 (build-output-router).
  const std::string* location = findHeader(st_.headers, "location");
  if (location == nullptr) return std::nullopt;
  return redirectDecision(*location, isRedirectStatus(st_.status) ? st_.status : 307, false);
}

Decision Evaluator::serveDecision(const OutputMatch& match) {
  if (auto redirect = pendingLocationRedirect()) return std::move(*redirect);
  Decision d;
  d.kind = match.kind == OutputKind::Function ? DecisionKind::Function : DecisionKind::Static;
  d.status = st_.status;
  d.key = match.key;
  fillCommon(d);
  if (d.kind == DecisionKind::Function) fillOriginRequest(d);
  return d;
}

Decision Evaluator::errorDecision(int status, std::string errorCode) {
  if (!st_.loopAborted) {
    if (auto redirect = pendingLocationRedirect()) return std::move(*redirect);
  }
  Decision d;
  d.kind = DecisionKind::Error;
  d.status = status;
  d.errorCode = std::move(errorCode);
  fillCommon(d);
  return d;
}

Decision Evaluator::redirectDecision(std::string location, int status, bool fromMiddleware) {
  Decision d;
  d.kind = DecisionKind::Redirect;
  d.status = status;
  // The request query passes through to a relative Location (Next.js redirects,
  // build-output-router); the Location's own parameters win. Not for middleware redirects.
  if (!fromMiddleware && !st_.query.empty() && !location.empty() && location.front() == '/') {
    size_t hash = location.find('#');
    std::string fragment = hash == std::string::npos ? "" : location.substr(hash);
    location.resize(std::min(hash, location.size()));
    size_t q = location.find('?');
    Query own;
    if (q != std::string::npos) parseQuery(std::string_view(location).substr(q + 1), own);
    std::string extra;
    for (const QueryParam& p : st_.query) {
      bool present = std::any_of(own.begin(), own.end(),
                                 [&p](const QueryParam& o) { return o.name == p.name; });
      if (present) continue;
      if (!extra.empty()) extra.push_back('&');
      extra += p.key;
      if (p.hasEquals) {
        extra.push_back('=');
        extra += p.value;
      }
    }
    if (!extra.empty()) {
      if (q == std::string::npos) {
        location.push_back('?');
      } else if (location.back() != '?' && location.back() != '&') {
        location.push_back('&');
      }
      location += extra;
    }
    location += fragment;
  }
  d.location = std::move(location);
  fillCommon(d);
  eraseHeader(d.headers, "location");
  eraseHeader(d.importantHeaders, "location");
  return d;
}

Decision Evaluator::proxyDecision() {
  Decision d;
  d.kind = DecisionKind::Proxy;
  d.status = st_.status;
  std::string_view url = st_.externalUrl;
  url = url.substr(0, url.find('#'));
  size_t q = url.find('?');
  Query merged;
  if (q != std::string_view::npos) parseQuery(url.substr(q + 1), merged);
  // Vercel dev: Object.assign(destQuery, requestQuery) — request values win.
  std::erase_if(merged, [this](const QueryParam& p) {
    return std::any_of(st_.query.begin(), st_.query.end(),
                       [&p](const QueryParam& r) { return r.name == p.name; });
  });
  for (const QueryParam& p : st_.query) merged.push_back(p);
  d.url = std::string(url.substr(0, q));
  d.query = formatQuery(merged);
  if (!d.query.empty()) {
    d.url.push_back('?');
    d.url += d.query;
  }
  d.path = st_.functionPath ? *st_.functionPath : request_.path;
  d.requestHeaders = requestHeaders();
  fillCommon(d);
  return d;
}

}  // namespace

Result<std::shared_ptr<const RouteTable>> RouteTable::compile(std::string_view configJson) {
  auto config = compileConfig(configJson);
  if (!config) return config.error();
  return std::shared_ptr<const RouteTable>(
      std::make_shared<CompiledRouteTable>(std::move(*config)));
}

}  // namespace nimbus::routing

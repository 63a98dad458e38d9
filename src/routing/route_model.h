#pragma once
// The compiled form of config.json routes: what route_compiler.cpp builds from JSON and
// route_table.cpp evaluates. Everything here is immutable after compile and shared between
// threads. Header names are lower-case, methods upper-case, `$` tokens resolved to group
// numbers or has-value slots.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "routing/regex.h"

namespace nimbus::routing {

// Phases of spec 2.3 (the handle values). `None` holds the routes before the first handle.
enum class Phase : uint8_t { None, Filesystem, Miss, Rewrite, Hit, Error, Resource };
inline constexpr size_t kPhaseCount = 7;
std::string_view phaseName(Phase phase);

// A dest, header value or transform argument with its `$token`s resolved at compile time.
struct TemplatePiece {
  enum class Kind : uint8_t { Literal, Group, HasValue, Wildcard };
  Kind kind = Kind::Literal;
  uint32_t index = 0;  // Group: group number in src; HasValue: slot
  std::string text;    // Literal
};

struct Template {
  std::vector<TemplatePiece> pieces;
  bool isLiteral() const {
    return pieces.empty() || (pieces.size() == 1 && pieces[0].kind == TemplatePiece::Kind::Literal);
  }
};

// The operator object of spec 2.2 `Matchable` (or a plain regex string, kept in `re`).
struct Matchable {
  std::optional<Regex> re;
  std::vector<std::pair<uint32_t, uint32_t>> captureSlots;  // (group in re, has-value slot)
  std::optional<std::string> eq, neq, pre, suf;
  std::vector<std::string> inc, ninc;
  std::optional<double> gt, gte, lt, lte;
};

enum class HasType : uint8_t { Host, Header, Cookie, Query };

struct HasCondition {
  HasType type = HasType::Host;
  std::string key;  // header: lower-case; cookie/query: as given
  std::optional<Matchable> value;
  // Filled when a `has` item matches (never for `missing`):
  std::vector<uint32_t> presenceSlots;  // no value: the found value ($<key>)
  std::optional<uint32_t> hostSlot;     // host regex without named groups: whole match ($host)
};

struct HeaderRule {
  std::string name;  // lower-case
  Template value;
};

enum class TransformType : uint8_t { RequestHeaders, RequestQuery, ResponseHeaders, RequestPath };
enum class TransformOp : uint8_t { Set, Append, Delete };

// `target.key` of a transform: a literal key (with `$` tokens) or an operator object that
// selects existing keys (compared case-insensitively, as Vercel dev does).
struct KeySelector {
  std::optional<Template> key;
  std::optional<std::string> eq, neq, pre, suf, sub;
  std::vector<std::string> inc, ninc;
  std::optional<double> gt, gte, lt, lte;
};

struct Transform {
  TransformType type = TransformType::RequestHeaders;
  TransformOp op = TransformOp::Set;
  KeySelector target;
  std::vector<Template> args;  // empty: no args
};

struct Locale {
  std::vector<std::pair<std::string, std::string>> redirect;  // language (lower-case) -> path
  std::string cookie;
};

struct Route {
  uint32_t index = 0;  // position in config.json `routes`
  Phase phase = Phase::None;
  std::optional<Regex> src;
  std::optional<Template> dest;
  std::vector<HeaderRule> headers;
  std::vector<std::string> methods;  // upper-case; empty = any method
  std::vector<HasCondition> has;
  std::vector<HasCondition> missing;
  uint32_t hasSlotCount = 0;
  std::vector<Transform> transforms;
  std::optional<Locale> locale;
  std::string middlewarePath;
  int status = 0;
  bool continues = false;
  bool check = false;
  bool overrides = false;
  bool important = false;
};

struct CompiledConfig {
  std::array<std::vector<Route>, kPhaseCount> phases;
  std::vector<std::pair<std::string, std::string>> wildcard;  // host (lower-case) -> value
  std::vector<std::string> middlewareKeys;                    // output keys, no leading '/'
  size_t routeCount = 0;                                      // source routes
  uint32_t maxCaptureCount = 0;
  uint32_t maxHasSlots = 0;
};

// Parses and validates config.json (spec 2.1-2.3). The error lists every problem found,
// one per line, each naming `routes[i].field` and how to fix it.
Result<CompiledConfig> compileConfig(std::string_view configJson);

}  // namespace nimbus::routing

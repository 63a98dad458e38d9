#pragma once
// PCRE2 wrapper for route sources and `has` values: compiled once (JIT when available),
// matched as a whole-subject match, with match/depth limits so a catastrophic pattern ends
// as "no match" instead of stalling a router thread.
//
// Thread rules: a compiled Regex and a MatchLimits are immutable and shared by all threads.
// Match data is per thread (allocated on first use, grown when a table needs more groups).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

struct pcre2_real_code_8;
struct pcre2_real_match_context_8;

namespace nimbus::routing {

enum class CaseMode { Insensitive, Sensitive };
enum class MatchStatus { Matched, NoMatch, LimitHit };

// PCRE2 limits applied to every match. Backtracking beyond them is "no match".
class MatchLimits {
 public:
  // matchLimit: PCRE2 match limit (backtracking steps); depthLimit: interpreter depth.
  MatchLimits(uint32_t matchLimit, uint32_t depthLimit);
  ~MatchLimits();
  MatchLimits(const MatchLimits&) = delete;
  MatchLimits& operator=(const MatchLimits&) = delete;
  pcre2_real_match_context_8* context() const { return context_; }

 private:
  pcre2_real_match_context_8* context_ = nullptr;
};

// The groups of one successful match: a copy of the subject and the group spans, so the
// values stay valid while the routed path changes. Reuse one object to keep its capacity.
class Captures {
 public:
  // Group `n` (0 = whole match); empty when the group did not participate or does not exist.
  std::string_view group(uint32_t n) const;
  uint32_t size() const { return static_cast<uint32_t>(spans_.size()); }
  void clear() {
    subject_.clear();
    spans_.clear();
  }

 private:
  friend class Regex;
  static constexpr size_t kUnset = ~size_t{0};
  std::string subject_;
  std::vector<std::pair<size_t, size_t>> spans_;
};

class Regex {
 public:
  // Compiles `pattern` (PCRE syntax as used by config.json) anchored at both ends of the
  // subject. Error (Invalid): "invalid regular expression at offset N: <PCRE2 message>".
  static Result<Regex> compile(std::string_view pattern, CaseMode mode);

  Regex(Regex&& other) noexcept;
  Regex& operator=(Regex&& other) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex();

  // Matches the whole of `subject`. On Matched, `captures` (when given) holds the groups.
  MatchStatus match(std::string_view subject, const MatchLimits& limits, Captures* captures) const;

  uint32_t captureCount() const { return captureCount_; }
  // Named groups with their numbers, in pattern order.
  const std::vector<std::pair<std::string, uint32_t>>& names() const { return names_; }
  std::optional<uint32_t> groupNumber(std::string_view name) const;
  // True when every match must begin with '/' ("/a", "^/a", "^\\/a"): then the legacy retry
  // on "path without its leading '/'" can only match when that rest starts with '/' too, and
  // is skipped otherwise. An optimisation only; conservative (false when unsure).
  bool startsWithSlash() const { return startsWithSlash_; }
  const std::string& pattern() const { return pattern_; }
  // The literal text every match starts with ("" when unknown); checked before PCRE2 runs.
  const std::string& literalPrefix() const { return prefix_; }

 private:
  Regex() = default;
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  bool startsWithSlash_ = false;
  bool caseless_ = false;
  std::string prefix_;  // literal start of every match (lower-case when caseless)
  uint32_t captureCount_ = 0;
  std::vector<std::pair<std::string, uint32_t>> names_;
  std::string pattern_;
};

}  // namespace nimbus::routing

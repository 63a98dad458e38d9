#include "routing/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>

namespace nimbus::routing {
namespace {

// Per-thread match data, grown to the largest group count seen on this thread.
class ThreadMatchData {
 public:
  ~ThreadMatchData() {
    if (data_ != nullptr) pcre2_match_data_free(data_);
  }
  pcre2_match_data* get(uint32_t pairs) {
    if (data_ == nullptr || pairs > pairs_) {
      if (data_ != nullptr) pcre2_match_data_free(data_);
      pairs_ = std::max<uint32_t>(pairs, 32);
      data_ = pcre2_match_data_create(pairs_, nullptr);
      NIMBUS_CHECK(data_ != nullptr);
    }
    return data_;
  }

 private:
  pcre2_match_data* data_ = nullptr;
  uint32_t pairs_ = 0;
};

thread_local ThreadMatchData threadMatchData;

bool hasTopLevelAlternation(std::string_view p) {
  int depth = 0;
  bool inClass = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      ++i;
    } else if (inClass) {
      if (c == ']') inClass = false;
    } else if (c == '[') {
      inClass = true;
      if (i + 1 < p.size() && p[i + 1] == '^') ++i;
      if (i + 1 < p.size() && p[i + 1] == ']') ++i;  // "[]...]", "[^]...]": a literal ']'
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth == 0) {
      return true;
    }
  }
  return false;
}

// Whether every match must begin with '/': the pattern is "/", "^/", "\\/" or "^\\/" followed
// by something that is not a quantifier, without top-level alternation. (PCRE2 reports no
// first code unit for anchored patterns, hence the text check; it only has to be safe.)
bool patternStartsWithSlash(std::string_view p) {
  if (hasTopLevelAlternation(p)) return false;
  if (!p.empty() && p.front() == '^') p.remove_prefix(1);
  if (p.starts_with("\\/")) {
    p.remove_prefix(2);
  } else if (p.starts_with("/")) {
    p.remove_prefix(1);
  } else {
    return false;
  }
  return p.empty() || (p.front() != '?' && p.front() != '*' && p.front() != '{');
}

// The literal text every match must begin with (the pattern is anchored): after an optional
// '^', plain characters and escaped punctuation up to the first metacharacter; a character
// followed by '?', '*' or '{' is optional and not part of it. Empty when unsure. Lets
// match() reject most routes of a large table with a memcmp instead of a PCRE2 call.
std::string literalPrefixOf(std::string_view p) {
  if (hasTopLevelAlternation(p)) return {};
  if (!p.empty() && p.front() == '^') p.remove_prefix(1);
  std::string prefix;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    size_t width = 1;
    if (c == '\\') {
      if (i + 1 >= p.size()) break;
      char e = p[i + 1];
      bool alnum = (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9');
      if (alnum || static_cast<unsigned char>(e) >= 0x80) break;  // \d, \b, \x41, ...
      c = e;
      width = 2;
    } else if (std::string_view(".[](){}*+?|^$").find(c) != std::string_view::npos) {
      break;
    }
    size_t next = i + width;
    if (next < p.size() && (p[next] == '?' || p[next] == '*' || p[next] == '{')) break;
    prefix.push_back(c);
    i = next;
    if (next < p.size() && p[next] == '+') break;
  }
  return prefix;
}

char foldAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

MatchLimits::MatchLimits(uint32_t matchLimit, uint32_t depthLimit) {
  context_ = pcre2_match_context_create(nullptr);
  NIMBUS_CHECK(context_ != nullptr);
  pcre2_set_match_limit(context_, matchLimit);
  pcre2_set_depth_limit(context_, depthLimit);
}

MatchLimits::~MatchLimits() { pcre2_match_context_free(context_); }

std::string_view Captures::group(uint32_t n) const {
  if (n >= spans_.size()) return {};
  auto [start, end] = spans_[n];
  if (start == kUnset) return {};
  return std::string_view(subject_).substr(start, end - start);
}

Result<Regex> Regex::compile(std::string_view pattern, CaseMode mode) {
  // Whole-subject match (spec 2.4.1) through compile options rather than by adding '^'/'$'
  // to the text, so a top-level alternation `a|b` is anchored as a whole.
  uint32_t options = PCRE2_ANCHORED | PCRE2_ENDANCHORED;
  if (mode == CaseMode::Insensitive) options |= PCRE2_CASELESS;
  int errorCode = 0;
  PCRE2_SIZE errorOffset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &errorCode, &errorOffset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(errorCode, buffer, sizeof buffer);
    return makeError(ErrorKind::Invalid, "invalid regular expression at offset " +
                                             std::to_string(errorOffset) + ": " +
                                             reinterpret_cast<const char*>(buffer));
  }
  Regex re;
  re.code_ = code;
  re.pattern_ = std::string(pattern);
  re.jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &re.captureCount_);

  re.startsWithSlash_ = patternStartsWithSlash(pattern);
  re.caseless_ = mode == CaseMode::Insensitive;
  re.prefix_ = literalPrefixOf(pattern);
  if (re.caseless_) {
    for (char& c : re.prefix_) c = foldAscii(c);
  }

  uint32_t nameCount = 0;
  uint32_t entrySize = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &nameCount);
  pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entrySize);
  pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
  for (uint32_t i = 0; i < nameCount; ++i) {
    const unsigned char* entry = table + static_cast<size_t>(i) * entrySize;
    uint32_t number = (static_cast<uint32_t>(entry[0]) << 8) | entry[1];
    re.names_.emplace_back(reinterpret_cast<const char*>(entry + 2), number);
  }
  // The name table is sorted by name; substitution wants pattern order.
  std::sort(re.names_.begin(), re.names_.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return re;
}

Regex::Regex(Regex&& other) noexcept
    : code_(std::exchange(other.code_, nullptr)),
      jit_(other.jit_),
      startsWithSlash_(other.startsWithSlash_),
      caseless_(other.caseless_),
      prefix_(std::move(other.prefix_)),
      captureCount_(other.captureCount_),
      names_(std::move(other.names_)),
      pattern_(std::move(other.pattern_)) {}

Regex& Regex::operator=(Regex&& other) noexcept {
  if (this != &other) {
    if (code_ != nullptr) pcre2_code_free(code_);
    code_ = std::exchange(other.code_, nullptr);
    jit_ = other.jit_;
    startsWithSlash_ = other.startsWithSlash_;
    caseless_ = other.caseless_;
    prefix_ = std::move(other.prefix_);
    captureCount_ = other.captureCount_;
    names_ = std::move(other.names_);
    pattern_ = std::move(other.pattern_);
  }
  return *this;
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(code_);
}

std::optional<uint32_t> Regex::groupNumber(std::string_view name) const {
  for (const auto& [n, number] : names_) {
    if (n == name) return number;
  }
  return std::nullopt;
}

MatchStatus Regex::match(std::string_view subject, const MatchLimits& limits,
                         Captures* captures) const {
  if (subject.size() < prefix_.size()) return MatchStatus::NoMatch;
  if (caseless_) {
    for (size_t i = 0; i < prefix_.size(); ++i) {
      if (foldAscii(subject[i]) != prefix_[i]) return MatchStatus::NoMatch;
    }
  } else if (subject.compare(0, prefix_.size(), prefix_) != 0) {
    return MatchStatus::NoMatch;
  }
  pcre2_match_data* data = threadMatchData.get(captureCount_ + 1);
  auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = jit_ ? pcre2_jit_match(code_, text, subject.size(), 0, 0, data, limits.context())
                : pcre2_match(code_, text, subject.size(), 0, 0, data, limits.context());
  if (rc == PCRE2_ERROR_NOMATCH) return MatchStatus::NoMatch;
  if (rc < 0) {
    // Match, depth, heap and JIT stack limits (and any other runtime error) end as no match;
    // the caller counts them.
    return MatchStatus::LimitHit;
  }
  if (captures != nullptr) {
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    captures->subject_.assign(subject);
    captures->spans_.resize(captureCount_ + 1);
    for (uint32_t i = 0; i <= captureCount_; ++i) {
      PCRE2_SIZE start = ovector[2 * i];
      PCRE2_SIZE end = ovector[2 * i + 1];
      // Groups above rc - 1 did not participate; PCRE2 leaves them unset too.
      if (static_cast<int>(i) >= rc || start == PCRE2_UNSET || end < start) {
        captures->spans_[i] = {Captures::kUnset, Captures::kUnset};
      } else {
        captures->spans_[i] = {start, end};
      }
    }
  }
  return MatchStatus::Matched;
}

}  // namespace nimbus::routing

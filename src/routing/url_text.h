#pragma once
// Small URL text helpers for routing: percent-decoding, query strings as ordered lists,
// absolute-URL detection. No allocation beyond the strings they produce.
#include <string>
#include <string_view>
#include <vector>

namespace nimbus::routing {

enum class PlusMode { Literal, Space };

// Appends the percent-decoded `in` to `out`; malformed escapes are copied verbatim.
void appendPercentDecoded(std::string_view in, PlusMode plus, std::string& out);
std::string percentDecoded(std::string_view in, PlusMode plus = PlusMode::Literal);

// One `key=value` of a query string, kept as sent (encoded) so the function receives the
// bytes the client sent; `name` is the decoded key, used for comparisons.
struct QueryParam {
  std::string key;
  std::string value;
  std::string name;
  bool hasEquals = false;  // "a=" vs "a"
};
using Query = std::vector<QueryParam>;

// Appends the parameters of `raw` (no leading '?'); empty pieces are dropped.
void parseQuery(std::string_view raw, Query& out);
// "a=1&b" — the encoded form, no leading '?'.
void appendQuery(const Query& query, std::string& out);
std::string formatQuery(const Query& query);
// The decoded value of the last parameter named `name`, or nullptr.
const QueryParam* findLastParam(const Query& query, std::string_view name);

// "http://..." or "https://..." (scheme case-insensitive).
bool isAbsoluteHttpUrl(std::string_view s);

// ASCII lower-casing.
std::string toLower(std::string_view s);
bool equalsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace nimbus::routing

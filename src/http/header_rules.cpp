#include "http/header_rules.h"

#include <cstring>

namespace nimbus::http::hdr {

namespace {
char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lowerChar(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
    if (!ok || c == '\0') return false;
  }
  return true;
}

bool isHopByHop(std::string_view lowerName) {
  static constexpr std::string_view kNames[] = {"connection",    "keep-alive",        "te",
                                                "trailer",       "transfer-encoding", "upgrade",
                                                "http2-settings"};
  for (auto n : kNames) {
    if (n == lowerName) return true;
  }
  return lowerName.starts_with("proxy-");
}

void addConnectionTokens(std::string_view value, std::vector<std::string>* out) {
  while (!value.empty()) {
    auto comma = value.find(',');
    auto token = trim(value.substr(0, comma));
    if (!token.empty()) out->push_back(lower(token));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

std::string cleanValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c != '\r' && c != '\n' && c != '\0') out.push_back(c);
  }
  return out;
}

void eraseHeader(Headers* h, std::string_view lowerName) {
  std::erase_if(*h, [&](const auto& kv) { return iequals(kv.first, lowerName); });
}

Headers composeResponseHeaders(const HeaderViews& origin, const Headers& route,
                               const Headers& important, const std::vector<std::string>& deletes) {
  std::vector<std::string> connectionTokens;
  for (const auto& [name, value] : origin) {
    if (iequals(name, "connection")) addConnectionTokens(value, &connectionTokens);
  }
  auto dropped = [&](std::string_view name) {
    // The server writes its own framing, date, server and request id.
    return !isToken(name) || isHopByHop(name) || name == "content-length" || name == "date" ||
           name == "server" || name == "x-nimbus-id" || contains(connectionTokens, name);
  };
  Headers out;
  for (const auto& [k, v] : route) {
    std::string name = lower(k);
    if (!dropped(name)) out.emplace_back(std::move(name), v);
  }
  std::vector<std::string> replaced;
  for (const auto& [k, v] : origin) {
    std::string name = lower(k);
    if (dropped(name)) continue;
    if (name != "set-cookie" && !contains(replaced, name)) {
      eraseHeader(&out, name);
      replaced.push_back(name);
    }
    out.emplace_back(std::move(name), std::string(v));
  }
  for (const auto& [k, v] : important) {
    std::string name = lower(k);
    if (dropped(name)) continue;
    if (name != "set-cookie") eraseHeader(&out, name);
    out.emplace_back(std::move(name), v);
  }
  for (const auto& name : deletes) eraseHeader(&out, name);
  return out;
}

}  // namespace nimbus::http::hdr

#include "routing/url_text.h"

namespace nimbus::routing {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

void appendPercentDecoded(std::string_view in, PlusMode plus, std::string& out) {
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = hexValue(in[i + 1]);
      int lo = hexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus == PlusMode::Space && c == '+' ? ' ' : c);
  }
}

std::string percentDecoded(std::string_view in, PlusMode plus) {
  std::string out;
  out.reserve(in.size());
  appendPercentDecoded(in, plus, out);
  return out;
}

void parseQuery(std::string_view raw, Query& out) {
  while (!raw.empty()) {
    size_t amp = raw.find('&');
    std::string_view piece = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (piece.empty()) continue;
    QueryParam param;
    size_t eq = piece.find('=');
    if (eq == std::string_view::npos) {
      param.key = std::string(piece);
    } else {
      param.key = std::string(piece.substr(0, eq));
      param.value = std::string(piece.substr(eq + 1));
      param.hasEquals = true;
    }
    if (param.key.find_first_of("%+") == std::string::npos) {
      param.name = param.key;
    } else {
      appendPercentDecoded(param.key, PlusMode::Space, param.name);
    }
    out.push_back(std::move(param));
  }
}

void appendQuery(const Query& query, std::string& out) {
  bool first = true;
  for (const QueryParam& p : query) {
    if (!first) out.push_back('&');
    first = false;
    out += p.key;
    if (p.hasEquals) {
      out.push_back('=');
      out += p.value;
    }
  }
}

std::string formatQuery(const Query& query) {
  std::string out;
  appendQuery(query, out);
  return out;
}

const QueryParam* findLastParam(const Query& query, std::string_view name) {
  for (auto it = query.rbegin(); it != query.rend(); ++it) {
    if (it->name == name) return &*it;
  }
  return nullptr;
}

bool isAbsoluteHttpUrl(std::string_view s) {
  auto startsWithIgnoreCase = [s](std::string_view prefix) {
    return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
  };
  return startsWithIgnoreCase("http://") || startsWithIgnoreCase("https://");
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lowerAscii(c);
  return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) return false;
  }
  return true;
}

}  // namespace nimbus::routing

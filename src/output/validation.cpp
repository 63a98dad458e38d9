#include "output/validation.h"

#include "output/json_kind.h"

#include <boost/json.hpp>
#include <cstdio>

#include "output/manifest.h"

namespace nimbus::output {

namespace json = boost::json;

namespace {

bool isControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// Parses `text` strictly (no comments, no trailing commas). On failure sets `*error` to
// "not valid JSON (line L, column C: <reason>)".
std::optional<json::value> parseJson(std::string_view text, std::string* error) {
  json::parser parser;
  json::error_code ec;
  size_t consumed = parser.write(text.data(), text.size(), ec);
  if (ec) {
    size_t line = 1;
    size_t column = 1;
    for (size_t i = 0; i < consumed && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    *error = "not valid JSON (line " + std::to_string(line) + ", column " + std::to_string(column) +
             ": " + ec.message() + ")";
    return std::nullopt;
  }
  return parser.release();
}


bool isNumberEqualTo(const json::value& v, int64_t n) {
  if (v.is_int64()) return v.get_int64() == n;
  if (v.is_uint64()) return n >= 0 && v.get_uint64() == static_cast<uint64_t>(n);
  if (v.is_double()) return v.get_double() == static_cast<double>(n);
  return false;
}

}  // namespace

std::string printablePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (char ch : path) {
    auto c = static_cast<unsigned char>(ch);
    if (isControl(c)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

std::vector<std::string> nameProblems(std::string_view name) {
  std::vector<std::string> out;
  if (name.find('\\') != std::string_view::npos) {
    out.push_back("contains a backslash; rename it (paths use '/' as the only separator)");
  }
  for (char ch : name) {
    if (isControl(static_cast<unsigned char>(ch))) {
      out.push_back("contains a NUL or control character; rename it to printable characters");
      break;
    }
  }
  if (name.size() > kMaxComponentBytes) {
    out.push_back("has a name of " + std::to_string(name.size()) + " bytes, more than the " +
                  std::to_string(kMaxComponentBytes) + " allowed; shorten it");
  }
  return out;
}

std::vector<std::string> pathProblems(std::string_view path) {
  std::vector<std::string> out;
  if (path.empty()) {
    out.push_back("empty path; every entry needs a path relative to the output directory");
    return out;
  }
  if (path.front() == '/') {
    out.push_back("starts with '/'; use a path relative to the output directory");
  }
  if (path.size() > 1 && path.back() == '/') {
    out.push_back("ends with '/'; name the file without a trailing slash");
  }
  if (path.find('\\') != std::string_view::npos) {
    out.push_back("contains a backslash; use '/' as the only separator");
  }
  for (char ch : path) {
    if (isControl(static_cast<unsigned char>(ch))) {
      out.push_back("contains a NUL or control character; rename it to printable characters");
      break;
    }
  }
  if (path.size() > kMaxPathBytes) {
    out.push_back("is " + std::to_string(path.size()) + " bytes long, more than the " +
                  std::to_string(kMaxPathBytes) + " allowed; shorten it");
  }
  // Components between the first and last character: a leading or trailing '/' was reported
  // above and must not count again as an empty component.
  std::string_view body = path;
  if (!body.empty() && body.front() == '/') body.remove_prefix(1);
  if (!body.empty() && body.back() == '/') body.remove_suffix(1);
  bool emptyComponent = false, dotComponent = false, longComponent = false;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('/', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view comp = body.substr(start, end - start);
    if (comp.empty()) {
      emptyComponent = emptyComponent || !body.empty();
    } else if (comp == "." || comp == "..") {
      dotComponent = true;
    } else if (comp.size() > kMaxComponentBytes) {
      longComponent = true;
    }
    start = end + 1;
  }
  if (emptyComponent) {
    out.push_back("has an empty component ('//'); remove the doubled slash");
  }
  if (dotComponent) {
    out.push_back("has a '.' or '..' component; use a normalised path without them");
  }
  if (longComponent) {
    out.push_back("has a component longer than " + std::to_string(kMaxComponentBytes) +
                  " bytes; shorten it");
  }
  return out;
}

std::optional<std::string> resolveLinkTarget(std::string_view linkPath, std::string_view target) {
  if (target.empty() || target.front() == '/') return std::nullopt;
  std::vector<std::string_view> parts;
  auto push = [&parts](std::string_view text) -> bool {
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('/', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view comp = text.substr(start, end - start);
      if (comp == "..") {
        if (parts.empty()) return false;
        parts.pop_back();
      } else if (!comp.empty() && comp != ".") {
        parts.push_back(comp);
      }
      start = end + 1;
    }
    return true;
  };
  size_t slash = linkPath.rfind('/');
  if (slash != std::string_view::npos && !push(linkPath.substr(0, slash))) return std::nullopt;
  if (!push(target)) return std::nullopt;
  std::string out;
  for (std::string_view comp : parts) {
    if (!out.empty()) out += '/';
    out += comp;
  }
  return out;
}

std::vector<std::string> symlinkProblems(std::string_view linkPath, std::string_view target) {
  std::vector<std::string> out;
  if (!target.empty() && target.front() == '/') {
    out.push_back("symlink target \"" + printablePath(target) +
                  "\" is absolute; use a relative target inside the output directory "
                  "(or replace the link with a copy of what it points to)");
    return out;
  }
  for (char ch : target) {
    if (isControl(static_cast<unsigned char>(ch))) {
      out.push_back(
          "symlink target contains a NUL or control character; recreate the link "
          "with a printable relative target");
      return out;
    }
  }
  if (!resolveLinkTarget(linkPath, target)) {
    out.push_back("symlink target \"" + printablePath(target) +
                  "\" resolves outside the output directory; point it at a file inside the "
                  "output directory or replace the link with a copy of what it points to");
  }
  return out;
}

std::vector<std::string> configJsonProblems(std::string_view text) {
  std::vector<std::string> out;
  std::string error;
  auto value = parseJson(text, &error);
  if (!value) {
    out.push_back(error + "; fix the syntax or rebuild the output");
    return out;
  }
  if (!value->is_object()) {
    out.push_back(std::string("is ") + jsonKindName(*value) +
                  ", expected a JSON object like {\"version\": 3}; rebuild the output");
    return out;
  }
  const json::object& obj = value->get_object();
  const json::value* version = obj.if_contains("version");
  if (version == nullptr) {
    out.push_back("has no \"version\"; a Build Output API v3 config needs \"version\": 3");
  } else if (!version->is_number()) {
    out.push_back(std::string("\"version\" is ") + jsonKindName(*version) +
                  ", expected the number 3; write \"version\": 3");
  } else if (!isNumberEqualTo(*version, 3)) {
    out.push_back("\"version\" is " + json::serialize(*version) +
                  ", expected 3; only Build Output API v3 is supported, rebuild with a "
                  "current framework adapter or `vercel build`");
  }
  if (const json::value* routes = obj.if_contains("routes"); routes && !routes->is_array()) {
    out.push_back(std::string("\"routes\" is ") + jsonKindName(*routes) +
                  ", expected an array of routes; fix or remove it");
  }
  if (const json::value* ov = obj.if_contains("overrides"); ov && !ov->is_object()) {
    out.push_back(std::string("\"overrides\" is ") + jsonKindName(*ov) +
                  ", expected an object keyed by static file path; fix or remove it");
  }
  return out;
}

std::vector<std::string> vcConfigProblems(std::string_view text) {
  std::vector<std::string> out;
  std::string error;
  auto value = parseJson(text, &error);
  if (!value) {
    out.push_back(error + "; fix the syntax or rebuild the output");
    return out;
  }
  if (!value->is_object()) {
    out.push_back(std::string("is ") + jsonKindName(*value) +
                  ", expected a JSON object like {\"runtime\": \"nodejs20.x\", \"handler\": "
                  "\"index.js\"}; rebuild the output");
    return out;
  }
  const json::object& obj = value->get_object();
  const json::value* runtime = obj.if_contains("runtime");
  const json::value* type = obj.if_contains("type");
  bool edge = (runtime && runtime->is_string() && runtime->get_string() == "edge") ||
              (type && type->is_string() && type->get_string() == "EdgeFunction");
  auto requireString = [&](const char* key, const char* example) {
    const json::value* v = obj.if_contains(key);
    if (v == nullptr) {
      out.push_back(std::string("has no \"") + key + "\"; add it, e.g. \"" + key + "\": \"" +
                    example + "\"");
    } else if (!v->is_string()) {
      out.push_back(std::string("\"") + key + "\" is " + jsonKindName(*v) +
                    ", expected a string, e.g. \"" + example + "\"");
    }
  };
  if (edge) {
    if (runtime && !runtime->is_string()) requireString("runtime", "edge");
    requireString("entrypoint", "index.js");
  } else {
    requireString("runtime", "nodejs20.x");
    requireString("handler", "index.js");
  }
  if (const json::value* lt = obj.if_contains("launcherType"); lt && !lt->is_string()) {
    out.push_back(std::string("\"launcherType\" is ") + jsonKindName(*lt) +
                  ", expected a string such as \"Nodejs\"; fix or remove it");
  }
  return out;
}

std::string formatProblemList(std::string_view headline,
                              const std::vector<std::pair<std::string, std::string>>& lines) {
  std::string out(headline);
  size_t listed = 0;
  for (const auto& [path, problem] : lines) {
    if (listed == kMaxListedProblems) {
      out += "\n... and " + std::to_string(lines.size() - listed) +
             " more problems; fix the ones above and try again";
      break;
    }
    out += '\n';
    out += printablePath(path);
    out += ": ";
    out += problem;
    ++listed;
  }
  return out;
}

const char* jsonKindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

}  // namespace nimbus::output

// config.json -> CompiledConfig: every field of spec 2.2/2.3 type-checked, regexes compiled,
// `$` tokens resolved. Problems are collected, not thrown: one line per problem.
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <set>

#include "output/json_kind.h"
#include "routing/route_model.h"
#include "routing/url_text.h"

namespace nimbus::routing {

namespace json = boost::json;

std::string_view phaseName(Phase phase) {
  switch (phase) {
    case Phase::None:
      return "none";
    case Phase::Filesystem:
      return "filesystem";
    case Phase::Miss:
      return "miss";
    case Phase::Rewrite:
      return "rewrite";
    case Phase::Hit:
      return "hit";
    case Phase::Error:
      return "error";
    case Phase::Resource:
      return "resource";
  }
  return "?";
}

namespace {

std::optional<Phase> phaseFromHandle(std::string_view handle) {
  if (handle == "filesystem") return Phase::Filesystem;
  if (handle == "miss") return Phase::Miss;
  if (handle == "rewrite") return Phase::Rewrite;
  if (handle == "hit") return Phase::Hit;
  if (handle == "error") return Phase::Error;
  if (handle == "resource") return Phase::Resource;
  return std::nullopt;
}

std::string typeName(const json::value& v) { return output::jsonKindName(v); }

std::optional<double> numberOf(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  return std::nullopt;
}

// JS `String(number)` for the integers and simple decimals that appear in configs.
std::string numberText(double d) {
  if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
  std::string s = std::to_string(d);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

bool isTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// RFC 9110 token characters for header names.
bool isHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool hasControlChars(std::string_view value) {
  return std::any_of(value.begin(), value.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

enum class UnknownToken { Empty, Verbatim };

// Names a route's templates can refer to, besides numbered groups.
struct TokenScope {
  const Regex* src = nullptr;
  const std::vector<std::string>* slotNames = nullptr;
};

Template compileTemplate(std::string_view text, const TokenScope& scope, UnknownToken unknown) {
  Template t;
  auto addLiteral = [&t](std::string_view s) {
    if (s.empty()) return;
    if (!t.pieces.empty() && t.pieces.back().kind == TemplatePiece::Kind::Literal) {
      t.pieces.back().text += s;
    } else {
      t.pieces.push_back({TemplatePiece::Kind::Literal, 0, std::string(s)});
    }
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t dollar = text.find('$', i);
    if (dollar == std::string_view::npos) {
      addLiteral(text.substr(i));
      break;
    }
    addLiteral(text.substr(i, dollar - i));
    size_t end = dollar + 1;
    while (end < text.size() && isTokenChar(text[end])) ++end;
    std::string_view token = text.substr(dollar + 1, end - dollar - 1);
    i = end;
    if (token.empty()) {
      addLiteral("$");
      continue;
    }
    if (scope.src != nullptr) {
      if (auto group = scope.src->groupNumber(token)) {
        t.pieces.push_back({TemplatePiece::Kind::Group, *group, {}});
        continue;
      }
    }
    if (scope.slotNames != nullptr) {
      auto it = std::find(scope.slotNames->begin(), scope.slotNames->end(), token);
      if (it != scope.slotNames->end()) {
        t.pieces.push_back({TemplatePiece::Kind::HasValue,
                            static_cast<uint32_t>(it - scope.slotNames->begin()),
                            {}});
        continue;
      }
    }
    if (token == "wildcard") {
      t.pieces.push_back({TemplatePiece::Kind::Wildcard, 0, {}});
      continue;
    }
    // Numbered groups. Like Vercel dev and build-output-router (JS parseInt), only the
    // leading digits count: "$1abc" is group 1 and "abc" is consumed.
    size_t digits = 0;
    while (digits < token.size() && token[digits] >= '0' && token[digits] <= '9') ++digits;
    uint32_t captureCount = scope.src != nullptr ? scope.src->captureCount() : 0;
    if (unknown == UnknownToken::Verbatim) {
      // Transforms (Vercel dev expandCaptureGroups): only all-digit tokens naming an existing
      // group are replaced; anything else stays as written.
      if (digits == token.size() && digits <= 9) {
        uint32_t n = static_cast<uint32_t>(std::stoul(std::string(token)));
        if (n <= captureCount) {
          t.pieces.push_back({TemplatePiece::Kind::Group, n, {}});
          continue;
        }
      }
      addLiteral(text.substr(dollar, end - dollar));
      continue;
    }
    if (digits > 0 && digits <= 9) {
      uint32_t n = static_cast<uint32_t>(std::stoul(std::string(token.substr(0, digits))));
      if (n <= captureCount) t.pieces.push_back({TemplatePiece::Kind::Group, n, {}});
    }
    // Unknown names and groups the pattern does not have become "".
  }
  return t;
}

class Compiler {
 public:
  Result<CompiledConfig> run(std::string_view text) {
    json::value root;
    {
      boost::system::error_code ec;
      root = json::parse(json::string_view(text.data(), text.size()), ec);
      if (ec) {
        return makeError(ErrorKind::Invalid, "config.json is not valid JSON (" + ec.message() +
                                                 "); fix the file the framework adapter wrote");
      }
    }
    if (!root.is_object()) {
      return makeError(ErrorKind::Invalid,
                       "config.json must be a JSON object, got " + typeName(root));
    }
    const json::object& config = root.get_object();
    if (const json::value* version = config.if_contains("version")) {
      auto n = numberOf(*version);
      if (!n || *n != 3) problem("version", "must be 3 (Build Output API v3)");
    }
    if (const json::value* routes = config.if_contains("routes")) {
      if (routes->is_array()) {
        compileRoutes(routes->get_array());
      } else if (!routes->is_null()) {
        problem("routes", "must be an array of routes, got " + typeName(*routes));
      }
    }
    if (const json::value* wildcard = config.if_contains("wildcard")) {
      compileWildcard(*wildcard);
    }
    if (!problems_.empty()) {
      std::string message = "config.json routes are invalid (" + std::to_string(problems_.size()) +
                            (problems_.size() == 1 ? " problem" : " problems") + "):";
      for (const std::string& p : problems_) message += "\n  " + p;
      return makeError(ErrorKind::Invalid, std::move(message));
    }
    return std::move(out_);
  }

 private:
  void problem(const std::string& where, const std::string& what) {
    problems_.push_back(where + ": " + what);
  }

  void compileWildcard(const json::value& v) {
    if (!v.is_array()) {
      problem("wildcard",
              "must be an array of {\"domain\", \"value\"} objects, got " + typeName(v));
      return;
    }
    const json::array& items = v.get_array();
    for (size_t i = 0; i < items.size(); ++i) {
      std::string where = "wildcard[" + std::to_string(i) + "]";
      const json::object* item = items[i].if_object();
      const json::value* domain = item != nullptr ? item->if_contains("domain") : nullptr;
      const json::value* value = item != nullptr ? item->if_contains("value") : nullptr;
      if (domain == nullptr || !domain->is_string() || value == nullptr || !value->is_string()) {
        problem(where, "must be an object with string \"domain\" and \"value\"");
        continue;
      }
      out_.wildcard.emplace_back(toLower(std::string_view(domain->get_string())),
                                 std::string(value->get_string()));
    }
  }

  void compileRoutes(const json::array& routes) {
    Phase phase = Phase::None;
    std::array<int, kPhaseCount> handleAt{};
    handleAt.fill(-1);
    for (size_t i = 0; i < routes.size(); ++i) {
      std::string where = "routes[" + std::to_string(i) + "]";
      const json::object* route = routes[i].if_object();
      if (route == nullptr) {
        problem(where, "must be an object, got " + typeName(routes[i]));
        continue;
      }
      if (const json::value* handle = route->if_contains("handle")) {
        if (!handle->is_string()) {
          problem(where + ".handle", "must be a string, got " + typeName(*handle));
          continue;
        }
        std::string_view name = handle->get_string();
        std::optional<Phase> next = phaseFromHandle(name);
        if (!next) {
          problem(where + ".handle", "unknown value \"" + std::string(name) +
                                         "\"; use one of filesystem, miss, rewrite, resource, "
                                         "hit, error");
          continue;
        }
        auto slot = static_cast<size_t>(*next);
        if (handleAt[slot] >= 0) {
          problem(where + ".handle",
                  "\"" + std::string(name) + "\" appears twice (first at routes[" +
                      std::to_string(handleAt[slot]) + "]); each handle may appear at most once");
        } else {
          handleAt[slot] = static_cast<int>(i);
        }
        for (const auto& field : *route) {
          if (field.key() != "handle") {
            problem(where + "." + std::string(field.key()),
                    "a handle route may have no other fields; move it to a source route");
          }
        }
        phase = *next;
        continue;
      }
      std::optional<Route> compiled = compileRoute(*route, where, static_cast<uint32_t>(i));
      if (compiled) {
        compiled->phase = phase;
        out_.maxCaptureCount = std::max(out_.maxCaptureCount, compiled->src->captureCount());
        out_.maxHasSlots = std::max(out_.maxHasSlots, compiled->hasSlotCount);
        if (!compiled->middlewarePath.empty()) {
          std::string key = compiled->middlewarePath;
          while (!key.empty() && key.front() == '/') key.erase(key.begin());
          if (std::find(out_.middlewareKeys.begin(), out_.middlewareKeys.end(), key) ==
              out_.middlewareKeys.end()) {
            out_.middlewareKeys.push_back(key);
          }
        }
        out_.phases[static_cast<size_t>(phase)].push_back(std::move(*compiled));
        ++out_.routeCount;
      }
    }
  }

  // A field and its alias (`src`/`source`, `dest`/`destination`, `status`/`statusCode`).
  const json::value* aliased(const json::object& route, const std::string& where,
                             std::string_view name, std::string_view alias) {
    const json::value* a = route.if_contains(name);
    const json::value* b = route.if_contains(alias);
    if (alias == "destination" && b != nullptr && b->is_object()) b = nullptr;  // service handoff
    if (a != nullptr && b != nullptr) {
      problem(where + "." + std::string(alias),
              "cannot be set together with \"" + std::string(name) + "\"; keep one of them");
      return a;
    }
    return a != nullptr ? a : b;
  }

  std::optional<bool> boolField(const json::object& route, const std::string& where,
                                std::string_view name) {
    const json::value* v = route.if_contains(name);
    if (v == nullptr) return false;
    if (!v->is_bool()) {
      problem(where + "." + std::string(name), "must be true or false, got " + typeName(*v));
      return std::nullopt;
    }
    return v->get_bool();
  }

  bool checkStringArray(const json::value& v, const std::string& where) {
    if (!v.is_array()) {
      problem(where, "must be an array of strings, got " + typeName(v));
      return false;
    }
    bool ok = true;
    for (size_t j = 0; j < v.get_array().size(); ++j) {
      if (!v.get_array()[j].is_string()) {
        problem(where + "[" + std::to_string(j) + "]",
                "must be a string, got " + typeName(v.get_array()[j]));
        ok = false;
      }
    }
    return ok;
  }

  std::optional<Route> compileRoute(const json::object& obj, const std::string& where,
                                    uint32_t index) {
    size_t problemsBefore = problems_.size();
    Route route;
    route.index = index;

    auto flag = [&](std::string_view name, bool& target) {
      if (auto b = boolField(obj, where, name)) target = *b;
    };
    flag("continue", route.continues);
    flag("check", route.check);
    flag("override", route.overrides);
    flag("important", route.important);
    bool caseSensitive = false;
    flag("caseSensitive", caseSensitive);
    bool ignored = false;
    flag("respectOriginCacheControl", ignored);

    const json::value* src = aliased(obj, where, "src", "source");
    if (src == nullptr) {
      problem(where, "has neither \"src\" nor \"handle\"; add a \"src\" regular expression");
    } else if (!src->is_string()) {
      problem(where + ".src", "must be a string (a regular expression), got " + typeName(*src));
    } else {
      auto re = Regex::compile(std::string_view(src->get_string()),
                               caseSensitive ? CaseMode::Sensitive : CaseMode::Insensitive);
      if (re) {
        route.src.emplace(std::move(*re));
      } else {
        problem(where + ".src",
                re.error().message + " in \"" + std::string(src->get_string()) + "\"");
      }
    }

    if (const json::value* status = aliased(obj, where, "status", "statusCode")) {
      auto n = numberOf(*status);
      if (!n || std::floor(*n) != *n || *n < 100 || *n > 999) {
        problem(where + ".status",
                "must be an integer from 100 to 999, got " + json::serialize(*status));
      } else {
        route.status = static_cast<int>(*n);
      }
    }

    if (const json::value* methods = obj.if_contains("methods")) {
      if (checkStringArray(*methods, where + ".methods")) {
        for (const auto& m : methods->get_array()) {
          std::string upper(m.get_string());
          for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
          route.methods.push_back(std::move(upper));
        }
      }
    }

    // has/missing first: their named groups are substitution names for dest and headers.
    std::vector<std::string> slotNames;
    if (const json::value* has = obj.if_contains("has")) {
      compileConditions(*has, where + ".has", route.has, &slotNames);
    }
    if (const json::value* missing = obj.if_contains("missing")) {
      compileConditions(*missing, where + ".missing", route.missing, nullptr);
    }
    route.hasSlotCount = static_cast<uint32_t>(slotNames.size());
    TokenScope scope{route.src ? &*route.src : nullptr, &slotNames};

    if (const json::value* dest = aliased(obj, where, "dest", "destination")) {
      if (!dest->is_string()) {
        problem(where + ".dest",
                "must be a string (a path or an absolute URL), got " + typeName(*dest));
      } else {
        route.dest =
            compileTemplate(std::string_view(dest->get_string()), scope, UnknownToken::Empty);
      }
    }

    if (const json::value* headers = obj.if_contains("headers")) {
      if (!headers->is_object()) {
        problem(where + ".headers",
                "must be an object of header name to string value, got " + typeName(*headers));
      } else {
        for (const auto& field : headers->get_object()) {
          std::string name(field.key());
          std::string fieldWhere = where + ".headers[\"" + name + "\"]";
          if (!isHeaderName(name)) {
            problem(fieldWhere, "is not a valid HTTP header name");
            continue;
          }
          if (!field.value().is_string()) {
            problem(fieldWhere, "must be a string, got " + typeName(field.value()));
            continue;
          }
          std::string_view value = field.value().get_string();
          if (hasControlChars(value)) {
            problem(fieldWhere, "contains CR, LF or NUL; header values must be one line");
            continue;
          }
          route.headers.push_back(
              {toLower(name), compileTemplate(value, scope, UnknownToken::Empty)});
        }
      }
    }

    if (const json::value* locale = obj.if_contains("locale")) {
      compileLocale(*locale, where + ".locale", route);
    }

    if (const json::value* mw = obj.if_contains("middlewarePath")) {
      if (!mw->is_string() || mw->get_string().empty()) {
        problem(where + ".middlewarePath", "must be a non-empty string (a function output key)");
      } else {
        route.middlewarePath = std::string(mw->get_string());
      }
    }
    if (const json::value* raw = obj.if_contains("middlewareRawSrc")) {
      checkStringArray(*raw, where + ".middlewareRawSrc");
    }
    if (const json::value* env = obj.if_contains("env")) {
      checkStringArray(*env, where + ".env");
    }
    if (const json::value* mitigate = obj.if_contains("mitigate")) {
      const json::object* m = mitigate->if_object();
      const json::value* action = m != nullptr ? m->if_contains("action") : nullptr;
      if (action == nullptr || !action->is_string() ||
          (action->get_string() != "challenge" && action->get_string() != "deny")) {
        problem(where + ".mitigate", "must be {\"action\": \"challenge\" or \"deny\"}");
      }
    }
    if (const json::value* transforms = obj.if_contains("transforms")) {
      compileTransforms(*transforms, where + ".transforms", scope, route);
    }

    if (problems_.size() != problemsBefore) return std::nullopt;
    return route;
  }

  void compileLocale(const json::value& v, const std::string& where, Route& route) {
    const json::object* obj = v.if_object();
    if (obj == nullptr) {
      problem(where, "must be an object {\"redirect\"?, \"cookie\"?}, got " + typeName(v));
      return;
    }
    Locale locale;
    if (const json::value* redirect = obj->if_contains("redirect")) {
      if (!redirect->is_object()) {
        problem(where + ".redirect",
                "must be an object of language to path, got " + typeName(*redirect));
      } else {
        for (const auto& field : redirect->get_object()) {
          if (!field.value().is_string()) {
            problem(where + ".redirect[\"" + std::string(field.key()) + "\"]",
                    "must be a string path, got " + typeName(field.value()));
            continue;
          }
          locale.redirect.emplace_back(toLower(std::string_view(field.key())),
                                       std::string(field.value().get_string()));
        }
      }
    }
    if (const json::value* cookie = obj->if_contains("cookie")) {
      if (!cookie->is_string()) {
        problem(where + ".cookie", "must be a string (a cookie name), got " + typeName(*cookie));
      } else {
        locale.cookie = std::string(cookie->get_string());
      }
    }
    route.locale = std::move(locale);
  }

  static uint32_t slotFor(std::vector<std::string>& names, std::string_view name) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it != names.end()) return static_cast<uint32_t>(it - names.begin());
    names.emplace_back(name);
    return static_cast<uint32_t>(names.size() - 1);
  }

  // `slotNames` is null for `missing` (its items never provide substitution values).
  void compileConditions(const json::value& v, const std::string& where,
                         std::vector<HasCondition>& out, std::vector<std::string>* slotNames) {
    if (!v.is_array()) {
      problem(where, "must be an array of conditions, got " + typeName(v));
      return;
    }
    const json::array& items = v.get_array();
    for (size_t j = 0; j < items.size(); ++j) {
      std::string itemWhere = where + "[" + std::to_string(j) + "]";
      const json::object* item = items[j].if_object();
      if (item == nullptr) {
        problem(itemWhere,
                "must be an object {\"type\", \"key\"?, \"value\"?}, got " + typeName(items[j]));
        continue;
      }
      HasCondition cond;
      const json::value* type = item->if_contains("type");
      if (type == nullptr || !type->is_string()) {
        problem(itemWhere + ".type", "must be one of \"host\", \"header\", \"cookie\", \"query\"");
        continue;
      }
      std::string_view typeText = type->get_string();
      if (typeText == "host") {
        cond.type = HasType::Host;
      } else if (typeText == "header") {
        cond.type = HasType::Header;
      } else if (typeText == "cookie") {
        cond.type = HasType::Cookie;
      } else if (typeText == "query") {
        cond.type = HasType::Query;
      } else {
        problem(itemWhere + ".type", "unknown value \"" + std::string(typeText) +
                                         "\"; use host, header, cookie or query");
        continue;
      }
      const json::value* key = item->if_contains("key");
      if (cond.type != HasType::Host) {
        if (key == nullptr || !key->is_string() || key->get_string().empty()) {
          problem(itemWhere + ".key",
                  "must be a non-empty string for type \"" + std::string(typeText) + "\"");
          continue;
        }
        cond.key = cond.type == HasType::Header ? toLower(std::string_view(key->get_string()))
                                                : std::string(key->get_string());
      }
      const json::value* value = item->if_contains("value");
      if (value == nullptr && cond.type == HasType::Host) {
        problem(itemWhere + ".value", "is required for type \"host\"");
        continue;
      }
      if (value != nullptr) {
        auto m = compileMatchable(*value, itemWhere + ".value", slotNames);
        if (!m) continue;
        cond.value = std::move(*m);
        if (slotNames != nullptr && cond.type == HasType::Host && cond.value->re &&
            cond.value->re->names().empty()) {
          cond.hostSlot = slotFor(*slotNames, "host");
        }
      } else if (slotNames != nullptr) {
        // Vercel (routing-utils) exposes the raw key; Next.js the key's letters only.
        cond.presenceSlots.push_back(slotFor(*slotNames, std::string(key->get_string())));
        std::string letters;
        for (char c : key->get_string()) {
          if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) letters.push_back(c);
        }
        if (!letters.empty() && letters != std::string_view(key->get_string())) {
          cond.presenceSlots.push_back(slotFor(*slotNames, letters));
        }
      }
      out.push_back(std::move(cond));
    }
  }

  std::optional<Matchable> compileMatchable(const json::value& v, const std::string& where,
                                            std::vector<std::string>* slotNames) {
    Matchable m;
    auto compileRe = [&](std::string_view pattern, const std::string& at) -> bool {
      // Case-sensitive and whole-value, like Next.js matchHas (`^value$`).
      auto re = Regex::compile(pattern, CaseMode::Sensitive);
      if (!re) {
        problem(at, re.error().message + " in \"" + std::string(pattern) + "\"");
        return false;
      }
      if (slotNames != nullptr) {
        for (const auto& [name, group] : re->names()) {
          m.captureSlots.emplace_back(group, slotFor(*slotNames, name));
        }
      }
      m.re.emplace(std::move(*re));
      return true;
    };
    if (v.is_string()) {
      if (!compileRe(std::string_view(v.get_string()), where)) return std::nullopt;
      return m;
    }
    if (!v.is_object()) {
      problem(where,
              "must be a regular expression string or an operator object "
              "(eq, neq, inc, ninc, pre, suf, re, gt, gte, lt, lte), got " +
                  typeName(v));
      return std::nullopt;
    }
    bool ok = true;
    for (const auto& field : v.get_object()) {
      std::string_view op = field.key();
      const json::value& arg = field.value();
      std::string at = where + "." + std::string(op);
      if (op == "eq" || op == "neq") {
        std::optional<std::string> text;
        if (arg.is_string()) {
          text = std::string(arg.get_string());
        } else if (auto n = numberOf(arg)) {
          text = numberText(*n);
        } else {
          problem(at, "must be a string or a number, got " + typeName(arg));
          ok = false;
          continue;
        }
        (op == "eq" ? m.eq : m.neq) = std::move(text);
      } else if (op == "inc" || op == "ninc") {
        if (!checkStringArray(arg, at)) {
          ok = false;
          continue;
        }
        auto& list = op == "inc" ? m.inc : m.ninc;
        for (const auto& s : arg.get_array()) list.emplace_back(s.get_string());
      } else if (op == "pre" || op == "suf") {
        if (!arg.is_string()) {
          problem(at, "must be a string, got " + typeName(arg));
          ok = false;
          continue;
        }
        (op == "pre" ? m.pre : m.suf) = std::string(arg.get_string());
      } else if (op == "re") {
        if (!arg.is_string()) {
          problem(at, "must be a regular expression string, got " + typeName(arg));
          ok = false;
          continue;
        }
        if (!compileRe(std::string_view(arg.get_string()), at)) ok = false;
      } else if (op == "gt" || op == "gte" || op == "lt" || op == "lte") {
        auto n = numberOf(arg);
        if (!n) {
          problem(at, "must be a number, got " + typeName(arg));
          ok = false;
          continue;
        }
        (op == "gt" ? m.gt : op == "gte" ? m.gte : op == "lt" ? m.lt : m.lte) = *n;
      } else {
        problem(at, "unknown operator; use eq, neq, inc, ninc, pre, suf, re, gt, gte, lt or lte");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return m;
  }

  bool compileKeySelector(const json::value& v, const std::string& where, const TokenScope& scope,
                          KeySelector& out) {
    if (v.is_string()) {
      out.key = compileTemplate(std::string_view(v.get_string()), scope, UnknownToken::Verbatim);
      return true;
    }
    if (!v.is_object()) {
      problem(where, "must be a string or an operator object, got " + typeName(v));
      return false;
    }
    bool ok = true;
    for (const auto& field : v.get_object()) {
      std::string_view op = field.key();
      const json::value& arg = field.value();
      std::string at = where + "." + std::string(op);
      if (op == "eq" || op == "neq" || op == "pre" || op == "suf" || op == "sub") {
        std::optional<std::string> text;
        if (arg.is_string()) {
          text = toLower(std::string_view(arg.get_string()));
        } else if (auto n = numberOf(arg); n && (op == "eq" || op == "neq")) {
          text = numberText(*n);
        } else {
          problem(at, "must be a string, got " + typeName(arg));
          ok = false;
          continue;
        }
        (op == "eq"    ? out.eq
         : op == "neq" ? out.neq
         : op == "pre" ? out.pre
         : op == "suf" ? out.suf
                       : out.sub) = std::move(text);
      } else if (op == "inc" || op == "ninc") {
        if (!checkStringArray(arg, at)) {
          ok = false;
          continue;
        }
        auto& list = op == "inc" ? out.inc : out.ninc;
        for (const auto& s : arg.get_array())
          list.push_back(toLower(std::string_view(s.get_string())));
      } else if (op == "gt" || op == "gte" || op == "lt" || op == "lte") {
        auto n = numberOf(arg);
        if (!n) {
          problem(at, "must be a number, got " + typeName(arg));
          ok = false;
          continue;
        }
        (op == "gt" ? out.gt : op == "gte" ? out.gte : op == "lt" ? out.lt : out.lte) = *n;
      } else {
        problem(at, "unknown operator; use eq, neq, inc, ninc, pre, suf, sub, gt, gte, lt or lte");
        ok = false;
      }
    }
    return ok;
  }

  void compileTransforms(const json::value& v, const std::string& where, const TokenScope& scope,
                         Route& route) {
    if (!v.is_array()) {
      problem(where, "must be an array of transforms, got " + typeName(v));
      return;
    }
    const json::array& items = v.get_array();
    for (size_t j = 0; j < items.size(); ++j) {
      std::string at = where + "[" + std::to_string(j) + "]";
      const json::object* item = items[j].if_object();
      if (item == nullptr) {
        problem(at, "must be an object {\"type\", \"op\", \"target\"?, \"args\"?}, got " +
                        typeName(items[j]));
        continue;
      }
      Transform t;
      const json::value* type = item->if_contains("type");
      std::string_view typeText = type != nullptr && type->is_string()
                                      ? std::string_view(type->get_string())
                                      : std::string_view();
      if (typeText == "request.headers") {
        t.type = TransformType::RequestHeaders;
      } else if (typeText == "request.query") {
        t.type = TransformType::RequestQuery;
      } else if (typeText == "response.headers") {
        t.type = TransformType::ResponseHeaders;
      } else if (typeText == "request.path") {
        t.type = TransformType::RequestPath;
      } else {
        problem(at + ".type",
                "must be one of \"request.headers\", \"request.query\", "
                "\"response.headers\", \"request.path\"");
        continue;
      }
      const json::value* op = item->if_contains("op");
      std::string_view opText = op != nullptr && op->is_string()
                                    ? std::string_view(op->get_string())
                                    : std::string_view();
      if (opText == "set") {
        t.op = TransformOp::Set;
      } else if (opText == "append") {
        t.op = TransformOp::Append;
      } else if (opText == "delete") {
        t.op = TransformOp::Delete;
      } else {
        problem(at + ".op", "must be one of \"set\", \"append\", \"delete\"");
        continue;
      }
      const json::value* args = item->if_contains("args");
      bool ok = true;
      if (args != nullptr && !args->is_null()) {
        if (args->is_string()) {
          t.args.push_back(
              compileTemplate(std::string_view(args->get_string()), scope, UnknownToken::Verbatim));
        } else if (checkStringArray(*args, at + ".args")) {
          for (const auto& a : args->get_array()) {
            t.args.push_back(
                compileTemplate(std::string_view(a.get_string()), scope, UnknownToken::Verbatim));
          }
        } else {
          ok = false;
        }
      }
      if (const json::value* env = item->if_contains("env")) {
        if (!checkStringArray(*env, at + ".env")) ok = false;
      }
      if (t.type == TransformType::RequestPath) {
        if (t.op != TransformOp::Set || args == nullptr || !args->is_string()) {
          problem(at, "a \"request.path\" transform needs \"op\": \"set\" and a string \"args\"");
          continue;
        }
      } else {
        const json::value* target = item->if_contains("target");
        const json::object* targetObj = target != nullptr ? target->if_object() : nullptr;
        const json::value* key = targetObj != nullptr ? targetObj->if_contains("key") : nullptr;
        if (key == nullptr) {
          problem(at + ".target",
                  "must be an object with a \"key\" (a name or an operator "
                  "object)");
          continue;
        }
        if (!compileKeySelector(*key, at + ".target.key", scope, t.target)) ok = false;
      }
      if (ok) route.transforms.push_back(std::move(t));
    }
  }

  CompiledConfig out_;
  std::vector<std::string> problems_;
};

}  // namespace

Result<CompiledConfig> compileConfig(std::string_view configJson) {
  return Compiler().run(configJson);
}

}  // namespace nimbus::routing

// Runs every case of tests/routing/*.json (format: tests/routing/README.md) as its own
// GoogleTest test, named Conformance_<file>_<suite>.<case> (non-alphanumerics become '_').
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "output/build_output.h"
#include "routing/output_listing.h"
#include "routing/routing.h"
#include "routing/url_text.h"

namespace nimbus::routing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string casesDir() {
  if (const char* env = std::getenv("NIMBUS_ROUTING_CASES"); env != nullptr && *env != '\0') {
    return env;
  }
  return NIMBUS_ROUTING_CASES_DIR;
}

std::string fixturesDir() {
  if (const char* env = std::getenv("NIMBUS_FIXTURES"); env != nullptr && *env != '\0') return env;
  return NIMBUS_FIXTURES_DIR;
}

std::optional<std::string> readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "unnamed" : out;
}

// One suite of a file, shared by its cases; the table is compiled on first use.
struct Suite {
  std::string file;
  std::string name;
  std::string configJson;
  std::string configProblem;  // could not read the config: the reason
  bool skip = false;          // the fixture directory is missing
  output::DeploymentOutput outputs;
  std::optional<std::string> fixture;  // "fromFixture": listed on first use
  std::string outputsProblem;
  std::once_flag compiled;
  std::shared_ptr<const RouteTable> table;
  std::string compileError;
  std::unique_ptr<OutputIndex> index;

  void compile();
};

void loadOutputsFromFixture(Suite& suite, const std::string& name);

void Suite::compile() {
  std::call_once(compiled, [this] {
    if (fixture && !skip) loadOutputsFromFixture(*this, *fixture);
    auto t = RouteTable::compile(configJson);
    if (t) {
      table = std::move(*t);
    } else {
      compileError = t.error().message;
    }
    index = makeOutputIndex(outputs);
  });
}

std::string kindName(DecisionKind k) {
  switch (k) {
    case DecisionKind::Static:
      return "static";
    case DecisionKind::Function:
      return "function";
    case DecisionKind::Redirect:
      return "redirect";
    case DecisionKind::Proxy:
      return "proxy";
    case DecisionKind::Error:
      return "error";
    case DecisionKind::Middleware:
      return "middleware";
  }
  return "?";
}

std::string headersText(const Headers& headers) {
  std::string out = "{";
  for (const auto& [n, v] : headers) {
    if (out.size() > 1) out += ", ";
    out += n + ": " + v;
  }
  return out + "}";
}

std::string describe(const Decision& d) {
  std::ostringstream o;
  o << "kind=" << kindName(d.kind) << " status=" << d.status << " key=\"" << d.key << "\"";
  if (!d.path.empty()) o << " path=\"" << d.path << "\"";
  if (!d.query.empty()) o << " query=\"" << d.query << "\"";
  if (!d.location.empty()) o << " location=\"" << d.location << "\"";
  if (!d.url.empty()) o << " url=\"" << d.url << "\"";
  if (!d.errorCode.empty()) o << " errorCode=" << d.errorCode;
  if (!d.middlewareKey.empty()) o << " middlewareKey=" << d.middlewareKey;
  o << " headers=" << headersText(d.headers);
  if (!d.importantHeaders.empty()) o << " important=" << headersText(d.importantHeaders);
  if (!d.responseHeaderDeletes.empty()) {
    o << " deletes=[";
    for (const auto& n : d.responseHeaderDeletes) o << n << " ";
    o << "]";
  }
  return o.str();
}

// Route headers, then important ones replacing by name, then deletes (docs/routing.md).
Headers effectiveHeaders(const Decision& d) {
  Headers merged = d.headers;
  std::set<std::string> importantNames;
  for (const auto& [n, v] : d.importantHeaders) importantNames.insert(n);
  std::erase_if(merged, [&](const auto& h) { return importantNames.contains(h.first); });
  for (const auto& h : d.importantHeaders) merged.push_back(h);
  std::erase_if(merged, [&](const auto& h) {
    return std::find(d.responseHeaderDeletes.begin(), d.responseHeaderDeletes.end(), h.first) !=
           d.responseHeaderDeletes.end();
  });
  return merged;
}

std::vector<std::string> valuesOf(const Headers& headers, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (n == name) out.push_back(v);
  }
  return out;
}

std::map<std::string, std::vector<std::string>> parseQueryObject(std::string_view raw) {
  std::map<std::string, std::vector<std::string>> out;
  Query q;
  parseQuery(raw, q);
  for (const auto& p : q) {
    out[p.name].push_back(percentDecoded(p.value, PlusMode::Space));
  }
  return out;
}

std::string queryText(const std::map<std::string, std::vector<std::string>>& q) {
  json::object o;
  for (const auto& [k, vs] : q) {
    if (vs.size() == 1) {
      o[k] = vs[0];
    } else {
      json::array a;
      for (const auto& v : vs) a.push_back(json::value(v));
      o[k] = a;
    }
  }
  return json::serialize(o);
}

std::vector<std::string> stringList(const json::value& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.emplace_back(v.get_string());
  } else if (v.is_array()) {
    for (const auto& x : v.get_array()) {
      if (x.is_string()) out.emplace_back(x.get_string());
    }
  }
  return out;
}

void expectHeaderSubset(const json::value& expected, const Headers& actual, const char* what,
                        const std::string& context) {
  ASSERT_TRUE(expected.is_object()) << context << ": expect." << what << " must be an object";
  for (const auto& field : expected.get_object()) {
    std::string name = toLower(std::string_view(field.key()));
    std::vector<std::string> want = stringList(field.value());
    std::vector<std::string> got = valuesOf(actual, name);
    if (field.value().is_string() && got.size() > 1) {
      std::string joined;
      for (const auto& g : got) joined += (joined.empty() ? "" : ", ") + g;
      got = {joined};
    }
    EXPECT_EQ(got, want) << context << ": " << what << " \"" << name
                         << "\"; all: " << headersText(actual);
  }
}

Headers headersFromJson(const json::value& v) {
  Headers out;
  if (!v.is_object()) return out;
  for (const auto& field : v.get_object()) {
    for (const auto& value : stringList(field.value())) {
      out.emplace_back(toLower(std::string_view(field.key())), value);
    }
  }
  return out;
}

Request requestFromJson(const json::object& r) {
  Request req;
  req.method = "GET";
  if (const json::value* m = r.if_contains("method"); m != nullptr && m->is_string()) {
    req.method = std::string(m->get_string());
    for (char& c : req.method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  std::string url = "/";
  if (const json::value* u = r.if_contains("url"); u != nullptr && u->is_string()) {
    url = std::string(u->get_string());
  }
  size_t q = url.find('?');
  req.path = url.substr(0, q);
  if (q != std::string::npos) req.query = url.substr(q + 1);
  std::string host = "example.com";
  if (const json::value* h = r.if_contains("host"); h != nullptr && h->is_string()) {
    host = std::string(h->get_string());
  }
  req.host =
      toLower(host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':')));
  if (const json::value* h = r.if_contains("headers")) req.headers = headersFromJson(*h);
  if (valuesOf(req.headers, "host").empty())
    req.headers.insert(req.headers.begin(), {"host", host});
  return req;
}

MiddlewareOutcome outcomeFromJson(const json::object& m) {
  MiddlewareOutcome o;
  std::string action = "next";
  if (const json::value* a = m.if_contains("action"); a != nullptr && a->is_string()) {
    action = std::string(a->get_string());
  }
  using Action = MiddlewareOutcome::Action;
  o.action = action == "rewrite"    ? Action::Rewrite
             : action == "respond"  ? Action::Respond
             : action == "redirect" ? Action::Redirect
                                    : Action::Next;
  if (const json::value* r = m.if_contains("rewrite"); r != nullptr && r->is_string()) {
    o.rewriteUrl = std::string(r->get_string());
    if (!m.contains("action")) o.action = Action::Rewrite;
  }
  if (const json::value* h = m.if_contains("headers")) o.responseHeaders = headersFromJson(*h);
  if (const json::value* l = m.if_contains("location"); l != nullptr && l->is_string()) {
    o.responseHeaders.emplace_back("location", std::string(l->get_string()));
  }
  if (const json::value* s = m.if_contains("status"); s != nullptr && s->is_int64()) {
    o.status = static_cast<int>(s->get_int64());
  }
  if (const json::value* h = m.if_contains("overrideRequestHeaders")) {
    o.overrideRequestHeaders = headersFromJson(*h);
  }
  return o;
}

class CaseTest : public ::testing::Test {
 public:
  CaseTest(std::shared_ptr<Suite> suite, json::object c, std::string context)
      : suite_(std::move(suite)), case_(std::move(c)), context_(std::move(context)) {}

  void TestBody() override {
    suite_->compile();
    if (suite_->skip) GTEST_SKIP() << suite_->configProblem;
    ASSERT_TRUE(suite_->configProblem.empty()) << context_ << ": " << suite_->configProblem;
    ASSERT_TRUE(suite_->outputsProblem.empty()) << context_ << ": " << suite_->outputsProblem;
    ASSERT_TRUE(suite_->table != nullptr)
        << context_ << ": config did not compile: " << suite_->compileError;
    const json::value* requestJson = case_.if_contains("request");
    ASSERT_TRUE(requestJson != nullptr && requestJson->is_object())
        << context_ << ": case has no \"request\" object";
    Request request = requestFromJson(requestJson->get_object());

    Decision d = suite_->table->evaluate(request, *suite_->index);
    std::vector<json::object> answers;
    if (const json::value* mw = case_.if_contains("middleware")) {
      if (mw->is_object()) answers.push_back(mw->get_object());
      if (mw->is_array()) {
        for (const auto& a : mw->get_array()) {
          if (a.is_object()) answers.push_back(a.get_object());
        }
      }
    }
    std::string trace = describe(d);
    for (size_t i = 0; i < answers.size() && d.kind == DecisionKind::Middleware; ++i) {
      MiddlewareOutcome outcome = outcomeFromJson(answers[i]);
      ASSERT_TRUE(d.continuation != nullptr)
          << context_ << ": middleware stop without continuation";
      // A responding middleware is the answer: the stop itself is what the case checks.
      if (outcome.action == MiddlewareOutcome::Action::Respond) break;
      d = suite_->table->resume(request, *suite_->index, *d.continuation, outcome);
      trace += "\n  after middleware: " + describe(d);
    }
    check(d, trace);
  }

 private:
  void check(const Decision& d, const std::string& trace) {
    const json::value* expectJson = case_.if_contains("expect");
    ASSERT_TRUE(expectJson != nullptr && expectJson->is_object())
        << context_ << ": case has no \"expect\" object";
    std::string ctx = context_ + "\n  decision: " + trace;
    for (const auto& field : expectJson->get_object()) {
      std::string_view k = field.key();
      const json::value& v = field.value();
      auto str = [&v]() {
        return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
      };
      if (k == "kind") {
        EXPECT_EQ(kindName(d.kind), str()) << ctx;
      } else if (k == "status") {
        EXPECT_EQ(json::value(d.status), v) << ctx;
      } else if (k == "location") {
        EXPECT_EQ(d.location, str()) << ctx;
      } else if (k == "key") {
        EXPECT_EQ(d.key, str()) << ctx;
      } else if (k == "path") {
        EXPECT_EQ(d.path, str()) << ctx;
      } else if (k == "url") {
        EXPECT_EQ(d.url, str()) << ctx;
      } else if (k == "errorCode") {
        EXPECT_EQ(d.errorCode, str()) << ctx;
      } else if (k == "middlewareKey") {
        EXPECT_EQ(d.middlewareKey, str()) << ctx;
      } else if (k == "query") {
        ASSERT_TRUE(v.is_object()) << ctx << ": expect.query must be an object";
        std::map<std::string, std::vector<std::string>> want;
        for (const auto& q : v.get_object()) want[std::string(q.key())] = stringList(q.value());
        std::string_view raw = d.query;
        if (raw.empty() && d.kind == DecisionKind::Proxy && d.url.find('?') != std::string::npos) {
          raw = std::string_view(d.url).substr(d.url.find('?') + 1);
        }
        auto got = parseQueryObject(raw);
        EXPECT_EQ(queryText(got), queryText(want)) << ctx;
      } else if (k == "headers") {
        expectHeaderSubset(v, effectiveHeaders(d), "header", ctx);
      } else if (k == "absentHeaders") {
        Headers merged = effectiveHeaders(d);
        for (const auto& name : stringList(v)) {
          EXPECT_TRUE(valuesOf(merged, toLower(name)).empty())
              << ctx << ": header \"" << name << "\" must be absent";
        }
      } else if (k == "requestHeaders") {
        expectHeaderSubset(v, d.requestHeaders, "request header", ctx);
      } else {
        ADD_FAILURE() << ctx << ": unknown expect field \"" << k << "\"";
      }
    }
  }

  std::shared_ptr<Suite> suite_;
  json::object case_;
  std::string context_;
};

class CompileErrorTest : public ::testing::Test {
 public:
  CompileErrorTest(std::shared_ptr<Suite> suite, std::string expected, std::string context)
      : suite_(std::move(suite)), expected_(std::move(expected)), context_(std::move(context)) {}
  void TestBody() override {
    if (suite_->skip) GTEST_SKIP() << suite_->configProblem;
    ASSERT_TRUE(suite_->configProblem.empty()) << context_ << ": " << suite_->configProblem;
    auto t = RouteTable::compile(suite_->configJson);
    ASSERT_FALSE(t.ok()) << context_ << ": config compiled but must be rejected with \""
                         << expected_ << "\"";
    EXPECT_NE(t.error().message.find(expected_), std::string::npos)
        << context_ << ": error \"" << t.error().message << "\" does not contain \"" << expected_
        << "\"";
  }

 private:
  std::shared_ptr<Suite> suite_;
  std::string expected_;
  std::string context_;
};

class FailingTest : public ::testing::Test {
 public:
  explicit FailingTest(std::string message) : message_(std::move(message)) {}
  void TestBody() override { FAIL() << message_; }

 private:
  std::string message_;
};

template <class Factory>
void registerTest(const std::string& suite, const std::string& name, const std::string& file,
                  Factory factory) {
  ::testing::RegisterTest(suite.c_str(), name.c_str(), nullptr, nullptr, file.c_str(), 0,
                          [factory]() -> ::testing::Test* { return factory(); });
}

// configFile paths point at ../../../shared/fixtures/...; NIMBUS_FIXTURES moves that part.
fs::path resolveConfigFile(const std::string& configFile) {
  const std::string marker = "shared/fixtures/";
  size_t at = configFile.find(marker);
  const char* env = std::getenv("NIMBUS_FIXTURES");
  if (at != std::string::npos && env != nullptr && *env != '\0') {
    return fs::path(env) / configFile.substr(at + marker.size());
  }
  return fs::path(casesDir()) / configFile;
}

void loadOutputsFromFixture(Suite& suite, const std::string& name) {
  fs::path dir = fs::path(fixturesDir()) / name / "output";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    suite.skip = true;
    suite.configProblem = "fixture " + dir.string() +
                          " is missing (set NIMBUS_FIXTURES to the shared/fixtures directory)";
    return;
  }
  auto listed = listOutputKeys(dir.string());
  if (!listed) {
    suite.outputsProblem = listed.error().message;
    return;
  }
  for (auto& [k, v] : listed->statics) suite.outputs.statics.emplace(k, v);
  for (auto& [k, v] : listed->functions) suite.outputs.functions.emplace(k, v);
}

void registerFile(const fs::path& path) {
  std::string file = path.filename().string();
  std::string stem = sanitize(path.stem().string());
  auto text = readFile(path);
  boost::system::error_code ec;
  json::value root = text ? json::parse(*text, ec) : json::value();
  const json::array* suites = nullptr;
  if (text && !ec && root.is_object()) {
    if (const json::value* s = root.get_object().if_contains("suites")) suites = s->if_array();
  }
  if (suites == nullptr) {
    std::string message = path.string() + ": " +
                          (!text ? "cannot read"
                           : ec  ? "not valid JSON: " + ec.message()
                                 : "has no \"suites\" array");
    registerTest("Conformance_" + stem, "LoadsFile", file,
                 [message] { return new FailingTest(message); });
    return;
  }
  std::set<std::string> suiteNames;
  for (size_t si = 0; si < suites->size(); ++si) {
    const json::object* s = (*suites)[si].if_object();
    if (s == nullptr) continue;
    auto suite = std::make_shared<Suite>();
    suite->file = file;
    suite->name = s->contains("name") && (*s).at("name").is_string()
                      ? std::string((*s).at("name").get_string())
                      : "suite" + std::to_string(si);
    std::string gtestSuite = "Conformance_" + stem + "_" + sanitize(suite->name);
    while (!suiteNames.insert(gtestSuite).second) gtestSuite += "_";

    if (const json::value* config = s->if_contains("config")) {
      suite->configJson = json::serialize(*config);
    } else if (const json::value* configFile = s->if_contains("configFile");
               configFile != nullptr && configFile->is_string()) {
      fs::path p = resolveConfigFile(std::string(configFile->get_string()));
      if (auto t = readFile(p)) {
        suite->configJson = *t;
      } else {
        suite->skip = true;
        suite->configProblem = "config file " + p.string() +
                               " is missing (set NIMBUS_FIXTURES to the shared/fixtures directory)";
      }
    } else {
      suite->configProblem = "suite has neither \"config\" nor \"configFile\"";
    }

    // Outputs: "static"/"functions" arrays, or "fromFixture" (suite level or as their value).
    std::optional<std::string> fixture;
    if (const json::value* f = s->if_contains("fromFixture"); f != nullptr && f->is_string()) {
      fixture = std::string(f->get_string());
    }
    for (const char* field : {"static", "functions"}) {
      const json::value* v = s->if_contains(field);
      if (v == nullptr) continue;
      if (v->is_object() && v->get_object().contains("fromFixture")) {
        fixture = std::string(v->get_object().at("fromFixture").as_string());
        continue;
      }
      if (v->is_string() && v->get_string().starts_with("fromFixture:")) {
        fixture = std::string(v->get_string().subview(12));
        continue;
      }
      for (const auto& key : stringList(*v)) {
        if (std::string_view(field) == "static") {
          suite->outputs.statics.emplace(key, output::StaticFile{});
        } else {
          output::FunctionRef fn;
          fn.key = key;
          suite->outputs.functions.emplace(key, fn);
        }
      }
    }
    suite->fixture = fixture;

    std::string where = file + " / " + suite->name;
    if (const json::value* ce = s->if_contains("compileError"); ce != nullptr && ce->is_string()) {
      std::string expected(ce->get_string());
      registerTest(gtestSuite, "RejectsConfig", file, [suite, expected, where] {
        return new CompileErrorTest(suite, expected, where);
      });
      continue;
    }
    const json::value* cases = s->if_contains("cases");
    if (cases == nullptr || !cases->is_array()) {
      std::string message = where + ": suite has no \"cases\" array";
      registerTest(gtestSuite, "HasCases", file, [message] { return new FailingTest(message); });
      continue;
    }
    std::set<std::string> names;
    for (size_t ci = 0; ci < cases->get_array().size(); ++ci) {
      const json::object* c = cases->get_array()[ci].if_object();
      if (c == nullptr) continue;
      std::string caseName = c->contains("name") && c->at("name").is_string()
                                 ? std::string(c->at("name").get_string())
                                 : "case" + std::to_string(ci);
      std::string testName = sanitize(caseName);
      while (!names.insert(testName).second) testName += "_";
      json::object copy = *c;
      std::string context = where + " / " + caseName;
      registerTest(gtestSuite, testName, file,
                   [suite, copy, context] { return new CaseTest(suite, copy, context); });
    }
  }
}

bool registerAll() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(casesDir(), ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  if (ec || files.empty()) {
    std::string message = "no conformance files (*.json) in " + casesDir() +
                          "; set NIMBUS_ROUTING_CASES to tests/routing";
    registerTest("Conformance", "FindsFiles", "", [message] { return new FailingTest(message); });
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) registerFile(f);
  return true;
}

[[maybe_unused]] const bool registered = registerAll();

}  // namespace
}  // namespace nimbus::routing

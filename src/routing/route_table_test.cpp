// Evaluation behaviours the JSON conformance tables cannot express: limits and their
// counter, continuations (copying, resuming twice, nested phases), threads, and the
// Decision fields a caller relies on.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "output/build_output.h"
#include "routing/routing.h"

namespace nimbus::routing {
namespace {

std::shared_ptr<const RouteTable> compileOk(std::string_view config) {
  auto table = RouteTable::compile(config);
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
  return table.ok() ? *table : nullptr;
}

std::unique_ptr<OutputIndex> indexOf(std::vector<std::string> statics,
                                     std::vector<std::string> functions) {
  output::DeploymentOutput out;
  for (auto& s : statics) out.statics.emplace(s, output::StaticFile{});
  for (auto& f : functions) out.functions.emplace(f, output::FunctionRef{f, "", false});
  return makeOutputIndex(out);
}

Request get(std::string path, std::string query = "", Headers headers = {}) {
  Request r;
  r.method = "GET";
  r.host = "example.com";
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = std::move(headers);
  return r;
}

const std::string* header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

TEST(RouteTable, CatastrophicRegexIsNoMatchAndCounted) {
  auto table = compileOk(R"json({"routes": [{"src": "^(a+)+$", "dest": "/evil"},
    {"handle": "filesystem"}, {"src": "/(.*)", "dest": "/fallback"}]})json");
  auto index = indexOf({}, {"evil", "fallback"});
  // "/aaa…b": the retry without the leading '/' hands "aaa…b" to the pattern.
  std::string path = "/" + std::string(5000, 'a') + "b";
  Decision d = table->evaluate(get(path), *index);
  EXPECT_EQ(d.kind, DecisionKind::Function);
  EXPECT_EQ(d.key, "fallback");
  EXPECT_GE(table->regexLimitHits(), 1u);

  Decision ok = table->evaluate(get("/aaaa"), *index);
  EXPECT_EQ(ok.key, "evil");
}

TEST(RouteTable, FunctionDecisionCarriesWhatTheOriginNeeds) {
  auto table =
      compileOk(R"json({"routes": [{"src": "/(.*)", "headers": {"x-r": "$1"}, "continue": true},
    {"handle": "filesystem"},
    {"src": "^/u/([^/]+)$", "dest": "/api/user?id=$1", "check": true}]})json");
  auto index = indexOf({"about"}, {"api/user"});
  Decision d =
      table->evaluate(get("/u/7", "x=1", {{"host", "example.com"}, {"cookie", "a=b"}}), *index);
  ASSERT_EQ(d.kind, DecisionKind::Function);
  EXPECT_EQ(d.key, "api/user");
  EXPECT_EQ(d.path, "/u/7");
  EXPECT_EQ(d.query, "x=1&id=7");
  EXPECT_EQ(d.status, 0);
  ASSERT_NE(header(d.headers, "x-r"), nullptr);
  EXPECT_EQ(*header(d.headers, "x-r"), "u/7");
  ASSERT_NE(header(d.requestHeaders, "cookie"), nullptr);

  Decision s = table->evaluate(get("/about", "", {{"cookie", "a=b"}}), *index);
  EXPECT_EQ(s.kind, DecisionKind::Static);
  EXPECT_TRUE(s.requestHeaders.empty());  // statics have no origin request
}

TEST(RouteTable, ErrorPageThatIsAFunctionIsCalledWithTheErrorStatus) {
  auto table = compileOk(R"json({"routes": [{"handle": "error"},
    {"src": "/.*", "dest": "/_error", "status": 404}]})json");
  auto index = indexOf({}, {"_error"});
  Decision d = table->evaluate(get("/missing", "q=1"), *index);
  EXPECT_EQ(d.kind, DecisionKind::Function);
  EXPECT_EQ(d.key, "_error");
  EXPECT_EQ(d.status, 404);
  EXPECT_EQ(d.path, "/missing");
}

const char* kMiddlewareConfig = R"json({"routes": [
  {"src": "/(.*)", "headers": {"x-first": "1"}, "continue": true},
  {"src": "/(.*)", "middlewarePath": "_middleware", "continue": true},
  {"src": "/(.*)", "headers": {"x-after": "$1"}, "continue": true},
  {"handle": "filesystem"},
  {"src": "/page", "dest": "/fn"}]})json";

TEST(RouteTable, ContinuationCanBeResumedMoreThanOnceAndOnAnotherThread) {
  auto table = compileOk(kMiddlewareConfig);
  auto index = indexOf({"about"}, {"fn", "_middleware"});
  Request req = get("/page", "a=1", {{"x-client", "1"}});
  Decision stop = table->evaluate(req, *index);
  ASSERT_EQ(stop.kind, DecisionKind::Middleware);
  EXPECT_EQ(stop.middlewareKey, "_middleware");
  EXPECT_EQ(stop.path, "/page");
  EXPECT_EQ(stop.query, "a=1");
  ASSERT_NE(stop.continuation, nullptr);

  MiddlewareOutcome next;
  next.action = MiddlewareOutcome::Action::Next;
  next.responseHeaders = {{"x-mw", "yes"}};
  Decision first = table->resume(req, *index, *stop.continuation, next);
  Decision second;
  std::thread other([&] { second = table->resume(req, *index, *stop.continuation, next); });
  other.join();
  for (const Decision* d : {&first, &second}) {
    EXPECT_EQ(d->kind, DecisionKind::Function);
    EXPECT_EQ(d->key, "fn");
    ASSERT_NE(header(d->headers, "x-after"), nullptr);
    EXPECT_EQ(*header(d->headers, "x-after"), "page");
    ASSERT_NE(header(d->headers, "x-mw"), nullptr);
    ASSERT_NE(header(d->requestHeaders, "x-mw"), nullptr);  // copied onto the request
    EXPECT_NE(header(d->headers, "x-first"), nullptr);
  }
}

TEST(RouteTable, RespondingMiddlewareEndsRouting) {
  auto table = compileOk(kMiddlewareConfig);
  auto index = indexOf({}, {"fn", "_middleware"});
  Request req = get("/page");
  Decision stop = table->evaluate(req, *index);
  ASSERT_EQ(stop.kind, DecisionKind::Middleware);
  MiddlewareOutcome respond;
  respond.action = MiddlewareOutcome::Action::Respond;
  Decision d = table->resume(req, *index, *stop.continuation, respond);
  EXPECT_EQ(d.kind, DecisionKind::Middleware);
  EXPECT_EQ(d.continuation, nullptr);
  EXPECT_NE(header(d.headers, "x-first"), nullptr);  // route headers for the middleware's response
}

TEST(RouteTable, MiddlewareRedirectUsesItsStatusAndLocation) {
  auto table = compileOk(kMiddlewareConfig);
  auto index = indexOf({}, {"fn", "_middleware"});
  Request req = get("/page", "a=1");
  Decision stop = table->evaluate(req, *index);
  MiddlewareOutcome redirect;
  redirect.action = MiddlewareOutcome::Action::Redirect;
  redirect.status = 308;
  redirect.responseHeaders = {{"Location", "/login"}};
  Decision d = table->resume(req, *index, *stop.continuation, redirect);
  EXPECT_EQ(d.kind, DecisionKind::Redirect);
  EXPECT_EQ(d.status, 308);
  EXPECT_EQ(d.location, "/login");  // middleware Locations are not given the query
}

TEST(RouteTable, OverrideRequestHeadersIsTheCompleteNewSet) {
  auto table = compileOk(kMiddlewareConfig);
  auto index = indexOf({}, {"fn", "_middleware"});
  Request req = get("/page", "", {{"host", "example.com"}, {"x-old", "1"}, {"x-keep", "a"}});
  Decision stop = table->evaluate(req, *index);
  MiddlewareOutcome next;
  next.overrideRequestHeaders = Headers{{"x-keep", "b"}, {"X-New", "c"}, {"host", "evil"}};
  Decision d = table->resume(req, *index, *stop.continuation, next);
  ASSERT_EQ(d.kind, DecisionKind::Function);
  EXPECT_EQ(header(d.requestHeaders, "x-old"), nullptr);
  ASSERT_NE(header(d.requestHeaders, "x-keep"), nullptr);
  EXPECT_EQ(*header(d.requestHeaders, "x-keep"), "b");
  ASSERT_NE(header(d.requestHeaders, "x-new"), nullptr);
  ASSERT_NE(header(d.requestHeaders, "host"), nullptr);
  EXPECT_EQ(*header(d.requestHeaders, "host"), "example.com");  // cannot be overridden
}

TEST(RouteTable, MiddlewareInsideTheMissPhaseOfACheckRewriteResumesThere) {
  // filesystem: /a -> /b (check, missing) -> miss runs on /b, stops at the middleware; after
  // it, miss rewrites /b -> /c which exists.
  auto table = compileOk(R"json({"routes": [{"handle": "filesystem"},
    {"src": "/a", "dest": "/b", "check": true},
    {"src": "/b", "dest": "/never"},
    {"handle": "miss"},
    {"src": "/b", "middlewarePath": "mw", "continue": true},
    {"src": "/b", "dest": "/c", "check": true}]})json");
  auto index = indexOf({"c"}, {"mw", "never"});
  Request req = get("/a");
  Decision stop = table->evaluate(req, *index);
  ASSERT_EQ(stop.kind, DecisionKind::Middleware);
  Decision d = table->resume(req, *index, *stop.continuation, MiddlewareOutcome{});
  EXPECT_EQ(d.kind, DecisionKind::Static);
  EXPECT_EQ(d.key, "c");
}

TEST(RouteTable, ConcurrentEvaluationsAgree) {
  auto table = compileOk(R"json({"routes": [
    {"src": "/(?<a>[^/]+)/(?<b>[^/]+)", "dest": "/fn?a=$a&b=$b", "headers": {"x-b": "$b"}}]})json");
  auto index = indexOf({}, {"fn"});
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string a = std::to_string(t);
        std::string b = std::to_string(i);
        Decision d = table->evaluate(get("/" + a + "/" + b), *index);
        if (d.query != "a=" + a + "&b=" + b || d.headers.size() != 1 || d.headers[0].second != b) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(RouteTable, ResponseHeaderTransformsFoldIntoImportantAndDeletes) {
  auto table = compileOk(R"json({"routes": [
    {"src": "/(.*)", "headers": {"x-a": "1", "server-timing": "x"}, "continue": true},
    {"src": "/(.*)", "continue": true, "transforms": [
      {"type": "response.headers", "op": "set", "target": {"key": "x-a"}, "args": "2"},
      {"type": "response.headers", "op": "delete", "target": {"key": "x-powered-by"}},
      {"type": "response.headers", "op": "append", "target": {"key": "server-timing"},
       "args": "y"}]},
    {"handle": "filesystem"}]})json");
  auto index = indexOf({"about"}, {});
  Decision d = table->evaluate(get("/about"), *index);
  ASSERT_EQ(d.kind, DecisionKind::Static);
  EXPECT_EQ(header(d.headers, "x-a"), nullptr);
  ASSERT_NE(header(d.importantHeaders, "x-a"), nullptr);
  EXPECT_EQ(*header(d.importantHeaders, "x-a"), "2");
  EXPECT_EQ(d.responseHeaderDeletes, std::vector<std::string>{"x-powered-by"});
  int timings = 0;
  for (const auto& [n, v] : d.importantHeaders) timings += n == "server-timing";
  EXPECT_EQ(timings, 2);
}

}  // namespace
}  // namespace nimbus::routing

// RouteTable::compile rejections: every error names routes[i].field, and all problems of a
// config are reported together.
#include <gtest/gtest.h>

#include "routing/routing.h"

namespace nimbus::routing {
namespace {

std::string compileError(std::string_view config) {
  auto table = RouteTable::compile(config);
  if (table.ok()) return "";
  EXPECT_EQ(table.error().kind, ErrorKind::Invalid);
  return table.error().message;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(RouteCompile, AcceptsTheRealFixtureShapes) {
  auto table = RouteTable::compile(R"json({"version": 3, "routes": [
    {"src": ".*", "continue": true, "transforms": [
      {"type": "request.query", "op": "delete", "target": {"key": "__pathname"}}]},
    {"src": "/about/", "status": 308, "headers": {"Location": "/about"}},
    {"src": "^\\/mw(?:\\/((?:[^\\/#\\?]+?)(?:\\/(?:[^\\/#\\?]+?))*))?[\\/#\\?]?$",
     "middlewareRawSrc": ["/mw/:path*"], "middlewarePath": "middleware", "continue": true,
     "override": true},
    {"handle": "filesystem"},
    {"src": "(?<__isr_route>/isr)", "dest": "/isr-isr?__isr_route=$__isr_route"},
    {"src": "/(.*)", "dest": "/",
     "transforms": [{"type": "request.path", "op": "set", "args": "/$1"}]},
    {"handle": "error"},
    {"status": 404, "src": "^(?!/api).*$", "dest": "/404"}
  ], "overrides": {}, "crons": []})json");
  ASSERT_TRUE(table.ok()) << table.error().message;
  EXPECT_EQ((*table)->routeCount(), 6u);
}

TEST(RouteCompile, BadRegexNamesIndexFieldAndOffset) {
  std::string e =
      compileError(R"json({"version": 3, "routes": [{"src": "/ok"}, {"handle": "filesystem"},
    {"src": "/(unclosed", "dest": "/x"}]})json");
  EXPECT_CONTAINS(e, "routes[2].src: invalid regular expression at offset 10");
  EXPECT_CONTAINS(e, "/(unclosed");
}

TEST(RouteCompile, BadRegexInHasValueNamesTheItem) {
  std::string e = compileError(R"json({"routes": [{"src": "/x", "has": [
    {"type": "header", "key": "x-a"}, {"type": "header", "key": "x-b", "value": "(oops"}]}]})json");
  EXPECT_CONTAINS(e, "routes[0].has[1].value: invalid regular expression");
}

TEST(RouteCompile, WrongTypesNameTheField) {
  std::string e = compileError(R"json({"routes": [
    {"src": 5},
    {"src": "/a", "dest": 7},
    {"src": "/b", "continue": "yes"},
    {"src": "/c", "headers": ["x"]},
    {"src": "/d", "headers": {"x-a": 1}},
    {"src": "/e", "status": "404"},
    {"src": "/f", "status": 1000},
    {"src": "/g", "methods": "GET"},
    {"src": "/h", "has": {"type": "header"}},
    {"src": "/i", "has": [{"type": "body", "key": "a"}]},
    {"src": "/j", "missing": [{"type": "cookie"}]},
    {"src": "/k", "has": [{"type": "header", "key": "x", "value": {"gt": "ten"}}]},
    {"src": "/l", "locale": "fr"},
    {"src": "/m", "middlewarePath": 1},
    {"src": "/n", "transforms": [{"type": "request.body", "op": "set"}]},
    {"src": "/o", "transforms": [{"type": "request.path", "op": "delete"}]},
    {"src": "/p", "has": [{"type": "host"}]},
    {"src": "/q", "headers": {"bad name": "1"}}
  ]})json");
  for (const char* where :
       {"routes[0].src: must be a string", "routes[1].dest: must be a string",
        "routes[2].continue: must be true or false", "routes[3].headers: must be an object",
        "routes[4].headers[\"x-a\"]: must be a string", "routes[5].status: must be an integer",
        "routes[6].status: must be an integer from 100 to 999, got 1000",
        "routes[7].methods: must be an array of strings", "routes[8].has: must be an array",
        "routes[9].has[0].type: unknown value \"body\"", "routes[10].missing[0].key",
        "routes[11].has[0].value.gt: must be a number", "routes[12].locale: must be an object",
        "routes[13].middlewarePath", "routes[14].transforms[0].type",
        "routes[15].transforms[0]: a \"request.path\" transform needs",
        "routes[16].has[0].value: is required for type \"host\"",
        "routes[17].headers[\"bad name\"]: is not a valid HTTP header name"}) {
    EXPECT_CONTAINS(e, where);
  }
  EXPECT_CONTAINS(e, "(18 problems)");
}

TEST(RouteCompile, UnknownHandleSaysWhichValuesExist) {
  std::string e = compileError(R"json({"routes": [{"src": "/x"}, {"handle": "filesys"}]})json");
  EXPECT_CONTAINS(e, "routes[1].handle: unknown value \"filesys\"; use one of filesystem");
}

TEST(RouteCompile, DuplicateHandleNamesBothPositions) {
  std::string e = compileError(
      R"json({"routes": [{"handle": "filesystem"}, {"src": "/x"}, {"handle": "miss"},
                          {"handle": "filesystem"}]})json");
  EXPECT_CONTAINS(e, "routes[3].handle: \"filesystem\" appears twice (first at routes[0])");
}

TEST(RouteCompile, HandleRouteWithOtherFieldsIsRejected) {
  std::string e = compileError(R"json({"routes": [{"handle": "filesystem", "src": "/y"}]})json");
  EXPECT_CONTAINS(e, "routes[0].src: a handle route may have no other fields");
}

TEST(RouteCompile, RouteWithoutSrcOrHandle) {
  EXPECT_CONTAINS(compileError(R"json({"routes": [{"dest": "/x"}]})json"),
                  "routes[0]: has neither \"src\" nor \"handle\"");
}

TEST(RouteCompile, AliasAndItsFieldTogetherIsAnError) {
  EXPECT_CONTAINS(compileError(R"json({"routes": [{"src": "/x", "source": "/y"}]})json"),
                  "routes[0].source: cannot be set together with \"src\"");
}

TEST(RouteCompile, TopLevelProblems) {
  EXPECT_CONTAINS(compileError("[]"), "must be a JSON object");
  EXPECT_CONTAINS(compileError("{"), "not valid JSON");
  EXPECT_CONTAINS(compileError(R"json({"version": 2})json"), "version: must be 3");
  EXPECT_CONTAINS(compileError(R"json({"routes": {}})json"), "routes: must be an array");
  EXPECT_CONTAINS(compileError(R"json({"wildcard": [{"domain": 1}]})json"), "wildcard[0]");
}

TEST(RouteCompile, ToleratesUnknownRouteFieldsAndNewerFields) {
  auto table = RouteTable::compile(R"json({"routes": [
    {"src": "/x", "futureField": 1, "mitigate": {"action": "deny"}, "env": ["A"],
     "respectOriginCacheControl": false, "destination": {"service": "s"}}]})json");
  EXPECT_TRUE(table.ok()) << table.error().message;
}

}  // namespace
}  // namespace nimbus::routing

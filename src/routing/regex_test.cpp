#include "routing/regex.h"

#include <gtest/gtest.h>

#include "routing/url_text.h"

namespace nimbus::routing {
namespace {

Regex compileOk(std::string_view pattern, CaseMode mode = CaseMode::Insensitive) {
  auto re = Regex::compile(pattern, mode);
  EXPECT_TRUE(re.ok()) << (re.ok() ? "" : re.error().message);
  return std::move(*re);
}

class RegexTest : public ::testing::Test {
 protected:
  MatchLimits limits_{100000, 1000};
};

TEST_F(RegexTest, MatchesTheWholeSubjectWithoutAnchorsInThePattern) {
  Regex re = compileOk("/a");
  EXPECT_EQ(re.match("/a", limits_, nullptr), MatchStatus::Matched);
  EXPECT_EQ(re.match("/ab", limits_, nullptr), MatchStatus::NoMatch);
  EXPECT_EQ(re.match("/x/a", limits_, nullptr), MatchStatus::NoMatch);
}

TEST_F(RegexTest, AnchorsATopLevelAlternationAsAWhole) {
  Regex re = compileOk("/a|/b");
  EXPECT_EQ(re.match("/b", limits_, nullptr), MatchStatus::Matched);
  EXPECT_EQ(re.match("/ab", limits_, nullptr), MatchStatus::NoMatch);
  EXPECT_EQ(re.match("/bc", limits_, nullptr), MatchStatus::NoMatch);
}

TEST_F(RegexTest, IsCaseInsensitiveUnlessAskedOtherwise) {
  EXPECT_EQ(compileOk("/About").match("/about", limits_, nullptr), MatchStatus::Matched);
  EXPECT_EQ(compileOk("/About", CaseMode::Sensitive).match("/about", limits_, nullptr),
            MatchStatus::NoMatch);
}

TEST_F(RegexTest, ReportsNamedGroupsInPatternOrderIncludingUnderscoreNames) {
  Regex re = compileOk("(?<__isr_route>/rules/(?<z>[^/]+))/(?<a>.*)");
  ASSERT_EQ(re.names().size(), 3u);
  EXPECT_EQ(re.names()[0].first, "__isr_route");
  EXPECT_EQ(re.names()[1].first, "z");
  EXPECT_EQ(re.names()[2].first, "a");
  EXPECT_EQ(re.groupNumber("a"), 3u);
  Captures c;
  ASSERT_EQ(re.match("/rules/x/rest", limits_, &c), MatchStatus::Matched);
  EXPECT_EQ(c.group(0), "/rules/x/rest");
  EXPECT_EQ(c.group(1), "/rules/x");
  EXPECT_EQ(c.group(2), "x");
  EXPECT_EQ(c.group(3), "rest");
  EXPECT_EQ(c.group(9), "");
}

TEST_F(RegexTest, NonParticipatingGroupIsEmpty) {
  Regex re = compileOk("/(?:(.+)/)?index(?:\\.html)?/?");
  Captures c;
  ASSERT_EQ(re.match("/index.html", limits_, &c), MatchStatus::Matched);
  EXPECT_EQ(c.group(1), "");
}

TEST_F(RegexTest, CompileErrorNamesTheOffset) {
  auto re = Regex::compile("/(unclosed", CaseMode::Insensitive);
  ASSERT_FALSE(re.ok());
  EXPECT_NE(re.error().message.find("invalid regular expression at offset 10"), std::string::npos)
      << re.error().message;
}

TEST_F(RegexTest, CatastrophicBacktrackingEndsAsLimitHit) {
  Regex re = compileOk("^(a+)+$");
  std::string subject(40, 'a');
  subject += 'b';
  EXPECT_EQ(re.match(subject, limits_, nullptr), MatchStatus::LimitHit);
  EXPECT_EQ(re.match("aaaa", limits_, nullptr), MatchStatus::Matched);
}

TEST_F(RegexTest, KnowsWhenEveryMatchStartsWithASlash) {
  EXPECT_TRUE(compileOk("/a").startsWithSlash());
  EXPECT_TRUE(compileOk("^/a").startsWithSlash());
  EXPECT_TRUE(compileOk("^\\/mw").startsWithSlash());
  EXPECT_TRUE(compileOk("/").startsWithSlash());
  EXPECT_FALSE(compileOk("^/?x").startsWithSlash());
  EXPECT_FALSE(compileOk("^(?!/api).*$").startsWithSlash());  // a lookahead consumes nothing
  EXPECT_FALSE(compileOk("(?:/a)?b").startsWithSlash());
  EXPECT_FALSE(compileOk("about").startsWithSlash());
  EXPECT_FALSE(compileOk("/a|b").startsWithSlash());
}

TEST_F(RegexTest, ExtractsTheLiteralPrefixConservatively) {
  EXPECT_EQ(compileOk("^/api/users/([^/]+)$").literalPrefix(), "/api/users/");
  EXPECT_EQ(compileOk("^\\/mw(?:\\/x)?").literalPrefix(), "/mw");
  EXPECT_EQ(compileOk("/About").literalPrefix(), "/about");  // folded: caseless
  EXPECT_EQ(compileOk("/About", CaseMode::Sensitive).literalPrefix(), "/About");
  EXPECT_EQ(compileOk("/abc?").literalPrefix(), "/ab");
  EXPECT_EQ(compileOk("/ab+c").literalPrefix(), "/ab");
  EXPECT_EQ(compileOk("/a{2}").literalPrefix(), "/");
  EXPECT_EQ(compileOk("/dot\\.txt").literalPrefix(), "/dot.txt");
  EXPECT_EQ(compileOk("/n/\\d+").literalPrefix(), "/n/");
  EXPECT_EQ(compileOk("/a|/b").literalPrefix(), "");
  EXPECT_EQ(compileOk("(?i)/a").literalPrefix(), "");
  EXPECT_EQ(compileOk("/About").match("/ABOUT", limits_, nullptr), MatchStatus::Matched);
  EXPECT_EQ(compileOk("/abc?").match("/ab", limits_, nullptr), MatchStatus::Matched);
}

TEST(UrlText, ParsesAndFormatsQueriesAsSent) {
  Query q;
  parseQuery("a=1&&b&c=x%20y&d+e=2", q);
  ASSERT_EQ(q.size(), 4u);
  EXPECT_EQ(q[1].key, "b");
  EXPECT_FALSE(q[1].hasEquals);
  EXPECT_EQ(q[2].value, "x%20y");
  EXPECT_EQ(q[3].name, "d e");
  EXPECT_EQ(formatQuery(q), "a=1&b&c=x%20y&d+e=2");
}

TEST(UrlText, PercentDecodesAndKeepsMalformedEscapes) {
  EXPECT_EQ(percentDecoded("/caf%C3%A9%2"), "/caf\xC3\xA9%2");
  EXPECT_EQ(percentDecoded("a+b%zz"), "a+b%zz");
  EXPECT_EQ(percentDecoded("a+b", PlusMode::Space), "a b");
}

}  // namespace
}  // namespace nimbus::routing

#include <gtest/gtest.h>

#include <filesystem>

#include "output/build_output.h"
#include "routing/output_listing.h"
#include "routing/routing.h"

namespace nimbus::routing {
namespace {

std::unique_ptr<OutputIndex> indexOf(std::vector<std::string> statics,
                                     std::vector<std::string> functions) {
  output::DeploymentOutput out;
  for (auto& s : statics) out.statics.emplace(s, output::StaticFile{});
  for (auto& f : functions) out.functions.emplace(f, output::FunctionRef{f, "", false});
  return makeOutputIndex(out);
}

std::string found(const OutputIndex& index, std::string_view path) {
  OutputMatch m = index.find(path);
  switch (m.kind) {
    case OutputKind::None:
      return "none";
    case OutputKind::Static:
      return "static " + m.key;
    case OutputKind::Function:
      return "function " + m.key;
  }
  return "?";
}

TEST(OutputIndex, StripsLeadingAndTrailingSlashes) {
  auto index = indexOf({"about", "a/b.txt"}, {});
  EXPECT_EQ(found(*index, "/about"), "static about");
  EXPECT_EQ(found(*index, "/about/"), "static about");
  EXPECT_EQ(found(*index, "//a/b.txt//"), "static a/b.txt");
  EXPECT_EQ(found(*index, "/About"), "none");
}

TEST(OutputIndex, FunctionWinsOverStaticWithTheSameKey) {
  auto index = indexOf({"api/data"}, {"api/data"});
  EXPECT_EQ(found(*index, "/api/data"), "function api/data");
}

TEST(OutputIndex, DirectoryAnswersPreferFunctionIndexThenIndexHtmlThenIndex) {
  auto index = indexOf({"docs/index.html", "docs/index", "guide/index", "index.html"},
                       {"blog/index", "docs2/index"});
  EXPECT_EQ(found(*index, "/"), "static index.html");
  EXPECT_EQ(found(*index, "/docs"), "static docs/index.html");
  EXPECT_EQ(found(*index, "/docs/"), "static docs/index.html");
  EXPECT_EQ(found(*index, "/docs/index"), "static docs/index");
  EXPECT_EQ(found(*index, "/guide"), "static guide/index");
  EXPECT_EQ(found(*index, "/blog"), "function blog/index");
  EXPECT_EQ(found(*index, "/blog/index"), "function blog/index");
  EXPECT_EQ(found(*index, "/contact"), "none");
}

TEST(OutputIndex, RootFunctionIndexBeatsStaticIndexHtml) {
  auto index = indexOf({"index.html"}, {"index"});
  EXPECT_EQ(found(*index, "/"), "function index");
  EXPECT_EQ(found(*index, "/index.html"), "static index.html");
}

TEST(OutputIndex, ExactKeyBeatsADirectoryIndex) {
  auto index = indexOf({"docs"}, {"docs/index"});
  EXPECT_EQ(found(*index, "/docs"), "static docs");
}

std::string fixturesDir() {
  if (const char* env = std::getenv("NIMBUS_FIXTURES"); env != nullptr && *env != '\0') return env;
  return NIMBUS_FIXTURES_DIR;
}

TEST(OutputListing, ListsFixtureKeysIncludingFlattenedFunctionSymlinks) {
  std::string dir = fixturesDir() + "/nitro-vercel/output";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is missing; set NIMBUS_FIXTURES";
  auto listed = listOutputKeys(dir);
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  EXPECT_TRUE(listed->functions.contains("__fallback"));
  EXPECT_TRUE(listed->functions.contains("isr-isr"));  // a symlink or a small *.func file
  EXPECT_TRUE(listed->functions.at("isr-isr").hasPrerenderConfig);
  EXPECT_TRUE(listed->statics.contains("prerendered/index.html"));
  EXPECT_EQ(listed->functions.size(), 2u);
}

TEST(OutputListing, AppliesOverridePaths) {
  std::string dir = fixturesDir() + "/vercel-functions/output";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is missing; set NIMBUS_FIXTURES";
  auto listed = listOutputKeys(dir);
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  EXPECT_TRUE(listed->statics.contains("about"));
  EXPECT_TRUE(listed->statics.contains("index"));
  EXPECT_FALSE(listed->statics.contains("about.html"));
  EXPECT_TRUE(listed->functions.contains("api/users/[id]"));
  EXPECT_TRUE(listed->functions.contains("middleware"));
}

}  // namespace
}  // namespace nimbus::routing

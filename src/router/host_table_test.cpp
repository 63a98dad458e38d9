#include "router/host_table.h"

#include <gtest/gtest.h>

namespace nimbus::router {
namespace {

store::RoutingSnapshot sampleSnapshot() {
  store::RoutingSnapshot s;
  s.version = 7;
  s.projects = {{"shop", std::string("aaaaaaaaaaaa")}, {"blog", std::nullopt},
                {"my-app", std::string("cccccccccccc")}};
  s.deployments = {{"aaaaaaaaaaaa", "shop", "h1"}, {"bbbbbbbbbbbb", "shop", "h2"},
                   {"cccccccccccc", "my-app", "h3"}, {"dddddddddddd", "blog", "h4"}};
  s.aliases = {{"www.example.com", "bbbbbbbbbbbb", 0}};
  return s;
}

TEST(HostTable, ResolvesProductionHostToCurrentProductionDeployment) {
  HostTable t(sampleSnapshot(), "localhost");
  auto r = t.resolve("shop.localhost");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deploymentId, "aaaaaaaaaaaa");
  EXPECT_EQ(r->kind, HostKind::Production);
  EXPECT_EQ(t.version(), 7u);
}

TEST(HostTable, ResolvesPreviewHostOnlyForItsOwnProject) {
  HostTable t(sampleSnapshot(), "localhost");
  auto r = t.resolve("shop-bbbbbbbbbbbb.localhost");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->manifestHash, "h2");
  EXPECT_EQ(r->kind, HostKind::Preview);
  EXPECT_FALSE(t.resolve("blog-bbbbbbbbbbbb.localhost"));
  auto dashed = t.resolve("my-app-cccccccccccc.localhost");
  ASSERT_TRUE(dashed);
  EXPECT_EQ(dashed->projectName, "my-app");
}

TEST(HostTable, ProjectWithoutProductionHasNoProductionHost) {
  HostTable t(sampleSnapshot(), "localhost");
  EXPECT_FALSE(t.resolve("blog.localhost"));
  EXPECT_TRUE(t.resolve("blog-dddddddddddd.localhost"));
}

TEST(HostTable, ResolvesCustomAliasesByExactHost) {
  HostTable t(sampleSnapshot(), "localhost");
  auto r = t.resolve("www.example.com");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deploymentId, "bbbbbbbbbbbb");
  EXPECT_EQ(r->kind, HostKind::Alias);
  EXPECT_FALSE(t.resolve("example.com"));
}

TEST(HostTable, RejectsOtherDomainsAndNestedLabels) {
  HostTable t(sampleSnapshot(), "nimbus.test");
  EXPECT_TRUE(t.resolve("shop.nimbus.test"));
  EXPECT_FALSE(t.resolve("shop.localhost"));
  EXPECT_FALSE(t.resolve("a.shop.nimbus.test"));
  EXPECT_FALSE(t.resolve("nimbus.test"));
  EXPECT_FALSE(t.resolve("xshop.nimbus.test"));
}

TEST(HostTable, FormatsHosts) {
  EXPECT_EQ(productionHost("shop", "localhost"), "shop.localhost");
  EXPECT_EQ(previewHost("shop", "abc", "localhost"), "shop-abc.localhost");
}

}  // namespace
}  // namespace nimbus::router

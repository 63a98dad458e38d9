// Behaviour every Store backend must have. The suite is parameterised over backend
// factories; add a backend by adding a StoreBackend to the INSTANTIATE_TEST_SUITE_P list.
#include "store/store.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>

#include "common/sha256.h"
#include "store/validation.h"

namespace nimbus::store {
namespace {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir : public nimbus::testing::TempDir {
 public:
  TempDir() : nimbus::testing::TempDir("nimbus-store") {}
};

struct StoreBackend {
  std::string name;
  // Opens the store kept in `dir` (a fresh directory per test; the same one on reopen).
  std::function<Result<std::unique_ptr<Store>>(const std::string& dir, const Clock* clock)> open;
};

// Keeps gtest from printing the factory as a byte dump in test names.
void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

class StoreTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    store_.reset();
    auto opened = GetParam().open(dir_.path(), &clock_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened).value();
  }

  Deployment deploy(const std::string& project, Target target = Target::Preview) {
    NewDeployment d;
    d.projectName = project;
    d.target = target;
    d.manifestHash = sha256Hex("manifest of " + project + " #" + std::to_string(++counter_));
    d.fileCount = 3;
    d.totalBytes = 1234;
    auto created = store_->createDeployment(d);
    EXPECT_TRUE(created.ok()) << created.error().message;
    // Distinct timestamps give listDeployments a defined order.
    clock_.advanceMs(1000);
    return created.ok() ? *created : Deployment{};
  }

  std::optional<std::string> production(const std::string& project) {
    return store_->productionDeploymentId(project);
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Store> store_;
  int counter_ = 0;
};

TEST_P(StoreTest, CreatesProjectOnFirstDeploymentAndReusesIt) {
  int64_t created = clock_.nowMs();
  Deployment first = deploy("site");
  Deployment second = deploy("site");

  auto project = store_->findProject("site");
  ASSERT_TRUE(project.has_value());
  EXPECT_EQ(project->name, "site");
  EXPECT_EQ(project->createdAtMs, created);
  ASSERT_EQ(project->id.size(), 4u + 16u);
  EXPECT_EQ(project->id.rfind("prj_", 0), 0u);
  EXPECT_EQ(first.projectId, project->id);
  EXPECT_EQ(second.projectId, project->id);
  EXPECT_EQ(store_->listProjects().size(), 1u);
  EXPECT_EQ(store_->findProject("other"), std::nullopt);
}

TEST_P(StoreTest, DeploymentHasTwelveCharacterIdAndAllFields) {
  int64_t now = clock_.nowMs();
  NewDeployment d{"shop", Target::Production, sha256Hex("m"), 42, 99'000};
  auto created = store_->createDeployment(d);
  ASSERT_TRUE(created.ok()) << created.error().message;
  ASSERT_EQ(created->id.size(), 12u);
  for (char c : created->id) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));

  auto found = store_->findDeployment(created->id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, created->id);
  EXPECT_EQ(found->projectName, "shop");
  EXPECT_EQ(found->projectId, store_->findProject("shop")->id);
  EXPECT_EQ(found->target, Target::Production);
  EXPECT_EQ(found->manifestHash, sha256Hex("m"));
  EXPECT_EQ(found->fileCount, 42);
  EXPECT_EQ(found->totalBytes, 99'000);
  EXPECT_EQ(found->createdAtMs, now);
  EXPECT_EQ(store_->findDeployment("nosuchdeploy"), std::nullopt);
}

TEST_P(StoreTest, RejectsInvalidProjectNameWithoutCreatingAnything) {
  auto created = store_->createDeployment({"My_Site", Target::Production, sha256Hex("m"), 1, 1});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().kind, ErrorKind::Invalid);
  EXPECT_TRUE(contains(created.error().message, "'My_Site'")) << created.error().message;
  EXPECT_TRUE(contains(created.error().message, "lower-case")) << created.error().message;
  EXPECT_TRUE(store_->listProjects().empty());
  EXPECT_TRUE(store_->listDeployments("").empty());
  EXPECT_EQ(store_->routingVersion(), 0u);
}

TEST_P(StoreTest, PreviewDeploymentLeavesProductionUnchanged) {
  Deployment prod = deploy("site", Target::Production);
  deploy("site", Target::Preview);
  EXPECT_EQ(production("site"), prod.id);
  deploy("fresh", Target::Preview);
  EXPECT_EQ(production("fresh"), std::nullopt);
  EXPECT_EQ(production("nosuchproject"), std::nullopt);
}

TEST_P(StoreTest, ProductionDeploymentBecomesProduction) {
  Deployment a = deploy("site", Target::Production);
  EXPECT_EQ(production("site"), a.id);
  Deployment b = deploy("site", Target::Production);
  EXPECT_EQ(production("site"), b.id);
}

TEST_P(StoreTest, ListsDeploymentsNewestFirstForOneOrAllProjects) {
  Deployment a1 = deploy("alpha");
  Deployment b1 = deploy("beta");
  Deployment a2 = deploy("alpha", Target::Production);

  auto all = store_->listDeployments("");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, a2.id);
  EXPECT_EQ(all[1].id, b1.id);
  EXPECT_EQ(all[2].id, a1.id);

  auto alpha = store_->listDeployments("alpha");
  ASSERT_EQ(alpha.size(), 2u);
  EXPECT_EQ(alpha[0].id, a2.id);
  EXPECT_EQ(alpha[1].id, a1.id);
  EXPECT_EQ(alpha[0].target, Target::Production);
  EXPECT_TRUE(store_->listDeployments("gamma").empty());
}

TEST_P(StoreTest, ListsProjectsByName) {
  deploy("zeta");
  deploy("alpha");
  auto projects = store_->listProjects();
  ASSERT_EQ(projects.size(), 2u);
  EXPECT_EQ(projects[0].name, "alpha");
  EXPECT_EQ(projects[1].name, "zeta");
}

TEST_P(StoreTest, PromoteMakesPreviewDeploymentProduction) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site");
  auto promoted = store_->promote(b.id);
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  EXPECT_EQ(promoted->id, b.id);
  EXPECT_EQ(production("site"), b.id);
  // The deployment keeps the target it was created for.
  EXPECT_EQ(promoted->target, Target::Preview);
  (void)a;
}

TEST_P(StoreTest, PromotingCurrentProductionIsANoOp) {
  Deployment a = deploy("site", Target::Production);
  uint64_t version = store_->routingVersion();
  auto promoted = store_->promote(a.id);
  ASSERT_TRUE(promoted.ok()) << promoted.error().message;
  EXPECT_EQ(promoted->id, a.id);
  EXPECT_EQ(store_->routingVersion(), version);
  // No second history entry: there is still nothing to roll back to.
  EXPECT_EQ(store_->rollback("site").error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, PromoteOfUnknownDeploymentIsNotFound) {
  auto promoted = store_->promote("nosuchdeploy");
  ASSERT_FALSE(promoted.ok());
  EXPECT_EQ(promoted.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(promoted.error().message, "'nosuchdeploy'")) << promoted.error().message;
}

TEST_P(StoreTest, RepeatedRollbacksWalkBackThroughProductionHistory) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  Deployment c = deploy("site", Target::Production);
  EXPECT_EQ(production("site"), c.id);

  auto first = store_->rollback("site");
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->id, b.id);
  EXPECT_EQ(production("site"), b.id);

  auto second = store_->rollback("site");
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->id, a.id);
  EXPECT_EQ(production("site"), a.id);

  auto third = store_->rollback("site");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(third.error().message,
                       "project 'site' has no earlier production deployment to roll back to"))
      << third.error().message;
  EXPECT_TRUE(contains(third.error().message, "--prod")) << third.error().message;
  EXPECT_EQ(production("site"), a.id);
}

TEST_P(StoreTest, RollbackWithoutProductionOrProjectIsNotFound) {
  deploy("previews-only");
  auto noProduction = store_->rollback("previews-only");
  ASSERT_FALSE(noProduction.ok());
  EXPECT_EQ(noProduction.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(noProduction.error().message, "promote a deployment"))
      << noProduction.error().message;

  auto noProject = store_->rollback("nosuchproject");
  ASSERT_FALSE(noProject.ok());
  EXPECT_EQ(noProject.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(noProject.error().message, "'nosuchproject'"));
}

TEST_P(StoreTest, PromoteAfterRollbackPushesOntoTheRemainingHistory) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  Deployment c = deploy("site");
  ASSERT_EQ(store_->rollback("site")->id, a.id);
  ASSERT_TRUE(store_->promote(c.id).ok());
  EXPECT_EQ(production("site"), c.id);
  // b was rolled back; going back from c lands on a.
  EXPECT_EQ(store_->rollback("site")->id, a.id);
  // A rolled-back deployment can be promoted again.
  ASSERT_TRUE(store_->promote(b.id).ok());
  EXPECT_EQ(production("site"), b.id);
  EXPECT_EQ(store_->rollback("site")->id, a.id);
}

TEST_P(StoreTest, RollbackSkipsDeletedDeployments) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  Deployment c = deploy("site", Target::Production);
  ASSERT_TRUE(store_->deleteDeployment(b.id).ok());
  EXPECT_EQ(store_->rollback("site")->id, a.id);
  (void)c;
}

TEST_P(StoreTest, RollbackSkipsEarlierEntriesOfTheCurrentDeployment) {
  Deployment x = deploy("site", Target::Production);
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  ASSERT_TRUE(store_->promote(a.id).ok());  // history x, a, b, a
  ASSERT_TRUE(store_->deleteDeployment(b.id).ok());  // history x, a, a
  auto back = store_->rollback("site");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->id, x.id);
  EXPECT_EQ(production("site"), x.id);
}

TEST_P(StoreTest, DeleteRefusesCurrentProductionDeployment) {
  Deployment a = deploy("site", Target::Production);
  uint64_t version = store_->routingVersion();
  auto deleted = store_->deleteDeployment(a.id);
  ASSERT_FALSE(deleted.ok());
  EXPECT_EQ(deleted.error().kind, ErrorKind::Conflict);
  EXPECT_TRUE(contains(deleted.error().message, "promote another deployment first"))
      << deleted.error().message;
  EXPECT_TRUE(contains(deleted.error().message, "'site'")) << deleted.error().message;
  EXPECT_TRUE(store_->findDeployment(a.id).has_value());
  EXPECT_EQ(store_->routingVersion(), version);
}

TEST_P(StoreTest, DeleteRemovesDeploymentAndItsAliases) {
  Deployment keep = deploy("site");
  Deployment gone = deploy("site");
  ASSERT_TRUE(store_->setAlias("gone.example.com", gone.id).ok());
  ASSERT_TRUE(store_->setAlias("keep.example.com", keep.id).ok());

  auto deleted = store_->deleteDeployment(gone.id);
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;
  EXPECT_EQ(store_->findDeployment(gone.id), std::nullopt);
  auto list = store_->listDeployments("site");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].id, keep.id);
  auto aliases = store_->listAliases();
  ASSERT_EQ(aliases.size(), 1u);
  EXPECT_EQ(aliases[0].host, "keep.example.com");
}

TEST_P(StoreTest, DeletedPreviousProductionIsNoLongerARollbackTarget) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  ASSERT_TRUE(store_->deleteDeployment(a.id).ok());
  EXPECT_EQ(production("site"), b.id);
  EXPECT_EQ(store_->rollback("site").error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, DeleteOfUnknownDeploymentIsNotFound) {
  auto deleted = store_->deleteDeployment("nosuchdeploy");
  ASSERT_FALSE(deleted.ok());
  EXPECT_EQ(deleted.error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, SetAliasPointsHostAtDeploymentAndMovesIt) {
  Deployment a = deploy("site");
  Deployment b = deploy("site");
  int64_t first = clock_.nowMs();
  auto alias = store_->setAlias("www.example.com", a.id);
  ASSERT_TRUE(alias.ok()) << alias.error().message;
  EXPECT_EQ(alias->host, "www.example.com");
  EXPECT_EQ(alias->deploymentId, a.id);
  EXPECT_EQ(alias->updatedAtMs, first);

  clock_.advanceMs(5);
  auto moved = store_->setAlias("www.example.com", b.id);
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  auto aliases = store_->listAliases();
  ASSERT_EQ(aliases.size(), 1u);
  EXPECT_EQ(aliases[0].deploymentId, b.id);
  EXPECT_EQ(aliases[0].updatedAtMs, first + 5);
}

TEST_P(StoreTest, SetAliasRejectsHostsThatAreNotLowerCaseHostNames) {
  Deployment a = deploy("site");
  const std::string longLabel(64, 'a');
  const std::string tooLong = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(62, 'd');  // 254
  for (const std::string& host :
       {std::string(""), std::string("Example.com"), std::string("example.com."),
        std::string("exa mple.com"), std::string("-a.example.com"), std::string("a-.example.com"),
        std::string("a..example.com"), std::string(".example.com"),
        std::string("example.com:8080"), std::string("_dmarc.example.com"),
        longLabel + ".com", tooLong}) {
    auto set = store_->setAlias(host, a.id);
    ASSERT_FALSE(set.ok()) << "'" << host << "' was accepted";
    EXPECT_EQ(set.error().kind, ErrorKind::Invalid) << host;
    EXPECT_TRUE(contains(set.error().message, "'" + host + "'")) << set.error().message;
  }
  EXPECT_TRUE(store_->listAliases().empty());
}

TEST_P(StoreTest, SetAliasAcceptsValidHostNames) {
  Deployment a = deploy("site");
  const std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(61, 'd');  // 253
  for (const std::string& host :
       {std::string("localhost"), std::string("a.b.c"), std::string("xn--bcher-kva.example"),
        std::string("my-site-0123.example.com"), std::string(63, 'x') + ".io", longest}) {
    auto set = store_->setAlias(host, a.id);
    EXPECT_TRUE(set.ok()) << host << ": " << set.error().message;
  }
}

TEST_P(StoreTest, SetAliasToUnknownDeploymentIsNotFound) {
  auto set = store_->setAlias("www.example.com", "nosuchdeploy");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().kind, ErrorKind::NotFound);
  EXPECT_TRUE(contains(set.error().message, "'nosuchdeploy'")) << set.error().message;
}

TEST_P(StoreTest, UpstreamTlsIsKeptPerProjectAndBumpsRoutingVersion) {
  deploy("api");
  EXPECT_FALSE(store_->upstreamTls("api"));
  uint64_t before = store_->routingVersion();
  UpstreamTlsConfig config{"CA PEM", "CERT PEM", "KEY PEM", true, 0};
  ASSERT_TRUE(store_->setUpstreamTls("api", config).ok());
  EXPECT_GT(store_->routingVersion(), before);
  auto got = store_->upstreamTls("api");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->caPem, "CA PEM");
  EXPECT_EQ(got->certPem, "CERT PEM");
  EXPECT_EQ(got->keyPem, "KEY PEM");
  EXPECT_TRUE(got->verify);
  config.verify = false;
  config.caPem = "";
  ASSERT_TRUE(store_->setUpstreamTls("api", config).ok());
  EXPECT_FALSE(store_->upstreamTls("api")->verify);
  EXPECT_EQ(store_->upstreamTls("api")->caPem, "");
  ASSERT_TRUE(store_->clearUpstreamTls("api").ok());
  EXPECT_FALSE(store_->upstreamTls("api"));
  auto unknown = store_->setUpstreamTls("nope", config);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, EnvVarsArePerEnvironmentAndSnapshotsStayWithDeployments) {
  ASSERT_TRUE(store_->setEnvVar("shop", EnvVar{"API_KEY", Target::Production, "sealed-p", 0}).ok());
  ASSERT_TRUE(store_->findProject("shop"));  // created by the first variable
  ASSERT_TRUE(store_->setEnvVar("shop", EnvVar{"API_KEY", Target::Preview, "sealed-v", 0}).ok());
  ASSERT_TRUE(store_->setEnvVar("shop", EnvVar{"API_KEY", Target::Production, "sealed-p2", 0}).ok());
  auto vars = store_->listEnvVars("shop");
  ASSERT_EQ(vars.size(), 2u);
  EXPECT_EQ(vars[0].environment, Target::Preview);
  EXPECT_EQ(vars[1].sealedValue, "sealed-p2");
  EXPECT_FALSE(store_->setEnvVar("shop", EnvVar{"1BAD", Target::Preview, "x", 0}).ok());

  NewDeployment nd{"shop", Target::Preview, "hash", 1, 1, "snapshot-1"};
  auto d = store_->createDeployment(nd);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(store_->deploymentEnv(d->id), "snapshot-1");
  nd.envSnapshotSealed.clear();
  auto bare = store_->createDeployment(nd);
  EXPECT_FALSE(store_->deploymentEnv(bare->id));

  ASSERT_TRUE(store_->removeEnvVar("shop", "API_KEY", Target::Preview).ok());
  EXPECT_EQ(store_->listEnvVars("shop").size(), 1u);
  ASSERT_TRUE(store_->removeEnvVar("shop", "API_KEY", std::nullopt).ok());
  EXPECT_TRUE(store_->listEnvVars("shop").empty());
  auto missing = store_->removeEnvVar("shop", "API_KEY", std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::NotFound);
  EXPECT_EQ(store_->deploymentEnv(d->id), "snapshot-1");  // snapshots are immutable
}

TEST_P(StoreTest, RemoveAliasDeletesItAndUnknownHostIsNotFound) {
  Deployment a = deploy("site");
  ASSERT_TRUE(store_->setAlias("www.example.com", a.id).ok());
  ASSERT_TRUE(store_->removeAlias("www.example.com").ok());
  EXPECT_TRUE(store_->listAliases().empty());
  auto again = store_->removeAlias("www.example.com");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, TokenLifecycleRecordsUseAndRevocation) {
  std::string secretHash = sha256Hex("nmb_secret");
  int64_t created = clock_.nowMs();
  auto token = store_->createToken("ci", secretHash);
  ASSERT_TRUE(token.ok()) << token.error().message;
  EXPECT_EQ(token->id.rfind("tok_", 0), 0u);
  EXPECT_EQ(token->name, "ci");
  EXPECT_EQ(token->createdAtMs, created);
  EXPECT_EQ(token->lastUsedAtMs, std::nullopt);
  EXPECT_EQ(store_->tokenCount(), 1);

  clock_.advanceMs(60'000);
  auto used = store_->authenticate(secretHash);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, token->id);
  EXPECT_EQ(used->lastUsedAtMs, created + 60'000);
  auto listed = store_->listTokens();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].lastUsedAtMs, created + 60'000);

  EXPECT_EQ(store_->authenticate(sha256Hex("wrong")), std::nullopt);

  ASSERT_TRUE(store_->revokeToken(token->id).ok());
  EXPECT_EQ(store_->authenticate(secretHash), std::nullopt);
  EXPECT_EQ(store_->tokenCount(), 0);
  auto again = store_->revokeToken(token->id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().kind, ErrorKind::NotFound);
}

TEST_P(StoreTest, CreateTokenRejectsDuplicateSecretAndRawSecrets) {
  ASSERT_TRUE(store_->createToken("a", sha256Hex("s")).ok());
  auto duplicate = store_->createToken("b", sha256Hex("s"));
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error().kind, ErrorKind::Conflict);

  auto raw = store_->createToken("c", "nmb_rawsecret");
  ASSERT_FALSE(raw.ok());
  EXPECT_EQ(raw.error().kind, ErrorKind::Invalid);
  EXPECT_EQ(store_->tokenCount(), 1);
}

TEST_P(StoreTest, RoutingVersionBumpsOnEveryChangeToHostResolution) {
  uint64_t v = store_->routingVersion();
  auto expectBump = [&](const char* what) {
    uint64_t now = store_->routingVersion();
    EXPECT_GT(now, v) << what;
    v = now;
  };
  auto expectSame = [&](const char* what) { EXPECT_EQ(store_->routingVersion(), v) << what; };

  Deployment a = deploy("site");
  expectBump("preview deployment");
  Deployment b = deploy("site", Target::Production);
  expectBump("production deployment");
  ASSERT_TRUE(store_->promote(a.id).ok());
  expectBump("promote");
  ASSERT_TRUE(store_->rollback("site").ok());
  expectBump("rollback");
  ASSERT_TRUE(store_->setAlias("www.example.com", a.id).ok());
  expectBump("set alias");
  ASSERT_TRUE(store_->removeAlias("www.example.com").ok());
  expectBump("remove alias");
  ASSERT_TRUE(store_->deleteDeployment(a.id).ok());
  expectBump("delete deployment");

  ASSERT_TRUE(store_->createToken("t", sha256Hex("t")).ok());
  (void)store_->authenticate(sha256Hex("t"));
  expectSame("tokens");
  EXPECT_FALSE(store_->deleteDeployment(b.id).ok());
  EXPECT_FALSE(store_->rollback("site").ok());
  EXPECT_FALSE(store_->setAlias("x.example.com", "nosuchdeploy").ok());
  expectSame("failed operations");
}

TEST_P(StoreTest, RoutingSnapshotShowsProjectsDeploymentsAndAliases) {
  Deployment prod = deploy("site", Target::Production);
  Deployment preview = deploy("site");
  Deployment other = deploy("other");
  ASSERT_TRUE(store_->setAlias("www.example.com", preview.id).ok());

  RoutingSnapshot s = store_->loadRoutingSnapshot();
  EXPECT_EQ(s.version, store_->routingVersion());

  ASSERT_EQ(s.projects.size(), 2u);
  EXPECT_EQ(s.projects[0].name, "other");
  EXPECT_EQ(s.projects[0].productionDeploymentId, std::nullopt);
  EXPECT_EQ(s.projects[1].name, "site");
  EXPECT_EQ(s.projects[1].productionDeploymentId, prod.id);

  ASSERT_EQ(s.deployments.size(), 3u);
  for (const Deployment& d : {prod, preview, other}) {
    auto it = std::find_if(s.deployments.begin(), s.deployments.end(),
                           [&](const auto& r) { return r.id == d.id; });
    ASSERT_NE(it, s.deployments.end()) << d.id;
    EXPECT_EQ(it->projectName, d.projectName);
    EXPECT_EQ(it->manifestHash, d.manifestHash);
  }

  ASSERT_EQ(s.aliases.size(), 1u);
  EXPECT_EQ(s.aliases[0].host, "www.example.com");
  EXPECT_EQ(s.aliases[0].deploymentId, preview.id);
}

TEST_P(StoreTest, EverythingSurvivesReopen) {
  Deployment a = deploy("site", Target::Production);
  Deployment b = deploy("site", Target::Production);
  ASSERT_TRUE(store_->setAlias("www.example.com", a.id).ok());
  ASSERT_TRUE(store_->createToken("ci", sha256Hex("s")).ok());
  uint64_t version = store_->routingVersion();

  reopen();
  EXPECT_EQ(store_->routingVersion(), version);
  EXPECT_EQ(production("site"), b.id);
  EXPECT_EQ(store_->listDeployments("site").size(), 2u);
  EXPECT_EQ(store_->listAliases().size(), 1u);
  EXPECT_TRUE(store_->authenticate(sha256Hex("s")).has_value());
  EXPECT_EQ(store_->rollback("site")->id, a.id);
}

TEST_P(StoreTest, ConcurrentCallsFromManyThreadsAllTakeEffect) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string project = "p" + std::to_string(t % 3);
      for (int i = 0; i < kPerThread; ++i) {
        Target target = i % 5 == 0 ? Target::Production : Target::Preview;
        auto d = store_->createDeployment({project, target, sha256Hex("m"), 1, 1});
        if (!d.ok()) {
          ++failures;
          continue;
        }
        if (!store_->findDeployment(d->id)) ++failures;
        (void)store_->loadRoutingSnapshot();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_->listDeployments("").size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(store_->listProjects().size(), 3u);
  EXPECT_EQ(store_->routingVersion(), uint64_t{kThreads * kPerThread});
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreTest,
    ::testing::Values(StoreBackend{
        "Sqlite",
        [](const std::string& dir, const Clock* clock) {
          return openSqliteStore(dir + "/nimbus.db", clock);
        }}),
    [](const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; });

// --- backend-independent helpers

TEST(Target, RoundTripsThroughItsName) {
  EXPECT_EQ(toString(Target::Preview), "preview");
  EXPECT_EQ(toString(Target::Production), "production");
  EXPECT_EQ(parseTarget("preview"), Target::Preview);
  EXPECT_EQ(parseTarget("production"), Target::Production);
  EXPECT_EQ(parseTarget("Production"), std::nullopt);
  EXPECT_EQ(parseTarget(""), std::nullopt);
}

TEST(ProjectName, AcceptsOneDnsLabelOfAtMost48Characters) {
  EXPECT_TRUE(isValidProjectName("a"));
  EXPECT_TRUE(isValidProjectName("my-site-2"));
  EXPECT_TRUE(isValidProjectName(std::string(48, 'a')));
  EXPECT_FALSE(isValidProjectName(""));
  EXPECT_FALSE(isValidProjectName(std::string(49, 'a')));
  EXPECT_FALSE(isValidProjectName("-site"));
  EXPECT_FALSE(isValidProjectName("site-"));
  EXPECT_FALSE(isValidProjectName("My-Site"));
  EXPECT_FALSE(isValidProjectName("my_site"));
  EXPECT_FALSE(isValidProjectName("my.site"));
}

TEST(AliasHost, AcceptsLowerCaseHostNamesOnly) {
  EXPECT_TRUE(isValidAliasHost("example.com"));
  EXPECT_FALSE(isValidAliasHost("EXAMPLE.com"));
  EXPECT_FALSE(isValidAliasHost("example.com."));
  EXPECT_FALSE(isValidAliasHost("[::1]"));
}

}  // namespace
}  // namespace nimbus::store

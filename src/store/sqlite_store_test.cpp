// SQLite-specific behaviour: migrations, journal mode, and how open failures read. The
// backend-independent behaviour is in store_test.cpp.
#include "store/sqlite_store.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/sha256.h"
#include "store/store.h"

namespace nimbus::store {
namespace {

class TempDir : public nimbus::testing::TempDir {
 public:
  TempDir() : nimbus::testing::TempDir("nimbus-sqlite") {}
};

// A raw connection for writing databases the way an older Nimbus did and for inspecting them.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    NIMBUS_CHECK(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }

  void exec(const std::string& sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
    ASSERT_EQ(rc, SQLITE_OK) << (message ? message : "") << " in: " << sql;
    sqlite3_free(message);
  }

  // Every row of a query, each column as text ("NULL" for NULL).
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        row.push_back(text ? text : "NULL");
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(SqliteStore, UpgradesDatabaseWrittenBySchemaVersion1AndKeepsItsData) {
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  ASSERT_TRUE(migrateSqliteDatabase(path, 1, &clock).ok());
  const std::string manifest = sha256Hex("manifest");
  const std::string secret = sha256Hex("secret");
  {
    // What a version-1 Nimbus left behind: two production deployments, an alias, a token.
    RawDb db(path);
    ASSERT_EQ(db.rows("SELECT version FROM schema_migrations"),
              (std::vector<std::vector<std::string>>{{"1"}}));
    db.exec("INSERT INTO projects (id, name, created_at) VALUES ('prj_old', 'site', 1)");
    db.exec("INSERT INTO deployments (id, project_id, target, manifest_hash, file_count, "
            "total_bytes, created_at) VALUES "
            "('aaaaaaaaaaaa', 'prj_old', 'production', '" + manifest + "', 2, 20, 10), "
            "('bbbbbbbbbbbb', 'prj_old', 'production', '" + manifest + "', 3, 30, 20)");
    db.exec("INSERT INTO production_history (project_id, seq, deployment_id, rolled_back, "
            "promoted_at) VALUES ('prj_old', 1, 'aaaaaaaaaaaa', 0, 10), "
            "('prj_old', 2, 'bbbbbbbbbbbb', 0, 20)");
    db.exec("INSERT INTO aliases (host, deployment_id, updated_at) "
            "VALUES ('www.example.com', 'aaaaaaaaaaaa', 30)");
    db.exec("INSERT INTO tokens (id, name, secret_hash, created_at, last_used_at) "
            "VALUES ('tok_old', 'admin', '" + secret + "', 5, NULL)");
    db.exec("UPDATE routing_version SET version = 3 WHERE id = 1");
  }

  auto opened = openSqliteStore(path, &clock);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;

  {
    RawDb db(path);
    std::vector<std::vector<std::string>> versions;
    for (int v = 1; v <= sqliteSchemaVersion(); ++v) versions.push_back({std::to_string(v)});
    EXPECT_EQ(db.rows("SELECT version FROM schema_migrations ORDER BY version"), versions);
    // Migration 2's indexes exist.
    EXPECT_EQ(db.rows("SELECT name FROM sqlite_master WHERE type = 'index' AND name IN "
                      "('deployments_by_project', 'production_history_by_deployment', "
                      "'aliases_by_deployment') ORDER BY name")
                  .size(),
              3u);
  }

  auto project = store.findProject("site");
  ASSERT_TRUE(project.has_value());
  EXPECT_EQ(project->id, "prj_old");
  auto deployment = store.findDeployment("bbbbbbbbbbbb");
  ASSERT_TRUE(deployment.has_value());
  EXPECT_EQ(deployment->fileCount, 3);
  EXPECT_EQ(deployment->totalBytes, 30);
  EXPECT_EQ(store.productionDeploymentId("site"), "bbbbbbbbbbbb");
  EXPECT_EQ(store.routingVersion(), 3u);
  ASSERT_EQ(store.listAliases().size(), 1u);
  EXPECT_EQ(store.listAliases()[0].deploymentId, "aaaaaaaaaaaa");
  auto token = store.authenticate(secret);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->id, "tok_old");

  // The old history still drives rollback, and new writes work on the upgraded schema.
  auto back = store.rollback("site");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->id, "aaaaaaaaaaaa");
  EXPECT_EQ(store.routingVersion(), 4u);
  auto fresh = store.createDeployment({"site", Target::Production, manifest, 1, 1});
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_EQ(store.productionDeploymentId("site"), fresh->id);
}

TEST(SqliteStore, ReopeningAppliesEachMigrationOnce) {
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  for (int i = 0; i < 3; ++i) {
    auto opened = openSqliteStore(path, &clock);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
  }
  RawDb db(path);
  EXPECT_EQ(db.rows("SELECT COUNT(*) FROM schema_migrations")[0][0],
            std::to_string(sqliteSchemaVersion()));
  EXPECT_EQ(db.rows("SELECT applied_at FROM schema_migrations WHERE version = 1")[0][0],
            std::to_string(clock.nowMs()));
}

TEST(SqliteStore, UsesWriteAheadLog) {
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  auto opened = openSqliteStore(path, &clock);
  ASSERT_TRUE(opened.ok());
  RawDb db(path);
  EXPECT_EQ(db.rows("PRAGMA journal_mode")[0][0], "wal");
}

TEST(SqliteStore, SchemaRefusesAliasOfMissingDeployment) {
  // The store turns foreign_keys on for its connection; do the same on a raw one.
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  ASSERT_TRUE(openSqliteStore(path, &clock).ok());
  char* message = nullptr;
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  sqlite3_exec(raw, "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
  int rc = sqlite3_exec(raw,
                        "INSERT INTO aliases (host, deployment_id, updated_at) "
                        "VALUES ('x.example.com', 'nosuchdeploy', 1)",
                        nullptr, nullptr, &message);
  EXPECT_EQ(rc, SQLITE_CONSTRAINT);
  sqlite3_free(message);
  sqlite3_close(raw);
}

TEST(SqliteStore, RefusesDatabaseFromNewerNimbus) {
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  ASSERT_TRUE(migrateSqliteDatabase(path, sqliteSchemaVersion(), &clock).ok());
  RawDb(path).exec("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)");
  auto opened = openSqliteStore(path, &clock);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::Invalid);
  EXPECT_TRUE(contains(opened.error().message, path)) << opened.error().message;
  EXPECT_TRUE(contains(opened.error().message, "schema version 99")) << opened.error().message;
  EXPECT_TRUE(contains(opened.error().message, "newer nimbus")) << opened.error().message;
}

TEST(SqliteStore, ReportsUnopenablePathWithPathAndHowToFix) {
  TempDir dir;
  std::string path = dir.path() + "/missing-dir/nimbus.db";
  ManualClock clock;
  auto opened = openSqliteStore(path, &clock);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::Io);
  EXPECT_TRUE(contains(opened.error().message, path)) << opened.error().message;
  EXPECT_TRUE(contains(opened.error().message, "unable to open database file"))
      << opened.error().message;
  EXPECT_TRUE(contains(opened.error().message, "directory exist")) << opened.error().message;
}

TEST(SqliteStore, ReportsFileThatIsNotADatabase) {
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  std::ofstream(path) << std::string(4096, 'x');
  ManualClock clock;
  auto opened = openSqliteStore(path, &clock);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().kind, ErrorKind::Io);
  EXPECT_TRUE(contains(opened.error().message, path)) << opened.error().message;
  EXPECT_TRUE(contains(opened.error().message, "not a database")) << opened.error().message;
}

TEST(SqliteStore, WritersInTwoProcessesShareOneDatabase) {
  // Two Store objects stand in for two processes: each has its own connection and lock.
  TempDir dir;
  std::string path = dir.path() + "/nimbus.db";
  ManualClock clock;
  auto first = openSqliteStore(path, &clock);
  auto second = openSqliteStore(path, &clock);
  ASSERT_TRUE(first.ok() && second.ok());
  auto a = (*first)->createDeployment({"site", Target::Production, sha256Hex("a"), 1, 1});
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = (*second)->createDeployment({"site", Target::Production, sha256Hex("b"), 1, 1});
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ((*first)->productionDeploymentId("site"), b->id);
  EXPECT_EQ((*first)->routingVersion(), 2u);
  EXPECT_EQ((*second)->rollback("site")->id, a->id);
  EXPECT_EQ((*first)->productionDeploymentId("site"), a->id);
}

}  // namespace
}  // namespace nimbus::store

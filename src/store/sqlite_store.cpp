#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <variant>

#include "common/random.h"
#include "common/sha256.h"
#include "store/store.h"
#include "store/validation.h"

// Portability: the schema and every query are meant to run unchanged on the PostgreSQL
// backend. Types are TEXT, BIGINT and INTEGER; flags are INTEGER 0/1; sequence numbers are
// computed as MAX(seq) + 1 inside the writing transaction (no AUTOINCREMENT, no rowid);
// upserts use INSERT ... ON CONFLICT (...) DO UPDATE, which both accept. Placeholders are `?`
// and go through Connection::query/exec only; a PostgreSQL backend rewrites them to $1..$n.
// SQLite-only pieces live in connection setup (PRAGMAs) and in the transaction helper
// (BEGIN IMMEDIATE); PostgreSQL needs `SELECT ... FOR UPDATE` on the project row where
// noted, because it does not serialise writers the way BEGIN IMMEDIATE does.

namespace nimbus::store {
namespace {

// ---------------------------------------------------------------------------------------
// Schema migrations, applied in order, each in its own transaction. Never edit a released
// migration; append a new one.

struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE projects (
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL
);
CREATE TABLE deployments (
  id TEXT NOT NULL PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects (id),
  target TEXT NOT NULL CHECK (target IN ('preview', 'production')),
  manifest_hash TEXT NOT NULL,
  file_count BIGINT NOT NULL,
  total_bytes BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
-- Each project's production alias as a stack: the current production deployment is the
-- entry with the highest seq that is not rolled back. Promote pushes, rollback marks.
CREATE TABLE production_history (
  project_id TEXT NOT NULL REFERENCES projects (id),
  seq BIGINT NOT NULL,
  deployment_id TEXT NOT NULL REFERENCES deployments (id),
  rolled_back INTEGER NOT NULL DEFAULT 0 CHECK (rolled_back IN (0, 1)),
  promoted_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, seq)
);
CREATE TABLE aliases (
  host TEXT NOT NULL PRIMARY KEY,
  deployment_id TEXT NOT NULL REFERENCES deployments (id),
  updated_at BIGINT NOT NULL
);
CREATE TABLE tokens (
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT
);
-- One row; bumped in the same transaction as every change to what a Host resolves to.
CREATE TABLE routing_version (
  id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
  version BIGINT NOT NULL
);
INSERT INTO routing_version (id, version) VALUES (1, 0);
)sql"},
    // Indexes for the lookups by deployment that deleteDeployment and its foreign-key checks
    // make, and for listing a project's deployments.
    {2, R"sql(
CREATE INDEX deployments_by_project ON deployments (project_id, created_at);
CREATE INDEX production_history_by_deployment ON production_history (deployment_id);
CREATE INDEX aliases_by_deployment ON aliases (deployment_id);
)sql"},
    // TLS settings for a project's HTTPS upstreams (client certificate for mTLS).
    {3, R"sql(
CREATE TABLE project_upstream_tls (
  project_id TEXT NOT NULL PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
  ca_pem TEXT NOT NULL,
  cert_pem TEXT NOT NULL,
  key_pem TEXT NOT NULL,
  verify INTEGER NOT NULL,
  updated_at BIGINT NOT NULL
);
)sql"},
    // Environment variables (sealed values) and each deployment's snapshot of them.
    {4, R"sql(
CREATE TABLE env_vars (
  project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  env_key TEXT NOT NULL,
  environment TEXT NOT NULL,
  sealed_value TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (project_id, env_key, environment)
);
CREATE TABLE deployment_env (
  deployment_id TEXT NOT NULL PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
  sealed TEXT NOT NULL
);
)sql"},
};

constexpr int kLatestVersion = static_cast<int>(std::size(kMigrations));

// ---------------------------------------------------------------------------------------
// A thin layer over the SQLite C API: one connection, `?` parameters, rows copied out.

using Param = std::variant<std::nullptr_t, int64_t, std::string_view>;
using Value = std::variant<std::nullptr_t, int64_t, std::string>;

class Row {
 public:
  explicit Row(std::vector<Value> values) : values_(std::move(values)) {}

  std::string text(size_t i) const {
    NIMBUS_CHECK(i < values_.size());
    if (const auto* s = std::get_if<std::string>(&values_[i])) return *s;
    if (const auto* n = std::get_if<int64_t>(&values_[i])) return std::to_string(*n);
    return {};
  }
  std::optional<std::string> optionalText(size_t i) const {
    NIMBUS_CHECK(i < values_.size());
    if (std::holds_alternative<std::nullptr_t>(values_[i])) return std::nullopt;
    return text(i);
  }
  int64_t int64(size_t i) const {
    NIMBUS_CHECK(i < values_.size());
    if (const auto* n = std::get_if<int64_t>(&values_[i])) return *n;
    return 0;
  }
  std::optional<int64_t> optionalInt64(size_t i) const {
    NIMBUS_CHECK(i < values_.size());
    if (std::holds_alternative<std::nullptr_t>(values_[i])) return std::nullopt;
    return int64(i);
  }

 private:
  std::vector<Value> values_;
};

// Says how to fix the common environmental failures.
std::string_view fixHint(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
      return "; free disk space";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return "; check that the file and its directory exist and are writable by this user";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "; another process holds the database lock: stop any other nimbus using this "
             "data directory";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "; the file is damaged or not a nimbus database: restore a backup";
    default:
      return "";
  }
}

ErrorKind kindOf(int code) {
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorKind::Io;
    default:
      return ErrorKind::Internal;
  }
}

// Not thread-safe: the owner serialises calls.
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> open(const std::string& path) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE,
                             nullptr);
    if (rc != SQLITE_OK) {
      std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      sqlite3_close(db);
      return makeError(kindOf(rc), "cannot open SQLite database " + path + ": " + message +
                                       std::string(fixHint(rc)));
    }
    return std::unique_ptr<Connection>(new Connection(db, path));
  }

  ~Connection() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const std::string& path() const { return path_; }

  // Runs one statement and returns all of its rows.
  Result<std::vector<Row>> query(std::string_view sql, std::initializer_list<Param> params = {}) {
    return run(sql, params, nullptr);
  }

  // Runs one statement and returns the number of rows it changed.
  Result<int64_t> exec(std::string_view sql, std::initializer_list<Param> params = {}) {
    int64_t changes = 0;
    auto rows = run(sql, params, &changes);
    if (!rows.ok()) return rows.error();
    return changes;
  }

  // Runs a parameterless script of one or more statements (migrations, BEGIN/COMMIT).
  Result<void> execScript(const char* sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return success();
    std::string text = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return failure(rc, text, sql);
  }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  Error failure(int code, std::string_view message, std::string_view sql) const {
    // Name the statement by its first line, shortened.
    size_t start = sql.find_first_not_of(" \n");
    std::string statement(start == std::string_view::npos ? std::string_view() : sql.substr(start));
    if (auto nl = statement.find('\n'); nl != std::string::npos) statement.resize(nl);
    if (statement.size() > 80) statement = statement.substr(0, 77) + "...";
    return makeError(kindOf(code), "database " + path_ + ": " + std::string(message) +
                                       std::string(fixHint(code)) + " (while running `" +
                                       statement + "`)");
  }

  Result<sqlite3_stmt*> prepare(std::string_view sql) {
    if (auto it = statements_.find(sql); it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return failure(rc, sqlite3_errmsg(db_), sql);
    statements_.emplace(std::string(sql), stmt);
    return stmt;
  }

  Result<std::vector<Row>> run(std::string_view sql, std::initializer_list<Param> params,
                               int64_t* changes) {
    auto prepared = prepare(sql);
    if (!prepared.ok()) return prepared.error();
    sqlite3_stmt* stmt = *prepared;
    struct ResetOnExit {
      sqlite3_stmt* stmt;
      ~ResetOnExit() {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
      }
    } reset{stmt};

    // A mismatch between placeholders and arguments is a bug in this file.
    NIMBUS_CHECK(static_cast<int>(params.size()) == sqlite3_bind_parameter_count(stmt));
    int index = 1;
    for (const Param& p : params) {
      int rc = SQLITE_OK;
      if (const auto* n = std::get_if<int64_t>(&p)) {
        rc = sqlite3_bind_int64(stmt, index, *n);
      } else if (const auto* s = std::get_if<std::string_view>(&p)) {
        rc = sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
      } else {
        rc = sqlite3_bind_null(stmt, index);
      }
      if (rc != SQLITE_OK) return failure(rc, sqlite3_errmsg(db_), sql);
      ++index;
    }

    std::vector<Row> rows;
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return failure(rc, sqlite3_errmsg(db_), sql);
      int columns = sqlite3_column_count(stmt);
      std::vector<Value> values;
      values.reserve(static_cast<size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            values.emplace_back(nullptr);
            break;
          case SQLITE_INTEGER:
            values.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          default: {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
            values.emplace_back(std::string(text ? text : "",
                                             static_cast<size_t>(sqlite3_column_bytes(stmt, c))));
          }
        }
      }
      rows.emplace_back(std::move(values));
    }
    if (changes) *changes = sqlite3_changes64(db_);
    return rows;
  }

  sqlite3* db_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements_;
};

enum class TxMode { Read, Write };

// Runs `body` in a transaction: commits when it returns a value, rolls back when it returns
// an error or the commit fails. Write transactions take the write lock up front (BEGIN
// IMMEDIATE) so they wait on busy_timeout instead of failing on lock upgrade.
template <class F>
auto inTransaction(Connection& c, TxMode mode, F&& body) -> decltype(body()) {
  using R = decltype(body());
  if (auto begun = c.execScript(mode == TxMode::Write ? "BEGIN IMMEDIATE" : "BEGIN"); !begun) {
    return begun.error();
  }
  R result = body();
  if (!result.ok()) {
    (void)c.execScript("ROLLBACK");
    return result;
  }
  if (auto committed = c.execScript("COMMIT"); !committed) {
    (void)c.execScript("ROLLBACK");
    return committed.error();
  }
  return result;
}

// Adds what we were doing to SQLite failures. Domain errors (NotFound, Conflict, Invalid)
// already read as complete sentences for the user and pass through unchanged.
template <class T>
Result<T> withContext(Result<T> r, std::string_view what) {
  if (r.ok()) return r;
  const Error& e = r.error();
  if (e.kind == ErrorKind::Io || e.kind == ErrorKind::Internal) return e.context(what);
  return r;
}

void logReadFailure(const Error& e, std::string_view what) {
  std::fprintf(stderr, "nimbus store: %s: %s\n", std::string(what).c_str(), e.message.c_str());
}

Result<int> currentSchemaVersion(Connection& c) {
  auto rows = c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!rows.ok()) return rows.error();
  return static_cast<int>(rows->at(0).int64(0));
}

Result<void> migrate(Connection& c, int target, const Clock& clock) {
  NIMBUS_CHECK(target >= 1 && target <= kLatestVersion);
  for (int i = 0; i < kLatestVersion; ++i) NIMBUS_CHECK(kMigrations[i].version == i + 1);

  if (auto created = c.execScript(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          "version INTEGER NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)");
      !created) {
    return created.error().context("creating schema_migrations");
  }
  auto current = currentSchemaVersion(c);
  if (!current.ok()) return current.error().context("reading the schema version");
  if (*current > kLatestVersion) {
    return makeError(ErrorKind::Invalid,
                     "database " + c.path() + " has schema version " +
                         std::to_string(*current) + " but this nimbus only knows versions up to " +
                         std::to_string(kLatestVersion) +
                         "; run a newer nimbus or restore a backup of the database");
  }

  for (const Migration& m : std::span(kMigrations).first(static_cast<size_t>(target))) {
    auto applied = inTransaction(c, TxMode::Write, [&]() -> Result<void> {
      // Re-read under the write lock: another process may have migrated meanwhile.
      auto version = currentSchemaVersion(c);
      if (!version.ok()) return version.error();
      if (*version >= m.version) return success();
      if (auto r = c.execScript(m.sql); !r) return r;
      auto recorded = c.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                             {int64_t{m.version}, clock.nowMs()});
      if (!recorded.ok()) return recorded.error();
      return success();
    });
    if (!applied) {
      return applied.error().context("applying schema migration " + std::to_string(m.version));
    }
  }
  return success();
}

Result<std::unique_ptr<Connection>> openConnection(const std::string& path) {
  auto conn = Connection::open(path);
  if (!conn.ok()) return conn.error();
  Connection& c = **conn;
  // busy_timeout: wait up to 5 s for another process's write lock instead of failing at once.
  // synchronous=FULL: with WAL, NORMAL would keep the database consistent but could lose the
  // last acknowledged commits on power loss. Writes here are rare control-plane operations
  // (deploy, promote, token use), so an fsync per commit is cheap and an acknowledged deploy
  // stays deployed. foreign_keys is per connection and off by default in SQLite.
  if (auto r = c.execScript("PRAGMA busy_timeout = 5000;"
                            "PRAGMA foreign_keys = ON;"
                            "PRAGMA synchronous = FULL;");
      !r) {
    return r.error().context("configuring the connection");
  }
  auto mode = c.query("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.error().context("switching to WAL mode");
  if (mode->empty() || mode->at(0).text(0) != "wal") {
    return makeError(ErrorKind::Io,
                     "cannot switch SQLite database " + path + " to WAL mode (journal mode is '" +
                         (mode->empty() ? std::string("?") : mode->at(0).text(0)) +
                         "'); put the data directory on a local file system that supports "
                         "shared memory");
  }
  return conn;
}

// ---------------------------------------------------------------------------------------

constexpr std::string_view kSelectDeployment =
    "SELECT d.id, d.project_id, p.name, d.target, d.manifest_hash, d.file_count, "
    "d.total_bytes, d.created_at FROM deployments d JOIN projects p ON p.id = d.project_id ";

Deployment toDeployment(const Row& r) {
  Deployment d;
  d.id = r.text(0);
  d.projectId = r.text(1);
  d.projectName = r.text(2);
  d.target = parseTarget(r.text(3)).value_or(Target::Preview);
  d.manifestHash = r.text(4);
  d.fileCount = r.int64(5);
  d.totalBytes = r.int64(6);
  d.createdAtMs = r.int64(7);
  return d;
}

Project toProject(const Row& r) { return Project{r.text(0), r.text(1), r.int64(2)}; }

TokenInfo toToken(const Row& r) {
  return TokenInfo{r.text(0), r.text(1), r.int64(2), r.optionalInt64(3)};
}

Alias toAlias(const Row& r) { return Alias{r.text(0), r.text(1), r.int64(2)}; }

std::string deploymentNotFound(std::string_view id) {
  return "deployment '" + std::string(id) + "' not found; list deployments with `nimbus ls`";
}

std::string projectNotFound(std::string_view name) {
  return "project '" + std::string(name) + "' not found; list projects with `nimbus projects`";
}

// The current production entry of a project's history.
struct ProductionEntry {
  int64_t seq = 0;
  std::string deploymentId;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<Connection> conn, const Clock* clock)
      : conn_(std::move(conn)), clock_(clock) {}

  // --- projects

  std::optional<Project> findProject(std::string_view name) override {
    std::lock_guard lock(mu_);
    auto project = findProjectLocked(name);
    if (!project.ok()) {
      logReadFailure(project.error(), "finding project '" + std::string(name) + "'");
      return std::nullopt;
    }
    return *project;
  }

  std::vector<Project> listProjects() override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query("SELECT id, name, created_at FROM projects ORDER BY name");
    if (!rows.ok()) {
      logReadFailure(rows.error(), "listing projects");
      return {};
    }
    std::vector<Project> out;
    for (const Row& r : *rows) out.push_back(toProject(r));
    return out;
  }

  // --- deployments

  Result<Deployment> createDeployment(const NewDeployment& d) override {
    if (!isValidProjectName(d.projectName)) {
      return makeError(ErrorKind::Invalid, invalidProjectNameMessage(d.projectName));
    }
    if (d.fileCount < 0 || d.totalBytes < 0) {
      return makeError(ErrorKind::Invalid, "deployment of project '" + d.projectName +
                                               "' has a negative file count or byte total");
    }
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto created = inTransaction(*conn_, TxMode::Write, [&]() -> Result<Deployment> {
      auto ensured = ensureProjectIdLocked(d.projectName, now);
      if (!ensured.ok()) return ensured.error();
      const std::string& projectId = *ensured;
      Deployment dep;
      dep.id = randomId(12);
      dep.projectId = projectId;
      dep.projectName = d.projectName;
      dep.target = d.target;
      dep.manifestHash = d.manifestHash;
      dep.fileCount = d.fileCount;
      dep.totalBytes = d.totalBytes;
      dep.createdAtMs = now;
      auto inserted = conn_->exec(
          "INSERT INTO deployments (id, project_id, target, manifest_hash, file_count, "
          "total_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
          {dep.id, dep.projectId, toString(dep.target), dep.manifestHash, dep.fileCount,
           dep.totalBytes, dep.createdAtMs});
      if (!inserted.ok()) return inserted.error();
      if (!d.envSnapshotSealed.empty()) {
        auto env = conn_->exec("INSERT INTO deployment_env (deployment_id, sealed) VALUES (?, ?)",
                               {dep.id, d.envSnapshotSealed});
        if (!env.ok()) return env.error();
      }
      if (d.target == Target::Production) {
        if (auto pushed = pushProductionLocked(projectId, dep.id, now); !pushed) {
          return pushed.error();
        }
      }
      if (auto bumped = bumpRoutingVersionLocked(); !bumped) return bumped.error();
      return dep;
    });
    return withContext(std::move(created),
                       "creating a deployment of project '" + d.projectName + "'");
  }

  std::optional<Deployment> findDeployment(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto dep = findDeploymentLocked(id);
    if (!dep.ok()) {
      logReadFailure(dep.error(), "finding deployment '" + std::string(id) + "'");
      return std::nullopt;
    }
    return *dep;
  }

  std::vector<Deployment> listDeployments(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    // Ties in created_at (same millisecond) are broken by id so the order is stable.
    auto rows = projectName.empty()
                    ? conn_->query(std::string(kSelectDeployment) +
                                   "ORDER BY d.created_at DESC, d.id DESC")
                    : conn_->query(std::string(kSelectDeployment) +
                                       "WHERE p.name = ? ORDER BY d.created_at DESC, d.id DESC",
                                   {projectName});
    if (!rows.ok()) {
      logReadFailure(rows.error(), "listing deployments");
      return {};
    }
    std::vector<Deployment> out;
    for (const Row& r : *rows) out.push_back(toDeployment(r));
    return out;
  }

  Result<void> deleteDeployment(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto deleted = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto dep = findDeploymentLocked(id);
      if (!dep.ok()) return dep.error();
      if (!*dep) return makeError(ErrorKind::NotFound, deploymentNotFound(id));
      auto current = currentProductionLocked((*dep)->projectId);
      if (!current.ok()) return current.error();
      if (*current && (*current)->deploymentId == id) {
        return makeError(ErrorKind::Conflict,
                         "deployment '" + std::string(id) +
                             "' is the production deployment of project '" +
                             (*dep)->projectName +
                             "'; promote another deployment first (`nimbus promote <ID>`), "
                             "then delete this one");
      }
      for (const char* sql : {"DELETE FROM aliases WHERE deployment_id = ?",
                              "DELETE FROM production_history WHERE deployment_id = ?",
                              "DELETE FROM deployments WHERE id = ?"}) {
        if (auto r = conn_->exec(sql, {id}); !r.ok()) return r.error();
      }
      return bumpRoutingVersionLocked();
    });
    return withContext(std::move(deleted), "deleting deployment '" + std::string(id) + "'");
  }

  // --- production alias

  std::optional<std::string> productionDeploymentId(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    auto id = [&]() -> Result<std::optional<std::string>> {
      auto project = findProjectLocked(projectName);
      if (!project.ok()) return project.error();
      if (!*project) return std::optional<std::string>();
      auto current = currentProductionLocked((*project)->id);
      if (!current.ok()) return current.error();
      if (!*current) return std::optional<std::string>();
      return std::optional<std::string>((*current)->deploymentId);
    }();
    if (!id.ok()) {
      logReadFailure(id.error(),
                     "finding the production deployment of '" + std::string(projectName) + "'");
      return std::nullopt;
    }
    return *id;
  }

  Result<Deployment> promote(std::string_view deploymentId) override {
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto promoted = inTransaction(*conn_, TxMode::Write, [&]() -> Result<Deployment> {
      auto dep = findDeploymentLocked(deploymentId);
      if (!dep.ok()) return dep.error();
      if (!*dep) return makeError(ErrorKind::NotFound, deploymentNotFound(deploymentId));
      auto current = currentProductionLocked((*dep)->projectId);
      if (!current.ok()) return current.error();
      if (*current && (*current)->deploymentId == deploymentId) return **dep;
      if (auto pushed = pushProductionLocked((*dep)->projectId, (*dep)->id, now); !pushed) {
        return pushed.error();
      }
      if (auto bumped = bumpRoutingVersionLocked(); !bumped) return bumped.error();
      return **dep;
    });
    return withContext(std::move(promoted),
                       "promoting deployment '" + std::string(deploymentId) + "'");
  }

  Result<Deployment> rollback(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    auto rolledBack = inTransaction(*conn_, TxMode::Write, [&]() -> Result<Deployment> {
      auto project = requireProjectLocked(projectName);
      if (!project.ok()) return project.error();
      const std::string& projectId = project->id;
      auto current = currentProductionLocked(projectId);
      if (!current.ok()) return current.error();
      if (!*current) {
        return makeError(ErrorKind::NotFound,
                         "project '" + std::string(projectName) +
                             "' has no production deployment to roll back; deploy with --prod "
                             "or promote a deployment");
      }
      // The previous production deployment is the newest live entry below the current one
      // that names a different deployment (after a deletion the stack can hold the current
      // deployment twice in a row).
      auto previous = conn_->query(
          "SELECT h.seq, h.deployment_id FROM production_history h "
          "JOIN deployments d ON d.id = h.deployment_id "
          "WHERE h.project_id = ? AND h.rolled_back = 0 AND h.seq < ? AND h.deployment_id <> ? "
          "ORDER BY h.seq DESC LIMIT 1",
          {projectId, (*current)->seq, (*current)->deploymentId});
      if (!previous.ok()) return previous.error();
      if (previous->empty()) {
        return makeError(ErrorKind::NotFound,
                         "project '" + std::string(projectName) +
                             "' has no earlier production deployment to roll back to; deploy "
                             "with --prod or promote a deployment");
      }
      const int64_t previousSeq = previous->at(0).int64(0);
      const std::string previousId = previous->at(0).text(1);
      auto marked = conn_->exec(
          "UPDATE production_history SET rolled_back = 1 "
          "WHERE project_id = ? AND seq > ? AND rolled_back = 0",
          {projectId, previousSeq});
      if (!marked.ok()) return marked.error();
      auto dep = findDeploymentLocked(previousId);
      if (!dep.ok()) return dep.error();
      NIMBUS_CHECK(dep->has_value());  // the JOIN above found it in this transaction
      if (auto bumped = bumpRoutingVersionLocked(); !bumped) return bumped.error();
      return **dep;
    });
    return withContext(std::move(rolledBack),
                       "rolling back project '" + std::string(projectName) + "'");
  }

  // --- custom aliases

  Result<Alias> setAlias(std::string_view host, std::string_view deploymentId) override {
    if (!isValidAliasHost(host)) {
      return makeError(ErrorKind::Invalid, invalidAliasHostMessage(host));
    }
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto set = inTransaction(*conn_, TxMode::Write, [&]() -> Result<Alias> {
      auto dep = findDeploymentLocked(deploymentId);
      if (!dep.ok()) return dep.error();
      if (!*dep) return makeError(ErrorKind::NotFound, deploymentNotFound(deploymentId));
      auto upserted = conn_->exec(
          "INSERT INTO aliases (host, deployment_id, updated_at) VALUES (?, ?, ?) "
          "ON CONFLICT (host) DO UPDATE SET deployment_id = excluded.deployment_id, "
          "updated_at = excluded.updated_at",
          {host, deploymentId, now});
      if (!upserted.ok()) return upserted.error();
      if (auto bumped = bumpRoutingVersionLocked(); !bumped) return bumped.error();
      return Alias{std::string(host), std::string(deploymentId), now};
    });
    return withContext(std::move(set), "setting alias '" + std::string(host) + "'");
  }

  Result<void> removeAlias(std::string_view host) override {
    std::lock_guard lock(mu_);
    auto removed = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto deleted = conn_->exec("DELETE FROM aliases WHERE host = ?", {host});
      if (!deleted.ok()) return deleted.error();
      if (*deleted == 0) {
        return makeError(ErrorKind::NotFound, "alias '" + std::string(host) +
                                                  "' not found; list aliases with "
                                                  "`nimbus alias ls`");
      }
      return bumpRoutingVersionLocked();
    });
    return withContext(std::move(removed), "removing alias '" + std::string(host) + "'");
  }

  std::vector<Alias> listAliases() override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query("SELECT host, deployment_id, updated_at FROM aliases ORDER BY host");
    if (!rows.ok()) {
      logReadFailure(rows.error(), "listing aliases");
      return {};
    }
    std::vector<Alias> out;
    for (const Row& r : *rows) out.push_back(toAlias(r));
    return out;
  }

  // --- environment variables

  Result<EnvVar> setEnvVar(std::string_view projectName, const EnvVar& var) override {
    if (!isValidProjectName(projectName)) {
      return makeError(ErrorKind::Invalid, invalidProjectNameMessage(projectName));
    }
    if (!isValidEnvKey(var.key)) {
      return makeError(ErrorKind::Invalid,
                       "'" + var.key + "' is not a valid variable name: use letters, digits and "
                       "'_', not starting with a digit");
    }
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto set = inTransaction(*conn_, TxMode::Write, [&]() -> Result<EnvVar> {
      auto ensured = ensureProjectIdLocked(projectName, now);
      if (!ensured.ok()) return ensured.error();
      const std::string& projectId = *ensured;
      auto upserted = conn_->exec(
          "INSERT INTO env_vars (project_id, env_key, environment, sealed_value, updated_at) "
          "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, env_key, environment) DO UPDATE SET "
          "sealed_value = excluded.sealed_value, updated_at = excluded.updated_at",
          {projectId, var.key, toString(var.environment), var.sealedValue, now});
      if (!upserted.ok()) return upserted.error();
      EnvVar out = var;
      out.updatedAtMs = now;
      return out;
    });
    return withContext(std::move(set), "setting " + var.key + " of project '" +
                                           std::string(projectName) + "'");
  }

  Result<void> removeEnvVar(std::string_view projectName, std::string_view key,
                            std::optional<Target> environment) override {
    std::lock_guard lock(mu_);
    auto removed = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto project = requireProjectLocked(projectName);
      if (!project.ok()) return project.error();
      auto deleted =
          environment
              ? conn_->exec("DELETE FROM env_vars WHERE project_id = ? AND env_key = ? AND "
                            "environment = ?",
                            {project->id, key, toString(*environment)})
              : conn_->exec("DELETE FROM env_vars WHERE project_id = ? AND env_key = ?",
                            {project->id, key});
      if (!deleted.ok()) return deleted.error();
      if (*deleted == 0) {
        return makeError(ErrorKind::NotFound,
                         "project '" + std::string(projectName) + "' has no variable " +
                             std::string(key) + "; `nimbus env ls` lists them");
      }
      return success();
    });
    return withContext(std::move(removed), "removing " + std::string(key));
  }

  std::vector<EnvVar> listEnvVars(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query(
        "SELECT e.env_key, e.environment, e.sealed_value, e.updated_at FROM env_vars e JOIN "
        "projects p ON p.id = e.project_id WHERE p.name = ? ORDER BY e.env_key, e.environment",
        {projectName});
    if (!rows.ok()) {
      logReadFailure(rows.error(), "listing environment variables");
      return {};
    }
    std::vector<EnvVar> out;
    for (const Row& r : *rows) {
      out.push_back(EnvVar{r.text(0), parseTarget(r.text(1)).value_or(Target::Preview), r.text(2),
                           r.int64(3)});
    }
    return out;
  }

  std::optional<std::string> deploymentEnv(std::string_view deploymentId) override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query("SELECT sealed FROM deployment_env WHERE deployment_id = ?",
                             {deploymentId});
    if (!rows.ok()) {
      logReadFailure(rows.error(), "reading a deployment's environment");
      return std::nullopt;
    }
    if (rows->empty()) return std::nullopt;
    return rows->front().text(0);
  }

  // --- upstream TLS

  Result<void> setUpstreamTls(std::string_view projectName,
                              const UpstreamTlsConfig& config) override {
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto set = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto project = requireProjectLocked(projectName);
      if (!project.ok()) return project.error();
      auto upserted = conn_->exec(
          "INSERT INTO project_upstream_tls (project_id, ca_pem, cert_pem, key_pem, verify, "
          "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET "
          "ca_pem = excluded.ca_pem, cert_pem = excluded.cert_pem, key_pem = excluded.key_pem, "
          "verify = excluded.verify, updated_at = excluded.updated_at",
          {project->id, config.caPem, config.certPem, config.keyPem,
           int64_t{config.verify ? 1 : 0}, now});
      if (!upserted.ok()) return upserted.error();
      return bumpRoutingVersionLocked();
    });
    return withContext(std::move(set),
                       "setting upstream TLS of project '" + std::string(projectName) + "'");
  }

  Result<void> clearUpstreamTls(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    auto cleared = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto project = requireProjectLocked(projectName);
      if (!project.ok()) return project.error();
      auto deleted =
          conn_->exec("DELETE FROM project_upstream_tls WHERE project_id = ?", {project->id});
      if (!deleted.ok()) return deleted.error();
      return bumpRoutingVersionLocked();
    });
    return withContext(std::move(cleared),
                       "clearing upstream TLS of project '" + std::string(projectName) + "'");
  }

  std::optional<UpstreamTlsConfig> upstreamTls(std::string_view projectName) override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query(
        "SELECT t.ca_pem, t.cert_pem, t.key_pem, t.verify, t.updated_at FROM "
        "project_upstream_tls t JOIN projects p ON p.id = t.project_id WHERE p.name = ?",
        {projectName});
    if (!rows.ok()) {
      logReadFailure(rows.error(), "reading upstream TLS settings");
      return std::nullopt;
    }
    if (rows->empty()) return std::nullopt;
    const Row& r = rows->front();
    return UpstreamTlsConfig{r.text(0), r.text(1), r.text(2), r.int64(3) != 0, r.int64(4)};
  }

  // --- API tokens

  Result<TokenInfo> createToken(std::string_view name, std::string_view secretHash) override {
    if (!isSha256Hex(secretHash)) {
      // Callers hash the secret; a raw secret here is a bug that must not reach the disk.
      return makeError(ErrorKind::Invalid,
                       "token secret hash must be 64 lower-case hex characters (SHA-256 of the "
                       "secret)");
    }
    if (name.size() > 200) {
      return makeError(ErrorKind::Invalid, "token name is " + std::to_string(name.size()) +
                                               " characters long; use at most 200");
    }
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto created = inTransaction(*conn_, TxMode::Write, [&]() -> Result<TokenInfo> {
      auto existing = conn_->query("SELECT id FROM tokens WHERE secret_hash = ?", {secretHash});
      if (!existing.ok()) return existing.error();
      if (!existing->empty()) {
        return makeError(ErrorKind::Conflict,
                         "a token with this secret already exists (" + existing->at(0).text(0) +
                             "); generate a new secret");
      }
      TokenInfo token{"tok_" + randomId(16), std::string(name), now, std::nullopt};
      auto inserted = conn_->exec(
          "INSERT INTO tokens (id, name, secret_hash, created_at, last_used_at) "
          "VALUES (?, ?, ?, ?, ?)",
          {token.id, token.name, secretHash, now, nullptr});
      if (!inserted.ok()) return inserted.error();
      return token;
    });
    return withContext(std::move(created), "creating token '" + std::string(name) + "'");
  }

  std::vector<TokenInfo> listTokens() override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query(
        "SELECT id, name, created_at, last_used_at FROM tokens ORDER BY created_at, id");
    if (!rows.ok()) {
      logReadFailure(rows.error(), "listing tokens");
      return {};
    }
    std::vector<TokenInfo> out;
    for (const Row& r : *rows) out.push_back(toToken(r));
    return out;
  }

  Result<void> revokeToken(std::string_view id) override {
    std::lock_guard lock(mu_);
    auto revoked = inTransaction(*conn_, TxMode::Write, [&]() -> Result<void> {
      auto deleted = conn_->exec("DELETE FROM tokens WHERE id = ?", {id});
      if (!deleted.ok()) return deleted.error();
      if (*deleted == 0) {
        return makeError(ErrorKind::NotFound, "token '" + std::string(id) +
                                                  "' not found; list tokens with "
                                                  "`nimbus token ls`");
      }
      return success();
    });
    return withContext(std::move(revoked), "revoking token '" + std::string(id) + "'");
  }

  std::optional<TokenInfo> authenticate(std::string_view secretHash) override {
    std::lock_guard lock(mu_);
    const int64_t now = clock_->nowMs();
    auto found = inTransaction(*conn_, TxMode::Write, [&]() -> Result<std::optional<TokenInfo>> {
      auto rows = conn_->query(
          "SELECT id, name, created_at, last_used_at FROM tokens WHERE secret_hash = ?",
          {secretHash});
      if (!rows.ok()) return rows.error();
      if (rows->empty()) return std::optional<TokenInfo>();
      TokenInfo token = toToken(rows->at(0));
      auto updated =
          conn_->exec("UPDATE tokens SET last_used_at = ? WHERE id = ?", {now, token.id});
      if (!updated.ok()) return updated.error();
      token.lastUsedAtMs = now;
      return std::optional<TokenInfo>(std::move(token));
    });
    if (!found.ok()) {
      logReadFailure(found.error(), "authenticating a token");
      return std::nullopt;
    }
    return *found;
  }

  int64_t tokenCount() override {
    std::lock_guard lock(mu_);
    auto rows = conn_->query("SELECT COUNT(*) FROM tokens");
    if (!rows.ok()) {
      logReadFailure(rows.error(), "counting tokens");
      return 0;
    }
    return rows->at(0).int64(0);
  }

  // --- routing

  uint64_t routingVersion() override {
    std::lock_guard lock(mu_);
    auto version = routingVersionLocked();
    if (!version.ok()) {
      logReadFailure(version.error(), "reading the routing version");
      return lastRoutingVersion_;
    }
    lastRoutingVersion_ = *version;
    return *version;
  }

  RoutingSnapshot loadRoutingSnapshot() override {
    std::lock_guard lock(mu_);
    auto snapshot = inTransaction(*conn_, TxMode::Read, [&]() -> Result<RoutingSnapshot> {
      RoutingSnapshot s;
      auto version = routingVersionLocked();
      if (!version.ok()) return version.error();
      s.version = *version;

      auto projects = conn_->query(
          "SELECT p.name, (SELECT h.deployment_id FROM production_history h "
          "JOIN deployments d ON d.id = h.deployment_id "
          "WHERE h.project_id = p.id AND h.rolled_back = 0 ORDER BY h.seq DESC LIMIT 1) "
          "FROM projects p ORDER BY p.name");
      if (!projects.ok()) return projects.error();
      for (const Row& r : *projects) s.projects.push_back({r.text(0), r.optionalText(1)});

      auto deployments = conn_->query(
          "SELECT d.id, p.name, d.manifest_hash FROM deployments d "
          "JOIN projects p ON p.id = d.project_id ORDER BY d.id");
      if (!deployments.ok()) return deployments.error();
      for (const Row& r : *deployments) {
        s.deployments.push_back({r.text(0), r.text(1), r.text(2)});
      }

      auto aliases =
          conn_->query("SELECT host, deployment_id, updated_at FROM aliases ORDER BY host");
      if (!aliases.ok()) return aliases.error();
      for (const Row& r : *aliases) s.aliases.push_back(toAlias(r));
      return s;
    });
    if (!snapshot.ok()) {
      // Routers swap in whatever they get; the last good snapshot keeps them serving.
      logReadFailure(snapshot.error(), "loading the routing snapshot");
      return lastSnapshot_;
    }
    lastSnapshot_ = *snapshot;
    lastRoutingVersion_ = snapshot->version;
    return std::move(snapshot).value();
  }

 private:
  // The project, or NotFound with the message that says how to list projects.
  Result<Project> requireProjectLocked(std::string_view name) {
    auto project = findProjectLocked(name);
    if (!project.ok()) return project.error();
    if (!*project) return makeError(ErrorKind::NotFound, projectNotFound(name));
    return **project;
  }

  // The project's id, creating the project when it does not exist yet.
  Result<std::string> ensureProjectIdLocked(std::string_view name, int64_t now) {
    auto project = findProjectLocked(name);
    if (!project.ok()) return project.error();
    if (*project) return (*project)->id;
    std::string id = "prj_" + randomId(16);
    auto inserted = conn_->exec("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
                                {id, name, now});
    if (!inserted.ok()) return inserted.error();
    return id;
  }

  Result<std::optional<Project>> findProjectLocked(std::string_view name) {
    auto rows =
        conn_->query("SELECT id, name, created_at FROM projects WHERE name = ?", {name});
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<Project>();
    return std::optional<Project>(toProject(rows->at(0)));
  }

  Result<std::optional<Deployment>> findDeploymentLocked(std::string_view id) {
    auto rows = conn_->query(std::string(kSelectDeployment) + "WHERE d.id = ?", {id});
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<Deployment>();
    return std::optional<Deployment>(toDeployment(rows->at(0)));
  }

  // The newest history entry that is not rolled back and whose deployment exists.
  Result<std::optional<ProductionEntry>> currentProductionLocked(std::string_view projectId) {
    auto rows = conn_->query(
        "SELECT h.seq, h.deployment_id FROM production_history h "
        "JOIN deployments d ON d.id = h.deployment_id "
        "WHERE h.project_id = ? AND h.rolled_back = 0 ORDER BY h.seq DESC LIMIT 1",
        {projectId});
    if (!rows.ok()) return rows.error();
    if (rows->empty()) return std::optional<ProductionEntry>();
    return std::optional<ProductionEntry>(
        ProductionEntry{rows->at(0).int64(0), rows->at(0).text(1)});
  }

  // Pushes a production entry. PostgreSQL: lock the project row (SELECT ... FOR UPDATE)
  // first so concurrent promotes cannot compute the same seq; here BEGIN IMMEDIATE already
  // serialises writers, and the (project_id, seq) key turns any race into an error.
  Result<void> pushProductionLocked(std::string_view projectId, std::string_view deploymentId,
                                    int64_t now) {
    auto next = conn_->query(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM production_history WHERE project_id = ?",
        {projectId});
    if (!next.ok()) return next.error();
    auto inserted = conn_->exec(
        "INSERT INTO production_history (project_id, seq, deployment_id, rolled_back, "
        "promoted_at) VALUES (?, ?, ?, 0, ?)",
        {projectId, next->at(0).int64(0), deploymentId, now});
    if (!inserted.ok()) return inserted.error();
    return success();
  }

  Result<void> bumpRoutingVersionLocked() {
    auto bumped = conn_->exec("UPDATE routing_version SET version = version + 1 WHERE id = 1");
    if (!bumped.ok()) return bumped.error();
    NIMBUS_CHECK(*bumped == 1);  // migration 1 inserts the row and nothing deletes it
    return success();
  }

  Result<uint64_t> routingVersionLocked() {
    auto rows = conn_->query("SELECT version FROM routing_version WHERE id = 1");
    if (!rows.ok()) return rows.error();
    NIMBUS_CHECK(!rows->empty());
    return static_cast<uint64_t>(rows->at(0).int64(0));
  }

  std::mutex mu_;  // guards everything below (one connection, used by one thread at a time)
  std::unique_ptr<Connection> conn_;
  // What routingVersion() and loadRoutingSnapshot() return when the database fails.
  uint64_t lastRoutingVersion_ = 0;
  RoutingSnapshot lastSnapshot_;
  const Clock* clock_;  // not owned; outlives the store
};

}  // namespace

int sqliteSchemaVersion() { return kLatestVersion; }

Result<void> migrateSqliteDatabase(const std::string& path, int version, const Clock* clock) {
  NIMBUS_CHECK(clock != nullptr);
  NIMBUS_CHECK(version >= 1 && version <= kLatestVersion);
  auto conn = openConnection(path);
  if (!conn.ok()) return conn.error();
  return migrate(**conn, version, *clock);
}

Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, const Clock* clock) {
  NIMBUS_CHECK(clock != nullptr);
  auto conn = openConnection(path);
  if (!conn.ok()) return conn.error().context("opening the store");
  if (auto migrated = migrate(**conn, kLatestVersion, *clock); !migrated) {
    return migrated.error().context("opening the store");
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(*conn), clock));
}

}  // namespace nimbus::store

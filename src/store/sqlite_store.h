#pragma once
// SQLite backend of Store (the embedded default). openSqliteStore() is declared in store.h;
// this header adds the schema-migration entry points that tests and tools use.
//
// Failure reporting: methods that return Result<T> report SQLite failures as errors naming
// the database path and SQLite's message. The read methods whose Store signature has no
// error channel log the failure to stderr and return: nullopt or an empty list (findProject,
// listDeployments, authenticate, ...); the last value read successfully (routingVersion,
// loadRoutingSnapshot), so routers keep serving the routes they had.
#include <string>

#include "common/clock.h"
#include "common/result.h"

namespace nimbus::store {

// The schema version openSqliteStore() migrates a database to.
int sqliteSchemaVersion();

// Creates the database at `path` if needed and applies the migrations up to and including
// `version` (1..sqliteSchemaVersion()), each in its own transaction, recording them in
// schema_migrations with `clock`'s time. Migration tests use it to write a database as an
// older Nimbus would have. Error (Invalid) when the database is already newer than this
// build knows.
Result<void> migrateSqliteDatabase(const std::string& path, int version, const Clock* clock);

}  // namespace nimbus::store

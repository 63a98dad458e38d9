#pragma once
// The metadata store: projects, deployments, the production alias with its history, custom
// aliases and API tokens. One interface, two backends (SQLite now, PostgreSQL later) sharing
// one schema and portable SQL.
//
// Thread rules: every method is synchronous and safe to call from any thread (backends
// serialise access internally). Methods that change what a Host resolves to bump
// routingVersion(), which routers poll to refresh their snapshot.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace nimbus::store {

enum class Target { Preview, Production };

std::string_view toString(Target t);          // "preview" | "production"
std::optional<Target> parseTarget(std::string_view s);

struct Project {
  std::string id;    // "prj_" + random
  std::string name;  // one DNS label: [a-z0-9-], 1..48 chars, no leading/trailing '-'
  int64_t createdAtMs = 0;
};

struct Deployment {
  std::string id;             // 12 chars of [a-z0-9]; also the preview host label suffix
  std::string projectId;
  std::string projectName;
  Target target = Target::Preview;  // what it was created for
  std::string manifestHash;   // content-store blob holding the manifest JSON
  int64_t fileCount = 0;
  int64_t totalBytes = 0;
  int64_t createdAtMs = 0;
};

struct NewDeployment {
  std::string projectName;    // created on first use
  Target target = Target::Preview;
  std::string manifestHash;
  int64_t fileCount = 0;
  int64_t totalBytes = 0;
  // The environment variables the deployment's functions get, sealed (SecretBox) by the
  // caller; empty for none. Kept with the deployment: later `env` changes do not alter it.
  std::string envSnapshotSealed = {};
};

// One environment variable of a project for one environment; the value is sealed by the
// caller (SecretBox) and never stored in clear.
struct EnvVar {
  std::string key;
  Target environment = Target::Production;
  std::string sealedValue;
  int64_t updatedAtMs = 0;
};

// True for names usable as environment variables: [A-Za-z_][A-Za-z0-9_]*, at most 256.
bool isValidEnvKey(std::string_view key);

struct Alias {
  std::string host;           // lower-case host name without port
  std::string deploymentId;
  int64_t updatedAtMs = 0;
};

struct TokenInfo {
  std::string id;             // "tok_" + random; what `token revoke` takes
  std::string name;
  int64_t createdAtMs = 0;
  std::optional<int64_t> lastUsedAtMs;
};

// TLS settings for a project's HTTPS upstreams (routes with an external `dest`): trust
// anchors, and a client certificate for upstreams that require mTLS (a Kubernetes ingress
// or service mesh, say). PEM text; empty fields mean "not set".
struct UpstreamTlsConfig {
  std::string caPem;     // empty: the system trust store
  std::string certPem;   // client certificate chain; empty: no client certificate
  std::string keyPem;    // its private key
  bool verify = true;    // false: accept any server certificate (testing only)
  int64_t updatedAtMs = 0;
};

// Everything a router needs to map a Host to a deployment, read in one consistent snapshot.
struct RoutingSnapshot {
  uint64_t version = 0;
  struct ProjectRoute {
    std::string name;
    std::optional<std::string> productionDeploymentId;
  };
  std::vector<ProjectRoute> projects;
  struct DeploymentRoute {
    std::string id;
    std::string projectName;
    std::string manifestHash;
  };
  std::vector<DeploymentRoute> deployments;
  std::vector<Alias> aliases;
};

// True when `name` is a valid project name (see Project::name).
bool isValidProjectName(std::string_view name);

class Store {
 public:
  virtual ~Store() = default;

  // --- projects
  virtual std::optional<Project> findProject(std::string_view name) = 0;
  virtual std::vector<Project> listProjects() = 0;

  // --- deployments
  // Creates the project if needed and inserts the deployment; when target is Production it
  // also becomes the project's production deployment. All in one transaction: either the
  // deployment exists completely or not at all.
  virtual Result<Deployment> createDeployment(const NewDeployment& d) = 0;
  virtual std::optional<Deployment> findDeployment(std::string_view id) = 0;
  // Newest first; all projects when projectName is empty.
  virtual std::vector<Deployment> listDeployments(std::string_view projectName) = 0;
  // Refuses (Conflict) the current production deployment of its project. Removes custom
  // aliases that point at it and its entries in the production history.
  virtual Result<void> deleteDeployment(std::string_view id) = 0;

  // --- production alias
  virtual std::optional<std::string> productionDeploymentId(std::string_view projectName) = 0;
  // Makes the deployment its project's production deployment (atomic swap). Promoting the
  // current production deployment is a no-op that succeeds.
  virtual Result<Deployment> promote(std::string_view deploymentId) = 0;
  // Production goes back to the deployment that was production before the current one.
  // Repeated rollbacks keep going back. Error (NotFound) when there is nothing to go back to.
  virtual Result<Deployment> rollback(std::string_view projectName) = 0;

  // --- custom aliases (host -> deployment)
  virtual Result<Alias> setAlias(std::string_view host, std::string_view deploymentId) = 0;
  virtual Result<void> removeAlias(std::string_view host) = 0;
  virtual std::vector<Alias> listAliases() = 0;

  // --- environment variables (snapshotted into deployments when they are created)
  // Creates the project when it does not exist yet (variables usually come first).
  virtual Result<EnvVar> setEnvVar(std::string_view projectName, const EnvVar& var) = 0;
  // Removes the key for one environment, or for both when `environment` is empty.
  virtual Result<void> removeEnvVar(std::string_view projectName, std::string_view key,
                                    std::optional<Target> environment) = 0;
  virtual std::vector<EnvVar> listEnvVars(std::string_view projectName) = 0;
  virtual std::optional<std::string> deploymentEnv(std::string_view deploymentId) = 0;

  // --- upstream TLS per project (changes bump the routing version)
  virtual Result<void> setUpstreamTls(std::string_view projectName,
                                      const UpstreamTlsConfig& config) = 0;
  virtual Result<void> clearUpstreamTls(std::string_view projectName) = 0;
  virtual std::optional<UpstreamTlsConfig> upstreamTls(std::string_view projectName) = 0;

  // --- API tokens (only SHA-256 hashes of secrets are stored)
  virtual Result<TokenInfo> createToken(std::string_view name, std::string_view secretHash) = 0;
  virtual std::vector<TokenInfo> listTokens() = 0;
  virtual Result<void> revokeToken(std::string_view id) = 0;
  // Finds the token with this secret hash and records its use.
  virtual std::optional<TokenInfo> authenticate(std::string_view secretHash) = 0;
  virtual int64_t tokenCount() = 0;

  // --- routing
  virtual uint64_t routingVersion() = 0;
  virtual RoutingSnapshot loadRoutingSnapshot() = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode and applies pending
// migrations. The error names the path and what failed.
Result<std::unique_ptr<Store>> openSqliteStore(const std::string& path, const Clock* clock);

}  // namespace nimbus::store

#pragma once
// Maps a request's Host to a deployment: production at <project>.<domain>, each deployment
// at <project>-<id>.<domain>, and custom aliases by exact host. Immutable once built; a new
// table is built whenever the store's routing version changes.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "store/store.h"

namespace nimbus::router {

enum class HostKind { Production, Preview, Alias };

struct ResolvedHost {
  std::string deploymentId;
  std::string projectName;
  std::string manifestHash;
  HostKind kind = HostKind::Preview;
};

class HostTable {
 public:
  HostTable(const store::RoutingSnapshot& snapshot, std::string domain);

  uint64_t version() const { return version_; }
  const std::string& domain() const { return domain_; }
  // `host` is lower-case without port.
  std::optional<ResolvedHost> resolve(std::string_view host) const;

 private:
  struct DeploymentInfo {
    std::string projectName;
    std::string manifestHash;
  };
  std::optional<ResolvedHost> byDeployment(const std::string& id, HostKind kind) const;

  uint64_t version_;
  std::string domain_;
  std::unordered_map<std::string, std::string> productionByProject_;
  std::unordered_map<std::string, DeploymentInfo> deployments_;
  std::unordered_map<std::string, std::string> aliases_;
};

// "<project>.<domain>"
std::string productionHost(std::string_view project, std::string_view domain);
// "<project>-<id>.<domain>"
std::string previewHost(std::string_view project, std::string_view deploymentId,
                        std::string_view domain);

}  // namespace nimbus::router

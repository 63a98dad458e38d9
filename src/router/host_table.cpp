#include "router/host_table.h"

namespace nimbus::router {

HostTable::HostTable(const store::RoutingSnapshot& snapshot, std::string domain)
    : version_(snapshot.version), domain_(std::move(domain)) {
  for (const auto& p : snapshot.projects) {
    if (p.productionDeploymentId) productionByProject_[p.name] = *p.productionDeploymentId;
  }
  for (const auto& d : snapshot.deployments) {
    deployments_[d.id] = DeploymentInfo{d.projectName, d.manifestHash};
  }
  for (const auto& a : snapshot.aliases) aliases_[a.host] = a.deploymentId;
}

std::optional<ResolvedHost> HostTable::byDeployment(const std::string& id, HostKind kind) const {
  auto it = deployments_.find(id);
  if (it == deployments_.end()) return std::nullopt;
  return ResolvedHost{id, it->second.projectName, it->second.manifestHash, kind};
}

std::optional<ResolvedHost> HostTable::resolve(std::string_view host) const {
  // Custom aliases first: a user may alias a host under the platform domain too.
  if (!aliases_.empty()) {
    if (auto it = aliases_.find(std::string(host)); it != aliases_.end()) {
      return byDeployment(it->second, HostKind::Alias);
    }
  }
  if (host.size() <= domain_.size() + 1 || !host.ends_with(domain_) ||
      host[host.size() - domain_.size() - 1] != '.') {
    return std::nullopt;
  }
  std::string label(host.substr(0, host.size() - domain_.size() - 1));
  if (label.find('.') != std::string::npos) return std::nullopt;
  if (auto it = productionByProject_.find(label); it != productionByProject_.end()) {
    return byDeployment(it->second, HostKind::Production);
  }
  // <project>-<12 char id>
  constexpr size_t kIdLength = 12;
  if (label.size() > kIdLength + 1 && label[label.size() - kIdLength - 1] == '-') {
    std::string id = label.substr(label.size() - kIdLength);
    auto found = byDeployment(id, HostKind::Preview);
    if (found && found->projectName == std::string_view(label).substr(0, label.size() - kIdLength - 1)) {
      return found;
    }
  }
  return std::nullopt;
}

std::string productionHost(std::string_view project, std::string_view domain) {
  std::string out(project);
  out += '.';
  out += domain;
  return out;
}

std::string previewHost(std::string_view project, std::string_view deploymentId,
                        std::string_view domain) {
  std::string out(project);
  out += '-';
  out += deploymentId;
  out += '.';
  out += domain;
  return out;
}

}  // namespace nimbus::router

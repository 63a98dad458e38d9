#include "worker/store_catalog.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <set>

#include "output/build_output.h"
#include "output/manifest.h"
#include "output/validation.h"

namespace nimbus::worker {

namespace json = boost::json;

StoreCatalog::StoreCatalog(CatalogOptions options, store::Store* store,
                           content::ContentStore* content, const SecretBox* secrets)
    : options_(std::move(options)), store_(store), content_(content), secrets_(secrets) {}

std::optional<std::string> StoreCatalog::blobPath(std::string_view hash) {
  return content_->localPath(hash);
}

std::vector<std::string> StoreCatalog::functionKeys(std::string_view deploymentId) {
  std::vector<std::string> keys;
  if (auto loaded = deployment(deploymentId)) {
    for (const auto& [key, ref] : (*loaded)->output.functions) keys.push_back(key);
  }
  return keys;
}

Result<std::string> StoreCatalog::readBlob(std::string_view hash) { return content_->read(hash); }

Result<std::shared_ptr<const FunctionDef>> StoreCatalog::lookup(std::string_view deploymentId,
                                                                std::string_view key) {
  std::string cacheKey = fmt::format("{}/{}", deploymentId, key);
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(cacheKey); it != cache_.end()) return it->second;
  }
  auto def = load(deploymentId, key);
  if (!def) return def;
  std::lock_guard lock(mu_);
  return cache_.emplace(cacheKey, *def).first->second;
}

Result<void> parseFunctionConfig(std::string_view configJson, FunctionDef* def) {
  boost::system::error_code ec;
  auto v = json::parse(configJson, ec);
  if (ec || !v.is_object()) {
    return makeError(ErrorKind::Invalid, ".vc-config.json is not a JSON object");
  }
  const auto& o = v.as_object();
  auto str = [&](std::string_view k) -> std::string {
    auto* f = o.if_contains(k);
    return f && f->is_string() ? std::string(f->as_string()) : std::string();
  };
  std::string runtime = str("runtime");
  std::string launcher = str("launcherType");
  if (runtime == "edge") {
    def->runtime = Runtime::Edge;
    if (str("entrypoint").empty()) {
      return makeError(ErrorKind::Invalid,
                       ".vc-config.json: an edge function needs \"entrypoint\" (its module)");
    }
  } else if (launcher == "Nodejs" || runtime.rfind("nodejs", 0) == 0) {
    def->runtime = Runtime::Node;
    if (str("handler").empty()) {
      return makeError(ErrorKind::Invalid,
                       ".vc-config.json: a Node.js function needs \"handler\" (its entry file)");
    }
  } else {
    return makeError(ErrorKind::Invalid,
                     fmt::format(".vc-config.json: runtime '{}' is not supported yet; Nimbus "
                                 "runs Node.js (nodejs18.x–nodejs24.x, launcherType Nodejs) and "
                                 "edge functions",
                                 runtime.empty() ? launcher : runtime));
  }
  auto positive = [&](std::string_view k, int* out, int max) -> Result<void> {
    auto* f = o.if_contains(k);
    if (!f || f->is_null()) return success();
    if (f->is_int64() && f->as_int64() >= 1 && f->as_int64() <= max) {
      *out = static_cast<int>(f->as_int64());
      return success();
    }
    if (k == "maxDuration" && f->is_string() && f->as_string() == "max") {
      *out = 800;  // the largest plan limit of spec 6.5
      return success();
    }
    return makeError(ErrorKind::Invalid, fmt::format(".vc-config.json: \"{}\" must be an integer "
                                                     "from 1 to {}",
                                                     k, max));
  };
  if (auto r = positive("memory", &def->memoryMb, 10240); !r) return r;
  if (auto r = positive("maxDuration", &def->maxDurationS, 900); !r) return r;
  if (auto r = positive("maxConcurrency", &def->concurrency, 1000); !r) return r;
  return success();
}

Result<std::shared_ptr<const StoreCatalog::Loaded>> StoreCatalog::deployment(
    std::string_view deploymentId) {
  {
    std::lock_guard lock(mu_);
    if (auto it = deployments_.find(deploymentId); it != deployments_.end()) return it->second;
  }
  auto dep = store_->findDeployment(deploymentId);
  if (!dep) {
    return makeError(ErrorKind::NotFound, fmt::format("deployment {} does not exist", deploymentId));
  }
  auto manifestJson = content_->read(dep->manifestHash);
  if (!manifestJson) return manifestJson.error().context("reading the deployment manifest");
  auto manifest = output::manifestFromJson(*manifestJson);
  if (!manifest) return manifest.error().context("parsing the deployment manifest");
  auto out = output::loadDeploymentOutput(*manifest,
                                          [this](std::string_view h) { return content_->read(h); });
  if (!out) return out.error();
  auto loaded = std::make_shared<Loaded>();
  loaded->deployment = std::move(*dep);
  loaded->manifest = std::move(*manifest);
  loaded->output = std::move(*out);
  std::lock_guard lock(mu_);
  return deployments_.emplace(std::string(deploymentId), std::move(loaded)).first->second;
}

Result<std::shared_ptr<const FunctionDef>> StoreCatalog::load(std::string_view deploymentId,
                                                              std::string_view key) {
  auto loaded = deployment(deploymentId);
  if (!loaded) return loaded.error();
  const store::Deployment* dep = &(*loaded)->deployment;
  const output::Manifest* manifest = &(*loaded)->manifest;
  const output::DeploymentOutput* out = &(*loaded)->output;
  auto fit = out->functions.find(key);
  if (fit == out->functions.end()) {
    return makeError(ErrorKind::NotFound, fmt::format("deployment {} has no function '{}'",
                                                      deploymentId, key));
  }
  auto def = std::make_shared<FunctionDef>();
  def->deploymentId = dep->id;
  def->projectName = dep->projectName;
  def->key = std::string(key);
  def->dir = fit->second.dir;

  // The function's files: everything under its directory, plus whatever its symlinks
  // point at elsewhere in the output (shared node_modules).
  std::map<std::string_view, const output::ManifestEntry*> byPath;
  for (const auto& e : *manifest) byPath.emplace(e.path, &e);
  std::set<std::string> roots = {def->dir};
  std::vector<std::string> pending = {def->dir};
  std::set<std::string_view> taken;
  while (!pending.empty()) {
    std::string root = std::move(pending.back());
    pending.pop_back();
    std::string prefix = root + "/";
    for (auto it = byPath.lower_bound(prefix); it != byPath.end() && it->first.starts_with(prefix);
         ++it) {
      if (!taken.insert(it->first).second) continue;
      const auto& e = *it->second;
      def->files.push_back({e.path, e.hash, e.symlinkTarget, e.mode});
      if (!e.isSymlink()) continue;
      auto resolved = output::resolveLinkTarget(e.path, e.symlinkTarget);
      if (!resolved) continue;  // validateManifest refuses such links; nothing to follow
      const std::string& target = *resolved;
      bool inside = false;
      for (const auto& r : roots) inside = inside || target == r || target.starts_with(r + "/");
      if (inside) continue;
      if (auto t = byPath.find(target); t != byPath.end() && !t->second->isSymlink()) {
        if (taken.insert(t->first).second) {
          def->files.push_back({t->second->path, t->second->hash, "", t->second->mode});
        }
      } else {
        roots.insert(target);
        pending.push_back(target);
      }
    }
  }

  auto config = byPath.find(def->dir + "/.vc-config.json");
  if (config == byPath.end() || config->second->isSymlink()) {
    return makeError(ErrorKind::Invalid, fmt::format("function '{}' has no .vc-config.json", key));
  }
  auto configJson = content_->read(config->second->hash);
  if (!configJson) return configJson.error().context("reading .vc-config.json");
  def->configJson = std::move(*configJson);
  if (auto r = parseFunctionConfig(def->configJson, def.get()); !r) {
    return r.error().context(fmt::format("function '{}'", key));
  }

  // Environment: the deployment's sealed snapshot of the project's variables, then the
  // platform's own (spec 3.11).
  if (auto sealed = store_->deploymentEnv(dep->id); secrets_ && sealed && !sealed->empty()) {
    auto plain = secrets_->open(*sealed);
    if (!plain) return plain.error().context("opening the deployment's environment");
    boost::system::error_code ec;
    auto vars = json::parse(*plain, ec);
    if (!ec && vars.is_object()) {
      for (const auto& [k, v] : vars.as_object()) {
        if (v.is_string()) def->env.emplace_back(std::string(k), std::string(v.as_string()));
      }
    }
  }
  def->env.emplace_back("VERCEL", "1");
  def->env.emplace_back("VERCEL_ENV", std::string(store::toString(dep->target)));
  if (options_.deploymentHost) {
    def->deploymentHost = options_.deploymentHost(*dep);
    def->env.emplace_back("VERCEL_URL", def->deploymentHost);
  }
  if (options_.productionHost) {
    def->env.emplace_back("VERCEL_PROJECT_PRODUCTION_URL", options_.productionHost(*dep));
  }
  def->env.emplace_back("NIMBUS_PROJECT", dep->projectName);
  return std::shared_ptr<const FunctionDef>(std::move(def));
}

}  // namespace nimbus::worker

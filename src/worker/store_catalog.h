#pragma once
// The in-process FunctionCatalog: function definitions read from the store (deployment,
// sealed environment snapshot) and the content store (manifest, .vc-config.json), cached
// per deployment and function (deployments are immutable).
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/secret_box.h"
#include "content/content_store.h"
#include "output/build_output.h"
#include "output/manifest.h"
#include "store/store.h"
#include "worker/worker.h"

namespace nimbus::worker {

struct CatalogOptions {
  // The deployment's own URL host (VERCEL_URL, x-vercel-deployment-url) and the project's
  // production host (VERCEL_PROJECT_PRODUCTION_URL), with ":port" when not 80.
  std::function<std::string(const store::Deployment&)> deploymentHost;
  std::function<std::string(const store::Deployment&)> productionHost;
};

class StoreCatalog final : public FunctionCatalog {
 public:
  StoreCatalog(CatalogOptions options, store::Store* store, content::ContentStore* content,
               const SecretBox* secrets);
  Result<std::shared_ptr<const FunctionDef>> lookup(std::string_view deploymentId,
                                                    std::string_view key) override;
  std::vector<std::string> functionKeys(std::string_view deploymentId) override;
  std::optional<std::string> blobPath(std::string_view hash) override;
  Result<std::string> readBlob(std::string_view hash) override;

 private:
  // A deployment's parsed manifest and output map, loaded once for all its functions.
  struct Loaded {
    store::Deployment deployment;
    output::Manifest manifest;
    output::DeploymentOutput output;
  };
  Result<std::shared_ptr<const Loaded>> deployment(std::string_view deploymentId);
  Result<std::shared_ptr<const FunctionDef>> load(std::string_view deploymentId,
                                                  std::string_view key);
  CatalogOptions options_;
  store::Store* store_;
  content::ContentStore* content_;
  const SecretBox* secrets_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const FunctionDef>, std::less<>> cache_;
  std::map<std::string, std::shared_ptr<const Loaded>, std::less<>> deployments_;
};

// Parses a .vc-config.json into the runtime fields of `def` (runtime, memory,
// maxDuration, concurrency). Invalid names the field and how to fix it; NotFound-free.
Result<void> parseFunctionConfig(std::string_view configJson, FunctionDef* def);

}  // namespace nimbus::worker

#pragma once
// Lists the output keys of a Build Output API directory on disk (static files after
// `overrides`, function keys) without validating or hashing anything: what the conformance
// tests and routing_bench need to route against a real fixture. Deployments are loaded by
// output::loadDeploymentOutput, not by this.
#include <string>

#include "common/result.h"
#include "output/build_output.h"

namespace nimbus::routing {

// `outputDir` holds config.json, static/ and functions/. A `*.func` entry under functions/
// is a function whether it is a directory, a symlink, or a small regular file holding the
// link text (how checkouts without symlink support store them). Prerender configs are not
// outputs of their own here; their `.func` is.
Result<output::DeploymentOutput> listOutputKeys(const std::string& outputDir);

}  // namespace nimbus::routing

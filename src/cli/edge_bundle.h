#pragma once
// Deploy-time bundling of edge functions (spec 3.5): an edge entrypoint that arrives as
// CommonJS or with imports the edge runtime cannot resolve (the vercel-functions fixture's)
// is bundled with esbuild by runtimes/edge/bundle.mjs, and the bundle is deployed next to
// the sources as <func>/.nimbus/edge-bundle.mjs, which the edge launcher loads instead.
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "output/manifest.h"

namespace nimbus::cli {

struct EdgeBundle {
  std::string function;   // manifest dir, e.g. "functions/api/hono-edge.func"
  std::string localPath;  // the bundle file on this machine
  uint64_t bytes = 0;
  std::string reason;     // why it needed bundling
};

// Bundles what needs it into `workDir` and adds the bundles to `manifest` (kept sorted).
// `localFiles` gains manifest path -> local file for each added entry. Errors name the
// function and carry the bundler's message (esbuild's file:line errors).
Result<std::vector<EdgeBundle>> bundleEdgeFunctions(const std::string& root,
                                                    output::Manifest* manifest,
                                                    const std::string& workDir,
                                                    std::map<std::string, std::string>* localFiles);

// The runtimes directory: $NIMBUS_RUNTIMES, else the one built in.
std::string runtimesDir();

}  // namespace nimbus::cli

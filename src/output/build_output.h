#pragma once
// Reading a Build Output API v3 deployment: on the client side from a directory on disk
// (scan + validate + hash, before anything is uploaded), and on the server side from a
// manifest whose blobs are in the content store (parse into what the router serves).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "output/manifest.h"

namespace nimbus::output {

// One problem found in a build output directory.
struct Problem {
  std::string path;     // relative to the output dir ("" for the dir itself)
  std::string message;  // what is wrong and how to fix it
};

struct ScannedOutput {
  std::string root;     // absolute path of the output dir actually used
  Manifest manifest;    // sorted by path
  uint64_t totalBytes = 0;
};

// Progress callback for hashing: (files done, files total, bytes done).
using ScanProgress = std::function<void(size_t, size_t, uint64_t)>;

// Finds the output dir: `dir` itself when it holds config.json, else `dir`/.vercel/output.
// Validates everything (config.json present, JSON, version 3, routes an array if present;
// every `*.func` dir (or symlink to one) has a readable, well-formed `.vc-config.json` with
// a string `runtime` or `launcherType`/`handler` as the spec requires; symlinks resolve
// inside the output dir; no special files (sockets, fifos, devices); names that the server
// would refuse) and returns ALL problems at once. Only when there are none does it hash the
// files and return the manifest.
Result<ScannedOutput> scanOutputDir(const std::string& dir, std::vector<Problem>* problems,
                                    const ScanProgress& progress = {});

// A file served from `static/`, after `overrides`.
struct StaticFile {
  std::string hash;
  uint64_t size = 0;
  std::string contentType;   // from the override, else from the extension
  std::string sourcePath;    // manifest path of the bytes, e.g. "static/about.html"
};

// A function in `functions/` (key = path relative to functions/ without ".func").
struct FunctionRef {
  std::string key;           // e.g. "api/hello", "index", "![-]/0"
  std::string dir;           // manifest dir holding its files, e.g. "functions/![-]/0.func"
                             // (symlinked functions point at their target's dir)
  bool hasPrerenderConfig = false;
};

// What the router needs of one deployment.
struct DeploymentOutput {
  std::map<std::string, StaticFile, std::less<>> statics;   // key: output path, no leading '/'
  std::map<std::string, FunctionRef, std::less<>> functions;
  std::string configJson;    // config.json as uploaded (routes are evaluated elsewhere)
  std::vector<std::string> warnings;  // e.g. an override for a file that does not exist
};

// Builds the output map from a validated manifest. `readBlob` returns a blob's bytes by hash
// (used for config.json and `.vc-config.json`). Static symlinks are followed (within
// static/); `overrides` re-key and re-type files (the original key then no longer serves).
// Errors (Invalid) name the file and the reason: config.json not JSON, version not 3,
// overrides not an object, a function symlink whose target is not a function.
Result<DeploymentOutput> loadDeploymentOutput(
    const Manifest& manifest,
    const std::function<Result<std::string>(std::string_view hash)>& readBlob);

// Content-Type for a file name by its extension ("text/html; charset=utf-8" for .html,
// "application/octet-stream" when unknown). Text types carry "; charset=utf-8".
std::string contentTypeForPath(std::string_view path);

// Finds the static file for a request path (already percent-decoded, starting with '/'):
// exact key after stripping leading and trailing '/', then the directory index
// ("<key>/index.html", then "<key>/index"; "index.html"/"index" for "/").
const StaticFile* findStatic(const DeploymentOutput& out, std::string_view path);

}  // namespace nimbus::output

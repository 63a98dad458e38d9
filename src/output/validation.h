#pragma once
// Checks shared by the client-side scan (build_output.cpp), the server-side manifest
// validation (manifest.cpp) and the loader. Internal to nimbus::output: other subsystems use
// scanOutputDir / validateManifest / loadDeploymentOutput.
//
// Every check returns problem texts of the form "<what is wrong>; <how to fix it>", without
// the path, so each caller can prefix the path it knows.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nimbus::output {

// The path with control characters (and DEL) written as \xNN, so it fits on one line.
std::string printablePath(std::string_view path);

// Problems with a manifest path's syntax: empty, leading or trailing '/', '\\', control
// characters, empty / "." / ".." components, longer than kMaxPathBytes, a component longer
// than kMaxComponentBytes. Each kind is reported once per path.
std::vector<std::string> pathProblems(std::string_view path);

// Problems with one name (a single path component) met while walking a directory: '\\',
// control characters, longer than kMaxComponentBytes.
std::vector<std::string> nameProblems(std::string_view name);

// Resolves a symlink's text lexically against the directory holding the link at `linkPath`
// (a manifest path). Returns the normalised manifest path ("" is the output root itself), or
// nullopt when the target is absolute or climbs above the output root.
std::optional<std::string> resolveLinkTarget(std::string_view linkPath, std::string_view target);

// Problems with a symlink's text: absolute, control characters, resolves outside the root.
std::vector<std::string> symlinkProblems(std::string_view linkPath, std::string_view target);

// Problems with the text of config.json: not JSON (with line and column), not an object,
// "version" not the number 3, "routes" not an array, "overrides" not an object.
std::vector<std::string> configJsonProblems(std::string_view text);

// Problems with the text of a function's .vc-config.json: not JSON, not an object, no string
// "runtime"; edge functions (runtime "edge" or type "EdgeFunction") need a string
// "entrypoint", other functions a string "handler". Unknown keys are accepted.
std::vector<std::string> vcConfigProblems(std::string_view text);

// "<path>: <problem>" lines joined by '\n' after `headline`; at most kMaxListedProblems lines
// are listed, then a line saying how many more there are.
inline constexpr size_t kMaxListedProblems = 200;
std::string formatProblemList(std::string_view headline,
                              const std::vector<std::pair<std::string, std::string>>& lines);

}  // namespace nimbus::output

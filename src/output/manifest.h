#pragma once
// The file manifest of a deployment: every entry of a Build Output API directory
// (`.vercel/output`), relative to that directory. Regular files carry their content hash;
// symlinks carry their link text instead. The manifest is what the CLI uploads and what the
// server stores (as a JSON blob) for each immutable deployment.
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace nimbus::output {

struct ManifestEntry {
  std::string path;           // relative, '/'-separated, no leading '/', e.g. "static/a.txt"
  std::string hash;           // SHA-256 hex of the bytes; empty for symlinks
  uint64_t size = 0;          // bytes; 0 for symlinks
  uint32_t mode = 0644;       // permission bits (0777 mask); 0755 for executables
  std::string symlinkTarget;  // link text for symlinks (relative), empty otherwise

  bool isSymlink() const { return !symlinkTarget.empty(); }
};

using Manifest = std::vector<ManifestEntry>;

// Limits the server enforces on manifests.
inline constexpr size_t kMaxPathBytes = 1024;
inline constexpr size_t kMaxComponentBytes = 255;
inline constexpr size_t kMaxManifestEntries = 100'000;

// Serialises as {"files":[{"path":..,"hash":..,"size":..,"mode":..,"symlink":..},...]}.
std::string manifestToJson(const Manifest& m);
// Parses and validates (see validateManifest). Errors name the entry index and field.
Result<Manifest> manifestFromJson(std::string_view json);

// Server-side checks on an uploaded manifest: every path is relative and normalised (no
// empty, "." or ".." component, no leading '/', no '\\', no NUL or control characters),
// within kMaxPathBytes / kMaxComponentBytes; no duplicates; no entry both a file and a
// directory prefix of another; regular files have a SHA-256 hex hash; symlink targets are
// relative and resolve inside the output directory; `config.json` is present; at most
// kMaxManifestEntries entries. Every problem found is reported in one Error (Invalid),
// one line each, naming the path and how to fix it.
Result<void> validateManifest(const Manifest& m);

}  // namespace nimbus::output

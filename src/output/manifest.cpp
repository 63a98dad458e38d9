#include "output/manifest.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "common/sha256.h"
#include "output/validation.h"

namespace nimbus::output {

namespace json = boost::json;

namespace {

using ProblemLines = std::vector<std::pair<std::string, std::string>>;

std::string octal(uint64_t mode) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0%llo", static_cast<unsigned long long>(mode));
  return buf;
}

// A JSON number that is a non-negative integer (doubles must be integral and exact).
std::optional<uint64_t> toUnsigned(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64()) {
    if (v.get_int64() < 0) return std::nullopt;
    return static_cast<uint64_t>(v.get_int64());
  }
  if (v.is_double()) {
    double d = v.get_double();
    if (d >= 0 && d <= 9007199254740992.0 && d == static_cast<double>(static_cast<uint64_t>(d))) {
      return static_cast<uint64_t>(d);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string manifestToJson(const Manifest& m) {
  json::array files;
  files.reserve(m.size());
  for (const ManifestEntry& e : m) {
    files.push_back(json::object{
        {"path", e.path},
        {"hash", e.hash},
        {"size", e.size},
        {"mode", e.mode},
        {"symlink", e.symlinkTarget},
    });
  }
  json::object root;
  root["files"] = std::move(files);
  return json::serialize(root);
}

Result<Manifest> manifestFromJson(std::string_view text) {
  json::error_code ec;
  json::value root = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return makeError(ErrorKind::Invalid,
                     "manifest is not valid JSON (" + ec.message() +
                         "); send {\"files\": [{\"path\": ..., \"hash\": ..., \"size\": ..., "
                         "\"mode\": ..., \"symlink\": ...}, ...]}");
  }
  const json::array* files = nullptr;
  if (root.is_object()) {
    if (const json::value* f = root.get_object().if_contains("files")) files = f->if_array();
  }
  if (files == nullptr) {
    return makeError(ErrorKind::Invalid,
                     "manifest has no \"files\" array; send {\"files\": [{\"path\": ..., "
                     "\"hash\": ..., \"size\": ..., \"mode\": ..., \"symlink\": ...}, ...]}");
  }

  Manifest manifest;
  manifest.reserve(std::min(files->size(), kMaxManifestEntries + 1));
  ProblemLines problems;
  for (size_t i = 0; i < files->size(); ++i) {
    std::string where = "files[" + std::to_string(i) + "]";
    const json::object* obj = (*files)[i].if_object();
    if (obj == nullptr) {
      problems.push_back({where,
                          "expected an object with \"path\", \"hash\", \"size\", "
                          "\"mode\" and \"symlink\""});
      continue;
    }
    ManifestEntry entry;
    auto readString = [&](const char* key, std::string* out, bool required) {
      const json::value* v = obj->if_contains(key);
      if (v == nullptr) {
        if (required) problems.push_back({where + "." + key, "missing; it is required"});
        return;
      }
      if (!v->is_string()) {
        problems.push_back({where + "." + key, "expected a string"});
        return;
      }
      *out = std::string(v->get_string());
    };
    readString("path", &entry.path, /*required=*/true);
    readString("hash", &entry.hash, false);
    readString("symlink", &entry.symlinkTarget, false);
    if (const json::value* v = obj->if_contains("size")) {
      if (auto n = toUnsigned(*v)) {
        entry.size = *n;
      } else {
        problems.push_back({where + ".size", "expected a non-negative integer byte count"});
      }
    }
    if (const json::value* v = obj->if_contains("mode")) {
      auto n = toUnsigned(*v);
      if (n && *n <= 0xffffffffu) {
        entry.mode = static_cast<uint32_t>(*n);
      } else {
        problems.push_back({where + ".mode",
                            "expected a permission value from 0 to 07777 "
                            "(as a JSON number, e.g. 420 for 0644)"});
      }
    }
    manifest.push_back(std::move(entry));
  }
  if (!problems.empty()) {
    return makeError(
        ErrorKind::Invalid,
        formatProblemList(
            "manifest has " + std::to_string(problems.size()) + " malformed field(s):", problems));
  }
  if (auto valid = validateManifest(manifest); !valid) return valid.error();
  return manifest;
}

Result<void> validateManifest(const Manifest& m) {
  ProblemLines problems;
  if (m.size() > kMaxManifestEntries) {
    problems.push_back({"(manifest)", "has " + std::to_string(m.size()) +
                                          " entries, more than "
                                          "the " +
                                          std::to_string(kMaxManifestEntries) +
                                          " allowed; deploy fewer files (bundle dependencies or "
                                          "serve large asset sets from elsewhere)"});
  }

  bool hasConfig = false;  // a config.json entry exists (its own problems are listed apart)
  for (const ManifestEntry& e : m) {
    for (std::string& p : pathProblems(e.path)) problems.push_back({e.path, std::move(p)});
    if (e.mode > 07777) {
      problems.push_back({e.path, "mode " + octal(e.mode) +
                                      " is not a permission value (0 to "
                                      "07777); send st_mode & 07777"});
    }
    if (e.isSymlink()) {
      for (std::string& p : symlinkProblems(e.path, e.symlinkTarget)) {
        problems.push_back({e.path, std::move(p)});
      }
    } else if (!isSha256Hex(e.hash)) {
      std::string shown = printablePath(e.hash.substr(0, 80));
      problems.push_back(
          {e.path, (e.hash.empty() ? std::string("has no hash")
                                   : "hash \"" + shown + "\" is not a SHA-256 digest") +
                       "; send the SHA-256 of the file's bytes as 64 lower-case hex characters"});
    }
    if (e.path == "config.json") {
      hasConfig = true;
      if (e.isSymlink()) {
        problems.push_back({e.path, "is a symlink; replace it with the file itself"});
      }
    }
  }

  // Duplicates and file-versus-directory clashes, found on a sorted copy of the paths.
  std::vector<std::pair<std::string_view, const ManifestEntry*>> sorted;
  sorted.reserve(m.size());
  for (const ManifestEntry& e : m) sorted.emplace_back(e.path, &e);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j].first == sorted[i].first) ++j;
    std::string_view path = sorted[i].first;
    if (j - i > 1) {
      problems.push_back(
          {std::string(path), "appears " + std::to_string(j - i) + " times; list each path once"});
    }
    if (!path.empty()) {
      std::string dirPrefix = std::string(path) + "/";
      auto it = std::lower_bound(sorted.begin(), sorted.end(), dirPrefix,
                                 [](const auto& a, const std::string& b) { return a.first < b; });
      if (it != sorted.end() && it->first.substr(0, dirPrefix.size()) == dirPrefix) {
        problems.push_back(
            {std::string(path),
             std::string(sorted[i].second->isSymlink() ? "is a symlink" : "is a file") +
                 " but also the parent directory of \"" + printablePath(it->first) +
                 "\"; keep only one of them"});
      }
    }
    i = j;
  }

  if (!hasConfig) {
    problems.push_back({"config.json",
                        "missing; every build output needs a config.json with at "
                        "least {\"version\": 3} at its root"});
  }
  if (problems.empty()) return success();
  return makeError(
      ErrorKind::Invalid,
      formatProblemList("invalid manifest (" + std::to_string(problems.size()) + " problem(s)):",
                        problems));
}

}  // namespace nimbus::output

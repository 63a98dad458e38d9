// makeOutputIndex: the "does this routed path exist" lookup of spec 1.3 / 2.6 over a loaded
// deployment, precomputed into two hash maps so a lookup is at most two probes.
#include <string>
#include <unordered_map>

#include "output/build_output.h"
#include "routing/routing.h"

namespace nimbus::routing {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

using KeyMap = std::unordered_map<std::string, OutputMatch, StringHash, std::equal_to<>>;

class DeploymentOutputIndex final : public OutputIndex {
 public:
  explicit DeploymentOutputIndex(const output::DeploymentOutput& out) {
    // Directory answers, best first: function `<dir>/index`, static `<dir>/index.html`,
    // static `<dir>/index` ("" is the root). Exact keys, inserted afterwards, win over
    // them, and functions win a key clash with statics (inserted after, spec 1.3), so a
    // lookup is a single probe.
    std::unordered_map<std::string, int> rank;
    auto offer = [this, &rank](std::string_view dir, std::string_view key, OutputKind kind, int r) {
      auto [it, inserted] = rank.try_emplace(std::string(dir), r);
      if (inserted || r < it->second) {
        it->second = r;
        paths_[std::string(dir)] = {kind, std::string(key)};
      }
    };
    auto dirOf = [](std::string_view key,
                    std::string_view leaf) -> std::optional<std::string_view> {
      if (key == leaf) return std::string_view();
      if (key.size() > leaf.size() + 1 && key.ends_with(leaf) &&
          key[key.size() - leaf.size() - 1] == '/') {
        return key.substr(0, key.size() - leaf.size() - 1);
      }
      return std::nullopt;
    };
    for (const auto& [key, fn] : out.functions) {
      if (auto dir = dirOf(key, "index")) offer(*dir, key, OutputKind::Function, 0);
    }
    for (const auto& [key, file] : out.statics) {
      if (out.functions.contains(key)) continue;  // shadowed by a function
      if (auto dir = dirOf(key, "index.html")) offer(*dir, key, OutputKind::Static, 1);
      if (auto dir = dirOf(key, "index")) offer(*dir, key, OutputKind::Static, 2);
    }
    for (const auto& [key, file] : out.statics) {
      if (!key.empty()) paths_[key] = {OutputKind::Static, key};
    }
    for (const auto& [key, fn] : out.functions) {
      if (!key.empty()) paths_[key] = {OutputKind::Function, key};
    }
  }

  OutputMatch find(std::string_view path) const override {
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    if (auto it = paths_.find(path); it != paths_.end()) return it->second;
    return {};
  }

 private:
  KeyMap paths_;  // routed path without leading/trailing '/' -> output
};

}  // namespace

std::unique_ptr<OutputIndex> makeOutputIndex(const output::DeploymentOutput& out) {
  return std::make_unique<DeploymentOutputIndex>(out);
}

}  // namespace nimbus::routing

#include "routing/output_listing.h"

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace nimbus::routing {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

void listStatics(const fs::path& dir, const fs::path& root, output::DeploymentOutput& out) {
  std::error_code ec;
  for (fs::recursive_directory_iterator
           it(dir, fs::directory_options::follow_directory_symlink, ec),
       end;
       it != end; it.increment(ec)) {
    if (ec) break;
    if (it->is_directory(ec)) continue;
    std::string key = fs::relative(it->path(), root, ec).generic_string();
    output::StaticFile file;
    file.sourcePath = "static/" + key;
    out.statics.emplace(key, std::move(file));
  }
}

void listFunctions(const fs::path& dir, const std::string& prefix, output::DeploymentOutput& out) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    bool isFunc = name.size() > 5 && name.ends_with(".func");
    if (isFunc) {
      // A directory, a symlink to one, or a flattened symlink (regular file): all functions.
      std::string key = prefix + name.substr(0, name.size() - 5);
      output::FunctionRef fn;
      fn.key = key;
      fn.dir = "functions/" + prefix + name;
      fn.hasPrerenderConfig =
          fs::exists(dir / (name.substr(0, name.size() - 5) + ".prerender-config.json"), ec);
      out.functions.emplace(key, std::move(fn));
      continue;
    }
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) {
      listFunctions(entry.path(), prefix + name + "/", out);
    }
  }
}

}  // namespace

Result<output::DeploymentOutput> listOutputKeys(const std::string& outputDir) {
  fs::path root(outputDir);
  output::DeploymentOutput out;
  std::ifstream in(root / "config.json", std::ios::binary);
  if (!in) {
    return makeError(ErrorKind::NotFound, "listing outputs: cannot read " +
                                              (root / "config.json").string() +
                                              "; pass a Build Output API directory");
  }
  std::ostringstream text;
  text << in.rdbuf();
  out.configJson = text.str();

  std::error_code ec;
  if (fs::is_directory(root / "static", ec)) listStatics(root / "static", root / "static", out);
  if (fs::is_directory(root / "functions", ec)) listFunctions(root / "functions", "", out);

  // overrides: `path` re-keys a static file (the old key no longer serves).
  boost::system::error_code jec;
  json::value config = json::parse(out.configJson, jec);
  if (!jec && config.is_object()) {
    if (const json::value* overrides = config.get_object().if_contains("overrides");
        overrides != nullptr && overrides->is_object()) {
      for (const auto& field : overrides->get_object()) {
        const json::object* o = field.value().if_object();
        const json::value* path = o != nullptr ? o->if_contains("path") : nullptr;
        if (path == nullptr || !path->is_string()) continue;
        auto node = out.statics.extract(std::string(field.key()));
        if (node.empty()) continue;
        std::string key(path->get_string());
        while (!key.empty() && key.front() == '/') key.erase(key.begin());
        node.key() = key;
        out.statics.insert(std::move(node));
      }
    }
  }
  return out;
}

}  // namespace nimbus::routing

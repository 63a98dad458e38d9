// The client subcommands: they talk to the control API (docs/api.md).
#include <boost/json.hpp>
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <thread>
#include <iostream>
#include <iterator>
#include <map>
#include <set>

#include "cli/cli.h"
#include "cli/edge_bundle.h"
#include "http/client.h"
#include "output/build_output.h"
#include "output/manifest.h"
#include "routing/routing.h"
#include "store/store.h"

namespace nimbus::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::string humanBytes(uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", n) : fmt::format("{:.1f} {}", v, units[u]);
}

std::string ago(int64_t ms) {
  using namespace std::chrono;
  int64_t now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  int64_t s = std::max<int64_t>(0, (now - ms) / 1000);
  if (s < 60) return fmt::format("{}s ago", s);
  if (s < 3600) return fmt::format("{}m ago", s / 60);
  if (s < 86400) return fmt::format("{}h ago", s / 3600);
  return fmt::format("{}d ago", s / 86400);
}

std::string str(const json::value& v, std::string_view key) {
  if (!v.is_object()) return {};
  auto* f = v.as_object().if_contains(key);
  if (!f) return {};
  if (f->is_string()) return std::string(f->as_string());
  if (f->is_null()) return {};
  return json::serialize(*f);
}

int64_t num(const json::value& v, std::string_view key) {
  auto* f = v.as_object().if_contains(key);
  if (!f) return 0;
  if (f->is_int64()) return f->as_int64();
  if (f->is_uint64()) return static_cast<int64_t>(f->as_uint64());
  return 0;
}

// The API, with the token resolved and errors turned into messages.
class Api {
 public:
  static Result<Api> connect(const GlobalOptions& g) {
    auto client = http::Client::create(g.api);
    if (!client) return client.error();
    std::string token = g.token;
    if (token.empty()) {
      std::string path = g.data + "/admin-token";
      std::ifstream in(path);
      if (in) std::getline(in, token);
    }
    return Api(std::move(*client), std::move(token), g);
  }

  Result<json::value> call(std::string_view method, std::string_view target,
                           const json::value* body = nullptr) {
    http::Client::Headers headers = authHeaders();
    std::string text;
    if (body) {
      text = json::serialize(*body);
      headers.emplace_back("content-type", "application/json");
    }
    return decode(client_->request(method, target, headers, text));
  }

  Result<json::value> upload(const std::string& hash, const std::string& path, uint64_t size,
                             const std::function<void(uint64_t)>& progress) {
    return decode(client_->upload("PUT", "/v1/blobs/" + hash, authHeaders(), path, size, progress));
  }

 private:
  Api(std::unique_ptr<http::Client> client, std::string token, const GlobalOptions& g)
      : client_(std::move(client)), token_(std::move(token)), data_(g.data) {}

  http::Client::Headers authHeaders() const {
    http::Client::Headers h;
    if (!token_.empty()) h.emplace_back("authorization", "Bearer " + token_);
    return h;
  }

  Result<json::value> decode(Result<http::ClientResponse> r) {
    if (!r) return r.error();
    boost::system::error_code ec;
    json::value v = json::parse(r->body, ec);
    if (r->status >= 200 && r->status < 300) {
      if (ec) return makeError(ErrorKind::Internal, "the API answered with invalid JSON");
      return v;
    }
    std::string message = ec ? r->body : str(v.as_object().contains("error") ? v.at("error") : v, "message");
    if (message.empty()) message = fmt::format("the API answered {}", r->status);
    ErrorKind kind = r->status == 401   ? ErrorKind::Unauthorized
                     : r->status == 404 ? ErrorKind::NotFound
                     : r->status == 409 ? ErrorKind::Conflict
                     : r->status == 413 ? ErrorKind::TooLarge
                     : r->status < 500  ? ErrorKind::Invalid
                                        : ErrorKind::Internal;
    if (r->status == 401 && token_.empty()) {
      message = fmt::format("no API token: pass --token, set NIMBUS_TOKEN, or run on the machine "
                            "of `nimbus serve` with --data pointing at its data directory (no "
                            "token file at {}/admin-token)",
                            data_);
    }
    return makeError(kind, message);
  }

  std::unique_ptr<http::Client> client_;
  std::string token_;
  std::string data_;
};

void printJson(const json::value& v) { fmt::print("{}\n", json::serialize(v)); }

// The common ending of an API command: 1 after printing the error, 0 after printing the
// JSON with --json, -1 when the caller should print its human-readable output.
int finishEarly(const GlobalOptions& g, const Result<json::value>& r) {
  if (!r) return fail(r.error().message);
  if (g.json) {
    printJson(*r);
    return 0;
  }
  return -1;
}

// A project name from a folder name: lower-case, [a-z0-9-], at most 48 characters.
std::string projectNameFrom(std::string name) {
  std::string out;
  for (char c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 48) out.resize(48);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string defaultProjectName(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  // <app>/.vercel/output -> <app>
  if (p.filename() == "output" && p.parent_path().filename() == ".vercel") {
    p = p.parent_path().parent_path();
  }
  return projectNameFrom(p.filename().string());
}

class ProgressBar {
 public:
  ProgressBar(uint64_t totalBytes, size_t totalFiles)
      : enabled_(::isatty(STDERR_FILENO) == 1), totalBytes_(totalBytes), totalFiles_(totalFiles) {}
  void update(uint64_t bytes, size_t files) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (files < totalFiles_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double frac = totalBytes_ ? static_cast<double>(bytes) / static_cast<double>(totalBytes_) : 1.0;
    int width = 30;
    int filled = static_cast<int>(frac * width);
    fmt::print(stderr, "\rUploading [{}{}] {:3.0f}% {}/{} {}/{} files", std::string(filled, '='),
               std::string(width - filled, ' '), frac * 100, humanBytes(bytes),
               humanBytes(totalBytes_), files, totalFiles_);
    std::fflush(stderr);
  }
  void finish() {
    if (enabled_) fmt::print(stderr, "\n");
  }

 private:
  bool enabled_;
  uint64_t totalBytes_;
  size_t totalFiles_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

namespace {

// A private temporary directory removed with its contents.
struct TempWorkDir {
  std::string path;
  TempWorkDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/nimbus-deploy-XXXXXX";
    if (::mkdtemp(pattern.data())) path = pattern;
  }
  ~TempWorkDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

int runDeploy(const GlobalOptions& g, const DeployOptions& o) {
  std::string project = o.project.empty() ? defaultProjectName(o.dir) : o.project;
  if (project.empty()) {
    return fail(fmt::format("cannot derive a project name from '{}'; pass --project NAME", o.dir));
  }
  std::vector<output::Problem> problems;
  bool tty = ::isatty(STDERR_FILENO) == 1;
  // The project name is checked with the directory, so every problem shows up at once and
  // nothing is uploaded for a deploy the server would refuse.
  std::optional<output::Problem> nameProblem;
  if (!store::isValidProjectName(project)) {
    nameProblem = output::Problem{
        "--project",
        fmt::format("'{}' is not a valid project name: use 1-48 characters from a-z, 0-9 and "
                    "'-', not starting or ending with '-' (it becomes part of the host name)",
                    project)};
  }
  auto scanned = output::scanOutputDir(o.dir, &problems, [&](size_t done, size_t total, uint64_t) {
    if (tty && (done == total || done % 64 == 0)) {
      fmt::print(stderr, "\rHashing {}/{} files", done, total);
      if (done == total) fmt::print(stderr, "\n");
    }
  });
  if (scanned) {
    // Routes are compiled here too, so a bad regex is reported before anything uploads.
    std::ifstream in(scanned->root + "/config.json", std::ios::binary);
    std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (auto routes = routing::RouteTable::compile(config); !routes) {
      problems.push_back(output::Problem{"config.json", routes.error().message});
      scanned = makeError(ErrorKind::Invalid, "invalid routes");
    }
  }
  if (nameProblem) {
    problems.insert(problems.begin(), *nameProblem);
    if (scanned) scanned = makeError(ErrorKind::Invalid, "invalid project name");
  }
  if (!scanned) {
    if (problems.empty()) return fail(scanned.error().message);
    fmt::print(stderr, "error: {} cannot be deployed; {} problem(s) found:\n", o.dir, problems.size());
    for (const auto& p : problems) {
      fmt::print(stderr, "  {}: {}\n", p.path.empty() ? "." : p.path, p.message);
    }
    fmt::print(stderr, "Nothing was uploaded or created.\n");
    return 1;
  }
  if (!g.json) {
    fmt::print(stderr, "Validated {}: {} files, {}\n", scanned->root, scanned->manifest.size(),
               humanBytes(scanned->totalBytes));
  }
  // Edge functions that arrive unbundled are bundled here, before anything uploads.
  std::map<std::string, std::string> localFiles;  // generated manifest entries
  TempWorkDir work;
  auto bundles = bundleEdgeFunctions(scanned->root, &scanned->manifest, work.path, &localFiles);
  if (!bundles) return fail(bundles.error().message);
  if (!g.json) {
    for (const auto& b : *bundles) {
      fmt::print(stderr, "Bundled edge function {} with esbuild ({}; {})\n",
                 b.function.substr(std::string_view("functions/").size()), b.reason,
                 humanBytes(b.bytes));
    }
  }
  const auto& manifest = scanned->manifest;

  auto api = Api::connect(g);
  if (!api) return fail(api.error().message);

  // Which blobs does the server lack? Each distinct hash is uploaded once.
  std::map<std::string, const output::ManifestEntry*> byHash;
  for (const auto& e : manifest) {
    if (!e.isSymlink()) byHash.emplace(e.hash, &e);
  }
  json::array hashes;
  for (const auto& [h, e] : byHash) hashes.emplace_back(h);
  json::value req = json::object{{"hashes", std::move(hashes)}};
  auto missing = api->call("POST", "/v1/blobs/missing", &req);
  if (!missing) return fail(missing.error().message);

  std::vector<const output::ManifestEntry*> toUpload;
  uint64_t uploadBytes = 0;
  for (const auto& h : missing->at("missing").as_array()) {
    auto it = byHash.find(std::string(h.as_string()));
    if (it == byHash.end()) continue;
    toUpload.push_back(it->second);
    uploadBytes += it->second->size;
  }
  if (!g.json) {
    if (toUpload.empty()) {
      fmt::print(stderr, "Uploaded 0 B: all {} files were already on the server\n", byHash.size());
    } else {
      fmt::print(stderr, "Uploading {} new file(s), {}; {} already on the server\n",
                 toUpload.size(), humanBytes(uploadBytes), byHash.size() - toUpload.size());
    }
  }
  ProgressBar bar(uploadBytes, toUpload.size());
  uint64_t sent = 0;
  size_t filesDone = 0;
  for (const auto* e : toUpload) {
    auto local = localFiles.find(e->path);
    std::string path = local != localFiles.end() ? local->second : scanned->root + "/" + e->path;
    uint64_t before = sent;
    auto r = api->upload(e->hash, path, e->size, [&](uint64_t n) { bar.update(before + n, filesDone); });
    if (!r) {
      bar.finish();
      return fail(fmt::format("uploading {}: {}", e->path, r.error().message));
    }
    sent = before + e->size;
    ++filesDone;
    bar.update(sent, filesDone);
  }
  bar.finish();

  json::value files = json::parse(output::manifestToJson(manifest)).at("files");
  json::value create = json::object{{"project", project},
                                    {"target", o.prod ? "production" : "preview"},
                                    {"files", std::move(files)}};
  auto created = api->call("POST", "/v1/deployments", &create);
  if (!created) return fail(fmt::format("creating the deployment: {}", created.error().message));
  auto& d = created->as_object();
  if (g.json) {
    d["uploadedBytes"] = sent;
    d["uploadedFiles"] = toUpload.size();
    d["reusedFiles"] = byHash.size() - toUpload.size();
    printJson(*created);
    return 0;
  }
  if (auto* w = d.if_contains("warnings"); w && w->is_array()) {
    for (const auto& x : w->as_array()) fmt::print(stderr, "warning: {}\n", x.as_string().c_str());
  }
  fmt::print("Deployed {} (project {}, {})\n", str(*created, "id"), project,
             o.prod ? "production" : "preview");
  if (auto* env = d.if_contains("env"); env && env->is_array() && !env->as_array().empty()) {
    std::string keys;
    for (const auto& k : env->as_array()) {
      keys += keys.empty() ? "" : ", ";
      keys += k.as_string().c_str();
    }
    fmt::print("  Environment: {} variable(s) snapshotted ({})\n", env->as_array().size(), keys);
  }
  fmt::print("  Preview:    {}\n", str(*created, "url"));
  if (o.prod) fmt::print("  Production: {}\n", str(*created, "productionUrl"));
  return 0;
}

namespace {

void printDeploymentTable(const json::array& list) {
  fmt::print("{:<14} {:<20} {:<11} {:<5} {:>7} {:>10}  {}\n", "ID", "PROJECT", "TARGET", "PROD",
             "FILES", "AGE", "URL");
  for (const auto& d : list) {
    fmt::print("{:<14} {:<20} {:<11} {:<5} {:>7} {:>10}  {}\n", str(d, "id"), str(d, "project"),
               str(d, "target"), d.at("isProduction").as_bool() ? "*" : "", num(d, "files"),
               ago(num(d, "createdAt")), str(d, "url"));
  }
}

int withApi(const GlobalOptions& g, const std::function<int(Api&)>& fn) {
  auto api = Api::connect(g);
  if (!api) return fail(api.error().message);
  return fn(*api);
}

std::string urlEncode(std::string_view s);

// A deployment by id or by one of its URLs.
Result<json::value> resolveDeployment(Api& api, const std::string& what) {
  if (what.find("://") != std::string::npos || what.find('.') != std::string::npos) {
    std::string host = what;
    if (auto p = host.find("://"); p != std::string::npos) host = host.substr(p + 3);
    host = host.substr(0, host.find('/'));
    return api.call("GET", "/v1/resolve?host=" + urlEncode(host));
  }
  return api.call("GET", "/v1/deployments/" + urlEncode(what));
}

std::string urlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

int runList(const GlobalOptions& g, const std::string& project) {
  return withApi(g, [&](Api& api) {
    std::string target = "/v1/deployments";
    if (!project.empty()) target += "?project=" + urlEncode(project);
    auto r = api.call("GET", target);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& list = r->at("deployments").as_array();
    if (list.empty()) {
      fmt::print("No deployments yet. Create one with `nimbus deploy <dir>`.\n");
      return 0;
    }
    printDeploymentTable(list);
    return 0;
  });
}

int runInspect(const GlobalOptions& g, const std::string& what) {
  return withApi(g, [&](Api& api) {
    Result<json::value> r = resolveDeployment(api, what);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& d = *r;
    fmt::print("id:          {}\n", str(d, "id"));
    fmt::print("project:     {}\n", str(d, "project"));
    fmt::print("target:      {}\n", str(d, "target"));
    fmt::print("production:  {}\n", d.at("isProduction").as_bool() ? "yes (current)" : "no");
    fmt::print("created:     {}\n", ago(num(d, "createdAt")));
    fmt::print("files:       {} ({})\n", num(d, "files"), humanBytes(static_cast<uint64_t>(num(d, "bytes"))));
    fmt::print("url:         {}\n", str(d, "url"));
    fmt::print("production url: {}\n", str(d, "productionUrl"));
    return 0;
  });
}

int runPromote(const GlobalOptions& g, const std::string& id) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("POST", "/v1/deployments/" + urlEncode(id) + "/promote");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Promoted {}: {} now serves it\n", id, str(*r, "productionUrl"));
    return 0;
  });
}

int runRollback(const GlobalOptions& g, const std::string& projectArg) {
  return withApi(g, [&](Api& api) {
    std::string project = projectArg;
    if (project.empty()) {
      auto list = api.call("GET", "/v1/projects");
      if (!list) return fail(list.error().message);
      const auto& projects = list->at("projects").as_array();
      if (projects.size() != 1) {
        return fail(fmt::format("there are {} projects; name the one to roll back: "
                                "`nimbus rollback <project>`",
                                projects.size()));
      }
      project = str(projects[0], "name");
    }
    auto r = api.call("POST", "/v1/projects/" + urlEncode(project) + "/rollback");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Rolled back {}: production is now {} ({})\n", project, str(*r, "id"),
               str(*r, "productionUrl"));
    return 0;
  });
}

int runRemove(const GlobalOptions& g, const std::string& id) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("DELETE", "/v1/deployments/" + urlEncode(id));
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Deleted deployment {}\n", id);
    return 0;
  });
}

int runProjects(const GlobalOptions& g) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/projects");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& list = r->at("projects").as_array();
    if (list.empty()) {
      fmt::print("No projects yet. `nimbus deploy <dir> --prod` creates one.\n");
      return 0;
    }
    fmt::print("{:<24} {:<14} {}\n", "NAME", "PRODUCTION", "URL");
    for (const auto& p : list) {
      std::string prod = str(p, "production");
      fmt::print("{:<24} {:<14} {}\n", str(p, "name"), prod.empty() ? "-" : prod,
                 prod.empty() ? "(no production deployment)" : str(p, "url"));
    }
    return 0;
  });
}

int runAliasSet(const GlobalOptions& g, const std::string& host, const std::string& id) {
  return withApi(g, [&](Api& api) {
    json::value body = json::object{{"deployment", id}};
    auto r = api.call("PUT", "/v1/aliases/" + urlEncode(host), &body);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("{} now serves deployment {} ({})\n", str(*r, "host"), id, str(*r, "url"));
    return 0;
  });
}

int runAliasList(const GlobalOptions& g) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/aliases");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& list = r->at("aliases").as_array();
    if (list.empty()) {
      fmt::print("No aliases. `nimbus alias set <host> <deployment>` adds one.\n");
      return 0;
    }
    fmt::print("{:<40} {:<14} {}\n", "HOST", "DEPLOYMENT", "UPDATED");
    for (const auto& a : list) {
      fmt::print("{:<40} {:<14} {}\n", str(a, "host"), str(a, "deployment"), ago(num(a, "updatedAt")));
    }
    return 0;
  });
}

int runAliasRemove(const GlobalOptions& g, const std::string& host) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("DELETE", "/v1/aliases/" + urlEncode(host));
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Removed alias {}\n", host);
    return 0;
  });
}

namespace {

std::string envProject(const EnvOptions& o) {
  return o.project.empty() ? defaultProjectName(".") : o.project;
}

}  // namespace

int runEnvAdd(const GlobalOptions& g, const EnvOptions& o) {
  std::string value;
  if (o.value) {
    value = *o.value;
  } else {
    if (::isatty(STDIN_FILENO) == 1) fmt::print(stderr, "Value of {}: ", o.key);
    std::getline(std::cin, value);
  }
  std::string project = envProject(o);
  json::object body;
  body["value"] = value;
  if (!o.environment.empty()) body["environments"] = json::array{json::value(o.environment)};
  return withApi(g, [&](Api& api) {
    json::value b = body;
    auto r = api.call("PUT", "/v1/projects/" + urlEncode(project) + "/env/" + urlEncode(o.key), &b);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    std::string envs;
    for (const auto& e : r->at("environments").as_array()) {
      envs += envs.empty() ? "" : ", ";
      envs += e.as_string().c_str();
    }
    fmt::print("Set {} for {} of {} (encrypted at rest). New deployments get it; existing ones "
               "keep their snapshot.\n",
               o.key, envs, project);
    return 0;
  });
}

int runEnvList(const GlobalOptions& g, const EnvOptions& o) {
  std::string project = envProject(o);
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/projects/" + urlEncode(project) + "/env" +
                                 (o.values ? "?values=1" : ""));
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& list = r->at("env").as_array();
    if (list.empty()) {
      fmt::print("No variables in {}. `nimbus env add KEY --project {}` adds one.\n", project, project);
      return 0;
    }
    fmt::print("{:<32} {:<11} {:>10}{}\n", "KEY", "ENVIRONMENT", "UPDATED", o.values ? "  VALUE" : "");
    for (const auto& v : list) {
      fmt::print("{:<32} {:<11} {:>10}{}\n", str(v, "key"), str(v, "environment"),
                 ago(num(v, "updatedAt")), o.values ? "  " + str(v, "value") : "");
    }
    return 0;
  });
}

int runEnvRemove(const GlobalOptions& g, const EnvOptions& o) {
  std::string project = envProject(o);
  return withApi(g, [&](Api& api) {
    std::string target = "/v1/projects/" + urlEncode(project) + "/env/" + urlEncode(o.key);
    if (!o.environment.empty()) target += "?environment=" + o.environment;
    auto r = api.call("DELETE", target);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Removed {} from {}{}\n", o.key, project,
               o.environment.empty() ? "" : " (" + o.environment + ")");
    return 0;
  });
}

namespace {

Result<std::string> readTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return makeError(ErrorKind::Io, fmt::format("cannot read {}", path));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void printUpstreamTls(const json::value& v) {
  fmt::print("project:            {}\n", str(v, "project"));
  fmt::print("custom CA:          {}\n", v.at("customCa").as_bool() ? "yes" : "no (system trust store)");
  fmt::print("client certificate: {}\n", v.at("clientCertificate").as_bool() ? "yes (mTLS)" : "no");
  fmt::print("verify upstream:    {}\n", v.at("verify").as_bool() ? "yes" : "NO (--no-verify)");
}

}  // namespace

int runUpstreamTlsSet(const GlobalOptions& g, const UpstreamTlsOptions& o) {
  if (o.caFile.empty() && o.certFile.empty() && !o.noVerify) {
    return fail("nothing to set: pass --ca, --cert with --key, or --no-verify");
  }
  json::object body;
  for (auto [key, path] : {std::pair{"ca", &o.caFile}, std::pair{"cert", &o.certFile},
                           std::pair{"key", &o.keyFile}}) {
    if (path->empty()) continue;
    auto text = readTextFile(*path);
    if (!text) return fail(text.error().message);
    body[key] = *text;
  }
  body["verify"] = !o.noVerify;
  return withApi(g, [&](Api& api) {
    json::value b = body;
    auto r = api.call("PUT", "/v1/projects/" + urlEncode(o.project) + "/upstream-tls", &b);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    printUpstreamTls(*r);
    return 0;
  });
}

int runUpstreamTlsShow(const GlobalOptions& g, const std::string& project) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/projects/" + urlEncode(project) + "/upstream-tls");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    printUpstreamTls(*r);
    return 0;
  });
}

int runUpstreamTlsRemove(const GlobalOptions& g, const std::string& project) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("DELETE", "/v1/projects/" + urlEncode(project) + "/upstream-tls");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Removed upstream TLS settings of {}\n", project);
    return 0;
  });
}

int runTokenCreate(const GlobalOptions& g, const std::string& name) {
  return withApi(g, [&](Api& api) {
    json::value body = json::object{{"name", name}};
    auto r = api.call("POST", "/v1/tokens", &body);
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Created token {} ({}). Its secret is shown only now:\n{}\n", str(*r, "id"),
               str(*r, "name"), str(*r, "token"));
    return 0;
  });
}

int runTokenList(const GlobalOptions& g) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/tokens");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("{:<24} {:<20} {:<10} {}\n", "ID", "NAME", "CREATED", "LAST USED");
    for (const auto& t : r->at("tokens").as_array()) {
      std::string last = str(t, "lastUsedAt");
      fmt::print("{:<24} {:<20} {:<10} {}\n", str(t, "id"), str(t, "name"), ago(num(t, "createdAt")),
                 last.empty() ? "never" : ago(num(t, "lastUsedAt")));
    }
    return 0;
  });
}

int runTokenRevoke(const GlobalOptions& g, const std::string& id) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("DELETE", "/v1/tokens/" + urlEncode(id));
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    fmt::print("Revoked token {}\n", id);
    return 0;
  });
}


namespace {

std::string durationText(int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", ms / 1000.0);
  if (ms < 3'600'000) return fmt::format("{}m{}s", ms / 60'000, ms / 1000 % 60);
  return fmt::format("{}h{}m", ms / 3'600'000, ms / 60'000 % 60);
}

double dbl(const json::value& v, std::string_view key) {
  auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<double>() : 0.0;
}

// One function log record as a line.
std::string logLine(const json::value& rec) {
  auto ts = std::chrono::system_clock::time_point(std::chrono::milliseconds(num(rec, "ts")));
  std::time_t t = std::chrono::system_clock::to_time_t(ts);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::string when = fmt::format("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec,
                                 num(rec, "ts") % 1000);
  std::string type = str(rec, "type");
  std::string fn = str(rec, "function");
  std::string rid = str(rec, "requestId");
  if (type == "invocation") {
    std::string cold = rec.as_object().if_contains("cold") && rec.at("cold").as_bool()
                           ? fmt::format("cold (init {:.1f} ms)", dbl(rec, "initMs"))
                           : std::string("warm");
    std::string line = fmt::format("{} {} {} {} {} -> {} in {:.1f} ms, {}, {}, {:.0f}/{} MB",
                                   when, rid, fn, str(rec, "method"), str(rec, "path"),
                                   num(rec, "status"), dbl(rec, "durationMs"), cold,
                                   str(rec, "instance"), dbl(rec, "peakMemoryMb"),
                                   num(rec, "memoryMb"));
    if (!str(rec, "error").empty()) line += fmt::format(" [{}: {}]", str(rec, "error"), str(rec, "message"));
    return line;
  }
  if (type == "instance") {
    return fmt::format("{} {} instance {}: {}", when, fn, str(rec, "event"), str(rec, "message"));
  }
  return fmt::format("{} {}{} {}: {}", when, rid.empty() ? "" : rid + " ", fn, type,
                     str(rec, "message"));
}

}  // namespace

int runPs(const GlobalOptions& g) {
  return withApi(g, [&](Api& api) {
    auto r = api.call("GET", "/v1/instances");
    if (int rc = finishEarly(g, r); rc >= 0) return rc;
    const auto& status = r->as_object();
    const auto& functions = status.at("functions").as_array();
    const auto& instances = status.at("instances").as_array();
    if (functions.empty()) {
      fmt::print("No function has run since the server started.\n");
    } else {
      fmt::print("{:<28} {:<14} {:<8} {:>9} {:>7} {:>11} {:>6}\n", "FUNCTION", "DEPLOYMENT",
                 "RUNTIME", "INSTANCES", "QUEUED", "INVOCATIONS", "COLD");
      for (const auto& f : functions) {
        std::string name = str(f, "function");
        if (f.at("middleware").as_bool()) name += " (middleware)";
        fmt::print("{:<28} {:<14} {:<8} {:>9} {:>7} {:>11} {:>6}\n", name, str(f, "deployment"),
                   str(f, "runtime"), num(f, "instances") + num(f, "starting"), num(f, "queued"),
                   num(f, "invocations"), num(f, "coldStarts"));
      }
    }
    if (!instances.empty()) {
      fmt::print("\n{:<12} {:>8} {:<28} {:<14} {:<9} {:>9} {:>11} {:>8} {:>8}\n", "INSTANCE", "PID",
                 "FUNCTION", "DEPLOYMENT", "STATE", "INFLIGHT", "INVOCATIONS", "AGE", "IDLE");
      for (const auto& i : instances) {
        fmt::print("{:<12} {:>8} {:<28} {:<14} {:<9} {:>9} {:>11} {:>8} {:>8}\n", str(i, "id"),
                   num(i, "pid"), str(i, "function"), str(i, "deployment"), str(i, "state"),
                   fmt::format("{}/{}", num(i, "inflight"), num(i, "concurrency")),
                   num(i, "invocations"), durationText(num(i, "ageMs")),
                   durationText(num(i, "idleMs")));
      }
    }
    fmt::print("\nStem cells:");
    for (const auto& [key, p] : status.at("stemCells").as_object()) {
      fmt::print(" {} {} ready ({} misses)", std::string_view(key), num(p, "ready"), num(p, "misses"));
    }
    fmt::print("\n");
    return 0;
  });
}

int runLogs(const GlobalOptions& g, const std::string& deployment, bool follow, int lines) {
  return withApi(g, [&](Api& api) {
    auto d = resolveDeployment(api, deployment);
    if (!d) return fail(d.error().message);
    std::string id = str(*d, "id");
    std::string target = fmt::format("/v1/deployments/{}/logs?tail={}", urlEncode(id), lines);
    for (;;) {
      auto r = api.call("GET", target);
      if (!r) return fail(r.error().message);
      for (const auto& rec : r->at("records").as_array()) {
        if (g.json) {
          fmt::print("{}\n", json::serialize(rec));
        } else {
          fmt::print("{}\n", logLine(rec));
        }
      }
      std::fflush(stdout);
      if (!follow) return 0;
      target = fmt::format("/v1/deployments/{}/logs?after={}", urlEncode(id), num(*r, "next"));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
}

}  // namespace nimbus::cli

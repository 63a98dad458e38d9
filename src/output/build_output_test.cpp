#include "output/build_output.h"

#include <gtest/gtest.h>

#include "testing/temp_dir.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/sha256.h"

namespace nimbus::output {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Helpers

std::string fixturesDir() {
  if (const char* env = std::getenv("NIMBUS_FIXTURES"); env != nullptr && *env != '\0') {
    return env;
  }
#ifdef NIMBUS_FIXTURES_DIR
  return NIMBUS_FIXTURES_DIR;
#else
  return "/work/shared/fixtures";
#endif
}

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class TempDir : public nimbus::testing::TempDir {
 public:
  TempDir() : nimbus::testing::TempDir("nimbus-output-test") {}

  // Writes `content` to `rel` (creating parent directories).
  void write(const std::string& rel, std::string_view content, fs::perms perms = fs::perms(0644)) {
    fs::path p = fs::path(path()) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    fs::permissions(p, perms);
  }
  void symlink(const std::string& rel, const std::string& target) {
    fs::path p = fs::path(path()) / rel;
    fs::create_directories(p.parent_path());
    fs::create_symlink(target, p);
  }
  void mkdir(const std::string& rel) { fs::create_directories(fs::path(path()) / rel); }
};

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// If `file` (a regular file named *.func under functions/) holds just the text of a relative
// link to an existing .func directory, returns that text. Checkouts without symlink support
// (git core.symlinks=false, zip) leave such files where the output had symlinks.
std::optional<std::string> flattenedFunctionLink(const fs::path& file) {
  std::string text = readFile(file);
  if (text.empty() || text.size() > 1024 || text.find('\n') != std::string::npos ||
      !endsWith(text, ".func") || text.front() == '/') {
    return std::nullopt;
  }
  if (!fs::is_directory(file.parent_path() / text)) return std::nullopt;
  return text;
}

// Copies a build output the way `cp -a` would (symlinks kept), turning function links that a
// symlink-less checkout flattened into files back into symlinks.
void copyOutput(const fs::path& from, const fs::path& to, const std::string& rel = "",
                bool insideFunction = false) {
  fs::create_directories(to);
  for (const fs::directory_entry& entry : fs::directory_iterator(from)) {
    std::string name = entry.path().filename().string();
    std::string childRel = rel.empty() ? name : rel + "/" + name;
    fs::path dest = to / name;
    bool functionName =
        !insideFunction && childRel.rfind("functions/", 0) == 0 && endsWith(name, ".func");
    if (entry.is_symlink()) {
      fs::create_symlink(fs::read_symlink(entry.path()), dest);
    } else if (entry.is_directory()) {
      copyOutput(entry.path(), dest, childRel, insideFunction || functionName);
    } else if (auto link = functionName ? flattenedFunctionLink(entry.path()) : std::nullopt) {
      fs::create_symlink(*link, dest);
    } else {
      fs::copy_file(entry.path(), dest);
      fs::permissions(dest, entry.status().permissions());
    }
  }
}

std::string describe(const std::vector<Problem>& problems) {
  std::string out;
  for (const Problem& p : problems) out += "  " + p.path + ": " + p.message + "\n";
  return out;
}

// The problems reported for `path`.
std::vector<std::string> problemsFor(const std::vector<Problem>& problems, std::string_view path) {
  std::vector<std::string> out;
  for (const Problem& p : problems) {
    if (p.path == path) out.push_back(p.message);
  }
  return out;
}

// Expects exactly one problem for `path`, containing `what`.
void expectProblem(const std::vector<Problem>& problems, std::string_view path,
                   std::string_view what) {
  auto found = problemsFor(problems, path);
  ASSERT_EQ(found.size(), 1u) << "problems for \"" << path << "\":\n" << describe(problems);
  EXPECT_NE(found[0].find(what), std::string::npos) << path << ": " << found[0];
}

const ManifestEntry* findEntry(const Manifest& m, std::string_view path) {
  for (const ManifestEntry& e : m) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

// A content store in memory: the scanned files' bytes by hash.
std::map<std::string, std::string, std::less<>> blobsOf(const ScannedOutput& scanned) {
  std::map<std::string, std::string, std::less<>> blobs;
  for (const ManifestEntry& e : scanned.manifest) {
    if (!e.isSymlink()) blobs[e.hash] = readFile(fs::path(scanned.root) / e.path);
  }
  return blobs;
}

Result<DeploymentOutput> loadWithBlobs(
    const Manifest& manifest, const std::map<std::string, std::string, std::less<>>& blobs) {
  return loadDeploymentOutput(manifest, [&blobs](std::string_view hash) -> Result<std::string> {
    auto it = blobs.find(hash);
    if (it == blobs.end()) {
      return makeError(ErrorKind::NotFound, "blob " + std::string(hash) + " not found");
    }
    return it->second;
  });
}

// A build output held in memory: manifest plus blobs.
struct MemoryOutput {
  Manifest manifest;
  std::map<std::string, std::string, std::less<>> blobs;

  MemoryOutput& file(std::string path, std::string content) {
    ManifestEntry e;
    e.path = std::move(path);
    e.hash = sha256Hex(content);
    e.size = content.size();
    blobs[e.hash] = std::move(content);
    manifest.push_back(std::move(e));
    return *this;
  }
  MemoryOutput& link(std::string path, std::string target) {
    ManifestEntry e;
    e.path = std::move(path);
    e.symlinkTarget = std::move(target);
    manifest.push_back(std::move(e));
    return *this;
  }
  MemoryOutput& function(const std::string& dir) {
    return file(dir + "/.vc-config.json", R"({"runtime":"nodejs20.x","handler":"index.js"})")
        .file(dir + "/index.js", "export default () => new Response('hi')");
  }
  Result<DeploymentOutput> load() const { return loadWithBlobs(manifest, blobs); }
};

// ---------------------------------------------------------------------------------------------
// contentTypeForPath

TEST(ContentTypeForPath, KnowsCommonWebTypes) {
  EXPECT_EQ(contentTypeForPath("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("a/b.htm"), "text/html; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("_app/immutable/app.DbMDb-al.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("x.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("x.cjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("style.css"), "text/css; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("_app/version.json"), "application/json; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("x.js.map"), "application/json; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("hello.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("feed.xml"), "application/xml; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("logo.svg"), "image/svg+xml; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("site.webmanifest"), "application/manifest+json; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("feed.rss"), "application/rss+xml; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("feed.atom"), "application/atom+xml; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("data.csv"), "text/csv; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("README.md"), "text/markdown; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("a.png"), "image/png");
  EXPECT_EQ(contentTypeForPath("a.jpg"), "image/jpeg");
  EXPECT_EQ(contentTypeForPath("a.jpeg"), "image/jpeg");
  EXPECT_EQ(contentTypeForPath("a.gif"), "image/gif");
  EXPECT_EQ(contentTypeForPath("a.webp"), "image/webp");
  EXPECT_EQ(contentTypeForPath("a.avif"), "image/avif");
  EXPECT_EQ(contentTypeForPath("favicon.ico"), "image/x-icon");
  EXPECT_EQ(contentTypeForPath("f.woff"), "font/woff");
  EXPECT_EQ(contentTypeForPath("f.woff2"), "font/woff2");
  EXPECT_EQ(contentTypeForPath("f.ttf"), "font/ttf");
  EXPECT_EQ(contentTypeForPath("f.otf"), "font/otf");
  EXPECT_EQ(contentTypeForPath("m.wasm"), "application/wasm");
  EXPECT_EQ(contentTypeForPath("d.pdf"), "application/pdf");
  EXPECT_EQ(contentTypeForPath("v.mp4"), "video/mp4");
  EXPECT_EQ(contentTypeForPath("v.webm"), "video/webm");
  EXPECT_EQ(contentTypeForPath("s.mp3"), "audio/mpeg");
  EXPECT_EQ(contentTypeForPath("s.wav"), "audio/wav");
  EXPECT_EQ(contentTypeForPath("a.zip"), "application/zip");
  EXPECT_EQ(contentTypeForPath("a.tar.gz"), "application/gzip");
  EXPECT_EQ(contentTypeForPath("a.br"), "application/x-brotli");
}

TEST(ContentTypeForPath, IgnoresExtensionCase) {
  EXPECT_EQ(contentTypeForPath("INDEX.HTML"), "text/html; charset=utf-8");
  EXPECT_EQ(contentTypeForPath("Photo.JpG"), "image/jpeg");
}

TEST(ContentTypeForPath, FallsBackToOctetStream) {
  EXPECT_EQ(contentTypeForPath("about"), "application/octet-stream");
  EXPECT_EQ(contentTypeForPath("x.unknownext"), "application/octet-stream");
  EXPECT_EQ(contentTypeForPath("dir.html/file"), "application/octet-stream");
  EXPECT_EQ(contentTypeForPath("trailing."), "application/octet-stream");
  EXPECT_EQ(contentTypeForPath(""), "application/octet-stream");
}

// ---------------------------------------------------------------------------------------------
// findStatic

DeploymentOutput staticsOf(std::initializer_list<const char*> keys) {
  DeploymentOutput out;
  for (const char* key : keys) {
    out.statics[key] =
        StaticFile{sha256Hex(key), 1, contentTypeForPath(key), std::string("static/") + key};
  }
  return out;
}

std::string sourceOf(const StaticFile* f) { return f == nullptr ? "(none)" : f->sourcePath; }

TEST(FindStatic, MatchesExactKeyIgnoringSurroundingSlashes) {
  DeploymentOutput out = staticsOf({"hello.txt", "about", "a/b.css"});
  EXPECT_EQ(sourceOf(findStatic(out, "/hello.txt")), "static/hello.txt");
  EXPECT_EQ(sourceOf(findStatic(out, "/about")), "static/about");
  EXPECT_EQ(sourceOf(findStatic(out, "/about/")), "static/about");
  EXPECT_EQ(sourceOf(findStatic(out, "/a/b.css")), "static/a/b.css");
  EXPECT_EQ(findStatic(out, "/a"), nullptr);
  EXPECT_EQ(findStatic(out, "/about.html"), nullptr);  // no implicit .html
  EXPECT_EQ(findStatic(out, "/nope"), nullptr);
}

TEST(FindStatic, ServesDirectoryIndexPreferringHtml) {
  DeploymentOutput out =
      staticsOf({"index.html", "index", "docs/index.html", "docs/index", "blog/index"});
  EXPECT_EQ(sourceOf(findStatic(out, "/")), "static/index.html");
  EXPECT_EQ(sourceOf(findStatic(out, "/docs")), "static/docs/index.html");
  EXPECT_EQ(sourceOf(findStatic(out, "/docs/")), "static/docs/index.html");
  EXPECT_EQ(sourceOf(findStatic(out, "/blog/")), "static/blog/index");
  EXPECT_EQ(sourceOf(findStatic(out, "/index")), "static/index");
}

TEST(FindStatic, RootFallsBackToExtensionlessIndex) {
  DeploymentOutput out = staticsOf({"index"});
  EXPECT_EQ(sourceOf(findStatic(out, "/")), "static/index");
  EXPECT_EQ(findStatic(staticsOf({}), "/"), nullptr);
}

// ---------------------------------------------------------------------------------------------
// scanOutputDir on hand-made directories

void writeMinimalOutput(TempDir& dir, const std::string& prefix = "") {
  dir.write(prefix + "config.json", R"({"version": 3, "routes": [], "overrides": {}})");
  dir.write(prefix + "static/index.html", "<h1>home</h1>");
  dir.write(prefix + "functions/api.func/.vc-config.json",
            R"({"runtime": "nodejs20.x", "handler": "index.js", "futureKey": [1]})");
  dir.write(prefix + "functions/api.func/index.js", "module.exports = () => {}", fs::perms(0755));
}

TEST(ScanOutputDir, HashesFilesSortsAndKeepsModes) {
  TempDir dir;
  writeMinimalOutput(dir);
  dir.write("static/b.txt", "bbb");
  dir.symlink("static/a-link.txt", "b.txt");
  dir.symlink("functions/alias.func", "api.func");
  std::vector<Problem> problems;
  std::vector<std::tuple<size_t, size_t, uint64_t>> calls;
  auto scanned = scanOutputDir(
      dir.path(), &problems,
      [&](size_t done, size_t total, uint64_t bytes) { calls.emplace_back(done, total, bytes); });
  ASSERT_TRUE(scanned.ok()) << scanned.error().message << "\n" << describe(problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(scanned->root, fs::canonical(dir.path()).string());
  std::vector<std::string> paths;
  for (const ManifestEntry& e : scanned->manifest) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"config.json", "functions/alias.func",
                                             "functions/api.func/.vc-config.json",
                                             "functions/api.func/index.js", "static/a-link.txt",
                                             "static/b.txt", "static/index.html"}));
  const ManifestEntry* js = findEntry(scanned->manifest, "functions/api.func/index.js");
  ASSERT_NE(js, nullptr);
  EXPECT_EQ(js->hash, sha256Hex("module.exports = () => {}"));
  EXPECT_EQ(js->size, 25u);
  EXPECT_EQ(js->mode, 0755u);
  EXPECT_EQ(findEntry(scanned->manifest, "static/b.txt")->mode, 0644u);
  const ManifestEntry* link = findEntry(scanned->manifest, "functions/alias.func");
  ASSERT_NE(link, nullptr);
  EXPECT_TRUE(link->isSymlink());
  EXPECT_EQ(link->symlinkTarget, "api.func");
  EXPECT_EQ(link->hash, "");
  uint64_t total = 0;
  for (const ManifestEntry& e : scanned->manifest) total += e.size;
  EXPECT_EQ(scanned->totalBytes, total);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.front(), std::make_tuple(size_t{0}, size_t{5}, uint64_t{0}));
  EXPECT_EQ(calls.back(), std::make_tuple(size_t{5}, size_t{5}, total));
  EXPECT_TRUE(validateManifest(scanned->manifest).ok());
}

TEST(ScanOutputDir, FindsDotVercelOutputInProjectDir) {
  TempDir dir;
  writeMinimalOutput(dir, ".vercel/output/");
  dir.write("package.json", "{}");
  std::vector<Problem> problems;
  auto scanned = scanOutputDir(dir.path(), &problems);
  ASSERT_TRUE(scanned.ok()) << describe(problems);
  EXPECT_EQ(scanned->root, fs::canonical(dir.path() + "/.vercel/output").string());
  EXPECT_EQ(findEntry(scanned->manifest, "package.json"), nullptr);
  EXPECT_NE(findEntry(scanned->manifest, "config.json"), nullptr);
}

TEST(ScanOutputDir, ExplainsHowToProduceAMissingOutput) {
  TempDir dir;
  dir.write("package.json", "{}");
  std::vector<Problem> problems;
  auto scanned = scanOutputDir(dir.path(), &problems);
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.error().kind, ErrorKind::Invalid);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].path, "");
  EXPECT_NE(problems[0].message.find("`vercel build`"), std::string::npos);
  EXPECT_NE(problems[0].message.find(".vercel/output"), std::string::npos);

  problems.clear();
  ASSERT_FALSE(scanOutputDir(dir.path() + "/does-not-exist", &problems).ok());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].message.find("is not a directory"), std::string::npos);
}

TEST(ScanOutputDir, ReportsMissingConfigJsonInDotVercelOutput) {
  TempDir dir;
  dir.write(".vercel/output/static/a.txt", "a");
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "config.json", "missing");
}

TEST(ScanOutputDir, ReportsInvalidConfigJsonWithPosition) {
  TempDir dir;
  dir.write("config.json", "{\n  \"version\": 3,\n  \"routes\": [,]\n}");
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "config.json", "not valid JSON (line 3");

  problems.clear();
  dir.write("config.json", "[3]");
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "config.json", "expected a JSON object");

  problems.clear();
  dir.write("config.json", R"({"version": "3"})");
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "config.json", "\"version\" is a string, expected the number 3");
}

TEST(ScanOutputDir, ReportsEveryProblemTogether) {
  TempDir dir;
  dir.write("config.json", R"({"version": 2, "routes": {}, "overrides": []})");
  dir.write("static/ok.txt", "fine");
  dir.mkdir("functions/no-config.func");
  dir.write("functions/no-config.func/index.js", "x");
  dir.write("functions/bad-json.func/.vc-config.json", "{\"runtime\": ");
  dir.write("functions/no-runtime.func/.vc-config.json", R"({"handler": "index.js"})");
  dir.write("functions/edge.func/.vc-config.json", R"({"runtime": "edge"})");
  dir.write("functions/flat.func", "bad-json.func");
  dir.symlink("functions/not-a-function.func", "../static");
  dir.symlink("static/escape", "../../etc/passwd");
  dir.symlink("static/absolute", "/etc/passwd");
  dir.symlink("static/dangling", "nothing-here.txt");
  ASSERT_EQ(::mkfifo((dir.path() + "/static/fifo").c_str(), 0644), 0);

  std::vector<Problem> problems;
  auto scanned = scanOutputDir(dir.path(), &problems);
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.error().kind, ErrorKind::Invalid);
  EXPECT_NE(scanned.error().message.find("13 problems"), std::string::npos)
      << scanned.error().message;

  auto config = problemsFor(problems, "config.json");
  ASSERT_EQ(config.size(), 3u) << describe(problems);
  EXPECT_NE(config[0].find("\"version\" is 2, expected 3"), std::string::npos);
  EXPECT_NE(config[1].find("\"routes\" is an object, expected an array"), std::string::npos);
  EXPECT_NE(config[2].find("\"overrides\" is an array, expected an object"), std::string::npos);
  expectProblem(problems, "functions/no-config.func", "has no .vc-config.json");
  expectProblem(problems, "functions/bad-json.func/.vc-config.json", "not valid JSON");
  expectProblem(problems, "functions/no-runtime.func/.vc-config.json", "has no \"runtime\"");
  expectProblem(problems, "functions/edge.func/.vc-config.json", "has no \"entrypoint\"");
  expectProblem(problems, "functions/flat.func", "ln -sfn 'bad-json.func' 'flat.func'");
  expectProblem(problems, "functions/not-a-function.func", "not a .func directory");
  expectProblem(problems, "static/escape", "resolves outside the output directory");
  expectProblem(problems, "static/absolute", "is absolute");
  expectProblem(problems, "static/dangling", "does not resolve");
  expectProblem(problems, "static/fifo", "is a fifo");
  EXPECT_TRUE(problemsFor(problems, "static/ok.txt").empty());
  EXPECT_EQ(problems.size(), 13u) << describe(problems);
}

TEST(ScanOutputDir, ErrorListsProblemsWhenNoListIsPassed) {
  TempDir dir;
  dir.write("config.json", R"({"version": 2})");
  dir.symlink("static/abs", "/etc");
  auto scanned = scanOutputDir(dir.path(), nullptr);
  ASSERT_FALSE(scanned.ok());
  EXPECT_NE(scanned.error().message.find("2 problems"), std::string::npos);
  EXPECT_NE(scanned.error().message.find("\nconfig.json: \"version\" is 2"), std::string::npos)
      << scanned.error().message;
  EXPECT_NE(scanned.error().message.find("\nstatic/abs: symlink target \"/etc\" is absolute"),
            std::string::npos)
      << scanned.error().message;
}

TEST(ScanOutputDir, CatchesEscapeThatOnlyTheRealPathShows) {
  // static/l -> d/../.. is inside lexically (static/d/../.. = the root), but d is itself a
  // link to ../x, so the kernel resolves x/../.. = the root's parent.
  TempDir dir;
  writeMinimalOutput(dir);
  dir.mkdir("x");
  dir.symlink("static/d", "../x");
  dir.symlink("static/l", "d/../..");
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "static/l", "outside the output directory");
  EXPECT_EQ(problems.size(), 1u) << describe(problems);
}

TEST(ScanOutputDir, ReportsSocketsAndBadNames) {
  TempDir dir;
  writeMinimalOutput(dir);
  dir.write("static/back\\slash.txt", "x");
  dir.write("static/bell\x07.txt", "x");
  std::string sock = dir.path() + "/static/s.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "static/s.sock", "is a socket");
  expectProblem(problems, "static/back\\slash.txt", "contains a backslash");
  expectProblem(problems, "static/bell\x07.txt", "control character");
  EXPECT_EQ(problems.size(), 3u) << describe(problems);
}

TEST(ScanOutputDir, DoesNotTreatFuncDirsInsideFunctionsAsFunctions) {
  TempDir dir;
  writeMinimalOutput(dir);
  dir.write("functions/api.func/node_modules/lib.func/index.js", "x");
  dir.write("static/assets.func/readme.txt", "not a function either");
  std::vector<Problem> problems;
  auto scanned = scanOutputDir(dir.path(), &problems);
  EXPECT_TRUE(scanned.ok()) << describe(problems);
}

TEST(ScanOutputDir, RejectsFunctionLinksTheServerWouldNotFollow) {
  TempDir dir;
  writeMinimalOutput(dir);
  // A .func directory inside a function is not a function.
  dir.write("functions/api.func/node_modules/lib.func/.vc-config.json",
            R"({"runtime": "edge", "entrypoint": "a.js"})");
  dir.symlink("functions/nested.func", "api.func/node_modules/lib.func");
  // "sub/../api.func" is functions/api.func as text, but functions/deep/api.func on disk.
  dir.write("functions/deep/api.func/.vc-config.json", R"({"runtime": "edge", "entrypoint": "a"})");
  dir.mkdir("functions/deep/er");
  dir.symlink("functions/sub", "deep/er");
  dir.symlink("functions/twisted.func", "sub/../api.func");
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  expectProblem(problems, "functions/nested.func", "not a .func directory under functions/");
  expectProblem(problems, "functions/twisted.func",
                "reaches \"functions/deep/api.func\" on disk but \"functions/api.func\" when read "
                "as text");
  EXPECT_EQ(problems.size(), 2u) << describe(problems);
}

TEST(ScanOutputDir, ChecksSymlinkedFunctionTargetsOnce) {
  TempDir dir;
  writeMinimalOutput(dir);
  dir.mkdir("functions/![-]/0.func");
  dir.symlink("functions/index.func", "![-]/0.func");
  dir.symlink("functions/about.func", "![-]/0.func");
  std::vector<Problem> problems;
  ASSERT_FALSE(scanOutputDir(dir.path(), &problems).ok());
  // Reported once, under the real directory, not under each link.
  expectProblem(problems, "functions/![-]/0.func", "has no .vc-config.json");
  EXPECT_EQ(problems.size(), 1u) << describe(problems);
}

// ---------------------------------------------------------------------------------------------
// loadDeploymentOutput on hand-made manifests

constexpr const char* kConfig = R"({"version": 3})";

TEST(LoadDeploymentOutput, ServesStaticFilesWithContentTypes) {
  MemoryOutput mem;
  mem.file("config.json", kConfig).file("static/a/b.css", "b{}").file("static/index.html", "hi");
  mem.file("other/ignored.txt", "not served");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(out->configJson, kConfig);
  ASSERT_EQ(out->statics.size(), 2u);
  const StaticFile& css = out->statics.at("a/b.css");
  EXPECT_EQ(css.hash, sha256Hex("b{}"));
  EXPECT_EQ(css.size, 3u);
  EXPECT_EQ(css.contentType, "text/css; charset=utf-8");
  EXPECT_EQ(css.sourcePath, "static/a/b.css");
  EXPECT_TRUE(out->functions.empty());
  EXPECT_TRUE(out->warnings.empty());
}

TEST(LoadDeploymentOutput, FollowsStaticSymlinkChains) {
  MemoryOutput mem;
  mem.file("config.json", kConfig).file("static/real/data.json", "{}");
  mem.link("static/alias.json", "hop").link("static/hop", "real/data.json");
  mem.link("static/deep/up.json", "../real/data.json");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  const StaticFile& alias = out->statics.at("alias.json");
  EXPECT_EQ(alias.sourcePath, "static/real/data.json");
  EXPECT_EQ(alias.hash, sha256Hex("{}"));
  EXPECT_EQ(alias.contentType, "application/json; charset=utf-8");
  EXPECT_EQ(out->statics.at("hop").contentType, "application/octet-stream");  // by its own name
  EXPECT_EQ(out->statics.at("deep/up.json").sourcePath, "static/real/data.json");
}

TEST(LoadDeploymentOutput, ExposesFilesBeneathALinkedDirectory) {
  MemoryOutput mem;
  mem.file("config.json", kConfig)
      .file("static/v2/index.html", "v2")
      .file("static/v2/a/b.txt", "b");
  mem.link("static/v2/logo.svg", "../logo.svg").file("static/logo.svg", "<svg/>");
  mem.link("static/docs", "v2");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(sourceOf(findStatic(*out, "/docs")), "static/v2/index.html");
  EXPECT_EQ(sourceOf(findStatic(*out, "/docs/a/b.txt")), "static/v2/a/b.txt");
  EXPECT_EQ(sourceOf(findStatic(*out, "/docs/logo.svg")), "static/logo.svg");
  EXPECT_EQ(sourceOf(findStatic(*out, "/v2/a/b.txt")), "static/v2/a/b.txt");
}

TEST(LoadDeploymentOutput, WarnsAboutStaticSymlinksThatServeNothing) {
  MemoryOutput mem;
  mem.file("config.json", kConfig).function("functions/f.func");
  mem.link("static/dangling", "missing.txt");
  mem.link("static/loop-a", "loop-b").link("static/loop-b", "loop-a");
  mem.link("static/source.js", "../functions/f.func/index.js");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(out->statics.empty());
  ASSERT_EQ(out->warnings.size(), 4u);
  EXPECT_NE(out->warnings[0].find("static/dangling: symlink to \"missing.txt\" points at nothing"),
            std::string::npos)
      << out->warnings[0];
  EXPECT_NE(out->warnings[1].find("static/loop-a:"), std::string::npos);
  EXPECT_NE(out->warnings[1].find("symlink loop"), std::string::npos);
  EXPECT_NE(out->warnings[3].find("static/source.js:"), std::string::npos);
  EXPECT_NE(out->warnings[3].find("outside static/"), std::string::npos);
}

TEST(LoadDeploymentOutput, OverridesRekeyAndRetype) {
  MemoryOutput mem;
  mem.file("config.json", R"({"version": 3, "overrides": {
      "about.html": {"path": "about"},
      "feed": {"contentType": "application/rss+xml"},
      "blog/one.html": {"path": "/blog/one", "contentType": "text/html"},
      "missing.html": {"path": "missing"}
  }})");
  mem.file("static/about.html", "about").file("static/feed", "<rss/>");
  mem.file("static/blog/one.html", "one");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(sourceOf(findStatic(*out, "/about")), "static/about.html");
  EXPECT_EQ(findStatic(*out, "/about")->contentType, "text/html; charset=utf-8");
  EXPECT_EQ(findStatic(*out, "/about.html"), nullptr);
  EXPECT_EQ(findStatic(*out, "/feed")->contentType, "application/rss+xml");
  EXPECT_EQ(sourceOf(findStatic(*out, "/blog/one")), "static/blog/one.html");
  EXPECT_EQ(findStatic(*out, "/blog/one")->contentType, "text/html");
  EXPECT_EQ(findStatic(*out, "/blog/one.html"), nullptr);
  ASSERT_EQ(out->warnings.size(), 1u);
  EXPECT_NE(out->warnings[0].find("overrides[\"missing.html\"]: no file static/missing.html"),
            std::string::npos)
      << out->warnings[0];
}

TEST(LoadDeploymentOutput, OverridesDoNotCascade) {
  MemoryOutput mem;
  mem.file("config.json", R"({"version": 3, "overrides": {
      "b.html": {"path": "c"}, "a.html": {"path": "b.html"}}})");
  mem.file("static/a.html", "A").file("static/b.html", "B");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(sourceOf(findStatic(*out, "/b.html")), "static/a.html");
  EXPECT_EQ(sourceOf(findStatic(*out, "/c")), "static/b.html");
  EXPECT_EQ(findStatic(*out, "/a.html"), nullptr);
}

TEST(LoadDeploymentOutput, ResolvesFunctionsAndSymlinkedFunctions) {
  MemoryOutput mem;
  mem.file("config.json", kConfig)
      .function("functions/![-]/0.func")
      .function("functions/api/x.func");
  mem.function("functions/api/x.func/node_modules/dep.func");  // inside a function: not one
  mem.link("functions/index.func", "![-]/0.func");
  mem.link("functions/api/hello/__data.json.func", "../../![-]/0.func");
  mem.link("functions/chain.func", "index.func");
  mem.file("functions/index.prerender-config.json", R"({"expiration": 60})");
  mem.file("functions/api/x.prerender-fallback.html", "fallback");
  auto out = mem.load();
  ASSERT_TRUE(out.ok()) << out.error().message;
  std::vector<std::string> keys;
  for (const auto& [key, fn] : out->functions) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"![-]/0", "api/hello/__data.json", "api/x", "chain",
                                            "index"}));
  EXPECT_EQ(out->functions.at("index").dir, "functions/![-]/0.func");
  EXPECT_TRUE(out->functions.at("index").hasPrerenderConfig);
  EXPECT_EQ(out->functions.at("api/hello/__data.json").dir, "functions/![-]/0.func");
  EXPECT_EQ(out->functions.at("chain").dir, "functions/![-]/0.func");
  EXPECT_FALSE(out->functions.at("chain").hasPrerenderConfig);
  EXPECT_EQ(out->functions.at("api/x").dir, "functions/api/x.func");
  EXPECT_FALSE(out->functions.at("api/x").hasPrerenderConfig);
  EXPECT_EQ(out->functions.at("![-]/0").key, "![-]/0");
}

TEST(LoadDeploymentOutput, RejectsFunctionSymlinkToNonFunction) {
  MemoryOutput mem;
  mem.file("config.json", kConfig).file("static/index.html", "hi").function("functions/a.func");
  mem.link("functions/to-static.func", "../static");
  mem.link("functions/to-file.func", "a.func/index.js");
  mem.link("functions/dangling.func", "gone.func");
  mem.link("functions/ok.func", "a.func");
  auto out = mem.load();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::Invalid);
  const std::string& msg = out.error().message;
  EXPECT_NE(msg.find("3 problem"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\nfunctions/to-static.func: symlink to \"../static\" does not lead to a "
                     "function directory (it resolves to \"static\")"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("\nfunctions/to-file.func: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("\nfunctions/dangling.func: "), std::string::npos) << msg;
  EXPECT_EQ(msg.find("functions/ok.func"), std::string::npos) << msg;
}

TEST(LoadDeploymentOutput, RejectsBadConfigJson) {
  struct Case {
    const char* config;
    const char* expected;
  };
  for (const Case& c : {Case{"{", "config.json: not valid JSON"},
                        Case{R"({"version": 2})", "config.json: \"version\" is 2, expected 3"},
                        Case{R"({"routes": []})", "config.json: has no \"version\""},
                        Case{R"({"version": 3, "overrides": []})",
                             "config.json: \"overrides\" is an array, expected an object"}}) {
    MemoryOutput mem;
    mem.file("config.json", c.config);
    auto out = mem.load();
    ASSERT_FALSE(out.ok()) << c.config;
    EXPECT_EQ(out.error().kind, ErrorKind::Invalid);
    EXPECT_NE(out.error().message.find(c.expected), std::string::npos) << out.error().message;
  }
  MemoryOutput none;
  none.file("static/a.txt", "a");
  auto out = none.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("config.json: missing"), std::string::npos);
}

TEST(LoadDeploymentOutput, RejectsFunctionWithoutValidVcConfig) {
  MemoryOutput mem;
  mem.file("config.json", kConfig).file("functions/a.func/index.js", "x");
  mem.file("functions/b.func/.vc-config.json", R"({"runtime": "edge"})");
  auto out = mem.load();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.error().message.find("\nfunctions/a.func: has no .vc-config.json"),
            std::string::npos)
      << out.error().message;
  EXPECT_NE(out.error().message.find("\nfunctions/b.func/.vc-config.json: has no \"entrypoint\""),
            std::string::npos)
      << out.error().message;
}

TEST(LoadDeploymentOutput, PassesOnBlobReadErrorsWithContext) {
  MemoryOutput mem;
  mem.file("config.json", kConfig);
  mem.blobs.clear();
  auto out = mem.load();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().kind, ErrorKind::NotFound);
  EXPECT_EQ(out.error().message.rfind("reading config.json", 0), 0u) << out.error().message;
}

// ---------------------------------------------------------------------------------------------
// The real framework outputs in shared/fixtures

class Fixture : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    source_ = fs::path(fixturesDir()) / GetParam() / "output";
    if (!fs::is_directory(source_)) {
      GTEST_SKIP() << "fixture " << source_ << " not found; set NIMBUS_FIXTURES to the "
                   << "shared/fixtures directory to run it";
    }
    copyOutput(source_, fs::path(copy_.path()) / "output");
    std::vector<Problem> problems;
    auto scanned = scanOutputDir(copy_.path() + "/output", &problems);
    ASSERT_TRUE(scanned.ok()) << scanned.error().message << "\n" << describe(problems);
    ASSERT_TRUE(problems.empty()) << describe(problems);
    scanned_ = std::move(*scanned);
    auto loaded = loadWithBlobs(scanned_.manifest, blobsOf(scanned_));
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    output_ = std::move(*loaded);
  }

  const FunctionRef& function(const std::string& key) {
    static const FunctionRef kNone{};
    auto it = output_.functions.find(key);
    EXPECT_NE(it, output_.functions.end()) << "no function " << key;
    return it == output_.functions.end() ? kNone : it->second;
  }

  fs::path source_;
  TempDir copy_;
  ScannedOutput scanned_;
  DeploymentOutput output_;
};

TEST_P(Fixture, ScansAndLoadsWithoutProblemsOrWarnings) {
  EXPECT_TRUE(output_.warnings.empty()) << output_.warnings.front();
  EXPECT_TRUE(validateManifest(scanned_.manifest).ok());
  EXPECT_TRUE(std::is_sorted(scanned_.manifest.begin(), scanned_.manifest.end(),
                             [](const auto& a, const auto& b) { return a.path < b.path; }));
  EXPECT_FALSE(output_.functions.empty());
  EXPECT_FALSE(output_.statics.empty());
  Result<Manifest> roundTrip = manifestFromJson(manifestToJson(scanned_.manifest));
  ASSERT_TRUE(roundTrip.ok()) << roundTrip.error().message;
  EXPECT_EQ(roundTrip->size(), scanned_.manifest.size());
  // Every function resolves to a real directory holding a .vc-config.json.
  for (const auto& [key, fn] : output_.functions) {
    EXPECT_NE(findEntry(scanned_.manifest, fn.dir + "/.vc-config.json"), nullptr) << key;
  }
}

// Scanning the fixture where it lies: clean, except that a checkout without symlink support
// turns function symlinks into small files, which the scan must explain.
TEST_P(Fixture, ScanInPlaceFlagsOnlyFlattenedSymlinks) {
  std::vector<Problem> problems;
  auto scanned = scanOutputDir(source_.string(), &problems);
  EXPECT_EQ(scanned.ok(), problems.empty());
  for (const Problem& p : problems) {
    EXPECT_NE(p.message.find("looks like a symlink flattened into a file"), std::string::npos)
        << p.path << ": " << p.message;
  }
}

std::string fixtureName(const ::testing::TestParamInfo<const char*>& info) {
  std::string name = info.param;
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

INSTANTIATE_TEST_SUITE_P(All, Fixture,
                         ::testing::Values("hono", "nitro-vercel", "nitro-vercel-edge", "sveltekit",
                                           "vercel-functions"),
                         fixtureName);

class HonoFixture : public Fixture {};
TEST_P(HonoFixture, ServesHelloTxtAndOneFunction) {
  const StaticFile* hello = findStatic(output_, "/hello.txt");
  ASSERT_NE(hello, nullptr);
  EXPECT_EQ(hello->sourcePath, "static/hello.txt");
  EXPECT_EQ(hello->contentType, "text/plain; charset=utf-8");
  EXPECT_NE(output_.statics.find("hello.txt"), output_.statics.end());
  ASSERT_EQ(output_.functions.size(), 1u);
  EXPECT_EQ(function("index").dir, "functions/index.func");
  EXPECT_FALSE(function("index").hasPrerenderConfig);
  const ManifestEntry* cfg = findEntry(scanned_.manifest, "functions/index.func/.vc-config.json");
  ASSERT_NE(cfg, nullptr);
  EXPECT_EQ(cfg->hash, sha256Hex(readFile(source_ / "functions/index.func/.vc-config.json")));
}
INSTANTIATE_TEST_SUITE_P(Fixture, HonoFixture, ::testing::Values("hono"), fixtureName);

class SvelteKitFixture : public Fixture {};
TEST_P(SvelteKitFixture, ScanRecordsFunctionSymlinks) {
  const ManifestEntry* index = findEntry(scanned_.manifest, "functions/index.func");
  ASSERT_NE(index, nullptr);
  EXPECT_TRUE(index->isSymlink());
  EXPECT_EQ(index->symlinkTarget, "![-]/0.func");
  const ManifestEntry* data = findEntry(scanned_.manifest, "functions/api/hello/__data.json.func");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->symlinkTarget, "../../![-]/0.func");
  EXPECT_NE(findEntry(scanned_.manifest, "functions/![-]/0.func/.vc-config.json"), nullptr);
}

TEST_P(SvelteKitFixture, ServesAboutThroughOverrideIgnoringTrailingSlash) {
  EXPECT_EQ(sourceOf(findStatic(output_, "/about")), "static/about.html");
  EXPECT_EQ(sourceOf(findStatic(output_, "/about/")), "static/about.html");
  EXPECT_EQ(findStatic(output_, "/about")->contentType, "text/html; charset=utf-8");
  EXPECT_EQ(findStatic(output_, "/about.html"), nullptr);
  EXPECT_EQ(sourceOf(findStatic(output_, "/_app/version.json")), "static/_app/version.json");
  EXPECT_EQ(sourceOf(findStatic(output_, "/_app/immutable/entry/app.DbMDb-al.js")),
            "static/_app/immutable/entry/app.DbMDb-al.js");
}

TEST_P(SvelteKitFixture, SymlinkedFunctionsPointAtTheirTargets) {
  EXPECT_EQ(function("index").dir, "functions/![-]/0.func");
  EXPECT_EQ(function("api/hello").dir, "functions/![-]/0.func");
  EXPECT_EQ(function("api/hello/__data.json").dir, "functions/![-]/0.func");
  EXPECT_EQ(function("ssr").dir, "functions/![-]/0.func");
  EXPECT_EQ(function("edge").dir, "functions/![-]/1.func");
  EXPECT_EQ(function("isr").dir, "functions/![-]/2.func");
  EXPECT_TRUE(function("isr").hasPrerenderConfig);
  EXPECT_TRUE(function("isr/__data.json").hasPrerenderConfig);
  EXPECT_FALSE(function("index").hasPrerenderConfig);
  EXPECT_EQ(function("![-]/catchall").dir, "functions/![-]/catchall.func");
}
INSTANTIATE_TEST_SUITE_P(Fixture, SvelteKitFixture, ::testing::Values("sveltekit"), fixtureName);

class NitroVercelFixture : public Fixture {};
TEST_P(NitroVercelFixture, ServesDirectoryIndexAndIsrThroughSymlink) {
  EXPECT_EQ(sourceOf(findStatic(output_, "/prerendered")), "static/prerendered/index.html");
  EXPECT_EQ(sourceOf(findStatic(output_, "/prerendered/")), "static/prerendered/index.html");
  const ManifestEntry* link = findEntry(scanned_.manifest, "functions/isr-isr.func");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->symlinkTarget, "./__fallback.func");
  EXPECT_EQ(function("isr-isr").dir, "functions/__fallback.func");
  EXPECT_TRUE(function("isr-isr").hasPrerenderConfig);
  EXPECT_EQ(function("__fallback").dir, "functions/__fallback.func");
  EXPECT_FALSE(function("__fallback").hasPrerenderConfig);
  EXPECT_EQ(output_.functions.size(), 2u);
}
INSTANTIATE_TEST_SUITE_P(Fixture, NitroVercelFixture, ::testing::Values("nitro-vercel"),
                         fixtureName);

class NitroVercelEdgeFixture : public Fixture {};
TEST_P(NitroVercelEdgeFixture, HasOneEdgeFunctionAndPrerenderedIndex) {
  EXPECT_EQ(sourceOf(findStatic(output_, "/prerendered")), "static/prerendered/index.html");
  ASSERT_EQ(output_.functions.size(), 1u);
  EXPECT_EQ(function("__fallback").dir, "functions/__fallback.func");
}
INSTANTIATE_TEST_SUITE_P(Fixture, NitroVercelEdgeFixture, ::testing::Values("nitro-vercel-edge"),
                         fixtureName);

class VercelFunctionsFixture : public Fixture {};
TEST_P(VercelFunctionsFixture, ServesRootAndAboutThroughOverrides) {
  EXPECT_EQ(sourceOf(findStatic(output_, "/")), "static/index.html");
  EXPECT_EQ(findStatic(output_, "/")->contentType, "text/html; charset=utf-8");
  EXPECT_EQ(sourceOf(findStatic(output_, "/index")), "static/index.html");
  EXPECT_EQ(findStatic(output_, "/index.html"), nullptr);
  EXPECT_EQ(sourceOf(findStatic(output_, "/about")), "static/about.html");
  EXPECT_EQ(findStatic(output_, "/about.html"), nullptr);
}

TEST_P(VercelFunctionsFixture, FindsEveryFunction) {
  std::vector<std::string> keys;
  for (const auto& [key, fn] : output_.functions) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"api/echo", "api/edge", "api/hello", "api/hono-edge",
                                            "api/users/[id]", "api/web", "middleware"}));
  EXPECT_EQ(function("api/users/[id]").dir, "functions/api/users/[id].func");
}
INSTANTIATE_TEST_SUITE_P(Fixture, VercelFunctionsFixture, ::testing::Values("vercel-functions"),
                         fixtureName);

}  // namespace
}  // namespace nimbus::output

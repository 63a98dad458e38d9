#include "output/manifest.h"

#include <gtest/gtest.h>

#include <sstream>

#include "common/sha256.h"

namespace nimbus::output {
namespace {

ManifestEntry fileEntry(std::string path, std::string_view content = "x", uint32_t mode = 0644) {
  ManifestEntry e;
  e.path = std::move(path);
  e.hash = sha256Hex(content);
  e.size = content.size();
  e.mode = mode;
  return e;
}

ManifestEntry linkEntry(std::string path, std::string target) {
  ManifestEntry e;
  e.path = std::move(path);
  e.symlinkTarget = std::move(target);
  e.mode = 0777;
  return e;
}

// A valid manifest (config.json included) plus `extra`.
Manifest withConfig(std::vector<ManifestEntry> extra) {
  Manifest m{fileEntry("config.json", R"({"version":3})")};
  for (auto& e : extra) m.push_back(std::move(e));
  return m;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The validation error's lines about `path` (lines starting with "<path>: ").
std::vector<std::string> problemsFor(const Result<void>& r, const std::string& path) {
  std::vector<std::string> out;
  if (r.ok()) return out;
  for (const std::string& line : lines(r.error().message)) {
    if (line.rfind(path + ": ", 0) == 0) out.push_back(line);
  }
  return out;
}

// Expects exactly one problem line for `path`, containing `what`, and returns it.
std::string expectOneProblem(const Manifest& m, const std::string& path, const std::string& what) {
  Result<void> r = validateManifest(m);
  EXPECT_FALSE(r.ok()) << "expected " << path << " to be rejected";
  if (r.ok()) return "";
  EXPECT_EQ(r.error().kind, ErrorKind::Invalid);
  auto found = problemsFor(r, path);
  EXPECT_EQ(found.size(), 1u) << r.error().message;
  if (found.empty()) return "";
  EXPECT_NE(found[0].find(what), std::string::npos) << found[0];
  // Every line says how to fix the problem after a ';'.
  EXPECT_NE(found[0].find("; "), std::string::npos) << found[0];
  return found[0];
}

TEST(ValidateManifest, AcceptsWellFormedManifest) {
  Manifest m = withConfig({
      fileEntry("static/index.html", "<h1>hi</h1>"),
      fileEntry("functions/![-]/0.func/.vc-config.json", "{}"),
      fileEntry("functions/![-]/0.func/index.js", "x", 0755),
      linkEntry("functions/index.func", "![-]/0.func"),
      linkEntry("functions/api/hello/__data.json.func", "../../![-]/0.func"),
      linkEntry("functions/isr-isr.func", "./__fallback.func"),
      linkEntry("static/self", "."),
      fileEntry("static/a..b/c.d", "dots inside names are fine"),
  });
  Result<void> r = validateManifest(m);
  EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST(ValidateManifest, RejectsEmptyPath) {
  expectOneProblem(withConfig({fileEntry("")}), "", "empty path");
}

TEST(ValidateManifest, RejectsLeadingSlash) {
  expectOneProblem(withConfig({fileEntry("/static/a.txt")}), "/static/a.txt", "starts with '/'");
}

TEST(ValidateManifest, RejectsBackslash) {
  expectOneProblem(withConfig({fileEntry("static\\a.txt")}), "static\\a.txt", "backslash");
}

TEST(ValidateManifest, RejectsNulAndControlCharacters) {
  std::string nul("static/a\0b", 10);
  Manifest m =
      withConfig({fileEntry(nul), fileEntry("static/tab\there"), fileEntry("static/\x7f")});
  // Control characters are shown as \xNN so each problem stays on one line.
  expectOneProblem(m, "static/a\\x00b", "control character");
  expectOneProblem(m, "static/tab\\x09here", "control character");
  expectOneProblem(m, "static/\\x7f", "control character");
}

TEST(ValidateManifest, RejectsDotAndDotDotComponents) {
  Manifest m = withConfig({fileEntry("static/./a.txt"), fileEntry("static/../config.json"),
                           fileEntry(".."), fileEntry("static/x/..")});
  expectOneProblem(m, "static/./a.txt", "'.' or '..' component");
  expectOneProblem(m, "static/../config.json", "'.' or '..' component");
  expectOneProblem(m, "..", "'.' or '..' component");
  expectOneProblem(m, "static/x/..", "'.' or '..' component");
}

TEST(ValidateManifest, RejectsEmptyComponent) {
  expectOneProblem(withConfig({fileEntry("static//a.txt")}), "static//a.txt", "empty component");
}

TEST(ValidateManifest, RejectsTrailingSlash) {
  expectOneProblem(withConfig({fileEntry("static/dir/")}), "static/dir/", "ends with '/'");
}

TEST(ValidateManifest, RejectsOverlongPath) {
  std::string path = "static";
  while (path.size() <= kMaxPathBytes) path += "/" + std::string(100, 'a');
  expectOneProblem(withConfig({fileEntry(path)}), path, "bytes long");
  std::string atLimit = "static/" + std::string(200, 'b');
  while (atLimit.size() + 201 <= kMaxPathBytes) atLimit += "/" + std::string(200, 'b');
  atLimit += "/" + std::string(kMaxPathBytes - atLimit.size() - 1, 'c');
  ASSERT_EQ(atLimit.size(), kMaxPathBytes);
  EXPECT_TRUE(validateManifest(withConfig({fileEntry(atLimit)})).ok());
}

TEST(ValidateManifest, RejectsOverlongComponent) {
  std::string path = "static/" + std::string(kMaxComponentBytes + 1, 'n');
  expectOneProblem(withConfig({fileEntry(path)}), path, "component longer than 255");
  EXPECT_TRUE(
      validateManifest(withConfig({fileEntry("static/" + std::string(kMaxComponentBytes, 'n'))}))
          .ok());
}

TEST(ValidateManifest, RejectsDuplicates) {
  std::string line =
      expectOneProblem(withConfig({fileEntry("static/a.txt"), fileEntry("static/b.txt"),
                                   fileEntry("static/a.txt"), linkEntry("static/a.txt", "b.txt")}),
                       "static/a.txt", "appears 3 times");
  EXPECT_NE(line.find("list each path once"), std::string::npos);
}

TEST(ValidateManifest, RejectsFileUsedAsDirectory) {
  Manifest m =
      withConfig({fileEntry("static/docs"), fileEntry("static/docs-old/x"),
                  fileEntry("static/docs/a.html"), linkEntry("functions/index.func", "x.func"),
                  fileEntry("functions/index.func/.vc-config.json")});
  expectOneProblem(m, "static/docs",
                   "is a file but also the parent directory of "
                   "\"static/docs/a.html\"");
  expectOneProblem(m, "functions/index.func", "is a symlink but also the parent directory");
  EXPECT_TRUE(problemsFor(validateManifest(m), "static/docs-old/x").empty());
}

TEST(ValidateManifest, RejectsBadHash) {
  ManifestEntry upper = fileEntry("static/upper.txt");
  for (char& c : upper.hash) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ManifestEntry shortHash = fileEntry("static/short.txt");
  shortHash.hash.resize(63);
  ManifestEntry none = fileEntry("static/none.txt");
  none.hash.clear();
  Manifest m = withConfig({upper, shortHash, none});
  expectOneProblem(m, "static/upper.txt", "is not a SHA-256 digest");
  expectOneProblem(m, "static/short.txt", "is not a SHA-256 digest");
  expectOneProblem(m, "static/none.txt", "has no hash");
}

TEST(ValidateManifest, RejectsAbsoluteSymlink) {
  expectOneProblem(withConfig({linkEntry("static/passwd", "/etc/passwd")}), "static/passwd",
                   "is absolute");
}

TEST(ValidateManifest, RejectsSymlinkEscapingRoot) {
  Manifest m = withConfig({
      linkEntry("static/up", "../../etc/passwd"),
      linkEntry("functions/a/b.func", "../../../x.func"),
      linkEntry("top", ".."),
      linkEntry("static/inside", "../functions/../config.json"),  // stays inside: fine
      linkEntry("functions/api/x.func", "../../static/../functions/y.func"),
  });
  expectOneProblem(m, "static/up", "resolves outside the output directory");
  expectOneProblem(m, "functions/a/b.func", "resolves outside the output directory");
  expectOneProblem(m, "top", "resolves outside the output directory");
  auto r = validateManifest(m);
  EXPECT_TRUE(problemsFor(r, "static/inside").empty());
  EXPECT_TRUE(problemsFor(r, "functions/api/x.func").empty());
}

TEST(ValidateManifest, RequiresConfigJson) {
  Manifest m{fileEntry("static/a.txt")};
  expectOneProblem(m, "config.json", "missing");
  Manifest linked{fileEntry("real.json"), linkEntry("config.json", "real.json")};
  expectOneProblem(linked, "config.json", "is a symlink");
}

TEST(ValidateManifest, RejectsTooManyEntries) {
  Manifest m = withConfig({});
  for (size_t i = 0; m.size() <= kMaxManifestEntries; ++i) {
    m.push_back(fileEntry("static/" + std::to_string(i)));
  }
  expectOneProblem(m, "(manifest)", "entries, more than the 100000 allowed");
  m.pop_back();
  EXPECT_TRUE(validateManifest(m).ok());
}

TEST(ValidateManifest, RejectsModeAbove07777) {
  Manifest m =
      withConfig({fileEntry("static/a.sh", "x", 010755), fileEntry("static/b", "y", 07777)});
  expectOneProblem(m, "static/a.sh", "mode 010755");
  EXPECT_TRUE(problemsFor(validateManifest(m), "static/b").empty());
}

TEST(ValidateManifest, ReportsEveryProblemInOneError) {
  ManifestEntry badHash = fileEntry("static/h.txt");
  badHash.hash = "nope";
  Manifest m{fileEntry("/abs"),   fileEntry("a//b"), badHash,         linkEntry("static/l", "/etc"),
             fileEntry("x/../y"), fileEntry("dup"),  fileEntry("dup")};
  Result<void> r = validateManifest(m);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::Invalid);
  auto all = lines(r.error().message);
  ASSERT_EQ(all.size(), 1u + 7u) << r.error().message;  // headline + one line per problem
  EXPECT_NE(all[0].find("7 problem"), std::string::npos) << all[0];
  for (const char* path :
       {"/abs", "a//b", "static/h.txt", "static/l", "x/../y", "dup", "config.json"}) {
    EXPECT_EQ(problemsFor(r, path).size(), 1u) << path << "\n" << r.error().message;
  }
}

TEST(ManifestJson, RoundTripsFilesAndSymlinks) {
  Manifest m = withConfig({fileEntry("static/a b/ü.txt", "hello", 0600),
                           fileEntry("functions/x.func/run", "#!", 0755),
                           linkEntry("functions/y.func", "x.func")});
  m[1].size = 1ull << 40;
  std::string text = manifestToJson(m);
  Result<Manifest> back = manifestFromJson(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ((*back)[i].path, m[i].path);
    EXPECT_EQ((*back)[i].hash, m[i].hash);
    EXPECT_EQ((*back)[i].size, m[i].size);
    EXPECT_EQ((*back)[i].mode, m[i].mode);
    EXPECT_EQ((*back)[i].symlinkTarget, m[i].symlinkTarget);
    EXPECT_EQ((*back)[i].isSymlink(), m[i].isSymlink());
  }
  EXPECT_EQ(manifestToJson(*back), text);
}

TEST(ManifestJson, UsesDocumentedFieldNames) {
  std::string text = manifestToJson({linkEntry("functions/y.func", "x.func")});
  EXPECT_EQ(text, R"({"files":[{"path":"functions/y.func","hash":"","size":0,"mode":511,)"
                  R"("symlink":"x.func"}]})");
}

TEST(ManifestJson, AcceptsOptionalFieldsMissing) {
  std::string hash = sha256Hex("{}");
  Result<Manifest> m = manifestFromJson(R"({"files":[{"path":"config.json","hash":")" + hash +
                                        R"("},{"path":"l","symlink":"config.json"}]})");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ((*m)[0].mode, 0644u);
  EXPECT_EQ((*m)[0].size, 0u);
  EXPECT_TRUE((*m)[1].isSymlink());
}

TEST(ManifestJson, RejectsMalformedJson) {
  for (const char* text : {"", "{", "[1,2]", R"({"files":{}})", R"({"nofiles":[]})"}) {
    Result<Manifest> m = manifestFromJson(text);
    ASSERT_FALSE(m.ok()) << text;
    EXPECT_EQ(m.error().kind, ErrorKind::Invalid);
    EXPECT_NE(m.error().message.find("\"files\""), std::string::npos) << m.error().message;
  }
}

TEST(ManifestJson, NamesEntryIndexAndField) {
  Result<Manifest> m =
      manifestFromJson(R"({"files":[{"path":"config.json","hash":"x"},7,{"hash":"y"},)"
                       R"({"path":1,"size":-1,"mode":"644","symlink":false}]})");
  ASSERT_FALSE(m.ok());
  const std::string& msg = m.error().message;
  for (const char* expected :
       {"files[1]: expected an object", "files[2].path: missing",
        "files[3].path: expected a string", "files[3].size: expected a non-negative integer",
        "files[3].mode: expected a permission value", "files[3].symlink: expected a string"}) {
    EXPECT_NE(msg.find(expected), std::string::npos) << expected << "\n" << msg;
  }
}

TEST(ManifestJson, ValidatesAfterParsing) {
  std::string hash = sha256Hex("{}");
  Result<Manifest> m = manifestFromJson(R"({"files":[{"path":"config.json","hash":")" + hash +
                                        R"("},)"
                                        R"({"path":"static/../../x","hash":")" +
                                        hash +
                                        R"("},)"
                                        R"({"path":"static/l","symlink":"../../etc"},)"
                                        R"({"path":"static/m","hash":")" +
                                        hash + R"(","mode":4096}]})");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().kind, ErrorKind::Invalid);
  const std::string& msg = m.error().message;
  EXPECT_NE(msg.find("static/../../x: has a '.' or '..' component"), std::string::npos) << msg;
  EXPECT_NE(msg.find("static/l: symlink target \"../../etc\" resolves outside"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("static/m: mode 010000"), std::string::npos) << msg;
}

}  // namespace
}  // namespace nimbus::output

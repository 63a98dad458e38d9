#include "output/build_output.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <set>
#include <utility>

#include "common/sha256.h"
#include "output/validation.h"

namespace nimbus::output {

namespace json = boost::json;

namespace {

constexpr std::string_view kStaticPrefix = "static/";
constexpr std::string_view kFunctionsPrefix = "functions/";
constexpr std::string_view kFuncSuffix = ".func";
constexpr size_t kMaxSymlinkHops = 40;  // as Linux's MAXSYMLINKS
constexpr size_t kMaxConfigBytes = 64u << 20;

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
// A name like "x.func" (not the bare ".func").
bool isFuncName(std::string_view name) {
  return name.size() > kFuncSuffix.size() && endsWith(name, kFuncSuffix);
}
// A function directory: under functions/, its last component is the first one named *.func
// (.func directories inside a function are just files of that function).
bool isFunctionDirPath(std::string_view path) {
  if (!startsWith(path, kFunctionsPrefix)) return false;
  std::string_view rest = path.substr(kFunctionsPrefix.size());
  size_t start = 0;
  for (;;) {
    size_t end = rest.find('/', start);
    std::string_view comp = rest.substr(start, end == std::string_view::npos ? end : end - start);
    if (isFuncName(comp)) return end == std::string_view::npos;
    if (end == std::string_view::npos) return false;
    start = end + 1;
  }
}
std::string baseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}
std::string errnoText(int err) { return std::strerror(err); }

Result<std::string> readSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return makeError(ErrorKind::Io, "cannot open it (" + errnoText(errno) + ")");
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return makeError(ErrorKind::Io, "cannot read it (" + errnoText(err) + ")");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxConfigBytes) {
      ::close(fd);
      return makeError(ErrorKind::TooLarge,
                       "is larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB");
    }
  }
  ::close(fd);
  return out;
}

// Hashes a file and counts its bytes in the same pass, so hash and size always agree even if
// the file changed after it was listed.
Result<std::pair<std::string, uint64_t>> hashFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return makeError(ErrorKind::Io, "cannot open " + path + ": " + errnoText(errno));
  }
  Sha256 sha;
  uint64_t size = 0;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return makeError(ErrorKind::Io, "cannot read " + path + ": " + errnoText(err));
    }
    if (n == 0) break;
    sha.update(buf, static_cast<size_t>(n));
    size += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return std::make_pair(sha.finishHex(), size);
}

std::optional<std::string> realPath(const std::string& path, int* err) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    *err = errno;
    return std::nullopt;
  }
  std::string out(resolved);
  std::free(resolved);
  return out;
}

const char* specialFileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a special file";
}

// Walks an output directory without following symlinks and collects entries and problems.
class Scanner {
 public:
  Scanner(std::string realRoot, std::vector<Problem>* problems)
      : root_(std::move(realRoot)), problems_(problems) {}

  void walk(const std::string& rel, const std::string& abs, bool insideFunction) {
    DIR* dir = ::opendir(abs.c_str());
    if (dir == nullptr) {
      addProblem(rel, "cannot list this directory (" + errnoText(errno) +
                          "); make it readable (chmod a+rx)");
      return;
    }
    std::vector<std::string> names;
    while (dirent* d = ::readdir(dir)) {
      std::string_view name = d->d_name;
      if (name == "." || name == "..") continue;
      names.emplace_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      visit(rel.empty() ? name : rel + "/" + name, abs + "/" + name, name, insideFunction);
    }
  }

  void finish() {
    if (!sawConfig_) {
      addProblem("config.json",
                 "missing; a build output needs config.json with at least {\"version\": 3} — "
                 "run your framework's build (or `vercel build`) to produce it");
    }
    if (manifest_.size() > kMaxManifestEntries) {
      addProblem("", "holds " + std::to_string(manifest_.size()) +
                         " files and symlinks, more than the " +
                         std::to_string(kMaxManifestEntries) +
                         " a deployment may have; deploy fewer files (bundle dependencies, or "
                         "serve large asset sets from elsewhere)");
    }
  }

  Manifest takeManifest() { return std::move(manifest_); }
  bool clean() const { return problemCount_ == 0; }

 private:
  void addProblem(std::string path, std::string message) {
    ++problemCount_;
    problems_->push_back(Problem{std::move(path), std::move(message)});
  }

  void visit(const std::string& rel, const std::string& abs, const std::string& name,
             bool insideFunction) {
    for (std::string& p : nameProblems(name)) addProblem(rel, std::move(p));
    struct stat st {};
    if (::lstat(abs.c_str(), &st) != 0) {
      addProblem(rel, "cannot be inspected (" + errnoText(errno) + "); check its permissions");
      return;
    }
    if (rel.size() > kMaxPathBytes) {
      addProblem(rel, "path is " + std::to_string(rel.size()) + " bytes long, more than the " +
                          std::to_string(kMaxPathBytes) + " allowed; shorten it");
      return;
    }
    bool functionCandidate =
        !insideFunction && startsWith(rel, kFunctionsPrefix) && isFuncName(name);
    if (S_ISDIR(st.st_mode)) {
      if (functionCandidate) checkFunctionDir(rel, abs);
      walk(rel, abs, insideFunction || functionCandidate);
    } else if (S_ISREG(st.st_mode)) {
      visitFile(rel, abs, st, functionCandidate);
    } else if (S_ISLNK(st.st_mode)) {
      visitSymlink(rel, abs, st, functionCandidate);
    } else {
      addProblem(rel, std::string("is ") + specialFileKind(st.st_mode) +
                          "; only regular files, directories and symlinks can be deployed, "
                          "remove it from the output");
    }
  }

  void visitFile(const std::string& rel, const std::string& abs, const struct stat& st,
                 bool functionCandidate) {
    if (::access(abs.c_str(), R_OK) != 0) {
      addProblem(rel, "cannot be read (" + errnoText(errno) + "); make it readable (chmod a+r)");
    }
    if (functionCandidate) {
      std::string hint;
      if (st.st_size > 0 && st.st_size < 4096) {
        if (auto text = readSmallFile(abs);
            text && text->find('\n') == std::string::npos && endsWith(*text, kFuncSuffix)) {
          hint = " it holds \"" + printablePath(*text) +
                 "\": it looks like a symlink flattened into a file by a copy or checkout "
                 "without symlink support (zip, git core.symlinks=false); recreate it with "
                 "`ln -sfn '" +
                 printablePath(*text) + "' '" + baseName(rel) +
                 "'` in its directory, or copy the output with `cp -a`.";
        }
      }
      addProblem(rel,
                 "is a regular file, but .func entries must be function directories or "
                 "symlinks to them;" +
                     (hint.empty() ? std::string(" remove it or rebuild the output") : hint));
    }
    if (rel == "config.json") {
      sawConfig_ = true;
      checkConfigJson(abs);
    }
    ManifestEntry entry;
    entry.path = rel;
    entry.size = static_cast<uint64_t>(st.st_size);
    entry.mode = static_cast<uint32_t>(st.st_mode & 07777);
    manifest_.push_back(std::move(entry));
  }

  void visitSymlink(const std::string& rel, const std::string& abs, const struct stat& st,
                    bool functionCandidate) {
    std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : PATH_MAX) + 1, '\0');
    ssize_t n = ::readlink(abs.c_str(), target.data(), target.size());
    if (n < 0) {
      addProblem(rel, "symlink cannot be read (" + errnoText(errno) + "); recreate it");
      return;
    }
    target.resize(static_cast<size_t>(n));
    if (rel == "config.json") {
      sawConfig_ = true;
      addProblem(rel,
                 "is a symlink; replace it with the file itself (cp --remove-destination "
                 "\"$(readlink -f config.json)\" config.json)");
    }
    ManifestEntry entry;
    entry.path = rel;
    entry.symlinkTarget = target;
    entry.mode = static_cast<uint32_t>(st.st_mode & 07777);
    manifest_.push_back(std::move(entry));

    std::vector<std::string> lexical = symlinkProblems(rel, target);
    if (!lexical.empty()) {
      for (std::string& p : lexical) addProblem(rel, std::move(p));
      return;
    }
    // The text stays inside lexically; the real resolution can still leave the root through
    // other links (or dangle, or loop).
    int err = 0;
    auto real = realPath(abs, &err);
    if (!real) {
      addProblem(rel, "symlink to \"" + printablePath(target) + "\" does not resolve (" +
                          errnoText(err) + "); point it at an existing file or remove it");
      return;
    }
    if (*real != root_ && !startsWith(*real, root_ + "/")) {
      addProblem(rel, "symlink to \"" + printablePath(target) + "\" really resolves to " +
                          printablePath(*real) +
                          ", outside the output directory (through another symlink); point "
                          "it at a file inside the output directory");
      return;
    }
    if (!functionCandidate) return;
    std::string realRel = *real == root_ ? "" : real->substr(root_.size() + 1);
    struct stat targetStat {};
    bool isDir = ::stat(real->c_str(), &targetStat) == 0 && S_ISDIR(targetStat.st_mode);
    if (!isDir || !isFunctionDirPath(realRel)) {
      addProblem(rel, "symlink to \"" + printablePath(target) + "\" resolves to \"" +
                          printablePath(realRel) +
                          "\", which is not a .func directory under functions/; point it at a "
                          "function directory (the link text is relative to the link's own "
                          "directory)");
      return;
    }
    // The server follows the link text lexically ("a/../b" is "b"); the kernel resolves ".."
    // after a symlinked component physically. Both must reach the same function.
    std::string lexicalRel = resolveLinkTarget(rel, target).value_or("");
    struct stat lexicalStat {};
    bool lexicalIsLink = ::lstat((root_ + "/" + lexicalRel).c_str(), &lexicalStat) == 0 &&
                         S_ISLNK(lexicalStat.st_mode);
    if (!lexicalIsLink && lexicalRel != realRel) {
      addProblem(rel, "symlink to \"" + printablePath(target) + "\" reaches \"" +
                          printablePath(realRel) + "\" on disk but \"" + printablePath(lexicalRel) +
                          "\" when read as text, because it passes through another symlink; "
                          "point it directly at the function directory");
      return;
    }
    checkFunctionDir(realRel, *real);
  }

  void checkConfigJson(const std::string& abs) {
    auto text = readSmallFile(abs);
    if (!text) {
      addProblem("config.json", text.error().message + "; make it a readable JSON file");
      return;
    }
    for (std::string& p : configJsonProblems(*text)) addProblem("config.json", std::move(p));
  }

  // Checks a real .func directory once, under its real path relative to the root.
  void checkFunctionDir(const std::string& rel, const std::string& abs) {
    if (!checkedFunctions_.insert(rel).second) return;
    std::string cfgRel = rel + "/.vc-config.json";
    std::string cfgAbs = abs + "/.vc-config.json";
    struct stat st {};
    if (::stat(cfgAbs.c_str(), &st) != 0) {
      addProblem(rel,
                 "has no .vc-config.json; every .func directory needs one, e.g. "
                 "{\"runtime\": \"nodejs20.x\", \"handler\": \"index.js\"} or "
                 "{\"runtime\": \"edge\", \"entrypoint\": \"index.js\"} — rebuild the "
                 "output with your framework's adapter or `vercel build`");
      return;
    }
    if (!S_ISREG(st.st_mode)) {
      addProblem(cfgRel, "is not a regular file; it must be the function's JSON configuration");
      return;
    }
    auto text = readSmallFile(cfgAbs);
    if (!text) {
      addProblem(cfgRel, text.error().message + "; make it a readable JSON file");
      return;
    }
    for (std::string& p : vcConfigProblems(*text)) addProblem(cfgRel, std::move(p));
  }

  std::string root_;
  std::vector<Problem>* problems_;
  size_t problemCount_ = 0;
  Manifest manifest_;
  bool sawConfig_ = false;
  std::set<std::string> checkedFunctions_;
};

bool isDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

Result<ScannedOutput> scanOutputDir(const std::string& dir, std::vector<Problem>* problems,
                                    const ScanProgress& progress) {
  std::vector<Problem> local;
  std::vector<Problem>* sink = problems != nullptr ? problems : &local;
  size_t firstProblem = sink->size();
  auto fail = [&](const std::string& where) -> Error {
    size_t count = sink->size() - firstProblem;
    std::string headline = where + ": " + std::to_string(count) + " problem" +
                           (count == 1 ? "" : "s") + " in the build output; fix " +
                           (count == 1 ? "it" : "them") + " and run again";
    if (problems != nullptr) return makeError(ErrorKind::Invalid, headline);
    std::vector<std::pair<std::string, std::string>> lines;
    for (size_t i = firstProblem; i < sink->size(); ++i) {
      lines.emplace_back((*sink)[i].path, (*sink)[i].message);
    }
    return makeError(ErrorKind::Invalid, formatProblemList(headline + ":", lines));
  };

  std::string base = dir.empty() ? "." : dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (!isDirectory(base)) {
    sink->push_back(
        Problem{"", base + " is not a directory (" +
                        (exists(base) ? std::string("it is a file") : errnoText(ENOENT)) +
                        "); pass your project directory or its .vercel/output "
                        "directory"});
    return fail(base);
  }
  std::string rootDir;
  if (exists(base + "/config.json")) {
    rootDir = base;
  } else if (isDirectory(base + "/.vercel/output")) {
    rootDir = base + "/.vercel/output";
  } else {
    sink->push_back(Problem{"", base + " holds neither config.json nor .vercel/output/; run "
                                       "your framework's build (or `vercel build`) first, or "
                                       "point at the .vercel/output directory it produced"});
    return fail(base);
  }
  int err = 0;
  auto realRoot = realPath(rootDir, &err);
  if (!realRoot) {
    sink->push_back(Problem{"", "cannot resolve " + rootDir + " (" + errnoText(err) + ")"});
    return fail(rootDir);
  }

  Scanner scanner(*realRoot, sink);
  scanner.walk("", *realRoot, /*insideFunction=*/false);
  scanner.finish();
  if (!scanner.clean()) return fail(*realRoot);

  ScannedOutput out;
  out.root = *realRoot;
  out.manifest = scanner.takeManifest();
  std::sort(out.manifest.begin(), out.manifest.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
  size_t total = 0;
  for (const ManifestEntry& e : out.manifest) total += e.isSymlink() ? 0 : 1;
  size_t done = 0;
  if (progress) progress(0, total, 0);
  for (ManifestEntry& e : out.manifest) {
    if (e.isSymlink()) continue;
    auto hashed = hashFile(out.root + "/" + e.path);
    if (!hashed) return hashed.error().context("hashing the build output");
    e.hash = std::move(hashed->first);
    e.size = hashed->second;
    out.totalBytes += e.size;
    ++done;
    if (progress) progress(done, total, out.totalBytes);
  }
  if (auto valid = validateManifest(out.manifest); !valid) {
    // The scan checks everything the server checks; reaching this is a bug in one of them.
    return makeError(ErrorKind::Internal,
                     "the scanned manifest of " + out.root +
                         " fails server validation although the scan found no problem: " +
                         valid.error().message);
  }
  return out;
}

namespace {

// Resolves manifest paths through the manifest's own symlinks, the way the kernel would
// resolve them in the unpacked tree (link text relative to the link's directory, ".."
// lexical), with at most kMaxSymlinkHops links followed.
class ManifestResolver {
 public:
  enum class Kind { File, Directory, Missing, Loop, Escapes };
  struct Resolved {
    Kind kind = Kind::Missing;
    std::string path;                     // resolved manifest path
    const ManifestEntry* file = nullptr;  // for Kind::File
  };

  explicit ManifestResolver(const Manifest& manifest) {
    for (const ManifestEntry& e : manifest) byPath_.emplace(e.path, &e);
  }

  const ManifestEntry* find(std::string_view path) const {
    auto it = byPath_.find(path);
    return it == byPath_.end() ? nullptr : it->second;
  }

  bool isDirectory(std::string_view path) const {
    if (path.empty()) return true;
    std::string prefix = std::string(path) + "/";
    auto it = byPath_.lower_bound(prefix);
    return it != byPath_.end() && startsWith(it->first, prefix);
  }

  // Calls fn(entry) for the entries strictly beneath directory `dir`, in path order, until it
  // returns false.
  template <class Fn>
  void forEachBeneath(std::string_view dir, Fn&& fn) const {
    std::string prefix = std::string(dir) + "/";
    for (auto it = byPath_.lower_bound(prefix);
         it != byPath_.end() && startsWith(it->first, prefix); ++it) {
      if (!fn(*it->second)) return;
    }
  }

  Resolved resolve(std::string_view path) const {
    std::deque<std::string> pending = split(path);
    std::string done;  // resolved prefix, free of symlinks
    size_t hops = 0;
    while (!pending.empty()) {
      std::string comp = std::move(pending.front());
      pending.pop_front();
      std::string current = done.empty() ? comp : done + "/" + comp;
      const ManifestEntry* entry = find(current);
      if (entry == nullptr) {
        done = std::move(current);
        continue;
      }
      if (entry->isSymlink()) {
        if (++hops > kMaxSymlinkHops) return {Kind::Loop, current, nullptr};
        auto target = resolveLinkTarget(current, entry->symlinkTarget);
        if (!target) return {Kind::Escapes, current, nullptr};
        std::deque<std::string> rest = split(*target);
        rest.insert(rest.end(), pending.begin(), pending.end());
        pending = std::move(rest);
        done.clear();
        continue;
      }
      if (!pending.empty()) return {Kind::Missing, current, nullptr};  // a file used as a dir
      return {Kind::File, current, entry};
    }
    if (isDirectory(done)) return {Kind::Directory, done, nullptr};
    return {Kind::Missing, done, nullptr};
  }

 private:
  static std::deque<std::string> split(std::string_view path) {
    std::deque<std::string> out;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find('/', start);
      if (end == std::string_view::npos) end = path.size();
      if (end > start) out.emplace_back(path.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }

  std::map<std::string_view, const ManifestEntry*, std::less<>> byPath_;
};

StaticFile staticFrom(const ManifestEntry& file, std::string_view key) {
  return StaticFile{file.hash, file.size, contentTypeForPath(key), file.path};
}

void loadStatics(const Manifest& manifest, const ManifestResolver& resolver,
                 DeploymentOutput* out) {
  // Files exposed through directory symlinks are bounded, so that many links to one big
  // directory cannot multiply the output map.
  size_t linkedBudget = kMaxManifestEntries;
  bool budgetWarned = false;
  for (const ManifestEntry& e : manifest) {
    if (!startsWith(e.path, kStaticPrefix)) continue;
    std::string key = e.path.substr(kStaticPrefix.size());
    if (!e.isSymlink()) {
      out->statics[key] = staticFrom(e, key);
      continue;
    }
    auto r = resolver.resolve(e.path);
    bool insideStatic = startsWith(r.path + "/", kStaticPrefix);
    if (r.kind == ManifestResolver::Kind::File && insideStatic) {
      out->statics[key] = staticFrom(*r.file, key);
    } else if (r.kind == ManifestResolver::Kind::Directory && insideStatic) {
      // A linked directory exposes the files beneath it (links to files included; links to
      // further directories are not expanded, which also keeps cycles finite).
      resolver.forEachBeneath(r.path, [&](const ManifestEntry& inner) {
        if (linkedBudget == 0) {
          if (!budgetWarned) {
            out->warnings.push_back(e.path + ": directory symlinks expose more than " +
                                    std::to_string(kMaxManifestEntries) +
                                    " files in all; the rest are not served — link fewer or "
                                    "smaller directories");
            budgetWarned = true;
          }
          return false;
        }
        --linkedBudget;
        std::string innerKey = key + inner.path.substr(r.path.size());
        if (!inner.isSymlink()) {
          out->statics[innerKey] = staticFrom(inner, innerKey);
          return true;
        }
        auto ir = resolver.resolve(inner.path);
        if (ir.kind == ManifestResolver::Kind::File && startsWith(ir.path, kStaticPrefix)) {
          out->statics[innerKey] = staticFrom(*ir.file, innerKey);
        }
        return true;
      });
    } else {
      const char* why = r.kind == ManifestResolver::Kind::Loop      ? "is a symlink loop"
                        : r.kind == ManifestResolver::Kind::Escapes ? "leaves the output directory"
                        : r.kind == ManifestResolver::Kind::Missing ? "points at nothing"
                                                                    : "points outside static/";
      out->warnings.push_back(e.path + ": symlink to \"" + printablePath(e.symlinkTarget) + "\" " +
                              why +
                              "; it is not served — point it at a file in "
                              "static/ or remove it");
    }
  }
}

void applyOverrides(const json::object& overrides, DeploymentOutput* out) {
  struct Move {
    std::string from;
    std::string to;
    StaticFile file;
  };
  std::vector<Move> moves;
  for (const auto& [rawKey, value] : overrides) {
    std::string key(rawKey);
    std::string where = "config.json overrides[\"" + printablePath(key) + "\"]";
    auto it = out->statics.find(key);
    if (it == out->statics.end()) {
      out->warnings.push_back(where + ": no file static/" + printablePath(key) +
                              " exists; the override is ignored — use the file's path under "
                              "static/ with its extension, or remove the override");
      continue;
    }
    const json::object* obj = value.if_object();
    if (obj == nullptr) {
      out->warnings.push_back(where +
                              ": expected an object like {\"path\": \"about\", "
                              "\"contentType\": \"text/html\"}; the override is ignored");
      continue;
    }
    Move move{key, key, it->second};
    if (const json::value* ct = obj->if_contains("contentType")) {
      if (ct->is_string()) {
        move.file.contentType = std::string(ct->get_string());
      } else {
        out->warnings.push_back(where + ": \"contentType\" is not a string; it is ignored");
      }
    }
    if (const json::value* path = obj->if_contains("path")) {
      std::string_view to = path->is_string() ? std::string_view(path->get_string()) : "";
      while (!to.empty() && to.front() == '/') to.remove_prefix(1);
      if (to.empty()) {
        out->warnings.push_back(where +
                                ": \"path\" is not a non-empty string; the file keeps "
                                "its original path");
      } else {
        move.to = std::string(to);
      }
    }
    moves.push_back(std::move(move));
  }
  // Two phases, so that an override moving a file onto another overridden file's old key
  // (a.html -> b.html, b.html -> c.html) does not depend on the order of the keys.
  for (const Move& m : moves) out->statics.erase(m.from);
  std::set<std::string> placed;
  for (Move& m : moves) {
    if (!placed.insert(m.to).second) {
      out->warnings.push_back("config.json overrides: several files are re-keyed to \"" +
                              printablePath(m.to) + "\"; static/" + printablePath(m.from) +
                              " wins — give each a different \"path\"");
    }
    out->statics[m.to] = std::move(m.file);
  }
}

}  // namespace

Result<DeploymentOutput> loadDeploymentOutput(
    const Manifest& manifest,
    const std::function<Result<std::string>(std::string_view hash)>& readBlob) {
  ManifestResolver resolver(manifest);
  DeploymentOutput out;
  std::vector<std::pair<std::string, std::string>> errors;
  auto invalid = [&errors]() {
    return makeError(ErrorKind::Invalid,
                     formatProblemList("the deployment's build output is invalid (" +
                                           std::to_string(errors.size()) + " problem(s)):",
                                       errors));
  };

  const ManifestEntry* config = resolver.find("config.json");
  if (config == nullptr || config->isSymlink()) {
    errors.push_back({"config.json",
                      "missing; upload the whole .vercel/output directory, "
                      "including config.json"});
    return invalid();
  }
  auto configText = readBlob(config->hash);
  if (!configText) return configText.error().context("reading config.json (" + config->hash + ")");
  out.configJson = std::move(*configText);
  for (std::string& p : configJsonProblems(out.configJson)) {
    errors.push_back({"config.json", std::move(p)});
  }

  loadStatics(manifest, resolver, &out);
  if (errors.empty()) {
    json::value parsed = json::parse(out.configJson);  // syntax checked just above
    if (const json::value* ov = parsed.get_object().if_contains("overrides")) {
      applyOverrides(ov->get_object(), &out);
    }
  }

  // Function directories: the first "*.func" component under functions/ (a .func dir is not
  // searched for more functions). A symlink named *.func is a function alias.
  std::map<std::string, std::string, std::less<>> functionDirs;  // dir -> key
  std::vector<const ManifestEntry*> functionLinks;
  for (const ManifestEntry& e : manifest) {
    if (!startsWith(e.path, kFunctionsPrefix)) continue;
    std::string_view rest = std::string_view(e.path).substr(kFunctionsPrefix.size());
    size_t start = 0;
    while (start < rest.size()) {
      size_t end = rest.find('/', start);
      if (end == std::string_view::npos) end = rest.size();
      if (isFuncName(rest.substr(start, end - start))) {
        std::string_view rel = rest.substr(0, end);
        std::string key(rel.substr(0, rel.size() - kFuncSuffix.size()));
        if (end < rest.size()) {
          functionDirs.emplace(std::string(kFunctionsPrefix) + std::string(rel), key);
        } else if (e.isSymlink()) {
          functionLinks.push_back(&e);
        } else {
          out.warnings.push_back(e.path +
                                 ": is a regular file, not a function directory; it "
                                 "is ignored (a symlink flattened by a copy?)");
        }
        break;
      }
      start = end + 1;
    }
  }
  auto hasPrerenderConfig = [&resolver](const std::string& key) {
    return resolver.find(std::string(kFunctionsPrefix) + key + ".prerender-config.json") != nullptr;
  };
  for (const auto& [dir, key] : functionDirs) {
    out.functions[key] = FunctionRef{key, dir, hasPrerenderConfig(key)};
    std::string cfgPath = dir + "/.vc-config.json";
    auto cfg = resolver.resolve(cfgPath);
    if (cfg.kind != ManifestResolver::Kind::File) {
      errors.push_back({dir,
                        "has no .vc-config.json; every .func directory needs one, e.g. "
                        "{\"runtime\": \"nodejs20.x\", \"handler\": \"index.js\"}"});
      continue;
    }
    auto text = readBlob(cfg.file->hash);
    if (!text) return text.error().context("reading " + cfgPath + " (" + cfg.file->hash + ")");
    for (std::string& p : vcConfigProblems(*text)) errors.push_back({cfgPath, std::move(p)});
  }
  for (const ManifestEntry* link : functionLinks) {
    std::string key = link->path.substr(
        kFunctionsPrefix.size(), link->path.size() - kFunctionsPrefix.size() - kFuncSuffix.size());
    auto r = resolver.resolve(link->path);
    auto dir = functionDirs.find(r.path);
    if (r.kind != ManifestResolver::Kind::Directory || dir == functionDirs.end()) {
      errors.push_back({link->path, "symlink to \"" + printablePath(link->symlinkTarget) +
                                        "\" does not lead to a function directory (it resolves "
                                        "to \"" +
                                        printablePath(r.path) +
                                        "\"); point it at an existing .func directory, relative "
                                        "to the link's own directory"});
      continue;
    }
    out.functions[key] = FunctionRef{key, dir->first, hasPrerenderConfig(key)};
  }

  if (!errors.empty()) return invalid();
  return out;
}

std::string contentTypeForPath(std::string_view path) {
  static const std::map<std::string, std::string, std::less<>> kTypes = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"cjs", "text/javascript; charset=utf-8"},
      {"json", "application/json; charset=utf-8"},
      {"map", "application/json; charset=utf-8"},
      {"jsonld", "application/ld+json; charset=utf-8"},
      {"webmanifest", "application/manifest+json; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"},
      {"text", "text/plain; charset=utf-8"},
      {"md", "text/markdown; charset=utf-8"},
      {"markdown", "text/markdown; charset=utf-8"},
      {"csv", "text/csv; charset=utf-8"},
      {"tsv", "text/tab-separated-values; charset=utf-8"},
      {"ics", "text/calendar; charset=utf-8"},
      {"vtt", "text/vtt; charset=utf-8"},
      {"xml", "application/xml; charset=utf-8"},
      {"xsl", "application/xml; charset=utf-8"},
      {"rss", "application/rss+xml; charset=utf-8"},
      {"atom", "application/atom+xml; charset=utf-8"},
      {"svg", "image/svg+xml; charset=utf-8"},
      {"yaml", "application/yaml; charset=utf-8"},
      {"yml", "application/yaml; charset=utf-8"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"bmp", "image/bmp"},
      {"tif", "image/tiff"},
      {"tiff", "image/tiff"},
      {"apng", "image/apng"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"eot", "application/vnd.ms-fontobject"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
      {"mp4", "video/mp4"},
      {"m4v", "video/mp4"},
      {"webm", "video/webm"},
      {"ogv", "video/ogg"},
      {"mov", "video/quicktime"},
      {"mp3", "audio/mpeg"},
      {"m4a", "audio/mp4"},
      {"aac", "audio/aac"},
      {"ogg", "audio/ogg"},
      {"oga", "audio/ogg"},
      {"opus", "audio/opus"},
      {"wav", "audio/wav"},
      {"flac", "audio/flac"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tgz", "application/gzip"},
      {"br", "application/x-brotli"},
      {"zst", "application/zstd"},
      {"tar", "application/x-tar"},
      {"7z", "application/x-7z-compressed"},
      {"bin", "application/octet-stream"},
  };
  std::string_view name = path;
  if (size_t slash = name.rfind('/'); slash != std::string_view::npos) {
    name = name.substr(slash + 1);
  }
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size()) return "application/octet-stream";
  std::string ext(name.substr(dot + 1));
  for (char& c : ext) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

const StaticFile* findStatic(const DeploymentOutput& out, std::string_view path) {
  std::string_view key = path;
  while (!key.empty() && key.front() == '/') key.remove_prefix(1);
  while (!key.empty() && key.back() == '/') key.remove_suffix(1);
  auto lookup = [&out](std::string_view k) -> const StaticFile* {
    auto it = out.statics.find(k);
    return it == out.statics.end() ? nullptr : &it->second;
  };
  if (key.empty()) {
    if (auto* f = lookup("index.html")) return f;
    return lookup("index");
  }
  if (auto* f = lookup(key)) return f;
  std::string k(key);
  if (auto* f = lookup(k + "/index.html")) return f;
  return lookup(k + "/index");
}

}  // namespace nimbus::output

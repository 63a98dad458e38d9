// ContentStore on a local directory. Publishing protocol for one blob:
//   1. bytes go to root/tmp/<hash>.<random>.tmp (O_EXCL, so writers never share a file),
//      hashed as they arrive;
//   2. commit checks size and hash, fsyncs the file, renames it to root/<2 hex>/<62 hex> and
//      fsyncs that directory (and root when the prefix directory was just created).
// A crash before the rename leaves only a temp file, which the next open removes; after it,
// the blob is complete. has()/read() look only at final paths, so a blob is invisible until
// its rename.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <unordered_set>

#include "common/random.h"
#include "common/sha256.h"
#include "content/content_store.h"

namespace nimbus::content {
namespace {

std::string errnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

Error ioError(std::string what, const std::string& path, int err) {
  return makeError(ErrorKind::Io, std::move(what) + " " + path + ": " + errnoText(err));
}

Error invalidHash(std::string_view hash) {
  return makeError(ErrorKind::Invalid, "invalid blob hash '" + std::string(hash) +
                                           "': expected 64 lower-case hex characters (SHA-256)");
}

// Makes `path` durable as a directory entry set: new and renamed names inside it survive a
// crash once this returns.
Result<void> fsyncDirectory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ioError("cannot open directory", path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ioError("cannot fsync directory", path, err);
  return success();
}

enum class Created { No, Yes };

// mkdir that accepts an existing directory.
Result<Created> ensureDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) return Created::Yes;
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Created::No;
  return ioError("cannot create directory", path, err);
}

Result<void> writeAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ioError("cannot write", path, errno);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return success();
}

std::string prefixDirectory(const std::string& root, std::string_view hash) {
  return root + "/" + std::string(hash.substr(0, 2));
}

std::string finalPath(const std::string& root, std::string_view hash) {
  return prefixDirectory(root, hash) + "/" + std::string(hash.substr(2));
}

// True when the blob's final file exists (it is then complete).
bool isPublished(const std::string& root, std::string_view hash) {
  if (!isSha256Hex(hash)) return false;
  struct stat st;
  return ::stat(finalPath(root, hash).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Used by one thread at a time; distinct writers are independent. May outlive its store.
class LocalBlobWriter final : public BlobWriter {
 public:
  LocalBlobWriter(std::string root, std::string hash, uint64_t expectedSize,
                  std::string tempPath, int fd)
      : root_(std::move(root)),
        hash_(std::move(hash)),
        expectedSize_(expectedSize),
        tempPath_(std::move(tempPath)),
        fd_(fd) {}

  ~LocalBlobWriter() override { discard(); }

  Result<void> write(const void* data, size_t size) override {
    if (failure_) return *failure_;
    NIMBUS_CHECK(!committed_);
    if (size > expectedSize_ - bytes_) {
      return fail(makeError(ErrorKind::Invalid,
                            "blob " + hash_ + ": expected " + std::to_string(expectedSize_) +
                                " bytes, received at least " + std::to_string(bytes_ + size)));
    }
    if (auto written = writeAll(fd_, static_cast<const char*>(data), size, tempPath_); !written) {
      return fail(written.error().context("storing blob " + hash_));
    }
    hasher_.update(data, size);
    bytes_ += size;
    return success();
  }

  Result<void> commit() override;

  uint64_t bytesWritten() const override { return bytes_; }

 private:
  Error fail(Error e) {
    discard();
    failure_ = e;
    return e;
  }

  // Closes and removes the temp file unless the blob was published.
  void discard() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (!committed_ && !tempPath_.empty()) {
      ::unlink(tempPath_.c_str());
      tempPath_.clear();
    }
  }

  const std::string root_;
  const std::string hash_;
  const uint64_t expectedSize_;
  std::string tempPath_;  // empty once removed
  int fd_;
  Sha256 hasher_;
  uint64_t bytes_ = 0;
  bool committed_ = false;
  std::optional<Error> failure_;  // sticky: a failed writer only reports its error
};

class LocalContentStore final : public ContentStore {
 public:
  explicit LocalContentStore(std::string root) : root_(std::move(root)), tmp_(root_ + "/tmp") {}

  bool has(std::string_view hash) override { return isPublished(root_, hash); }

  std::vector<std::string> missing(const std::vector<std::string>& hashes) override {
    std::vector<std::string> out;
    std::unordered_set<std::string_view> seen;
    for (const std::string& h : hashes) {
      if (!seen.insert(h).second) continue;
      if (!isPublished(root_, h)) out.push_back(h);
    }
    return out;
  }

  Result<std::unique_ptr<BlobWriter>> beginWrite(std::string_view hash,
                                                 uint64_t expectedSize) override {
    if (!isSha256Hex(hash)) return invalidHash(hash);
    std::string tempPath = tmp_ + "/" + std::string(hash) + "." + randomId(16) + ".tmp";
    int fd = ::open(tempPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      return ioError("cannot create temporary file", tempPath, errno)
          .context("storing blob " + std::string(hash));
    }
    // Readers (router, workers, sandboxes) may run as other users; do not depend on umask.
    if (::fchmod(fd, 0644) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tempPath.c_str());
      return ioError("cannot chmod", tempPath, err).context("storing blob " + std::string(hash));
    }
    return std::unique_ptr<BlobWriter>(std::make_unique<LocalBlobWriter>(
        root_, std::string(hash), expectedSize, std::move(tempPath), fd));
  }

  Result<std::string> put(std::string_view data) override {
    std::string hash = sha256Hex(data);
    if (isPublished(root_, hash)) return hash;
    auto writer = beginWrite(hash, data.size());
    if (!writer.ok()) return writer.error();
    if (auto written = (*writer)->write(data.data(), data.size()); !written) {
      return written.error();
    }
    if (auto committed = (*writer)->commit(); !committed) return committed.error();
    return hash;
  }

  Result<std::string> read(std::string_view hash) override {
    if (!isSha256Hex(hash)) return invalidHash(hash);
    std::string path = finalPath(root_, hash);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) {
        return makeError(ErrorKind::NotFound,
                         "blob " + std::string(hash) + " not found in " + root_ +
                             "; upload it first (the CLI uploads missing blobs on deploy)");
      }
      return ioError("cannot open blob", path, err);
    }
    std::string out;
    struct stat st;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
    char buf[64 * 1024];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        return ioError("cannot read blob", path, err);
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  std::optional<std::string> localPath(std::string_view hash) override {
    if (!isPublished(root_, hash)) return std::nullopt;
    return finalPath(root_, hash);
  }

 private:
  const std::string root_;
  const std::string tmp_;
};

Result<void> LocalBlobWriter::commit() {
  if (failure_) return *failure_;
  NIMBUS_CHECK(!committed_);
  if (bytes_ != expectedSize_) {
    return fail(makeError(ErrorKind::Invalid, "blob " + hash_ + ": expected " +
                                                  std::to_string(expectedSize_) +
                                                  " bytes, received " + std::to_string(bytes_)));
  }
  std::string actual = hasher_.finishHex();
  if (actual != hash_) {
    return fail(makeError(ErrorKind::Invalid,
                          "blob " + hash_ + ": content hashes to " + actual +
                              "; the upload was corrupted or the hash is wrong"));
  }
  const std::string context = "storing blob " + hash_;
  if (::fsync(fd_) != 0) return fail(ioError("cannot fsync", tempPath_, errno).context(context));
  int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) return fail(ioError("cannot close", tempPath_, errno).context(context));

  if (isPublished(root_, hash_)) {
    // Someone else published the same bytes; ours are redundant.
    discard();
    committed_ = true;
    return success();
  }
  std::string prefix = prefixDirectory(root_, hash_);
  auto created = ensureDirectory(prefix);
  if (!created.ok()) return fail(created.error().context(context));
  if (*created == Created::Yes) {
    if (auto synced = fsyncDirectory(root_); !synced) {
      return fail(synced.error().context(context));
    }
  }
  // Two writers of the same hash may both get here; the second rename replaces a verified
  // file with identical bytes, and readers holding the first one keep its inode.
  std::string target = finalPath(root_, hash_);
  if (::rename(tempPath_.c_str(), target.c_str()) != 0) {
    return fail(makeError(ErrorKind::Io, "cannot rename " + tempPath_ + " to " + target +
                                             ": " + errnoText(errno))
                    .context(context));
  }
  committed_ = true;
  tempPath_.clear();
  if (auto synced = fsyncDirectory(prefix); !synced) {
    // The blob is complete and visible; only its durability across a power loss is unknown.
    return synced.error().context(context);
  }
  return success();
}

// Removes every entry of root/tmp: temp files of writers that never committed.
Result<void> removeStaleTempFiles(const std::string& tmp) {
  DIR* dir = ::opendir(tmp.c_str());
  if (!dir) return ioError("cannot open directory", tmp, errno);
  Result<void> result;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = tmp + "/" + std::string(name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      result = ioError("cannot remove stale temporary file", path, errno);
      break;
    }
    errno = 0;
  }
  if (result.ok() && errno != 0) result = ioError("cannot list directory", tmp, errno);
  ::closedir(dir);
  return result;
}

}  // namespace

Result<std::unique_ptr<ContentStore>> openLocalContentStore(const std::string& root) {
  std::string normalized = root;
  while (normalized.size() > 1 && normalized.back() == '/') normalized.pop_back();
  const std::string context = "opening the content store at " + normalized;
  if (normalized.empty()) {
    return makeError(ErrorKind::Invalid, "content store root is empty; pass a directory");
  }
  std::error_code ec;
  std::filesystem::create_directories(normalized, ec);
  if (ec) {
    return makeError(ErrorKind::Io,
                     "cannot create directory " + normalized + ": " + ec.message() +
                         "; check that its parent is a directory this user can write")
        .context(context);
  }
  std::string tmp = normalized + "/tmp";
  if (auto created = ensureDirectory(tmp); !created.ok()) return created.error().context(context);
  // One process owns a local root: anything in tmp/ now is left over from a crash.
  if (auto removed = removeStaleTempFiles(tmp); !removed) return removed.error().context(context);
  return std::unique_ptr<ContentStore>(std::make_unique<LocalContentStore>(normalized));
}

}  // namespace nimbus::content

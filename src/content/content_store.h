#pragma once
// Content-addressed blob store: blobs are named by the SHA-256 of their bytes (64 lower-case
// hex characters). A blob becomes visible only after all of its bytes were written, synced
// and verified against its name, so a crash at any point leaves either no blob or a
// complete one.
//
// Thread rules: all methods are safe to call from any thread.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace nimbus::content {

// Receives one blob's bytes. Destroying it without commit() discards what was written.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual Result<void> write(const void* data, size_t size) = 0;
  // Verifies size and hash against what was announced, syncs, and publishes the blob.
  // Error kinds: Invalid for a hash or size mismatch (message says expected vs actual), Io.
  virtual Result<void> commit() = 0;
  virtual uint64_t bytesWritten() const = 0;
};

class ContentStore {
 public:
  virtual ~ContentStore() = default;
  virtual bool has(std::string_view hash) = 0;
  // The subset of `hashes` the store lacks, in input order, without duplicates.
  virtual std::vector<std::string> missing(const std::vector<std::string>& hashes) = 0;
  // Starts a blob. `expectedSize` is checked on commit. Invalid when hash is not SHA-256 hex.
  virtual Result<std::unique_ptr<BlobWriter>> beginWrite(std::string_view hash,
                                                         uint64_t expectedSize) = 0;
  // Convenience: writes `data` under its own hash and returns the hash.
  virtual Result<std::string> put(std::string_view data) = 0;
  // Whole blob. NotFound when absent.
  virtual Result<std::string> read(std::string_view hash) = 0;
  // A local file holding the blob (for sendfile/mmap), when the backend has one.
  virtual std::optional<std::string> localPath(std::string_view hash) = 0;
};

// Blobs under `root`/<first 2 hex>/<rest>; temporary files under `root`/tmp (stale ones
// are removed on open).
Result<std::unique_ptr<ContentStore>> openLocalContentStore(const std::string& root);

}  // namespace nimbus::content

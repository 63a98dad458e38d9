#pragma once
// HTTP semantics of static files: conditional requests (ETag / If-None-Match), byte ranges
// (Range / If-Range), content-coding negotiation (br, gzip), and the caches that keep file
// bytes and their compressed variants in memory.
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace nimbus::router {

enum class Encoding { Identity, Gzip, Brotli };

std::string_view encodingToken(Encoding e);  // "", "gzip", "br"

struct StaticRequest {
  std::string_view method = {};
  std::string_view ifNoneMatch = {};
  std::string_view ifRange = {};
  std::string_view range = {};
  std::string_view acceptEncoding = {};
};

struct StaticFileFacts {
  std::string_view hash;   // SHA-256 hex of the identity bytes
  uint64_t size = 0;
  bool compressible = false;
};

struct StaticDecision {
  int status = 200;        // 200, 206, 304, 405 or 416
  Encoding encoding = Encoding::Identity;
  uint64_t offset = 0;     // byte range of the identity body (206 only)
  uint64_t length = 0;
};

// The strong ETag of one representation: "\"<32 hex>\"", "\"<32 hex>-gz\"", "\"<32 hex>-br\"".
std::string etagFor(std::string_view hash, Encoding e);

// Decides the response; pure. Ranges apply to the identity representation only (a request
// with Range is never compressed); several ranges or an unparsable Range are ignored (200).
StaticDecision decideStatic(const StaticRequest& req, const StaticFileFacts& file);

// The preferred encoding the client accepts among br and gzip (q > 0), else Identity.
Encoding negotiateEncoding(std::string_view acceptEncoding);

// True for types worth compressing (text, JSON, JS, XML, SVG, wasm, fonts that are not
// already compressed).
bool isCompressibleType(std::string_view contentType);

Result<std::string> compressGzip(std::string_view data);
Result<std::string> compressBrotli(std::string_view data);

// Bytes by key with a total budget and least-recently-used eviction. Thread-safe.
class ByteCache {
 public:
  using Bytes = std::shared_ptr<const std::string>;
  explicit ByteCache(size_t budgetBytes) : budget_(budgetBytes) {}
  Bytes get(const std::string& key);
  // Inserts (replacing), evicting old entries to fit; entries over a quarter of the budget
  // are not kept.
  void put(const std::string& key, Bytes bytes);
  size_t sizeBytes() const;

 private:
  struct Entry {
    Bytes bytes;
    std::list<std::string>::iterator lru;
  };
  mutable std::mutex mu_;
  size_t budget_;
  size_t used_ = 0;
  std::list<std::string> lru_;  // front = most recent
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace nimbus::router

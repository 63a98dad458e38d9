#include "router/static_files.h"

#include <brotli/encode.h>
#include <zlib.h>

#include <cctype>
#include <charconv>
#include <vector>

namespace nimbus::router {

std::string_view encodingToken(Encoding e) {
  switch (e) {
    case Encoding::Gzip: return "gzip";
    case Encoding::Brotli: return "br";
    case Encoding::Identity: break;
  }
  return "";
}

std::string etagFor(std::string_view hash, Encoding e) {
  std::string tag = "\"";
  tag += hash.substr(0, 32);
  if (e == Encoding::Gzip) tag += "-gz";
  if (e == Encoding::Brotli) tag += "-br";
  tag += '"';
  return tag;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// If-None-Match uses the weak comparison: W/ prefixes are ignored. Any of our
// representations' tags matches (a cache may hold another encoding's tag).
bool ifNoneMatchHits(std::string_view header, std::string_view hash) {
  header = trim(header);
  if (header == "*") return true;
  std::string prefix = "\"";
  prefix += hash.substr(0, 32);
  size_t pos = 0;
  while (pos < header.size()) {
    size_t comma = header.find(',', pos);
    std::string_view tag = trim(header.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == etagFor(hash, Encoding::Identity) || tag == etagFor(hash, Encoding::Gzip) ||
        tag == etagFor(hash, Encoding::Brotli)) {
      return true;
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

bool parseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

enum class RangeResult { Ignore, Satisfiable, Unsatisfiable };

RangeResult parseRange(std::string_view header, uint64_t size, uint64_t* offset, uint64_t* length) {
  header = trim(header);
  if (!header.starts_with("bytes=")) return RangeResult::Ignore;
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return RangeResult::Ignore;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeResult::Ignore;
  std::string_view first = trim(spec.substr(0, dash));
  std::string_view last = trim(spec.substr(dash + 1));
  uint64_t a = 0;
  uint64_t b = 0;
  if (first.empty()) {
    // Suffix range: the last N bytes.
    if (!parseU64(last, &b)) return RangeResult::Ignore;
    if (b == 0 || size == 0) return RangeResult::Unsatisfiable;
    if (b > size) b = size;
    *offset = size - b;
    *length = b;
    return RangeResult::Satisfiable;
  }
  if (!parseU64(first, &a)) return RangeResult::Ignore;
  if (last.empty()) {
    b = size == 0 ? 0 : size - 1;
  } else {
    if (!parseU64(last, &b) || b < a) return RangeResult::Ignore;
    if (b >= size) b = size - 1;
  }
  if (a >= size) return RangeResult::Unsatisfiable;
  *offset = a;
  *length = b - a + 1;
  return RangeResult::Satisfiable;
}

}  // namespace

Encoding negotiateEncoding(std::string_view accept) {
  bool br = false;
  bool gzip = false;
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    std::string_view item = accept.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    std::string_view coding = item;
    double q = 1.0;
    if (auto semi = item.find(';'); semi != std::string_view::npos) {
      coding = item.substr(0, semi);
      std::string_view param = trim(item.substr(semi + 1));
      if (param.starts_with("q=") || param.starts_with("Q=")) {
        std::string value(param.substr(2));
        char* end = nullptr;
        q = std::strtod(value.c_str(), &end);
        if (end == value.c_str()) q = 1.0;
      }
    }
    coding = trim(coding);
    if (q > 0) {
      if (ieq(coding, "br")) br = true;
      if (ieq(coding, "gzip") || ieq(coding, "x-gzip")) gzip = true;
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (br) return Encoding::Brotli;
  if (gzip) return Encoding::Gzip;
  return Encoding::Identity;
}

StaticDecision decideStatic(const StaticRequest& req, const StaticFileFacts& file) {
  StaticDecision d;
  if (req.method != "GET" && req.method != "HEAD") {
    d.status = 405;
    return d;
  }
  constexpr uint64_t kMinCompressBytes = 256;
  constexpr uint64_t kMaxCompressBytes = 16 * 1024 * 1024;
  bool wantsRange = !req.range.empty();
  if (wantsRange && !req.ifRange.empty()) {
    // If-Range with a strong validator: the range applies only if the tag matches exactly.
    wantsRange = trim(req.ifRange) == etagFor(file.hash, Encoding::Identity);
  }
  if (!wantsRange && file.compressible && file.size >= kMinCompressBytes &&
      file.size <= kMaxCompressBytes) {
    d.encoding = negotiateEncoding(req.acceptEncoding);
  }
  if (!req.ifNoneMatch.empty() && ifNoneMatchHits(req.ifNoneMatch, file.hash)) {
    d.status = 304;
    return d;
  }
  d.length = file.size;
  if (wantsRange) {
    uint64_t offset = 0;
    uint64_t length = 0;
    switch (parseRange(req.range, file.size, &offset, &length)) {
      case RangeResult::Satisfiable:
        d.status = 206;
        d.encoding = Encoding::Identity;
        d.offset = offset;
        d.length = length;
        return d;
      case RangeResult::Unsatisfiable:
        d.status = 416;
        d.encoding = Encoding::Identity;
        d.length = 0;
        return d;
      case RangeResult::Ignore:
        break;
    }
  }
  return d;
}

bool isCompressibleType(std::string_view type) {
  auto semi = type.find(';');
  std::string_view base = trim(type.substr(0, semi));
  if (base.starts_with("text/")) return true;
  static constexpr std::string_view kTypes[] = {
      "application/javascript", "application/json", "application/xml",
      "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
      "application/manifest+json", "application/ld+json", "application/wasm",
      "application/x-javascript", "application/geo+json", "image/svg+xml",
      "image/x-icon", "image/vnd.microsoft.icon", "font/ttf", "font/otf",
      "application/vnd.ms-fontobject", "application/source-map"};
  for (auto t : kTypes) {
    if (base == t) return true;
  }
  return base.ends_with("+json") || base.ends_with("+xml");
}

Result<std::string> compressGzip(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return makeError(ErrorKind::Internal, "gzip: deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, data.size()) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = out.size() - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return makeError(ErrorKind::Internal, "gzip: deflate did not finish");
  out.resize(produced);
  return out;
}

Result<std::string> compressBrotli(std::string_view data) {
  size_t outSize = BrotliEncoderMaxCompressedSize(data.size());
  if (outSize == 0) outSize = data.size() + 1024;
  std::string out(outSize, '\0');
  // Quality 11 is slow on large inputs; the result is cached, but keep first requests fast.
  int quality = data.size() <= 256 * 1024 ? 11 : 6;
  if (!BrotliEncoderCompress(quality, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, data.size(),
                             reinterpret_cast<const uint8_t*>(data.data()), &outSize,
                             reinterpret_cast<uint8_t*>(out.data()))) {
    return makeError(ErrorKind::Internal, "brotli: compression failed");
  }
  out.resize(outSize);
  return out;
}

ByteCache::Bytes ByteCache::get(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.bytes;
}

void ByteCache::put(const std::string& key, Bytes bytes) {
  if (!bytes || bytes->size() > budget_ / 4) return;
  std::lock_guard lock(mu_);
  if (auto it = map_.find(key); it != map_.end()) {
    used_ -= it->second.bytes->size();
    lru_.erase(it->second.lru);
    map_.erase(it);
  }
  while (used_ + bytes->size() > budget_ && !lru_.empty()) {
    auto victim = map_.find(lru_.back());
    used_ -= victim->second.bytes->size();
    map_.erase(victim);
    lru_.pop_back();
  }
  lru_.push_front(key);
  used_ += bytes->size();
  map_.emplace(key, Entry{std::move(bytes), lru_.begin()});
}

size_t ByteCache::sizeBytes() const {
  std::lock_guard lock(mu_);
  return used_;
}

}  // namespace nimbus::router

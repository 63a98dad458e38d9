#pragma once
// What the worker records: Prometheus-style histograms, and the per-deployment function
// log (one JSON object per line: invocation records, instance events and every line the
// function wrote to stdout/stderr), read back by `nimbus logs`.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nimbus::worker {

// Seconds, buckets from 1 ms to 60 s. Not synchronised (the worker's mutex guards it).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   5,
                                                     10,    60};
  void observe(double seconds);
  // Appends `<name>_bucket{<labels>,le="…"} n` lines, _sum and _count.
  void render(std::string* out, std::string_view name, std::string_view labels) const;
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};
  uint64_t count_ = 0;
  double sum_ = 0;
};

// A JSON string literal (quotes included) for `v`; control characters escaped, other
// bytes as they are.
std::string jsonString(std::string_view v);

// Escapes a Prometheus label value.
std::string promLabel(std::string_view v);

// Appends to <dir>/<deploymentId>.jsonl. Records are buffered and written by flush(),
// which the worker calls a few times a second, and when a buffer grows large.
// Thread-safe.
class FunctionLog {
 public:
  explicit FunctionLog(std::string dir);
  ~FunctionLog();
  // `json` is one complete JSON object without a newline.
  void append(std::string_view deploymentId, std::string json);
  void flush();

 private:
  void flushLocked();
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::string, std::less<>> pending_;
  size_t pendingBytes_ = 0;
};

struct LogChunk {
  std::string records;   // complete lines
  uint64_t nextOffset = 0;
};
// Reads complete lines of a deployment's function log from byte `offset`, at most about
// `maxBytes`. A missing file is an empty log.
Result<LogChunk> readFunctionLog(const std::string& dir, std::string_view deploymentId,
                                 uint64_t offset, size_t maxBytes);

}  // namespace nimbus::worker

#include "worker/telemetry.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace nimbus::worker {

void Histogram::observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++buckets_[i];
      break;
    }
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::render(std::string* out, std::string_view name, std::string_view labels) const {
  uint64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i];
    *out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, kBounds[i],
                        cumulative);
  }
  *out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, count_);
  *out += fmt::format("{}_sum{{{}}} {}\n", name, labels, sum_);
  *out += fmt::format("{}_count{{{}}} {}\n", name, labels, count_);
}

std::string jsonString(std::string_view v) {
  std::string out;
  out.reserve(v.size() + 2);
  out += '"';
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += fmt::format("\\u{:04x}", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string promLabel(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

FunctionLog::FunctionLog(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
}

FunctionLog::~FunctionLog() { flush(); }

void FunctionLog::append(std::string_view deploymentId, std::string json) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(deploymentId);
  if (it == pending_.end()) it = pending_.emplace(std::string(deploymentId), std::string()).first;
  it->second += json;
  it->second += '\n';
  pendingBytes_ += json.size() + 1;
  if (pendingBytes_ > (1u << 20)) flushLocked();
}

void FunctionLog::flush() {
  std::lock_guard lock(mu_);
  flushLocked();
}

void FunctionLog::flushLocked() {
  for (auto& [id, text] : pending_) {
    if (text.empty()) continue;
    std::string path = fmt::format("{}/{}.jsonl", dir_, id);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      spdlog::warn("function log {}: {}", path, std::strerror(errno));
      continue;
    }
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  pending_.clear();
  pendingBytes_ = 0;
}

Result<LogChunk> readFunctionLog(const std::string& dir, std::string_view deploymentId,
                                 uint64_t offset, size_t maxBytes) {
  std::string path = fmt::format("{}/{}.jsonl", dir, deploymentId);
  LogChunk chunk;
  chunk.nextOffset = offset;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return chunk;
    return makeError(ErrorKind::Io, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::string buf(maxBytes, '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
  ::close(fd);
  if (n <= 0) return chunk;
  buf.resize(static_cast<size_t>(n));
  size_t end = buf.rfind('\n');
  if (end == std::string::npos) {
    // One line longer than maxBytes: hand it out whole rather than never.
    if (static_cast<size_t>(n) == maxBytes) {
      chunk.records = std::move(buf);
      chunk.records += '\n';
      chunk.nextOffset = offset + static_cast<uint64_t>(n);
    }
    return chunk;
  }
  buf.resize(end + 1);
  chunk.nextOffset = offset + buf.size();
  chunk.records = std::move(buf);
  return chunk;
}

}  // namespace nimbus::worker

#pragma once
// SHA-256 hashing (OpenSSL EVP) and hex helpers. Content addresses are lower-case hex.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nimbus {

// Incremental SHA-256. Not thread-safe; one per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // Finishes the digest and returns it as 64 lower-case hex characters.
  std::string finishHex();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256Hex(std::string_view data);
// Hashes a file by streaming it; the error names the path and errno text.
Result<std::string> sha256File(const std::string& path);
// True when `s` is 64 lower-case hex characters.
bool isSha256Hex(std::string_view s);
std::string toHex(const uint8_t* data, size_t size);

}  // namespace nimbus

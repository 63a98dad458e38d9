#pragma once
// Authenticated encryption for secrets at rest (environment variable values): AES-256-GCM
// with a random 96-bit nonce per message, under a 32-byte key kept in a 0600 file in the
// data directory. Sealed text is base64 of nonce | ciphertext | tag.
#include <string>
#include <string_view>

#include "common/result.h"

namespace nimbus {

class SecretBox {
 public:
  // Reads the key at `path`, or creates it (32 random bytes, mode 0600) when missing.
  static Result<SecretBox> loadOrCreate(const std::string& path);
  explicit SecretBox(std::string key);

  std::string seal(std::string_view plaintext) const;
  // Invalid when the text was not sealed with this key or was altered.
  Result<std::string> open(std::string_view sealed) const;

 private:
  std::string key_;
};

}  // namespace nimbus

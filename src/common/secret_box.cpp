#include "common/secret_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

namespace nimbus {

namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

std::string base64Encode(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out(3 * in.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

SecretBox::SecretBox(std::string key) : key_(std::move(key)) { NIMBUS_CHECK(key_.size() == kKeyBytes); }

Result<SecretBox> SecretBox::loadOrCreate(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    std::string key(kKeyBytes, '\0');
    NIMBUS_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeyBytes) == 1);
    std::string tmp = path + ".tmp";
    ::unlink(tmp.c_str());
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = out >= 0 && ::write(out, key.data(), key.size()) == static_cast<ssize_t>(key.size()) &&
              ::fsync(out) == 0;
    if (out >= 0) ::close(out);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
      return makeError(ErrorKind::Io, "cannot create the secrets key " + path + ": " +
                                          std::strerror(errno));
    }
    return SecretBox(std::move(key));
  }
  if (fd < 0) {
    return makeError(ErrorKind::Io,
                     "cannot read the secrets key " + path + ": " + std::strerror(errno));
  }
  std::string key(kKeyBytes + 1, '\0');
  ssize_t n = ::read(fd, key.data(), key.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(kKeyBytes)) {
    return makeError(ErrorKind::Invalid,
                     "the secrets key " + path + " is not 32 bytes; restore it from a backup "
                     "(without it, stored environment variables cannot be decrypted)");
  }
  key.resize(kKeyBytes);
  return SecretBox(std::move(key));
}

std::string SecretBox::seal(std::string_view plaintext) const {
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  NIMBUS_CHECK(RAND_bytes(bytes, kNonceBytes) == 1);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  NIMBUS_CHECK(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                                  reinterpret_cast<const unsigned char*>(key_.data()), bytes) == 1);
  NIMBUS_CHECK(EVP_EncryptUpdate(ctx.get(), bytes + kNonceBytes, &len,
                                 reinterpret_cast<const unsigned char*>(plaintext.data()),
                                 static_cast<int>(plaintext.size())) == 1);
  NIMBUS_CHECK(EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceBytes + len, &len) == 1);
  NIMBUS_CHECK(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                                   bytes + kNonceBytes + plaintext.size()) == 1);
  return base64Encode(out);
}

Result<std::string> SecretBox::open(std::string_view sealed) const {
  auto raw = base64Decode(sealed);
  if (!raw || raw->size() < kNonceBytes + kTagBytes) {
    return makeError(ErrorKind::Invalid, "sealed secret is malformed");
  }
  auto* bytes = reinterpret_cast<unsigned char*>(raw->data());
  size_t ctLen = raw->size() - kNonceBytes - kTagBytes;
  std::string plain(ctLen, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key_.data()), bytes) == 1 &&
            EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                              bytes + kNonceBytes, static_cast<int>(ctLen)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                                bytes + kNonceBytes + ctLen) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len,
                                &len) == 1;
  if (!ok) {
    return makeError(ErrorKind::Invalid,
                     "a sealed secret does not decrypt with this data directory's secrets key "
                     "(altered, or sealed with another key)");
  }
  return plain;
}

}  // namespace nimbus

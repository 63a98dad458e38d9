#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

#include "common/check.h"

namespace nimbus {

std::string randomId(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(length);
  unsigned char buf[64];
  while (out.size() < length) {
    ssize_t n = ::getrandom(buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    NIMBUS_CHECK(n > 0);
    for (ssize_t i = 0; i < n && out.size() < length; ++i) {
      // 252 = 7 * 36: reject the tail to keep the distribution uniform.
      if (buf[i] < 252) out.push_back(kAlphabet[buf[i] % 36]);
    }
  }
  return out;
}

std::string randomToken() { return "nmb_" + randomId(40); }

namespace {

// xoshiro256** (Blackman and Vigna), seeded once per thread from getrandom.
struct Xoshiro {
  uint64_t s[4];
  Xoshiro() {
    size_t got = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(s);
    while (got < sizeof s) {
      ssize_t n = ::getrandom(bytes + got, sizeof s - got, 0);
      if (n < 0 && errno == EINTR) continue;
      NIMBUS_CHECK(n > 0);
      got += static_cast<size_t>(n);
    }
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
};

}  // namespace

std::string fastId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  thread_local Xoshiro rng;
  std::string out(20, '0');
  uint64_t a = rng.next();
  uint64_t b = rng.next();
  // 36^10 < 2^52: ten characters from each 64-bit draw, bias negligible for ids.
  for (int i = 0; i < 10; ++i) {
    out[i] = kAlphabet[a % 36];
    a /= 36;
    out[10 + i] = kAlphabet[b % 36];
    b /= 36;
  }
  return out;
}

}  // namespace nimbus

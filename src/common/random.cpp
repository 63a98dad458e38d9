#include "common/random.h"

#include <sys/random.h>

#include <cerrno>

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

}  // namespace nimbus

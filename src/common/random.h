#pragma once
// Identifiers and secrets from the kernel's CSPRNG (getrandom).
#include <string>

namespace nimbus {

// `length` characters from [a-z0-9]; safe inside one DNS label.
std::string randomId(size_t length);
// A bearer token: "nmb_" followed by 40 characters of [a-z0-9].
std::string randomToken();
// A request id: 20 characters of [a-z0-9] from a per-thread generator seeded from the
// kernel. Unique enough to correlate logs; not a secret (use randomId for those).
std::string fastId();

}  // namespace nimbus

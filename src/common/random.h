#pragma once
// Identifiers and secrets from the kernel's CSPRNG (getrandom).
#include <string>

namespace nimbus {

// `length` characters from [a-z0-9]; safe inside one DNS label.
std::string randomId(size_t length);
// A bearer token: "nmb_" followed by 40 characters of [a-z0-9].
std::string randomToken();

}  // namespace nimbus

#pragma once
// Input checks shared by every Store backend, with the user-facing messages they produce.
#include <string>
#include <string_view>

namespace nimbus::store {

// True when `host` is a lower-case DNS host name: dot-separated labels of [a-z0-9-] with
// 1..63 characters each, no label starting or ending with '-', at most 253 characters, no
// trailing dot and no port.
bool isValidAliasHost(std::string_view host);

// Messages for an Invalid error that say what is accepted.
std::string invalidProjectNameMessage(std::string_view name);
std::string invalidAliasHostMessage(std::string_view host);

}  // namespace nimbus::store

#include "store/store.h"

#include "store/validation.h"

namespace nimbus::store {

std::string_view toString(Target t) {
  switch (t) {
    case Target::Preview:
      return "preview";
    case Target::Production:
      return "production";
  }
  NIMBUS_CHECK(false);
  return {};
}

std::optional<Target> parseTarget(std::string_view s) {
  if (s == "preview") return Target::Preview;
  if (s == "production") return Target::Production;
  return std::nullopt;
}

namespace {

bool isLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// One DNS label of [a-z0-9-] with 1..maxLength characters and no leading or trailing '-'.
bool isValidLabel(std::string_view label, size_t maxLength) {
  if (label.empty() || label.size() > maxLength) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (!isLabelChar(c)) return false;
  }
  return true;
}

}  // namespace

bool isValidProjectName(std::string_view name) { return isValidLabel(name, 48); }

bool isValidAliasHost(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  for (;;) {
    size_t dot = host.find('.', start);
    std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!isValidLabel(label, 63)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string invalidProjectNameMessage(std::string_view name) {
  return "invalid project name '" + std::string(name) +
         "': use 1 to 48 lower-case letters, digits and '-', not starting or ending with '-' "
         "(for example 'my-site')";
}

std::string invalidAliasHostMessage(std::string_view host) {
  return "invalid alias host '" + std::string(host) +
         "': use a lower-case host name without port or trailing dot, made of dot-separated "
         "labels of 1 to 63 letters, digits and '-' (not starting or ending with '-'), at most "
         "253 characters in total (for example 'www.example.com')";
}

bool isValidEnvKey(std::string_view key) {
  if (key.empty() || key.size() > 256) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace nimbus::store

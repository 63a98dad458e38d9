#pragma once
// Checks PEM material users upload for upstream TLS before it is stored, so a mistake shows
// at `nimbus upstream-tls set` rather than as a failed handshake later.
#include <string_view>

#include "common/result.h"

namespace nimbus::control {

// `caPem`: one or more certificates (may be empty). `certPem` and `keyPem`: both empty, or a
// certificate chain and the private key that belongs to its first certificate.
Result<void> checkUpstreamTlsPem(std::string_view caPem, std::string_view certPem,
                                 std::string_view keyPem);

}  // namespace nimbus::control

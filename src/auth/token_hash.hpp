#pragma once

#include <string>
#include <string_view>

namespace xmetrics::auth {

// Hex SHA-256: how secrets are used as cache keys, so the caches never hold them in the clear.
std::string sha256Hex(std::string_view data);

}  // namespace xmetrics::auth

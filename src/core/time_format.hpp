#pragma once

#include <string>

#include "core/sample.hpp"

namespace xmetrics::core {

// RFC 3339 in UTC with whole seconds, as Kubernetes writes metav1.Time: 2026-05-01T12:00:00Z.
std::string rfc3339(Clock::time_point t);

}  // namespace xmetrics::core

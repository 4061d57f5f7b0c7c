#pragma once

#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "core/sample.hpp"

namespace xmetrics::core {

// RFC 3339 in UTC with whole seconds, as Kubernetes writes metav1.Time: 2026-05-01T12:00:00Z.
std::string rfc3339(Clock::time_point t);
// The same, appended to `out` (a published body is written into one allocation).
void appendRfc3339(std::string& out, Clock::time_point t);

// Reads what rfc3339() writes (and Kubernetes' metav1.Time: UTC, "Z", optional fraction, which is
// dropped). nullopt for anything else.
std::optional<Clock::time_point> parseRfc3339(std::string_view text);

// The longest duration a setting, a DatadogMetric or a replica may give: ten years. Far past any
// use, and far below where adding it to a time point in nanoseconds would overflow (292 years).
inline constexpr std::chrono::seconds kMaxDuration{10LL * 365 * 24 * 3600};

// "30", "30s", "2m", "1h30m", "1.5m", "1500ms" -> whole seconds (rounded). Plain numbers are
// seconds, as the DD_* variables are; the unit forms are Go's, as DatadogMetric maxAge/timeWindow.
// Longer than kMaxDuration is an error.
std::expected<std::chrono::seconds, std::string> parseDuration(std::string_view text);

}  // namespace xmetrics::core

#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"

namespace xmetrics::backends::datadog {

struct BatchLimits {
  std::size_t maxQueries = 35;         // DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE
  std::size_t maxEscapedChars = 7000;  // the Cluster Agent's limit on the joined, escaped `query=`
};

// One API call: indices into the fetched batch, all sharing one window.
struct PlannedCall {
  std::chrono::seconds window;
  std::vector<std::size_t> queries;
};

struct BatchPlan {
  std::vector<PlannedCall> calls;
  // Queries too long to send at all (their escaped form alone exceeds maxEscapedChars).
  std::vector<std::size_t> tooLong;
};

// The query as it travels in the URL: percent-encoded except RFC 3986 unreserved characters (what
// Go's url.QueryEscape does for the Cluster Agent, minus `+` for spaces).
std::string escapeQuery(std::string_view query);

// Packs queries into calls as the Cluster Agent does: in order, a new call when the next query
// would exceed maxQueries or push the escaped, comma-joined text past maxEscapedChars. Queries with
// different windows never share a call (one from/to per call). Indices listed in `skip` are left
// out. `escapedChars`, when given, holds escapeQuery(query).size() of each query (a refresh plans
// the same queries every cycle: their lengths are computed once, with its wire plan).
BatchPlan planBatches(std::span<const BackendQuery> queries, const BatchLimits& limits,
                      const std::vector<bool>& skip = {},
                      std::span<const std::size_t> escapedChars = {});

}  // namespace xmetrics::backends::datadog

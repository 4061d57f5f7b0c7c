#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/sample.hpp"

namespace xmetrics::core {

// What a backend reports of itself: reachability, its last error, the calls it made and the
// rate-limit budget it was announced. Backends produce it, the poller publishes it in the store's
// status, and `xmetrics status` and /metrics read it from there — never from a live backend.
struct BackendHealth {
  bool reachable = true;
  std::string lastError;  // empty when the last call succeeded
  core::Clock::time_point lastSuccess;
  core::Clock::time_point lastFailure;
  uint64_t calls = 0;  // requests sent to a remote backend since start (0 for in-process ones)
  // Facts for `xmetrics status`, in display order, e.g. {"endpoint https://api.datadoghq.com",
  // "ok; 1187 of 1200 calls left per 3600s, resets in 3500s"}. Never holds secrets.
  std::vector<std::pair<std::string, std::string>> details;
  // For /metrics. Remote calls by how they ended (CallCounts::names); empty for in-process ones.
  std::vector<std::pair<std::string_view, uint64_t>> callsByOutcome;
  // The rate-limit budget each endpoint last announced; empty where none is announced.
  struct RateLimit {
    std::string endpoint;
    int64_t limit = 0;         // calls per period
    int64_t remaining = 0;     // calls left in the current period
    int64_t resetSeconds = 0;  // until the period ends
  };
  std::vector<RateLimit> rateLimits;
  // When the budget cannot cover every wanted metric at the refresh period: the refresh of the
  // metrics no HPA names is stretched (they are deferred in turn). Absent otherwise.
  struct Stretch {
    double budgetPerHour = 0;    // calls per hour the announced budget sustains
    double wantPerHour = 0;      // calls per hour a full refresh at the period would take
    std::size_t metrics = 0;     // metrics deferred in the last refresh
    double intervalSeconds = 0;  // how often each of them is refreshed now; 0: not at all
  };
  std::optional<Stretch> stretch;
};

}  // namespace xmetrics::core

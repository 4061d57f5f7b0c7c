#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/sample.hpp"

namespace xmetrics::backends {

// One query the poller wants answered.
struct BackendQuery {
  std::string query;            // in the backend's language (Datadog syntax for datadog/embedded)
  std::chrono::seconds window;  // look back this far from `now`
};

// The answer to one query: the chosen data point, or why there is none. The error text is shown to
// users as is (HPA events, status), so it names the query and the cause.
using BackendResult = std::expected<core::Sample, std::string>;

struct BackendHealth {
  bool reachable = true;
  std::string lastError;  // empty when the last call succeeded
  core::Clock::time_point lastSuccess;
  core::Clock::time_point lastFailure;
};

// The only thing the poller knows of a backend.
class Backend {
 public:
  virtual ~Backend() = default;

  // Answers a batch; the result has one entry per query, in order. Called on the poller thread; may
  // block on I/O, but never holds anything the request path needs.
  virtual std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                           core::Clock::time_point now) = 0;

  virtual std::string_view name() const = 0;
  virtual BackendHealth health() const = 0;
};

using BackendPtr = std::unique_ptr<Backend>;

}  // namespace xmetrics::backends

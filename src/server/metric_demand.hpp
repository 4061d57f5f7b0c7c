#pragma once

#include <cstddef>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/label_selector.hpp"
#include "core/sample.hpp"

namespace xmetrics::server {

// What the request path asks of whoever decides what is polled. Declared here, implemented by the
// poller (poller/), so that a handler reads only the published snapshot and this one door: no
// server/ header includes the poller, the catalog's internals or a backend.
class MetricDemand {
 public:
  virtual ~MetricDemand() = default;

  // A metric asked for that has no published value yet: registers it and fetches it ahead of the
  // refresh cycle; `done` runs on another thread once its value is published (it may never run if
  // the process stops first, so the caller keeps its own deadline). Returns the query it resolved
  // to, for messages; or, when it cannot be registered because the directly requested metrics
  // already fill their bounds (--max-metrics, --max-metrics-bytes), which bound and by how much.
  // `requester`: the authenticated user asking, for its share (--max-metrics-per-user).
  virtual std::expected<std::string, std::string> fetchFirst(
      std::string_view ns, std::string_view metricName, const core::LabelSelector& selector,
      core::Clock::time_point now, std::string_view requester, std::function<void()> done) = 0;

  // A follower's demand (POST /xmetrics/v1/replicate): wanted here as a request would be, and
  // fetched at once when it has no value yet. Nobody waits for it.
  virtual void want(std::string_view ns, std::string_view metricName,
                    const core::LabelSelector& selector, core::Clock::time_point now) = 0;

  // Who names a metric ("hpa:ns/name", sorted), by its core::metricKey; for the status report.
  virtual std::vector<std::string> referencesOf(const std::string& key) const = 0;
};

}  // namespace xmetrics::server

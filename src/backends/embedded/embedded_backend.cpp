#include "backends/embedded/embedded_backend.hpp"

#include <string>
#include <utility>

#include "query/datadog_query.hpp"

namespace xmetrics::backends::embedded {

EmbeddedBackend::EmbeddedBackend(std::shared_ptr<tsdb::TimeSeriesStore> store)
    : store_(std::move(store)) {}

std::vector<BackendResult> EmbeddedBackend::fetch(std::span<const BackendQuery> batch,
                                                  core::Clock::time_point now) {
  std::vector<BackendResult> results;
  results.reserve(batch.size());
  for (const BackendQuery& q : batch) {
    auto parsed = query::parseQuery(q.query);
    if (!parsed) {
      results.emplace_back(std::unexpected("invalid query \"" + q.query + "\" at position " +
                                           std::to_string(parsed.error().position) + ": " +
                                           parsed.error().message));
      continue;
    }
    results.push_back(store_->evaluate(*parsed, q.window, now));
  }
  lastFetch_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  return results;
}

BackendHealth EmbeddedBackend::health() const {
  BackendHealth health;
  health.reachable = true;
  health.lastSuccess =
      core::Clock::time_point(core::Clock::duration(lastFetch_.load(std::memory_order_relaxed)));
  return health;
}

}  // namespace xmetrics::backends::embedded

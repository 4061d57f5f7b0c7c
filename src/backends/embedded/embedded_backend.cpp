#include "backends/embedded/embedded_backend.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "query/coalesce.hpp"
#include "query/datadog_query.hpp"

namespace xmetrics::backends::embedded {

EmbeddedBackend::EmbeddedBackend(std::shared_ptr<tsdb::TimeSeriesStore> store, bool coalesce)
    : store_(std::move(store)), coalesce_(coalesce) {}

BackendResult EmbeddedBackend::evaluate(const BackendQuery& q, core::Clock::time_point now) const {
  auto parsed = query::parseQuery(q.query);
  if (!parsed) {
    return std::unexpected("invalid query \"" + q.query + "\" at position " +
                           std::to_string(parsed.error().position) + ": " + parsed.error().message);
  }
  return store_->evaluate(*parsed, q.window, now);
}

std::vector<BackendResult> EmbeddedBackend::fetch(std::span<const BackendQuery> batch,
                                                  core::Clock::time_point now) {
  std::vector<BackendResult> results(batch.size(), std::unexpected(std::string()));
  query::CoalescePlan plan;
  if (coalesce_) {
    std::vector<query::CoalesceInput> inputs;
    inputs.reserve(batch.size());
    for (const auto& q : batch) inputs.push_back({q.query, q.window.count()});
    // No URL to fit in: only the value count bounds a group.
    plan = query::coalesce(inputs, {.maxValues = 1000, .maxLength = SIZE_MAX});
  } else {
    for (std::size_t i = 0; i < batch.size(); ++i) plan.alone.push_back(i);
  }
  for (auto i : plan.alone) results[i] = evaluate(batch[i], now);
  for (const auto& group : plan.groups) {
    auto parsed = query::parseQuery(group.query);
    std::vector<tsdb::GroupResult> answers;
    if (parsed) answers = store_->evaluateGrouped(*parsed, batch[group.members[0]].window, now);
    for (std::size_t m = 0; m < group.members.size(); ++m) {
      const tsdb::GroupResult* found = nullptr;
      for (const auto& a : answers) {
        auto values = query::tagValues(a.tags, group.key);
        if (std::find(values.begin(), values.end(), group.values[m]) != values.end()) found = &a;
      }
      // A value with data is the group's; one without is asked on its own, so that its error
      // names the member's query, not the grouped one.
      results[group.members[m]] =
          found && found->result ? found->result : evaluate(batch[group.members[m]], now);
    }
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

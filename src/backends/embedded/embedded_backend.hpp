#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::backends::embedded {

// Answers Datadog-syntax queries from the in-process TimeSeriesStore that the DogStatsD listener
// feeds. Nothing leaves the process, so it is always reachable; a query it cannot answer (parse
// error, grouping, no series, no data) fails alone with a message naming the query. Queries that
// differ only in one tag's value are answered by one grouped evaluation (query::coalesce), which
// looks at the metric's series once instead of once per query; each value is the one the query's
// own evaluation gives (tests/unit/tsdb/grouped_evaluation_test.cpp proves it).
class EmbeddedBackend final : public Backend {
 public:
  // @param store shared with the DogStatsD listener; never null.
  // @param coalesce false: every query is evaluated on its own.
  explicit EmbeddedBackend(std::shared_ptr<tsdb::TimeSeriesStore> store, bool coalesce = true);

  // Backend
  std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                   core::Clock::time_point now) override;
  std::string_view name() const override { return "embedded"; }
  BackendHealth health() const override;

 private:
  BackendResult evaluate(const BackendQuery& query, core::Clock::time_point now) const;

  std::shared_ptr<tsdb::TimeSeriesStore> store_;
  bool coalesce_;
  // Read by health() from any thread; nanoseconds since the epoch, 0 before the first fetch.
  std::atomic<int64_t> lastFetch_{0};
};

}  // namespace xmetrics::backends::embedded

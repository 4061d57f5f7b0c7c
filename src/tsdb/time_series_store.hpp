#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "core/sample.hpp"
#include "query/datadog_query.hpp"
#include "tsdb/observation.hpp"

namespace xmetrics::tsdb {

struct TimeSeriesStoreOptions {
  std::chrono::seconds resolution{10};   // native bucket width; also the DogStatsD flush interval
  std::chrono::seconds retention{900};   // points older than this are dropped (>= 15 min)
  std::chrono::seconds idleExpiry{900};  // a series with no new point for this long is removed
  // The two bounds. Reaching either makes room for a new series by evicting others (never one a
  // query matched within idleExpiry); docs/embedded-backend.md gives the order.
  std::size_t maxSeries = 200'000;
  std::size_t maxBytes = 32 << 20;  // heap the store may hold, as approxBytes counts it
};

struct TimeSeriesStoreStats {
  std::size_t series = 0;
  std::size_t points = 0;
  uint64_t refusedSeries = 0;    // new series refused at maxSeries: every series held was protected
  uint64_t refusedForBytes = 0;  // new series and set members refused at maxBytes, the same way
  uint64_t evictedSeries = 0;    // series removed before their idle expiry to make room
  uint64_t rejectedPoints = 0;   // points stamped before the retention or > 60 s in the future
  std::size_t approxBytes = 0;   // heap held: blocks as malloc sizes them, tables, strings
  std::size_t maxBytes = 0;      // the bound approxBytes is kept under
};

struct GroupResult;

// The embedded backend's in-memory time-series database, fed by DogStatsD (ingest/).
// Thread-safe: ingest() from the listener thread, evaluate() and evaluateGrouped() from the poller
// thread, concurrently.
// See docs/embedded-backend.md for what each metric type becomes and how queries are answered.
class TimeSeriesStore {
 public:
  explicit TimeSeriesStore(TimeSeriesStoreOptions options = {});
  ~TimeSeriesStore();
  TimeSeriesStore(const TimeSeriesStore&) = delete;
  TimeSeriesStore& operator=(const TimeSeriesStore&) = delete;

  // Records one observation received at `receivedAt` (or at its own timestamp when present).
  void ingest(const Observation& metric, core::Clock::time_point receivedAt);

  // Answers a parsed query over [now - window, now]. Errors name the query and the cause
  // ("no series matches avg:foo{env:prod}", ...). The series it matches are protected from
  // eviction for idleExpiry from `now`.
  // The same type as backends::BackendResult: a data point, or why there is none.
  using Result = std::expected<core::Sample, std::string>;
  // Refuses a query with ` by {...}`: it has one value per group, see evaluateGrouped().
  Result evaluate(const query::DatadogQuery& query, std::chrono::seconds window,
                  core::Clock::time_point now) const;

  // Answers a query with ` by {k1,k2,...}` (coalesced queries, query/coalesce.hpp): one group per
  // distinct combination of k1, k2, ... values among the series the query matches, in ascending
  // order of GroupResult::tags. A group's result is exactly what evaluate() returns for the query
  // without ` by {...}` and with its filter narrowed by AND to the group's tags (value, timestamp,
  // unit, and error text naming that narrowed query): the same code aggregates the same series in
  // the same order. A series tagged with two values of a key belongs to both groups; a series
  // lacking a key (Datadog's `N/A` group) is left out, and only series that land in a group are
  // protected from eviction. No matching series: no group. An empty groupBy: at most one group,
  // with no tags, holding evaluate()'s result.
  std::vector<GroupResult> evaluateGrouped(const query::DatadogQuery& query,
                                           std::chrono::seconds window,
                                           core::Clock::time_point now) const;

  // Drops points older than the retention and series idle longer than idleExpiry.
  void expire(core::Clock::time_point now);

  TimeSeriesStoreStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One group of a grouped query's answer.
struct GroupResult {
  // The group's tags as stored (lowercase) `key:value`, one per groupBy key, in groupBy order.
  std::vector<std::string> tags;
  TimeSeriesStore::Result result;
};

}  // namespace xmetrics::tsdb

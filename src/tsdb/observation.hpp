#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

// tsdb/: the embedded time-series store — what it records (this header), how it keeps series and
// answers Datadog queries over them (time_series_store.hpp). It may include core/ and query/ only:
// ingest/ feeds it and backends/embedded/ reads it, never the other way round.
namespace xmetrics::tsdb {

// The metric types the store keeps, as DogStatsD names them (docs/embedded-backend.md says what
// each becomes).
enum class MetricType { kCount, kGauge, kTimer, kHistogram, kSet, kDistribution };

// One observation to record: a metric's value(s) with its tags. Views point into the caller's
// buffer (a DogStatsD datagram): valid only during the call that records it.
struct Observation {
  std::string_view name;
  MetricType type = MetricType::kGauge;
  std::vector<double> values;          // one or more (DogStatsD 1.1 packing); empty for sets
  std::string_view setValue;           // the member for sets, which need not be numeric
  double sampleRate = 1.0;             // in (0, 1]; a count of 1 at @0.5 stands for 2
  std::vector<std::string_view> tags;  // `k:v` or bare `k`, as sent
  std::optional<int64_t> timestamp;    // unix seconds the sender stamped; else the receive time
};

}  // namespace xmetrics::tsdb

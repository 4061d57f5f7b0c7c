#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "core/sample.hpp"

namespace xmetrics::core {

// The one canonical key of a served metric, used by the catalog, the poller and the request path
// alike: the metric name lowercased (the HPA lowercases it in the URL; the Cluster Agent hashed
// both cases in different places and lost metrics with capitals), the canonical label selector and
// the namespace asked in (a DatadogMetric named like the metric resolves per namespace). Identical
// queries from several namespaces are still fetched once: the poller deduplicates queries.
std::string metricKey(std::string_view ns, std::string_view metricName,
                      std::string_view canonicalSelector);
// The hash of a key, as the catalog keeps it and the store's maps file values by it: a refresh
// hashes no key.
inline std::size_t hashKey(std::string_view key) { return std::hash<std::string_view>{}(key); }

// When a metric was last asked for, in nanoseconds since the system clock's epoch. Shared between
// the catalog entry that wants the metric and its published value: the request path stamps it on
// every hit without a lock, and the catalog stops polling metrics whose stamp grew too old.
using DemandStamp = std::shared_ptr<std::atomic<int64_t>>;

inline void stampDemand(const DemandStamp& stamp, Clock::time_point now) {
  if (stamp) stamp->store(now.time_since_epoch().count(), std::memory_order_relaxed);
}

}  // namespace xmetrics::core

#pragma once

// store/: the published snapshot — values with their rendered bodies, the poller's status and
// each backend's health. Written by the poller only, read lock-free. May include core/ only.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/metric_key.hpp"
#include "core/sample.hpp"
#include "store/service_status.hpp"

namespace xmetrics::store {

// The published state of one metric. Immutable once published.
struct MetricValue {
  std::string ns;                    // the namespace it is requested in
  std::string metricName;            // as served in `metricName` (lowercased)
  std::string selector;              // canonical label selector
  std::string query;                 // the backend query it resolved to
  std::string backend;               // which backend answers it
  std::string resolution;            // which catalog rule applied (CatalogEntry::resolution())
  std::string object;                // the DatadogMetric serving it ("ns/name"), if any
  std::chrono::seconds maxAge{120};  // older samples are served as errors
  // query-validity-period: past maxAge by no more than this, the sample is still served ("in
  // grace") though status, /metrics and DatadogMetric status already call it not valid.
  std::chrono::seconds grace{0};
  // Non-zero when the metric cannot be resolved (DatadogMetric missing or invalid): `error` says
  // why and this is the HTTP status to answer with; there is no sample.
  int errorCode = 0;
  core::Labels labels;  // served as `metricLabels`: the selector's equality requirements
  std::optional<core::Sample> sample;  // the newest good data point, kept across failed fetches
  std::string error;                   // the last fetch's error; empty when it succeeded
  core::Clock::time_point lastFetch;   // when the poller last asked the backend
  core::Clock::time_point lastSuccess;
  // `ExternalMetricValueList` body for `sample`, rendered once at publication so the request path
  // only copies bytes. Empty when there is no sample.
  std::string body;
  core::DemandStamp demand;
};
using MetricValuePtr = std::shared_ptr<const MetricValue>;

// How old a value is, as max-age judges it: its point's age, or the time since the backend last
// gave it (lastSuccess), whichever is more. A point stamped ahead of this clock then still goes
// stale once the backend stops answering, instead of staying "fresh" until its stamp is reached.
// Whole seconds, as the request path, status, /metrics and DatadogMetric status compare them.
inline std::chrono::seconds staleness(const MetricValue& v, core::Clock::time_point now) {
  using std::chrono::seconds;
  auto age = v.sample ? std::chrono::duration_cast<seconds>(now - v.sample->time) : seconds(0);
  if (v.lastSuccess != core::Clock::time_point{}) {
    age = std::max(age, std::chrono::duration_cast<seconds>(now - v.lastSuccess));
  }
  return age;
}
// Whether `v` has a point young enough to serve.
inline bool isFresh(const MetricValue& v, core::Clock::time_point now) {
  return v.sample && staleness(v, now) <= v.maxAge;
}
// Whether the request path answers with it: fresh, or within the grace after max-age.
inline bool isServable(const MetricValue& v, core::Clock::time_point now) {
  return v.sample && staleness(v, now) <= v.maxAge + v.grace;
}

using ValueMap = std::unordered_map<std::string, MetricValuePtr>;  // by core::metricKey()

// Two levels, so publishing one new metric does not copy all of them: `base` is shared between
// snapshots and replaced by each full refresh; `recent` holds what first fetches added since, and
// is folded into a new base once it grows past kMaxRecent (amortised cost per first fetch: O(1) map
// copies). Entries in `recent` shadow `base`.
struct ValueSnapshot {
  static constexpr std::size_t kMaxRecent = 512;

  std::shared_ptr<const ValueMap> base = std::make_shared<const ValueMap>();
  ValueMap recent;
  core::Clock::time_point publishedAt;
  uint64_t generation = 0;

  MetricValuePtr find(const std::string& key) const {
    if (auto it = recent.find(key); it != recent.end()) return it->second;
    auto it = base->find(key);
    return it == base->end() ? nullptr : it->second;
  }
  std::size_t size() const;
  // Every value once (the recent one where both levels hold a key).
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const auto& [key, value] : recent) fn(key, value);
    for (const auto& [key, value] : *base) {
      if (!recent.contains(key)) fn(key, value);
    }
  }
};
using ValueSnapshotPtr = std::shared_ptr<const ValueSnapshot>;

// Renders the `ExternalMetricValueList` body for a value (used at publication and in tests).
std::string renderValueList(const MetricValue& value);

// Holds the current snapshot of values, and the current service status. Readers never lock: they
// load a shared_ptr and keep it as long as they need. Only the poller publishes.
class ValueStore {
 public:
  ValueStore();
  // @return never null
  ValueSnapshotPtr snapshot() const { return current_.load(std::memory_order_acquire); }
  void publish(ValueSnapshot&& next);

  // @return never null
  ServiceStatusPtr status() const { return status_.load(std::memory_order_acquire); }
  void publishStatus(ServiceStatus next);

 private:
  std::atomic<ValueSnapshotPtr> current_;
  std::atomic<ServiceStatusPtr> status_;
};

}  // namespace xmetrics::store

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

// What a metric is: its names, the query it resolved to and the rules it is served by. Fixed while
// its catalog entry is, so the values a refresh publishes for it share one (a refresh then copies
// no strings per metric). Immutable once shared.
struct MetricIdentity {
  std::string key;                   // core::metricKey(ns, metricName, selector): the map's key
  std::size_t keyHash = 0;           // ValueMap::hashOf(key), so that filing a value hashes nothing
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
  core::Labels labels;       // served as `metricLabels`: the selector's equality requirements
  core::DemandStamp demand;  // the catalog entry's: a request that reads the value stamps it
  // Whether metricName and the labels need no JSON escaping (nearly always): set by
  // shareIdentity(), so rendering a body copies them without looking at each byte.
  bool plainJson = false;
  // The catalog entry it was made from, if any: the poller reuses the identity while the entry is
  // the same object (owner equality: the control block outlives the entry, so it is never reused
  // for another while this is held). It keeps the dead entry's make_shared block allocated (a few
  // hundred bytes) until the values made from it go, within a refresh or a few deferred ones.
  std::weak_ptr<const void> source;
};
using MetricIdentityPtr = std::shared_ptr<const MetricIdentity>;

// Sets `key` and `keyHash` from the names and shares the identity.
MetricIdentityPtr shareIdentity(MetricIdentity identity);

// The published state of one metric. Immutable once published.
struct MetricValue {
  // never null; shared by every value of the same metric while its catalog entry is unchanged
  MetricIdentityPtr metric = emptyIdentity();
  // Non-zero when the metric cannot be resolved (DatadogMetric missing or invalid): `error` says
  // why and this is the HTTP status to answer with; there is no sample.
  int errorCode = 0;
  std::optional<core::Sample> sample;  // the newest good data point, kept across failed fetches
  std::string error;                   // the last fetch's error; empty when it succeeded
  core::Clock::time_point lastFetch;   // when the poller last asked the backend
  core::Clock::time_point lastSuccess;
  // `ExternalMetricValueList` body for `sample`, rendered once at publication so the request path
  // only copies bytes, and shared by the next values while the point is the same. Null when there
  // is no sample.
  std::shared_ptr<const std::string> body;

  const std::string& key() const { return metric->key; }
  static const MetricIdentityPtr& emptyIdentity();
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
  return v.sample && staleness(v, now) <= v.metric->maxAge;
}
// Whether the request path answers with it: fresh, or within the grace after max-age.
inline bool isServable(const MetricValue& v, core::Clock::time_point now) {
  return v.sample && staleness(v, now) <= v.metric->maxAge + v.metric->grace;
}

// Values by core::metricKey(), each filed under its own identity's key: the map's keys view the
// values' strings instead of copying them, and a value cannot be filed under another key.
class ValueMap {
  // The key with its hash: the catalog hashes each entry's key once, when it makes the entry, and
  // a value's identity carries its own, so a refresh hashes no key.
  struct Key {
    std::string_view text;
    std::size_t hash;
    bool operator==(const Key& other) const { return hash == other.hash && text == other.text; }
  };
  struct KeyHash {
    std::size_t operator()(const Key& key) const noexcept { return key.hash; }
  };
  using Map = std::unordered_map<Key, MetricValuePtr, KeyHash>;

 public:
  static std::size_t hashOf(std::string_view key) { return core::hashKey(key); }

  // Files `value` under value->key(), replacing what was there.
  void put(MetricValuePtr value);
  // Files `value` unless its key is there already. @return whether it was filed
  bool putIfAbsent(const MetricValuePtr& value);
  // The value filed under `key` (whose hashOf() is `hash`), or null; valid while the map is.
  const MetricValuePtr* lookup(std::string_view key, std::size_t hash) const {
    auto it = map_.find(Key{key, hash});
    return it == map_.end() ? nullptr : &it->second;
  }
  MetricValuePtr find(std::string_view key) const {
    auto* v = lookup(key, hashOf(key));
    return v ? *v : nullptr;
  }
  bool contains(std::string_view key) const { return lookup(key, hashOf(key)) != nullptr; }
  std::size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  void reserve(std::size_t n) { map_.reserve(n); }
  // Every value once, with the key it is filed under.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const auto& [key, value] : map_) fn(key.text, value);
  }

 private:
  static Key keyOf(const MetricValue& value) { return {value.key(), value.metric->keyHash}; }
  Map map_;
};

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

  // The value filed under `key` (whose ValueMap::hashOf() is `hash`), or null; valid while the
  // snapshot is.
  const MetricValuePtr* lookup(std::string_view key, std::size_t hash) const {
    if (!recent.empty()) {
      if (auto* v = recent.lookup(key, hash)) return v;
    }
    return base->lookup(key, hash);
  }
  MetricValuePtr find(std::string_view key) const {
    auto* v = lookup(key, ValueMap::hashOf(key));
    return v ? *v : nullptr;
  }
  std::size_t size() const;
  // Every value once (the recent one where both levels hold a key).
  template <typename Fn>
  void forEach(Fn&& fn) const {
    recent.forEach(fn);
    base->forEach([&](std::string_view key, const MetricValuePtr& value) {
      if (recent.empty() || !recent.contains(key)) fn(key, value);
    });
  }
};
using ValueSnapshotPtr = std::shared_ptr<const ValueSnapshot>;

// Renders the `ExternalMetricValueList` body for a value (used at publication and in tests); null
// when it has no sample.
std::shared_ptr<const std::string> renderValueList(const MetricValue& value);

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

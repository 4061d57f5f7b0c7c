#pragma once

// catalog/: demand -> resolved queries (inline, autogen, DatadogMetric, the `metrics` setting);
// pure, and publishes its changes to one subscriber (the poller). May include core/ and query/.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "catalog/datadog_metric.hpp"
#include "core/label_selector.hpp"
#include "core/metric_key.hpp"
#include "core/sample.hpp"
#include "query/datadog_query.hpp"

namespace xmetrics::catalog {

struct InlineQueryOptions {
  query::Aggregator aggregator = query::Aggregator::kAvg;  // DD_EXTERNAL_METRICS_AGGREGATOR
  int rollupSeconds = 30;                                  // DD_EXTERNAL_METRICS_PROVIDER_ROLLUP
  // The named backend's own translation (Backend::translateInline); empty or nullopt: the Datadog
  // form.
  std::function<std::optional<std::string>(std::string_view backend, std::string_view metric,
                                           const core::LabelSelector&)>
      translate;
};

// A metric the operator names in the `metrics` setting: which backend answers it and, optionally,
// with which query (e.g. PromQL). Without a query the backend translates the request's selector.
struct ConfiguredMetric {
  std::string name;     // lowercased
  std::string ns;       // only requests in this namespace; empty: any
  std::string backend;  // empty: the default backend
  std::string query;    // empty: the inline query in that backend's language
  std::optional<std::chrono::seconds> maxAge;
  std::optional<std::chrono::seconds> timeWindow;
};

struct CatalogOptions {
  InlineQueryOptions inlineQuery;
  // A metric only requested directly (no HPA names it) is dropped this long after its last request.
  std::chrono::seconds inactiveAfter{600};
  // Bounds the metrics registered by direct requests (HPA references are not counted against it):
  // an authenticated caller inventing names must not grow memory without end. In entries, and in
  // the bytes they cost (a few metrics with 4 KB selectors weigh as much as thousands of plain
  // ones).
  std::size_t maxRequested = 10'000;
  std::size_t maxRequestedBytes = 48u << 20;
  // One caller's share of maxRequested (0: none), applied once the bounds are reached: a caller
  // at its share then evicts only its own.
  std::size_t maxRequestedPerRequester = 0;
  bool useDatadogMetrics = false;  // DD_EXTERNAL_METRICS_PROVIDER_USE_DATADOGMETRIC_CRD
  bool autogen = true;             // DD_EXTERNAL_METRICS_PROVIDER_ENABLE_DATADOGMETRIC_AUTOGEN
  std::string autogenNamespace = "xmetrics";  // where autogen objects live
  // The window rule: a query looks back max(timeWindow or maxAge, bucketSize), at most maxWindow.
  std::chrono::seconds maxAge{120};
  std::chrono::seconds bucketSize{300};
  std::chrono::seconds maxWindow{86400};
  // Backends: the default one, and every one that is running (a name outside this set is an
  // error naming the setting). Empty `backends`: only the default. An empty name means the
  // poller's default backend.
  std::string defaultBackend;
  std::vector<std::string> backends;
  std::vector<ConfiguredMetric> configured;
};

// Which resolution rule applied to a request (docs/datadogmetric.md). The first that matches wins.
enum class Rule {
  kReference = 1,     // the name is datadogmetric@<ns>:<name>
  kNamed = 2,         // a DatadogMetric named like the metric exists in the request's namespace
  kExternalName = 3,  // a DatadogMetric with spec.externalMetricName = name and the inline query
  kInline = 4,        // the inline query of (name, selector) — or as the `metrics` setting says;
                      // through an autogen object in CRD mode
};

// How a requested (namespace, metric, selector) was resolved, and who wants it. Immutable: a
// change of resolution makes a new entry under the same key.
struct CatalogEntry {
  std::string key;          // core::metricKey(ns, metricName, selector.canonical())
  std::size_t keyHash = 0;  // core::hashKey(key)
  std::string ns;           // the namespace the request (or the HPA) is in
  std::string metricName;   // lowercased
  core::LabelSelector selector;

  Rule rule = Rule::kInline;
  std::string object;   // "ns/name" of the DatadogMetric serving it (the autogen one for kInline in
                        // CRD mode); empty for plain inline
  std::string query;    // what the backend is asked; empty when `errorCode` is set, but for an
                        // inline or configured query refused by query::validateForBatch (kept to
                        // show what was refused; the poller never sends an entry with an error)
  std::string backend;  // which backend is asked
  bool configured = false;  // kInline from the `metrics` setting
  std::chrono::seconds window{300};
  std::chrono::seconds maxAge{120};
  // Set when the request cannot be served (object missing or invalid): the value is this error,
  // and the backend is not called. `errorCode` is the HTTP status to answer with.
  int errorCode = 0;
  std::string error;

  core::Clock::time_point registeredAt;
  std::string requester;  // the user whose direct request registered it; empty for HPA references
  // Heap bytes it costs while polled: itself and the catalog's record of who wants it, and the
  // value the poller publishes for it (Catalog::entryBytes). The bound `maxRequestedBytes` counts
  // these.
  std::size_t bytes = 0;
  // Stamped by the request path on every hit; the catalog expires entries whose stamp is old.
  core::DemandStamp demand = std::make_shared<std::atomic<int64_t>>(0);
  // Set by the poller once a fetch gave a value: a direct request that never had one is the first
  // to make room when max-metrics is reached (a flood of invented names cannot lock others out).
  std::shared_ptr<std::atomic<bool>> served = std::make_shared<std::atomic<bool>>(false);
  void markServed() const { served->store(true, std::memory_order_relaxed); }
  bool everServed() const { return served->load(std::memory_order_relaxed); }
  // Set once a fetch was made for it (with or without a value): only an entry that was tried and
  // had nothing makes room, never one whose first fetch is still queued.
  std::shared_ptr<std::atomic<bool>> attempted = std::make_shared<std::atomic<bool>>(false);
  void markAttempted() const { attempted->store(true, std::memory_order_relaxed); }
  bool everAttempted() const { return attempted->load(std::memory_order_relaxed); }

  // "inline", "autogen xmetrics/dcaautogen-…", "datadogmetric ns/name (rule 2: named like the
  // metric)": what `xmetrics status` shows.
  std::string resolution() const;
  bool sameResolution(const CatalogEntry& other) const;

  void touch(core::Clock::time_point now) const { core::stampDemand(demand, now); }
  core::Clock::time_point lastRequested() const {
    return core::Clock::time_point(core::Clock::duration(demand->load(std::memory_order_relaxed)));
  }
};
using CatalogEntryPtr = std::shared_ptr<const CatalogEntry>;

// Demand -> resolved queries. The set of entries is a pure function of the DatadogMetric objects
// that exist now, the HPA references that exist now and the metrics requested recently: every
// change recomputes the resolution of every wanted metric, so nothing in it can point at an object
// that no longer exists, and a new object takes over the moment the watch delivers it (the Cluster
// Agent's sticky autogen mapping needed a restart). Thread-safe.
class Catalog {
 public:
  explicit Catalog(CatalogOptions options);

  // Registers (ns, metric, selector) if new and returns its entry; nullptr when it is new and
  // the direct requests already fill `maxRequested` or `maxRequestedBytes` with metrics that have
  // had a value (`refused`, when given, then says which bound and by how much). Called from the
  // request path on a miss.
  // `requester`: who asked (the authenticated user), for `maxRequestedPerRequester`.
  CatalogEntryPtr ensure(std::string_view ns, std::string_view metricName,
                         const core::LabelSelector& selector, core::Clock::time_point now,
                         std::string* refused = nullptr, std::string_view requester = {});

  // The heap bytes an entry costs while polled (CatalogEntry::bytes): calibrated against malloc's
  // own count in tests/unit/poller (the value's share is made by the poller).
  static std::size_t entryBytes(const CatalogEntry& entry);
  // What the direct requests cost now, in entries and bytes (HPA-named metrics not counted).
  std::pair<std::size_t, std::size_t> requestedUsage() const;

  // An External metric some HPA names: `owner` is "hpa:<namespace>/<name>", `ns` the HPA's.
  struct Reference {
    std::string ns;
    std::string metricName;
    core::LabelSelector selector;
    std::string owner;
  };
  // Who hears of changes: the entries that are new to polling or resolve differently after a
  // set*() call below, so they can be fetched at once (the poller subscribes). One subscriber;
  // subscribe({}) ends it. Called on the thread that made the change, outside the catalog's lock.
  using ChangeSink = std::function<void(const std::vector<CatalogEntryPtr>& changed)>;
  void subscribe(ChangeSink sink);

  // Replaces every HPA reference with the current set. Publishes, and returns, the entries that
  // are new to polling or resolve differently now.
  std::vector<CatalogEntryPtr> setReferences(const std::vector<Reference>& references,
                                             core::Clock::time_point now);

  // Replaces the DatadogMetric objects with the current set (CRD mode). Publishes, and returns,
  // the entries that are new or resolve differently now.
  std::vector<CatalogEntryPtr> setDatadogMetrics(std::vector<DatadogMetric> objects,
                                                 core::Clock::time_point now);

  // Replaces the `metrics` setting (the config file changed). Publishes, and returns, the entries
  // that resolve differently now.
  std::vector<CatalogEntryPtr> setConfigured(std::vector<ConfiguredMetric> configured);

  // Who references a metric ("hpa:ns/name", sorted); empty for metrics only requested directly.
  std::vector<std::string> referencesOf(const std::string& key) const;
  // Whether an HPA names each entry, under one lock (the poller's urgency of a refresh).
  std::vector<bool> referenced(const std::vector<CatalogEntryPtr>& entries) const;

  // The metrics to poll now: every referenced one, always-active objects, and those requested
  // within `inactiveAfter` (older requests are dropped first). The same list is handed out until
  // the entries change. @return never null
  std::shared_ptr<const std::vector<CatalogEntryPtr>> wanted(core::Clock::time_point now);

  // Every entry and the objects, as they are now (the status writer's and tests' view).
  std::vector<CatalogEntryPtr> entries() const;
  std::vector<DatadogMetric> datadogMetrics() const;
  // HPA owners of every entry served through each object: "ns/name" -> sorted owners.
  std::map<std::string, std::vector<std::string>> objectReferences() const;

  // One line per entry (key, resolution, query, window, error, owners), sorted: two catalogs built
  // from the same objects and requests describe alike however they got there.
  std::vector<std::string> describe() const;

  std::size_t size() const;
  std::size_t maxRequested() const { return options_.maxRequested; }
  // Direct requests that never had a value, dropped to make room for a new name.
  uint64_t evicted() const {
    std::lock_guard lock(mutex_);
    return evicted_;
  }
  const CatalogOptions& options() const { return options_; }

 private:
  // Why a key is wanted. Kept apart from the resolution so any change can resolve it again.
  struct Demand {
    std::string ns;
    std::string metricName;
    core::LabelSelector selector;
    core::DemandStamp stamp;
    core::Clock::time_point registeredAt;
    std::string requester;
    std::shared_ptr<std::atomic<bool>> served;
    std::shared_ptr<std::atomic<bool>> attempted;
  };
  // The stamp and both flags of a new demand, in one allocation (aliasing pointers into it): three
  // would cost two more malloc blocks per metric for 17 bytes of atomics.
  static Demand newDemand(std::string ns, std::string metricName, core::LabelSelector selector,
                          core::Clock::time_point now);
  CatalogEntryPtr resolveLocked(const Demand& demand) const;  // with its bytes
  std::shared_ptr<CatalogEntry> resolveRulesLocked(const Demand& demand) const;
  std::pair<std::size_t, std::size_t> requestedUsageLocked() const;
  std::vector<CatalogEntryPtr> applyReferences(const std::vector<Reference>& references,
                                               core::Clock::time_point now);
  std::vector<CatalogEntryPtr> applyDatadogMetrics(std::vector<DatadogMetric> objects,
                                                   core::Clock::time_point now);
  std::vector<CatalogEntryPtr> applyConfigured(std::vector<ConfiguredMetric> configured);
  // Hands `changed` to the subscriber; returns it.
  std::vector<CatalogEntryPtr> published(std::vector<CatalogEntryPtr> changed);
  std::string inlineQueryOf(const std::string& backend, const std::string& metricName,
                            const core::LabelSelector& selector) const;
  bool backendRuns(const std::string& name) const;
  const ConfiguredMetric* configuredFor(const std::string& ns, const std::string& metricName) const;
  void fromObject(CatalogEntry& entry, Rule rule, const DatadogMetric& object) const;
  // Demand for `key`, created if new.
  Demand& demandLocked(const std::string& key, std::string_view ns, std::string_view metricName,
                       const core::LabelSelector& selector, core::Clock::time_point now);
  bool heldLocked(const std::string& key) const;
  // Resolves every demand again; returns the entries that are new or changed.
  std::vector<CatalogEntryPtr> recomputeLocked();

  CatalogOptions options_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Demand> demands_;                       // by key
  std::unordered_map<std::string, std::vector<std::string>> references_;  // key -> HPA owners
  std::unordered_map<std::string, std::string> alwaysActive_;             // key -> object id
  std::map<std::string, DatadogMetric> objects_;                          // by "ns/name"
  uint64_t evicted_ = 0;
  // Autogen objects by name (dcaautogen-<hash>) -> "ns/name": one another agent (the Cluster
  // Agent, in its namespace) generated for the same query is taken over, never duplicated.
  std::unordered_map<std::string, std::string> autogenByName_;
  // Non-autogen objects by spec.externalMetricName, in id order (rule 3).
  std::unordered_map<std::string, std::vector<const DatadogMetric*>> byExternalName_;
  std::unordered_map<std::string, CatalogEntryPtr> entries_;  // by key
  // What wanted() hands out: entries_'s values, until entries_ changes (reset on every change).
  std::shared_ptr<const std::vector<CatalogEntryPtr>> wanted_;
  std::size_t totalBytes_ = 0;  // CatalogEntry::bytes of every entry in entries_

  std::mutex sinkMutex_;
  ChangeSink sink_;
};

}  // namespace xmetrics::catalog

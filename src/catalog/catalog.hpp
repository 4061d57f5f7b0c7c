#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/label_selector.hpp"
#include "core/sample.hpp"
#include "query/datadog_query.hpp"
#include "store/value_store.hpp"

namespace xmetrics::catalog {

struct InlineQueryOptions {
  query::Aggregator aggregator = query::Aggregator::kAvg;  // DD_EXTERNAL_METRICS_AGGREGATOR
  int rollupSeconds = 30;                                  // DD_EXTERNAL_METRICS_PROVIDER_ROLLUP
  // The backend's own translation (Backend::translateInline); empty or nullopt: the Datadog form.
  std::function<std::optional<std::string>(std::string_view, const core::LabelSelector&)> translate;
};

// How a requested (metric, selector) was resolved, and who wants it.
struct CatalogEntry {
  std::string key;         // store::metricKey(metricName, selector.canonical())
  std::string metricName;  // lowercased
  core::LabelSelector selector;
  std::string query;       // what the backend is asked
  std::string resolution;  // which rule applied: "inline" (later: datadogmetric, autogen)
  core::Clock::time_point registeredAt;
  // Stamped by the request path on every hit; the catalog expires entries whose stamp is old.
  store::DemandStamp demand = std::make_shared<std::atomic<int64_t>>(0);

  void touch(core::Clock::time_point now) const { store::stampDemand(demand, now); }
  core::Clock::time_point lastRequested() const {
    return core::Clock::time_point(core::Clock::duration(demand->load(std::memory_order_relaxed)));
  }
};
using CatalogEntryPtr = std::shared_ptr<const CatalogEntry>;

// Demand -> resolved queries. In standalone mode the demand is the inline metrics requested
// recently; the set is a function of those requests alone, so nothing in it can outlive its reason
// to exist. Thread-safe.
class Catalog {
 public:
  // `maxRequested` bounds the metrics registered by direct requests (HPA references are not counted
  // against it): an authenticated caller inventing names must not grow memory without end.
  Catalog(InlineQueryOptions options, std::chrono::seconds inactiveAfter,
          std::size_t maxRequested = 10'000);

  // Registers (metric, selector) if new and returns its entry; nullptr when it is new and
  // `maxRequested` metrics are already registered. Called from the request path on a miss.
  CatalogEntryPtr ensureInline(std::string_view metricName, const core::LabelSelector& selector,
                               core::Clock::time_point now);

  // An External metric some HPA names: `owner` is "hpa:<namespace>/<name>".
  struct Reference {
    std::string metricName;
    core::LabelSelector selector;
    std::string owner;
  };
  // Replaces every HPA reference with the current set (a function of the HPAs that exist now) and
  // returns the entries that were not wanted before, so they can be fetched at once: an HPA's first
  // request then finds a warm value.
  std::vector<CatalogEntryPtr> setReferences(const std::vector<Reference>& references,
                                             core::Clock::time_point now);

  // Who references a metric ("hpa:ns/name", sorted); empty for metrics only requested directly.
  std::vector<std::string> referencesOf(const std::string& key) const;

  // The metrics to poll now: every referenced one, and those requested within `inactiveAfter`
  // (older requests are dropped first).
  std::vector<CatalogEntryPtr> wanted(core::Clock::time_point now);

  std::size_t size() const;
  std::size_t maxRequested() const { return maxRequested_; }

 private:
  InlineQueryOptions options_;
  std::chrono::seconds inactiveAfter_;
  std::size_t maxRequested_;
  mutable std::mutex mutex_;
  CatalogEntryPtr findOrCreateLocked(std::string_view metricName,
                                     const core::LabelSelector& selector,
                                     core::Clock::time_point now, bool* created);

  std::unordered_map<std::string, CatalogEntryPtr> entries_;
  std::unordered_map<std::string, std::vector<std::string>> references_;  // key -> owners
};

}  // namespace xmetrics::catalog

#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
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
  Catalog(InlineQueryOptions options, std::chrono::seconds inactiveAfter);

  // Registers (metric, selector) if new and returns its entry. Called from the request path on a
  // miss.
  CatalogEntryPtr ensureInline(std::string_view metricName, const core::LabelSelector& selector,
                               core::Clock::time_point now);

  // The metrics to poll now. Entries not requested for `inactiveAfter` are dropped first.
  std::vector<CatalogEntryPtr> wanted(core::Clock::time_point now);

  std::size_t size() const;

 private:
  InlineQueryOptions options_;
  std::chrono::seconds inactiveAfter_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, CatalogEntryPtr> entries_;
};

}  // namespace xmetrics::catalog

#pragma once

// poller/: the leader's refresh loop and the follower's mirroring — the only caller of backends.
// Reads the catalog, writes the store, implements server::MetricDemand. May include core/,
// catalog/, backends/backend.hpp, replication/, store/ and server/metric_demand.hpp.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backends/backend.hpp"
#include "catalog/catalog.hpp"
#include "replication/value_replication.hpp"
#include "server/metric_demand.hpp"
#include "store/service_status.hpp"
#include "store/value_store.hpp"

namespace xmetrics::poller {

struct PollerOptions {
  std::chrono::seconds refreshPeriod{30};       // DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD
  std::size_t batchSize = 35;                   // queries per backend call
  std::chrono::seconds queryValidityPeriod{0};  // store::MetricValue::grace of every value
  // A metric without a value (its last fetch failed: no data yet, backend error) is fetched again
  // after this, doubling up to the refresh period: a restart or a late first data point is served
  // within seconds instead of a whole period later.
  std::chrono::milliseconds firstRetry{1000};
  // High availability. While isLeader() is false the poller asks no backend: it mirrors the
  // leader through `follow` every followPeriod (sooner while a first request waits), sending what
  // this replica was asked for. Empty isLeader: always the leader.
  std::function<bool()> isLeader;
  std::function<std::expected<replication::ReplicatedValues, std::string>(
      const replication::ReplicateRequest&)>
      follow;
  std::chrono::milliseconds followPeriod{1000};
};

// Published in the store (store/service_status.hpp), so handlers read it without the poller.
using PollerStatus = store::PollerStatus;

// Owns all backend traffic: refreshes every wanted metric each period, deduplicating identical
// queries and packing them into batches, and publishes a new ValueStore snapshot after each round,
// and its own status and the backends' health each time they change. Subscribes to the catalog's
// changes (fetched at once). One thread; the request path reaches it only through
// server::MetricDemand, whose callbacks are bounded by the caller's own deadline.
class Poller final : public server::MetricDemand {
 public:
  using ClockFn = std::function<core::Clock::time_point()>;
  // `backends`: every running backend, the default first; each entry names the one that answers it.
  Poller(
      catalog::Catalog& catalog, std::vector<backends::Backend*> backends, store::ValueStore& store,
      PollerOptions options, ClockFn clock = [] { return core::Clock::now(); });
  Poller(
      catalog::Catalog& catalog, backends::Backend& backend, store::ValueStore& store,
      PollerOptions options, ClockFn clock = [] { return core::Clock::now(); })
      : Poller(catalog, std::vector<backends::Backend*>{&backend}, store, options,
               std::move(clock)) {}
  ~Poller() override;

  void start();
  void stop();

  // Fetches `entry` as soon as possible (ahead of the refresh cycle), publishes, then calls `done`
  // on the poller thread. Thread-safe. `done` must be cheap.
  void fetchNow(catalog::CatalogEntryPtr entry, std::function<void()> done);

  // One full refresh, on the calling thread. start() runs it every refreshPeriod; tests call it.
  void refreshAll();

  PollerStatus status() const;

  // server::MetricDemand: the request path's door to the catalog and this loop.
  std::optional<std::string> fetchFirst(std::string_view ns, std::string_view metricName,
                                        const core::LabelSelector& selector,
                                        core::Clock::time_point now,
                                        std::function<void()> done) override;
  void want(std::string_view ns, std::string_view metricName, const core::LabelSelector& selector,
            core::Clock::time_point now) override;
  std::size_t maxRequested() const override { return catalog_.maxRequested(); }
  std::vector<std::string> referencesOf(const std::string& key) const override {
    return catalog_.referencesOf(key);
  }
  const backends::Backend& backend() const { return *backends_.front(); }  // the default
  const std::vector<backends::Backend*>& backends() const { return backends_; }

 private:
  void run();
  // Publishes status_ and every backend's health() into the store (store::ServiceStatus).
  void publishStatus();
  // One exchange with the leader: sends demand, publishes its values, answers waiting requests.
  void followLeader(std::vector<std::pair<catalog::CatalogEntryPtr, std::function<void()>>> urgent);
  void publishReplica(std::vector<store::MetricValue> values);
  bool leading() const { return !options_.isLeader || options_.isLeader(); }
  void fetchAndPublish(const std::vector<catalog::CatalogEntryPtr>& entries, bool fullCycle);
  // Schedules (or clears) the early retry of a metric after a fetch.
  void noteOutcome(const catalog::CatalogEntryPtr& entry, bool hasValue);
  std::vector<catalog::CatalogEntryPtr> dueRetries(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point nextRetry() const;

  catalog::Catalog& catalog_;
  std::vector<backends::Backend*> backends_;
  store::ValueStore& store_;
  PollerOptions options_;
  ClockFn clock_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::pair<catalog::CatalogEntryPtr, std::function<void()>>> urgent_;
  struct Retry {
    catalog::CatalogEntryPtr entry;
    std::chrono::steady_clock::time_point due;
    std::chrono::milliseconds delay;
  };
  std::unordered_map<std::string, Retry> retries_;  // by metric key; poller thread only
  // Follower state; poller thread only.
  struct Waiting {
    catalog::CatalogEntryPtr entry;
    std::function<void()> done;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<Waiting> followWaiting_;
  uint64_t leaderGeneration_ = 0;
  core::Clock::time_point demandSentUpTo_;
  bool holdsLeaderValues_ = false;
  // Stamps for mirrored values this replica has no catalog entry for (first asked of the leader):
  // their hits here must still reach the leader as demand, or it would stop polling them.
  std::unordered_map<std::string, std::pair<core::DemandStamp, replication::Demand>> mirrorDemand_;
  PollerStatus status_;
  std::mutex publishStatusMutex_;  // one publisher at a time, so a newer status is never undone
  std::thread thread_;
};

}  // namespace xmetrics::poller

#pragma once

// poller/: the leader's refresh loops and the follower's mirroring — the only caller of backends.
// Reads the catalog, writes the store, implements server::MetricDemand. May include core/,
// catalog/, backends/backend.hpp, replication/, store/ and server/metric_demand.hpp.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
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
// changes (fetched at once). One refresh loop, on a thread of its own, per backend: a backend
// that hangs (a stopped Prometheus, a paced Datadog) delays only the metrics it answers. The
// request path reaches it only through server::MetricDemand, whose callbacks are bounded by the
// caller's own deadline.
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
  // Cancels every backend call in progress and joins the loops.
  void stop();

  // Fetches `entry` as soon as possible (ahead of the refresh cycle), publishes, then calls `done`
  // on the thread of the loop of its backend. Thread-safe. `done` must be cheap.
  void fetchNow(catalog::CatalogEntryPtr entry, std::function<void()> done);

  // One full refresh of every backend, one after the other, on the calling thread. start() runs
  // each backend's every refreshPeriod on its own thread; tests call these.
  void refreshAll();
  void refreshBackend(std::string_view backend);

  PollerStatus status() const;

  // server::MetricDemand: the request path's door to the catalog and this loop.
  std::expected<std::string, std::string> fetchFirst(
      std::string_view ns, std::string_view metricName, const core::LabelSelector& selector,
      core::Clock::time_point now, std::string_view requester, std::function<void()> done) override;
  void want(std::string_view ns, std::string_view metricName, const core::LabelSelector& selector,
            core::Clock::time_point now) override;
  std::vector<std::string> referencesOf(const std::string& key) const override {
    return catalog_.referencesOf(key);
  }
  const backends::Backend& backend() const { return *backends_.front(); }  // the default
  const std::vector<backends::Backend*>& backends() const { return backends_; }

 private:
  using Urgent = std::vector<std::pair<catalog::CatalogEntryPtr, std::function<void()>>>;
  struct Retry {
    catalog::CatalogEntryPtr entry;
    std::chrono::steady_clock::time_point due;
    std::chrono::milliseconds delay;
  };
  // One backend's refresh loop.
  struct Lane {
    std::size_t index = 0;            // in backends_
    Urgent urgent;                    // guarded by mutex_
    store::RefreshLoopStatus status;  // guarded by mutex_
    // A backend that batches itself paces its calls, so a refresh can take most of the period:
    // its first fetches are dispatched (firstFetchThread) to threads of their own instead of
    // waiting for the refresh to end, one per batch, so that a first fetch arriving while another
    // waits for its pacing slot is handed to the backend at once and joins that call
    // (Backend::fetchFirst). Guarded by mutex_, as is activeFirstFetches.
    Urgent firstFetches;
    std::size_t activeFirstFetches = 0;
    // First fetches published so far: a full refresh keeps those published while it ran.
    std::atomic<uint64_t> firstFetchPublications{0};
    std::mutex retriesMutex;
    std::unordered_map<std::string, Retry> retries;  // by metric key; guarded by retriesMutex
    std::thread thread;
    std::thread firstFetchThread;  // set by start() when firstFetchesOwnThread
    // Fixed at construction (the backend batches itself), so that fetchNow() and fetches never
    // read the std::thread object start() writes; first fetches queued before start() wait for
    // that thread.
    bool firstFetchesOwnThread = false;
  };
  // First-fetch batches in flight at once per backend; more wait and are fetched together. Past
  // the chunk size of a call, more could not join one anyway.
  static constexpr std::size_t kMaxFirstFetches = 36;

  void run(Lane& lane);
  void runFirstFetches(Lane& lane);
  // The loop of the backend an entry names (an unknown one: the default's, which records the
  // error); `backendName` likewise for a published value.
  Lane& laneOf(const catalog::CatalogEntry& entry);
  std::size_t laneIndexOf(std::string_view backendName) const;
  void refresh(Lane& lane);
  // Publishes the status and every backend's health() into the store (store::ServiceStatus).
  void publishStatus();
  PollerStatus statusLocked() const;
  // One exchange with the leader (the default backend's loop only): sends demand, publishes its
  // values, answers waiting requests.
  void followLeader(Urgent urgent);
  void publishReplica(std::vector<store::MetricValue> values);
  // What values published for `entry` share: made when no published value was made from this entry
  // object (a new or re-resolved entry), then reused.
  store::MetricIdentityPtr identityOf(const catalog::CatalogEntryPtr& entry) const;
  bool leading() const { return !options_.isLeader || options_.isLeader(); }
  // `referenced`: whether an HPA names each entry (full refreshes), for the backend's urgency.
  void fetchAndPublish(Lane& lane, const std::vector<catalog::CatalogEntryPtr>& entries,
                       bool fullCycle, const std::vector<bool>* referenced = nullptr);
  void setFetching(Lane& lane, bool fetching);
  // Schedules (or clears) the early retries of metrics after a fetch. Each (index into `entries`,
  // whether it has a value now): retries start, back off or end.
  void noteOutcomes(Lane& lane, const std::vector<catalog::CatalogEntryPtr>& entries,
                    const std::vector<std::pair<std::size_t, bool>>& outcomes);
  static std::vector<catalog::CatalogEntryPtr> dueRetries(
      Lane& lane, std::chrono::steady_clock::time_point now);
  static std::chrono::steady_clock::time_point nextRetry(Lane& lane);

  catalog::Catalog& catalog_;
  std::vector<backends::Backend*> backends_;
  store::ValueStore& store_;
  PollerOptions options_;
  ClockFn clock_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // every loop waits on it, each for its own urgent list
  bool stopping_ = false;
  std::vector<std::unique_ptr<Lane>> lanes_;  // one per backend, in backends_ order
  // Follower state; the default backend's loop only.
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
  PollerStatus status_;            // the fields every loop shares; guarded by mutex_
  std::mutex publishStatusMutex_;  // one publisher at a time, so a newer status is never undone
  // One snapshot writer at a time: each loop merges its values into what the others published.
  std::mutex publishValuesMutex_;
};

}  // namespace xmetrics::poller

#pragma once

// crd/: the DatadogMetric status writer and the autogen lifecycle (leader only). May include
// core/, catalog/, kube/ and store/.

#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "catalog/catalog.hpp"
#include "kube/informer.hpp"
#include "kube/kube_client.hpp"
#include "store/value_store.hpp"

namespace xmetrics::crd {

struct ControllerOptions {
  // Autogen objects no HPA has named for this long are deleted (the Cluster Agent's 3 h).
  std::chrono::seconds autogenExpiry{3 * 3600};
  // Status writes per second at most, so a thousand metrics are never a thousand writes at once.
  double writesPerSecond = 10;
  // A status whose only change is the data point's time is written at most this often per object;
  // flips (Valid, Active, Error, references, value) are written at once.
  std::chrono::seconds freshnessInterval{60};
  std::chrono::milliseconds tick{1000};
  // Only the leader writes; empty: always.
  std::function<bool()> isLeader;
  // Nothing is written before the HPAs were listed and values fetched: a status computed from
  // nothing would flip every object to inactive/invalid and back on each start. Empty: ready.
  std::function<bool()> ready;
};

struct ControllerStats {
  uint64_t statusWrites = 0;
  uint64_t statusWriteErrors = 0;
  uint64_t created = 0;
  uint64_t deleted = 0;
  std::string lastError;
};

// Writes every DatadogMetric's status from the published values, creates the autogen objects for
// inline metrics HPAs name, and deletes autogen objects unreferenced for `autogenExpiry`. Only the
// leader runs it (a single replica is its own leader). One thread.
class DatadogMetricController {
 public:
  using ObjectsFn = std::function<std::shared_ptr<const kube::ObjectMap>()>;
  DatadogMetricController(kube::KubeClient& client, catalog::Catalog& catalog,
                          store::ValueStore& values, ObjectsFn objects, ControllerOptions options);
  ~DatadogMetricController();

  void start();
  void stop();
  // Runs one pass on the calling thread (tests; start() runs it every tick).
  void reconcile();
  ControllerStats stats() const;

 private:
  void writeStatuses(const kube::ObjectMap& objects, core::Clock::time_point now);
  void manageAutogen(const kube::ObjectMap& objects, core::Clock::time_point now);
  bool takeWriteToken();
  // A create, delete or status write that failed (RBAC, missing namespace, no status subresource)
  // waits 1 s doubling to 5 min before the object is tried again, so one misconfiguration cannot
  // flood the API (and the client's shared rate limit) every second.
  bool backingOff(const std::string& id, std::chrono::steady_clock::time_point now) const;
  void failed(const std::string& id, std::chrono::steady_clock::time_point now,
              const std::string& what, const std::string& error);

  kube::KubeClient& client_;
  catalog::Catalog& catalog_;
  store::ValueStore& values_;
  ObjectsFn objects_;
  ControllerOptions options_;

  // What was last written per object ("ns/name"), so a write the watch has not delivered yet is
  // not repeated, and when: freshness-only changes wait for `freshnessInterval`.
  struct Written {
    boost::json::object status;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Written> written_;
  // Autogen objects created and not yet seen by the watch: not created twice.
  std::map<std::string, std::chrono::steady_clock::time_point> creating_;
  struct Backoff {
    std::chrono::steady_clock::time_point next;
    std::chrono::seconds delay{0};
  };
  std::map<std::string, Backoff> failures_;  // by "ns/name"
  double tokens_ = 0;
  std::chrono::steady_clock::time_point lastRefill_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  ControllerStats stats_;
  std::thread thread_;
};

}  // namespace xmetrics::crd

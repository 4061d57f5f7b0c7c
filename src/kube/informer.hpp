#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "kube/kube_client.hpp"

namespace xmetrics::kube {

using ObjectMap = std::map<std::string, boost::json::object>;  // by "namespace/name"

struct InformerStats {
  bool synced = false;         // a list completed since start
  uint64_t lists = 0;          // full lists (the first, and after 410 Gone or errors)
  uint64_t watchRestarts = 0;  // watches re-opened (timeouts, drops, errors)
  uint64_t events = 0;
  std::size_t objects = 0;
  std::string lastError;  // empty after a successful list/watch
  std::chrono::system_clock::time_point lastEvent;
};

// Keeps a current copy of every object of one resource: list, then watch from the list's
// resourceVersion with bookmarks; a dropped watch resumes from the last version seen, and 410 Gone
// (or any list-level error) starts over with a fresh list, with capped exponential backoff between
// failures. After every change the consumer gets the whole current set, so what it derives is a
// function of the objects that exist now — never of the order events arrived in.
class Informer {
 public:
  using OnChange = std::function<void(const ObjectMap&)>;

  // `collectionPath` like "/apis/autoscaling/v2/horizontalpodautoscalers" (all namespaces) or
  // "/api/v1/namespaces/kube-system/configmaps"; `fieldSelector` optional.
  Informer(KubeClient& client, std::string collectionPath, std::string fieldSelector,
           OnChange onChange, std::string name);
  ~Informer();

  void start();
  // Asks the watch to end (returns at once); stop() also waits for it.
  void requestStop() { stopping_ = true; }
  void stop();
  InformerStats stats() const;

 private:
  void run();
  bool list(std::string& resourceVersion);
  // Returns false when a relist is needed.
  bool watch(std::string& resourceVersion);
  void publish();
  void backoff(std::chrono::milliseconds& delay);

  KubeClient& client_;
  std::string path_;
  std::string fieldSelector_;
  OnChange onChange_;
  std::string name_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  ObjectMap objects_;
  InformerStats stats_;
};

std::string objectKey(const boost::json::object& object);

}  // namespace xmetrics::kube

#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "kube/kube_client.hpp"

namespace xmetrics::kube {

struct LeaderElectionOptions {
  std::string ns = "xmetrics";
  std::string leaseName = "xmetrics-leader";
  std::string identity;  // unique per replica
  std::chrono::seconds leaseDuration{15};
  std::chrono::seconds renewDeadline{10};
  std::chrono::seconds retryPeriod{2};
  // Published on the Lease (annotation xmetrics.io/peer-url) while leading, so followers know
  // where to read the values from.
  std::string peerUrl;
};

inline constexpr std::string_view kPeerUrlAnnotation = "xmetrics.io/peer-url";

struct LeaderStatus {
  bool isLeader = false;
  std::string holder;   // current holder's identity as last read ("" when none)
  std::string peerUrl;  // the holder's advertised URL
  uint64_t transitions = 0;
  std::string lastError;
};

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// holder renews every retryPeriod; a candidate takes over once it has seen the same record
// unchanged for leaseDuration (its own clock, so clock skew between nodes does not matter); every
// write carries the resourceVersion read, so two candidates cannot both win. A leader that cannot
// renew for renewDeadline steps down before anyone else may take over. On stop() a leader releases
// the Lease so a follower takes over at once instead of after leaseDuration.
class LeaderElector {
 public:
  using OnChange = std::function<void(bool leading)>;
  LeaderElector(KubeClient& client, LeaderElectionOptions options, OnChange onChange = {});
  ~LeaderElector();

  void start();
  void stop();
  // Leading, and the last renewal is younger than the renew deadline: leadership lapses on time
  // even while a renewal call hangs (kube-apiserver accepting and never answering), before any
  // other replica may take over (renewDeadline < leaseDuration).
  bool isLeader() const;
  LeaderStatus status() const;
  const LeaderElectionOptions& options() const { return options_; }

  // One attempt (tests; start() runs it every retryPeriod). Returns whether we lead afterwards.
  bool tryAcquireOrRenew();

 private:
  std::string leasePath() const;
  boost::json::object leaseBody(const boost::json::object* current, bool takeOver) const;
  void setLeading(bool leading);
  void release();

  KubeClient& client_;
  LeaderElectionOptions options_;
  OnChange onChange_;
  std::atomic<bool> leading_{false};

  // What we last saw of the record, and when it last changed (our clock).
  std::string observedHolder_;
  std::string observedRenewTime_;
  std::chrono::steady_clock::time_point observedAt_;
  std::atomic<std::chrono::steady_clock::rep> lastRenew_{0};  // steady_clock ticks

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  LeaderStatus status_;
  std::thread thread_;
};

}  // namespace xmetrics::kube

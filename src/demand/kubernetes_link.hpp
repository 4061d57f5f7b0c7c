#pragma once

// demand/: what feeds the catalog — the HPA, DatadogMetric and authentication watches of a cluster
// (with the leader-election glue), the HPA references they yield and the --config reload. It may
// include core/, config/, kube/, auth/, catalog/, crd/, store/ and telemetry/, and hands new
// catalog entries to the poller (poller/); nothing here serves requests or talks to a backend.

#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "auth/authenticator.hpp"
#include "catalog/catalog.hpp"
#include "config/serve_options.hpp"
#include "core/status_report.hpp"
#include "crd/datadog_metric_controller.hpp"
#include "kube/access_reviews.hpp"
#include "kube/informer.hpp"
#include "kube/kube_client.hpp"
#include "kube/leader_election.hpp"
#include "poller/poller.hpp"
#include "store/value_store.hpp"
#include "telemetry/exposition.hpp"

namespace xmetrics::demand {

// Which cluster to talk to: --kubeconfig, else the pod's service account, else none (standalone).
std::expected<std::optional<kube::KubeConfig>, std::string> clusterConfig(
    const config::ServeOptions& options);

// The namespace autogen DatadogMetrics go to: --namespace, else the pod's, else "xmetrics".
std::string ownNamespace(const config::ServeOptions& options,
                         const std::optional<kube::KubeConfig>& cluster);

// Everything xmetrics does with a cluster: delegated authentication and authorization, the
// authentication ConfigMap (the CAs rotate), the HPA watch that tells the catalog what to poll and,
// in CRD mode, the DatadogMetric watch and the controller writing their status.
class KubernetesLink {
 public:
  explicit KubernetesLink(kube::KubeConfig config);
  ~KubernetesLink();

  auth::TokenReviewer& tokenReviewer() { return tokenReviewer_; }
  auth::AccessReviewer& accessReviewer() { return accessReviewer_; }

  // Starts the watches. `base` is the authentication config without the cluster's part (static
  // tokens, the local CA as `localCaPem`).
  void start(auth::Authenticator& authenticator, auth::AuthenticationConfig base,
             std::string localCaPem, catalog::Catalog& catalog, poller::Poller& poller,
             store::ValueStore& values, const config::ServeOptions& options);
  void stop();
  // The local CA bundle changed (the serving-cert Secret rotated its CA): client certificates are
  // judged against the new one from now on.
  void setLocalCa(std::string pem);

  // Leader election (--leader-election): started once this replica's peer URL is known. Without
  // it this replica always leads.
  void startLeaderElection(const config::ServeOptions& options, std::string peerUrl);
  // Called before the poller and the watches start when --leader-election is on: until the
  // elector runs, this replica does not lead (it would otherwise poll the backends, and write
  // DatadogMetric status, as a second leader for a moment on every start).
  void expectLeaderElection() { electionExpected_.store(true, std::memory_order_release); }
  bool isLeader() const {
    const auto* elector = electorRunning_.load(std::memory_order_acquire);
    return elector ? elector->isLeader() : !electionExpected_.load(std::memory_order_acquire);
  }
  bool leaderElectionEnabled() const { return electorRunning_.load() != nullptr; }
  // The current leader's advertised URL; empty while none is known.
  std::string leaderPeerUrl() const;
  boost::json::object leaderStatus() const;

  // Empty once the authentication settings and the HPAs were read; else what is missing.
  std::string notReadyReason() const;
  boost::json::object status() const;
  // The HPAs with External metrics as the watch last saw them, for the status report.
  std::vector<core::StatusReport::Hpa> hpas() const {
    std::lock_guard lock(hpaMutex_);
    return hpaSummaries_;
  }
  // The APIService's Available condition as last read (every kApiServiceCheck; every
  // kApiServiceRecheck while it is not Available or not there yet; a 403 waits the full period).
  core::StatusReport::Kubernetes::ApiService apiService() const {
    std::lock_guard lock(apiServiceMutex_);
    return apiService_;
  }
  static constexpr std::chrono::seconds kApiServiceCheck{30};
  static constexpr std::chrono::seconds kApiServiceRecheck{5};  // while it is not Available
  // The watches' restarts and events, and in CRD mode the controller's writes, for /metrics.
  void writeMetrics(telemetry::ExpositionWriter& out) const;

 private:
  bool applyAuthenticationLocked();  // authenticationMutex_ held; false until there is a config

  kube::KubeClient client_;
  // TokenReviews and SubjectAccessReviews have their own client and budget, as k8s.io/apiserver's
  // delegated authentication and authorization do (200/s, bursts of 400): each metric name is an
  // access of its own, so an HPA controller starting with hundreds of HPAs asks hundreds of reviews
  // at once, and behind the watches' and the controller's 20/s each new metric waited 50 ms.
  kube::KubeClient reviewClient_;
  kube::KubeTokenReviewer tokenReviewer_{reviewClient_};
  kube::KubeAccessReviewer accessReviewer_{reviewClient_};
  // The APIService check's thread (readApiService every kApiServiceCheck until stop()).
  void checkApiService();
  mutable std::mutex apiServiceMutex_;
  std::condition_variable apiServiceWake_;
  bool apiServiceStop_ = false;
  core::StatusReport::Kubernetes::ApiService apiService_;
  std::thread apiServiceThread_;
  // Before the informers: the HPA watch's thread writes these until it is joined.
  mutable std::mutex hpaMutex_;
  std::vector<core::StatusReport::Hpa> hpaSummaries_;
  std::unique_ptr<kube::Informer> authentication_;
  std::unique_ptr<kube::Informer> hpas_;
  std::unique_ptr<kube::Informer> datadogMetrics_;  // CRD mode only
  std::unique_ptr<crd::DatadogMetricController> controller_;
  std::unique_ptr<kube::LeaderElector> elector_;
  // elector_ once started: the poller, server and controller threads read it concurrently with
  // startLeaderElection on the main thread.
  std::atomic<const kube::LeaderElector*> electorRunning_{nullptr};
  std::atomic<bool> electionExpected_{false};
  std::string peerUrl_;
  std::atomic<bool> authenticationLoaded_{false};
  // What the authenticator is built from: the ConfigMap as last delivered, the static part and the
  // local CA, which the serving-cert Secret may rotate.
  std::mutex authenticationMutex_;
  auth::Authenticator* authenticator_ = nullptr;
  auth::AuthenticationConfig authenticationBase_;
  std::string localCaPem_;
  std::optional<boost::json::object> authenticationConfigMap_;
  // The DatadogMetric objects as last delivered (their status included), for the controller.
  std::atomic<std::shared_ptr<const kube::ObjectMap>> datadogMetricObjects_;
};

}  // namespace xmetrics::demand

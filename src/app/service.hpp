#pragma once

// app/: the composition root of `xmetrics serve`. Options (config::ServeOptions) become each
// stage's options (stage_options.hpp), the stages are built and started in data-flow order and
// stopped in the reverse one (Service), and the process-wide parts live here: logging and the
// self-metrics. It may include every folder below cli/ — it is the one place that knows them all —
// and nothing includes it except cli/.

#include <boost/json/object.hpp>
#include <condition_variable>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/self_check.hpp"
#include "auth/authenticator.hpp"
#include "auth/authorizer.hpp"
#include "backends/backend.hpp"
#include "catalog/catalog.hpp"
#include "certs/cert_dir.hpp"
#include "certs/serving_secret.hpp"
#include "config/serve_options.hpp"
#include "core/file_watch.hpp"
#include "demand/kubernetes_link.hpp"
#include "ingest/dogstatsd_listener.hpp"
#include "kube/kube_config.hpp"
#include "poller/poller.hpp"
#include "replication/value_replication.hpp"
#include "server/api_handler.hpp"
#include "server/https_server.hpp"
#include "store/value_store.hpp"
#include "tsdb/time_series_store.hpp"
#include "ui/value_history.hpp"

namespace xmetrics::app {

// Every stage of a serving process, wired. Start order: certificates and credentials, the
// cluster link, the DogStatsD listener and backends, catalog and poller, the cluster watches,
// the HTTPS server, file watchers, leader election, the kubeconfig file. stop() winds down in
// the reverse order of what still serves: handler, watches, poller, server, listener.
class Service {
 public:
  // Builds and starts everything. The error names the setting or file to fix; whatever had
  // started is stopped again. Signals must already be blocked: every thread started here
  // inherits the caller's mask.
  static std::expected<std::unique_ptr<Service>, std::string> start(config::ServeOptions options,
                                                                    config::SettingSources sources);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Idempotent.
  void stop();
  // Re-reads the --config file and applies what can change without a restart (as a change of
  // the file does); SIGHUP calls it. Logs and does nothing without a --config file.
  void reloadConfiguration();

  std::string url() const;               // where HTTPS is served
  std::string dogstatsdAddress() const;  // host:port actually bound, or "off"
  // Gives the listener the other replicas' addresses (leading: the followers heard from;
  // following: the leader's list), when they changed.
  void updateRelayTargets(bool leading);
  std::vector<std::string> relayTargets() const;
  std::string clusterServer() const;  // the API server, or "standalone"

 private:
  Service(config::ServeOptions options, config::SettingSources sources);
  std::expected<void, std::string> startStages();
  backends::Backend* backendNamed(std::string_view name) const;
  bool isLeader() const { return !kubernetes_ || kubernetes_->isLeader(); }
  boost::json::object extraStatus() const;

  // Declared in start order: members are destroyed in the reverse one, so nothing outlives what
  // it points at.
  const config::ServeOptions options_;
  const config::SettingSources sources_;
  certs::CertificateFiles certs_;
  std::unique_ptr<certs::ServingSecret> servingSecret_;  // --serving-cert-secret in a cluster
  // --inject-ca-bundle without it: the mounted cert dir's CA is injected.
  std::unique_ptr<kube::KubeClient> injectorClient_;
  std::unique_ptr<certs::CaBundleInjector> injector_;
  std::string caPem_;
  std::optional<kube::KubeConfig> cluster_;
  std::unique_ptr<demand::KubernetesLink> kubernetes_;
  auth::AuthenticationConfig baseAuthentication_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<auth::Authorizer> authorizer_;
  std::shared_ptr<tsdb::TimeSeriesStore> timeSeries_;
  std::unique_ptr<ingest::DogStatsdListener> dogstatsd_;
  std::unique_ptr<replication::DogStatsdPeers> dogstatsdPeers_;  // with leader election only
  mutable std::mutex relayMutex_;
  std::vector<std::string> relayTargets_;  // as last given to dogstatsd_, for status and logs
  std::vector<backends::BackendPtr> backendsOwned_;
  std::vector<backends::Backend*> backends_;
  store::ValueStore values_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<replication::LeaderClient> leaderClient_;
  std::unique_ptr<poller::Poller> poller_;
  std::unique_ptr<ui::ValueHistory> history_;
  std::unique_ptr<ui::HistorySampler> historySampler_;
  std::unique_ptr<server::ApiHandler> handler_;
  std::unique_ptr<server::HttpsServer> https_;
  std::unique_ptr<SelfCheck> selfCheck_;  // cluster mode, self-check-interval > 0
  // Before the watchers: their threads use these until the watchers are destroyed (joined).
  std::mutex reloadMutex_;               // the watcher's thread and SIGHUP's
  config::ServeOptions runningOptions_;  // as last applied from --config
  std::unique_ptr<core::FileChangeWatcher> certificateWatcher_;
  std::unique_ptr<core::FileChangeWatcher> configWatcher_;
  std::unique_ptr<core::FileChangeWatcher> caWatcher_;  // a mounted cert dir's ca.crt
  bool stopped_ = false;
  // --take-over-apiservice: waits for readiness, then lets the APIService move
  // (waitReadyThenTakeOver).
  void waitReadyThenTakeOver();
  std::thread takeOverWaiter_;
  std::mutex takeOverMutex_;
  std::condition_variable takeOverWake_;
  bool takeOverStop_ = false;
};

}  // namespace xmetrics::app

#include "app/service.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "app/logging.hpp"
#include "app/self_metrics.hpp"
#include "app/stage_options.hpp"
#include "backends/registry.hpp"
#include "core/cgroup.hpp"
#include "demand/config_reload.hpp"

namespace xmetrics::app {

std::expected<std::unique_ptr<Service>, std::string> Service::start(
    config::ServeOptions options, config::SettingSources sources) {
  std::unique_ptr<Service> service(new Service(std::move(options), std::move(sources)));
  // On an error the destructor stops what had started, before anything it calls into goes.
  if (auto started = service->startStages(); !started) return std::unexpected(started.error());
  return service;
}

Service::Service(config::ServeOptions options, config::SettingSources sources)
    : options_(std::move(options)), sources_(std::move(sources)) {}

Service::~Service() { stop(); }

std::expected<void, std::string> Service::startStages() {
  const auto& options = options_;
  auto cluster = demand::clusterConfig(options);
  if (!cluster) return std::unexpected(cluster.error());
  cluster_ = std::move(*cluster);
  const std::string ns = demand::ownNamespace(options, cluster_);
  // In a cluster the certificates can come from the Secret every replica shares, created and
  // rotated by xmetrics, its CA injected into the APIService: no manual step at all.
  if (!options.servingCertSecret.empty() && cluster_) {
    servingSecret_ =
        std::make_unique<certs::ServingSecret>(*cluster_, servingSecretOptions(options, ns));
    if (auto ready = servingSecret_->bootstrap(); !ready) {
      return std::unexpected("--serving-cert-secret: " + ready.error());
    }
  } else if (!options.servingCertSecret.empty()) {
    spdlog::warn(
        "--serving-cert-secret is ignored without a cluster: the cert dir's files are used");
  }
  auto certs =
      certs::ensureCertificates(certificateOptions(options, ns, servingSecret_ != nullptr));
  if (!certs) return std::unexpected(certs.error());
  certs_ = std::move(*certs);

  std::vector<auth::StaticToken> tokens;
  if (!options.tokenAuthFile.empty()) {
    auto content = certs::readFile(options.tokenAuthFile);
    if (!content) return std::unexpected("--token-auth-file: " + content.error());
    auto parsed = auth::parseTokenFile(*content, options.tokenAuthFile);
    if (!parsed) return std::unexpected("--token-auth-file: " + parsed.error());
    tokens = std::move(*parsed);
  }
  auto caPem = certs::readFile(certs_.caCertificate);
  if (!caPem) return std::unexpected(caPem.error());
  caPem_ = std::move(*caPem);
  auto localCa = auth::CertificatePool::fromPem(caPem_, certs_.caCertificate);
  if (!localCa) return std::unexpected(localCa.error());
  if (cluster_) kubernetes_ = std::make_unique<demand::KubernetesLink>(*cluster_);
  if (kubernetes_ && options.leaderElection) kubernetes_->expectLeaderElection();
  // Standalone: the local CA and the token file. In a cluster its CAs and TokenReview join them.
  baseAuthentication_ = {.replicaCa = *localCa, .tokens = std::move(tokens)};
  authenticator_ = std::make_unique<auth::Authenticator>(
      baseAuthentication_, kubernetes_ ? &kubernetes_->tokenReviewer() : nullptr);
  authorizer_ =
      std::make_unique<auth::Authorizer>(kubernetes_ ? &kubernetes_->accessReviewer() : nullptr);

  timeSeries_ = std::make_shared<tsdb::TimeSeriesStore>(timeSeriesOptions(options));
  if (!options.dogstatsdAddress.empty()) {
    dogstatsd_ =
        std::make_unique<ingest::DogStatsdListener>(*timeSeries_, dogstatsdOptions(options));
    if (auto started = dogstatsd_->start(); !started) return std::unexpected(started.error());
    // High availability: a UDP Service hands each datagram to one replica; each relays what its
    // clients sent to the others (learned through the leader's exchanges), so every store holds
    // all the traffic and a takeover computes from all of it.
    if (cluster_ && options.leaderElection) {
      auto self = dogstatsdRelayAddress(options.dogstatsdAddress, dogstatsd_->port(),
                                        std::getenv("POD_IP"));
      if (self.empty()) {
        spdlog::warn(
            "dogstatsd: --dogstatsd-address {} is not an address other replicas can send to "
            "(use :8125 with POD_IP set, or a numeric address): DogStatsD sent to this replica "
            "is relayed to the others, but theirs does not reach it component=dogstatsd",
            options.dogstatsdAddress);
      }
      dogstatsdPeers_ = std::make_unique<replication::DogStatsdPeers>(std::move(self));
    }
  }
  const auto& registry = backends::registeredBackends();
  for (const auto& name : backendNames(options)) {
    auto backend = registry.make(name, {.options = options, .timeSeries = timeSeries_});
    if (!backend) return std::unexpected(backend.error());
    backends_.push_back(backend->get());
    backendsOwned_.push_back(std::move(*backend));
  }

  if (options.useDatadogMetricCrd && !kubernetes_) {
    spdlog::warn(
        "--use-datadogmetric-crd is ignored without a cluster (no --kubeconfig, not in a pod): "
        "every metric resolves inline");
  }
  catalog_ = std::make_unique<catalog::Catalog>(
      catalogOptions(options, kubernetes_ != nullptr, ns,
                     [this](std::string_view backend, std::string_view m,
                            const core::LabelSelector& s) -> std::optional<std::string> {
                       auto* b = backendNamed(backend);
                       return b ? b->translateInline(m, s) : std::nullopt;
                     }));
  // High availability: a follower mirrors the leader over HTTPS, authenticated by the client
  // certificate every replica shares (one cert dir, one Secret) and trusting their shared CA.
  leaderClient_ = std::make_unique<replication::LeaderClient>(
      http::TlsOptions{.caFile = certs_.caCertificate,
                       .clientCertFile = certs_.clientCertificate,
                       .clientKeyFile = certs_.clientKey});
  poller_ = std::make_unique<poller::Poller>(
      *catalog_, backends_, values_,
      pollerOptions(
          options, [this] { return isLeader(); },
          [this](const replication::ReplicateRequest& request)
              -> std::expected<replication::ReplicatedValues, std::string> {
            std::string url = kubernetes_ ? kubernetes_->leaderPeerUrl() : "";
            if (url.empty()) return std::unexpected(std::string("no leader elected yet"));
            if (!dogstatsdPeers_) return leaderClient_->exchange(url, request);
            auto withAddress = request;
            withAddress.dogstatsdAddress = dogstatsdPeers_->self();
            auto answer = leaderClient_->exchange(url, withAddress);
            if (answer) {
              dogstatsdPeers_->leaderSaid(answer->dogstatsdPeers);
              updateRelayTargets(false);
            }
            return answer;
          }));
  poller_->start();
  if (kubernetes_) {
    kubernetes_->start(*authenticator_, baseAuthentication_, caPem_, *catalog_, *poller_, values_,
                       options);
  }

  // The status page's history samples what the poller publishes, on a thread of its own.
  history_ = std::make_unique<ui::ValueHistory>(options.uiHistoryPoints);
  if (options.uiHistoryPoints > 0) {
    historySampler_ =
        std::make_unique<ui::HistorySampler>(*history_, values_, options.uiHistoryInterval);
  }
  handler_ = std::make_unique<server::ApiHandler>(
      apiHandlerOptions(
          options,
          {.notReadyReason = [this] { return kubernetes_ ? kubernetes_->notReadyReason() : ""; },
           .isLeader = [this] { return isLeader(); },
           .dogstatsdPeers = [this](const std::string& follower) -> std::vector<std::string> {
             if (!dogstatsdPeers_) return {};
             auto all = dogstatsdPeers_->followerSeen(follower, std::chrono::steady_clock::now());
             updateRelayTargets(true);
             return all;
           },
           .recentLogs = recentLogLines,
           .extraMetrics = selfMetrics({.dogstatsd = dogstatsd_.get(),
                                        .timeSeries = timeSeries_.get(),
                                        .kubernetes = kubernetes_.get(),
                                        .servingSecret = servingSecret_.get(),
                                        .isLeader = [this] { return isLeader(); }}),
           .history = history_.get()}),
      *authenticator_, *authorizer_, values_, *poller_, [this] { return extraStatus(); });
  auto memoryLimit = core::cgroupMemoryLimit();
  auto httpsOptions = httpsServerOptions(options, certs_, memoryLimit);
  if (memoryLimit) {
    spdlog::info("component=server event=connection_cap connections={} memory_limit_mib={}",
                 httpsOptions.maxConnections, *memoryLimit / (1024 * 1024));
  }
  // Before the server answers: request threads read selfCheck_ (extraStatus) from then on.
  if (kubernetes_ && options.selfCheckInterval.count() > 0) {
    std::string ns = demand::ownNamespace(options, cluster_);
    selfCheck_ = std::make_unique<SelfCheck>(
        doctor::Options{
            .kubeconfig = options.kubeconfig, .ns = ns, .service = ns + "/" + options.serviceName},
        [this] { return handler_->fullStatus(core::Clock::now()); }, options.selfCheckInterval);
  }
  https_ = std::make_unique<server::HttpsServer>(std::move(httpsOptions), *handler_);
  if (auto started = https_->start(); !started) return std::unexpected(started.error());

  // doctor on itself, for the status page: as the aggregator reaches it (the Service, the
  // APIService's caBundle), but dialled on its own port, with its own report.
  if (selfCheck_) {
    const auto& bind = options.bindAddress;
    std::string host = bind == "0.0.0.0" || bind.empty() ? "127.0.0.1"
                       : bind == "::"                    ? "::1"
                                                         : bind;
    selfCheck_->start(serveUrl(host, https_->port()));
  }

  // Rotation without restart: new connections get the new serving certificate, open ones keep
  // theirs (nothing is dropped). The --config file is re-read when it changes.
  certificateWatcher_ = std::make_unique<core::FileChangeWatcher>(
      std::vector<std::string>{certs_.servingCertificate, certs_.servingKey}, [this] {
        if (auto reloaded = https_->reloadCertificates(); reloaded) {
          spdlog::info("component=server event=certificate_reloaded file={}",
                       certs_.servingCertificate);
        } else {
          spdlog::error("component=server event=certificate_reload_failed error=\"{}\"",
                        reloaded.error());
        }
      });
  if (servingSecret_) {
    // A rotated CA: clients presenting certificates from it (the other replicas) are trusted.
    servingSecret_->start([this](const std::string& caBundle) {
      if (kubernetes_) kubernetes_->setLocalCa(caBundle);
      spdlog::info("component=certs event=trusted_ca_changed file={}", certs_.caCertificate);
    });
  }
  if (!servingSecret_ && cluster_) {
    // A mounted cert dir (a Secret of the user's, cert-manager's): when its CA changes, the
    // replicas' client certificates are judged against the new one, and with --inject-ca-bundle
    // it goes into the APIService (now, and on every change).
    if (!options.injectCaBundle.empty() || !options.takeOverApiService.empty()) {
      injectorClient_ = std::make_unique<kube::KubeClient>(*cluster_);
      injector_ = std::make_unique<certs::CaBundleInjector>(
          *injectorClient_, options.injectCaBundle,
          apiServiceTakeOver(options, demand::ownNamespace(options, cluster_)));
      injector_->inject(caPem_);
    }
    caWatcher_ = std::make_unique<core::FileChangeWatcher>(
        std::vector<std::string>{certs_.caCertificate}, [this] {
          auto pem = certs::readFile(certs_.caCertificate);
          if (!pem) return;
          if (injector_) injector_->inject(*pem);
          if (kubernetes_) kubernetes_->setLocalCa(*pem);
        });
  }
  if (!sources_.configFile.empty()) {
    runningOptions_ = options_;
    configWatcher_ = std::make_unique<core::FileChangeWatcher>(
        std::vector<std::string>{sources_.configFile}, [this] { reloadConfiguration(); });
  }
  if (options.leaderElection) {
    if (!kubernetes_) {
      spdlog::warn("--leader-election is ignored without a cluster: this process always leads");
    } else {
      kubernetes_->startLeaderElection(options,
                                       peerUrl(options, https_->port(), std::getenv("POD_IP")));
    }
  }
  if (!options.writeKubeconfig.empty()) {
    if (auto written = certs::writeKubeconfig(options.writeKubeconfig, url(), certs_); !written) {
      return std::unexpected("--write-kubeconfig: " + written.error());
    }
  }
  if (!options.takeOverApiService.empty() && (servingSecret_ || injector_)) {
    waitReadyThenTakeOver();
  }
  return {};
}

void Service::reloadConfiguration() {
  if (sources_.configFile.empty()) {
    spdlog::info(
        "component=config event=reload_skipped reason=\"no --config file; flags and "
        "environment variables need a restart\"");
    return;
  }
  std::lock_guard lock(reloadMutex_);
  demand::applyConfigChange(runningOptions_, sources_, backends::registeredBackends().settings(),
                            *catalog_);
}

void Service::waitReadyThenTakeOver() {
  // The APIService moves to xmetrics only once it would pass /readyz (first refresh done, the
  // cluster link in place): until then its current provider keeps serving the HPAs.
  takeOverWaiter_ = std::thread([this] {
    std::unique_lock lock(takeOverMutex_);
    while (!takeOverStop_ && !handler_->ready()) {
      takeOverWake_.wait_for(lock, std::chrono::milliseconds(200));
    }
    if (takeOverStop_) return;
    lock.unlock();
    spdlog::info("component=certs event=take_over_ready reason=\"first refresh done\"");
    if (servingSecret_) {
      servingSecret_->enableTakeOver();
    } else if (injector_) {
      injector_->enableTakeOver();
      injector_->inject(caPem_);
    }
  });
}

void Service::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (takeOverWaiter_.joinable()) {
    {
      std::lock_guard lock(takeOverMutex_);
      takeOverStop_ = true;
    }
    takeOverWake_.notify_all();
    takeOverWaiter_.join();
  }
  // The file watchers first: a certificate or configuration change must not start a reload
  // while the rest stops (destroying a watcher joins its thread).
  certificateWatcher_.reset();
  configWatcher_.reset();
  caWatcher_.reset();
  // A self-check in flight ends first: it reads this server's report and calls its port.
  if (selfCheck_) selfCheck_->stop();
  // Everything that can still answer a request finishes while the server runs; then it stops.
  if (handler_) handler_->shutdown();
  historySampler_.reset();
  if (kubernetes_) kubernetes_->stop();
  if (servingSecret_) servingSecret_->stop();
  if (poller_) poller_->stop();
  if (https_) https_->stop();
  if (dogstatsd_) dogstatsd_->stop();
}

backends::Backend* Service::backendNamed(std::string_view name) const {
  for (auto* b : backends_) {
    if (b->name() == name) return b;
  }
  return nullptr;
}

boost::json::object Service::extraStatus() const {
  boost::json::object extra;
  auto stats = timeSeries_->stats();
  extra["embedded"] = {{"series", stats.series},
                       {"points", stats.points},
                       {"refusedSeries", stats.refusedSeries},
                       {"refusedForBytes", stats.refusedForBytes},
                       {"evictedSeries", stats.evictedSeries},
                       {"approxBytes", stats.approxBytes},
                       {"maxBytes", stats.maxBytes}};
  if (dogstatsd_) {
    auto s = dogstatsd_->stats();
    extra["dogstatsd"] = {{"address", dogstatsdAddress()}, {"packets", s.packets},
                          {"metrics", s.metrics},          {"malformed", s.malformed},
                          {"skipped", s.skipped},          {"dropped", s.dropped},
                          {"relayed", s.relayed},          {"relayFailed", s.relayFailed},
                          {"fromReplicas", s.fromReplicas}};
    if (dogstatsdPeers_) {
      boost::json::array targets;
      for (const auto& t : relayTargets()) targets.emplace_back(t);
      extra["dogstatsd"].as_object()["relayAddress"] = dogstatsdPeers_->self();
      extra["dogstatsd"].as_object()["relayTargets"] = std::move(targets);
    }
  }
  if (kubernetes_) {
    extra["kubernetes"] = kubernetes_->status();
    if (auto hpas = kubernetes_->hpas(); !hpas.empty()) extra["hpas"] = core::toJson(hpas);
    if (auto check = selfCheck_ ? selfCheck_->last() : std::nullopt) {
      extra["selfCheck"] = core::toJson(*check);
    }
  }
  extra["leader"] = kubernetes_ ? kubernetes_->leaderStatus()
                                : boost::json::object{{"enabled", false}, {"isLeader", true}};
  return extra;
}

void Service::updateRelayTargets(bool leading) {
  auto targets = dogstatsdPeers_->targets(leading, std::chrono::steady_clock::now());
  std::lock_guard lock(relayMutex_);
  if (targets == relayTargets_) return;
  for (const auto& bad : dogstatsd_->setRelayTargets(targets)) {
    spdlog::warn("dogstatsd: cannot relay to {}: not a numeric host:port component=dogstatsd", bad);
  }
  std::string list;
  for (const auto& t : targets) list += (list.empty() ? "" : ", ") + t;
  spdlog::info("dogstatsd: relaying to {} component=dogstatsd",
               list.empty() ? std::string("no other replica") : list);
  relayTargets_ = std::move(targets);
}

std::vector<std::string> Service::relayTargets() const {
  std::lock_guard lock(relayMutex_);
  return relayTargets_;
}

std::string Service::url() const { return serveUrl(options_.bindAddress, https_->port()); }

std::string Service::dogstatsdAddress() const {
  if (!dogstatsd_) return "off";
  const auto& address = options_.dogstatsdAddress;
  return address.substr(0, address.rfind(':')) + ":" + std::to_string(dogstatsd_->port());
}

std::string Service::clusterServer() const {
  return cluster_ ? cluster_->server : std::string("standalone");
}

}  // namespace xmetrics::app

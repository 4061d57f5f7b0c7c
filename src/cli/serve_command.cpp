#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <csignal>
#include <memory>

#include "auth/authenticator.hpp"
#include "catalog/catalog.hpp"
#include "cli/backend_factory.hpp"
#include "cli/commands.hpp"
#include "cli/kubernetes_link.hpp"
#include "cli/logging.hpp"
#include "cli/self_metrics.hpp"
#include "core/file_watch.hpp"
#include "http/http_client.hpp"
#include "ingest/dogstatsd_listener.hpp"
#include "poller/poller.hpp"
#include "replication/value_replication.hpp"
#include "server/api_handler.hpp"
#include "server/certificates.hpp"
#include "server/https_server.hpp"
#include "store/value_store.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::cli {
namespace {

// In-cluster names the serving certificate must cover when the default manifests are used.
const std::vector<std::string> kServiceNames = {"xmetrics", "xmetrics.xmetrics",
                                                "xmetrics.xmetrics.svc",
                                                "xmetrics.xmetrics.svc.cluster.local"};

int fail(const std::string& message) {
  spdlog::error("{}", message);
  return 1;
}

}  // namespace

namespace {

std::vector<catalog::ConfiguredMetric> configuredMetrics(const config::ServeOptions& options) {
  std::vector<catalog::ConfiguredMetric> out;
  for (const auto& m : options.metrics) {
    out.push_back({m.name, m.ns, m.backend, m.query, m.maxAge, m.timeWindow});
  }
  return out;
}

// What a changed --config file can change in a running process: the log level and the `metrics`
// setting. Everything else is logged as needing a restart rather than half-applied.
void applyConfigChange(config::ServeOptions& running, const config::SettingSources& sources,
                       catalog::Catalog& catalog) {
  auto next = config::resolveServeOptions(sources);
  if (!next) {
    // The running settings stay; the file says what to fix.
    for (const auto& e : next.error()) {
      spdlog::error("component=config event=reload_rejected file={} error=\"{}\"",
                    sources.configFile, e);
    }
    return;
  }
  // Compared on the unredacted values: a changed key must not look unchanged behind <redacted>.
  std::map<std::string, std::pair<std::string, std::size_t>> before;
  for (const auto& e : running.effective) before[e.name] = {e.value, e.rawHash};
  std::vector<std::string> needRestart;
  for (const auto& e : next->effective) {
    if (before[e.name] == std::pair(e.value, e.rawHash)) continue;
    if (e.name == "log-level") {
      spdlog::set_level(spdlog::level::from_str(next->logLevel));
      spdlog::info("component=config event=reloaded setting=log-level value={}", e.value);
    } else if (e.name == "metrics") {
      auto changed = catalog.setConfigured(configuredMetrics(*next));
      spdlog::info("component=config event=reloaded setting=metrics entries={} re_resolved={}",
                   next->metrics.size(), changed.size());
    } else {
      needRestart.push_back(e.name);
    }
  }
  for (const auto& name : needRestart) {
    spdlog::warn("component=config event=needs_restart setting={} file={}", name,
                 sources.configFile);
  }
  running = std::move(*next);
}

}  // namespace

int runServe(const config::ServeOptions& options, const config::SettingSources& sources) {
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto certs = server::ensureCertificates({options.certDir, kServiceNames});
  if (!certs) return fail(certs.error());

  std::vector<auth::StaticToken> tokens;
  if (!options.tokenAuthFile.empty()) {
    auto content = server::readFile(options.tokenAuthFile);
    if (!content) return fail("--token-auth-file: " + content.error());
    auto parsed = auth::parseTokenFile(*content, options.tokenAuthFile);
    if (!parsed) return fail("--token-auth-file: " + parsed.error());
    tokens = std::move(*parsed);
  }
  auto caPem = server::readFile(certs->caCertificate);
  if (!caPem) return fail(caPem.error());
  auto localCa = auth::CertificatePool::fromPem(*caPem, certs->caCertificate);
  if (!localCa) return fail(localCa.error());
  auto cluster = clusterConfig(options);
  if (!cluster) return fail(cluster.error());
  std::unique_ptr<KubernetesLink> kubernetes;
  if (*cluster) kubernetes = std::make_unique<KubernetesLink>(**cluster);
  if (kubernetes && options.leaderElection) kubernetes->expectLeaderElection();
  // Standalone: the local CA and the token file. In a cluster its CAs and TokenReview join them.
  auth::AuthenticationConfig baseAuthentication{.clientCa = *localCa, .tokens = std::move(tokens)};
  auth::Authenticator authenticator(baseAuthentication,
                                    kubernetes ? &kubernetes->tokenReviewer() : nullptr);
  auth::Authorizer authorizer(kubernetes ? &kubernetes->accessReviewer() : nullptr);

  auto timeSeries = std::make_shared<tsdb::TimeSeriesStore>();
  std::unique_ptr<ingest::DogStatsdListener> dogstatsd;
  if (!options.dogstatsdAddress.empty()) {
    dogstatsd = std::make_unique<ingest::DogStatsdListener>(
        *timeSeries, ingest::DogStatsdListenerOptions{.address = options.dogstatsdAddress});
    if (auto started = dogstatsd->start(); !started) return fail(started.error());
  }
  // The default backend first: it answers every metric that does not choose another.
  std::vector<backends::BackendPtr> backendsOwned;
  std::vector<backends::Backend*> running;
  std::vector<std::string> backendNames{options.backend};
  backendNames.insert(backendNames.end(), options.backends.begin(), options.backends.end());
  for (const auto& name : backendNames) {
    auto backend = makeBackend(options, name, timeSeries);
    if (!backend) return fail(backend.error());
    running.push_back(backend->get());
    backendsOwned.push_back(std::move(*backend));
  }
  auto backendNamed = [&running](std::string_view name) -> backends::Backend* {
    for (auto* b : running) {
      if (b->name() == name) return b;
    }
    return nullptr;
  };

  if (options.useDatadogMetricCrd && !kubernetes) {
    spdlog::warn(
        "--use-datadogmetric-crd is ignored without a cluster (no --kubeconfig, not in a pod): "
        "every metric resolves inline");
  }
  store::ValueStore values;
  catalog::Catalog catalog({
      .inlineQuery = {*query::parseAggregator(options.aggregator), options.rollupSeconds,
                      [backendNamed](std::string_view backend, std::string_view m,
                                     const core::LabelSelector& s) -> std::optional<std::string> {
                        auto* b = backendNamed(backend);
                        return b ? b->translateInline(m, s) : std::nullopt;
                      }},
      .inactiveAfter = options.inactiveAfter,
      .maxRequested = options.maxMetrics,
      // Without a cluster there are no objects to watch: every name resolves inline.
      .useDatadogMetrics = options.useDatadogMetricCrd && kubernetes != nullptr,
      .autogen = options.datadogMetricAutogen,
      .autogenNamespace = ownNamespace(options, *cluster),
      .maxAge = options.maxAge,
      .bucketSize = options.bucketSize,
      .defaultBackend = options.backend,
      .backends = backendNames,
      .configured = configuredMetrics(options),
  });
  // High availability: a follower mirrors the leader over HTTPS, authenticated by the client
  // certificate every replica shares (one cert dir, one Secret) and trusting their shared CA.
  replication::LeaderClient leaderClient(
      http::TlsOptions{.caFile = certs->caCertificate,
                       .clientCertFile = certs->clientCertificate,
                       .clientKeyFile = certs->clientKey});
  poller::Poller poller(
      catalog, running, values,
      {.refreshPeriod = options.refreshPeriod,
       .isLeader = [&kubernetes] { return !kubernetes || kubernetes->isLeader(); },
       .follow = [&kubernetes, &leaderClient](const replication::ReplicateRequest& request)
           -> std::expected<replication::ReplicatedValues, std::string> {
         std::string url = kubernetes ? kubernetes->leaderPeerUrl() : "";
         if (url.empty()) return std::unexpected(std::string("no leader elected yet"));
         return leaderClient.exchange(url, request);
       }});
  poller.start();
  if (kubernetes) {
    kubernetes->start(authenticator, baseAuthentication, *caPem, catalog, poller, values, options);
  }
  // The watches call into the authenticator, catalog and poller: on any early return below they
  // must stop before those are destroyed (the link itself was declared before them).
  struct StopWatchesOnExit {
    KubernetesLink* link;
    ~StopWatchesOnExit() {
      if (link) link->stop();
    }
  } stopWatches{kubernetes.get()};

  auto extraStatus = [&]() {
    boost::json::object extra;
    auto stats = timeSeries->stats();
    extra["embedded"] = {{"series", stats.series},
                         {"points", stats.points},
                         {"refusedSeries", stats.refusedSeries},
                         {"approxBytes", stats.approxBytes}};
    if (dogstatsd) {
      auto s = dogstatsd->stats();
      std::string host = options.dogstatsdAddress.substr(0, options.dogstatsdAddress.rfind(':'));
      extra["dogstatsd"] = {{"address", host + ":" + std::to_string(dogstatsd->port())},
                            {"packets", s.packets},
                            {"metrics", s.metrics},
                            {"malformed", s.malformed},
                            {"skipped", s.skipped},
                            {"dropped", s.dropped}};
    }
    if (kubernetes) extra["kubernetes"] = kubernetes->status();
    extra["leader"] = kubernetes ? kubernetes->leaderStatus()
                                 : boost::json::object{{"enabled", false}, {"isLeader", true}};
    return extra;
  };
  auto isLeader = [&kubernetes] { return !kubernetes || kubernetes->isLeader(); };
  server::ApiHandler handler(
      {.maxAge = options.maxAge,
       .firstFetchTimeout = options.firstFetchTimeout,
       .refreshPeriod = options.refreshPeriod,
       .notReadyReason = [&]() { return kubernetes ? kubernetes->notReadyReason() : ""; },
       .isLeader = isLeader,
       .configReport =
           [&options] {
             boost::json::array settings;
             for (const auto& e : options.effective) {
               settings.push_back({{"name", e.name}, {"value", e.value}, {"source", e.source}});
             }
             return boost::json::value{{"settings", std::move(settings)}};
           },
       .recentLogs = recentLogLines,
       .extraMetrics = selfMetrics(
           {.dogstatsd = dogstatsd.get(), .kubernetes = kubernetes.get(), .isLeader = isLeader})},
      authenticator, authorizer, values, poller, extraStatus);
  server::HttpsServer https({.bindAddress = options.bindAddress,
                             .port = options.securePort,
                             .threads = options.threads,
                             .tls = {certs->servingCertificate, certs->servingKey}},
                            handler);
  if (auto started = https.start(); !started) return fail(started.error());

  std::string host = options.bindAddress.find(':') != std::string::npos
                         ? "[" + options.bindAddress + "]"
                         : options.bindAddress;
  std::string url = "https://" + host + ":" + std::to_string(https.port());
  // Rotation without restart: new connections get the new serving certificate, open ones keep
  // theirs (nothing is dropped). The --config file is re-read when it changes.
  core::FileChangeWatcher certificateWatcher(
      {certs->servingCertificate, certs->servingKey}, [&https, &certs] {
        if (auto reloaded = https.reloadCertificates(); reloaded) {
          spdlog::info("component=server event=certificate_reloaded file={}",
                       certs->servingCertificate);
        } else {
          spdlog::error("component=server event=certificate_reload_failed error=\"{}\"",
                        reloaded.error());
        }
      });
  std::optional<core::FileChangeWatcher> configWatcher;
  if (!sources.configFile.empty()) {
    configWatcher.emplace(
        std::vector<std::string>{sources.configFile},
        [&, current = options]() mutable { applyConfigChange(current, sources, catalog); });
  }
  if (options.leaderElection) {
    if (!kubernetes) {
      spdlog::warn("--leader-election is ignored without a cluster: this process always leads");
    } else {
      std::string peerUrl = options.peerUrl;
      if (peerUrl.empty()) {
        const char* podIp = std::getenv("POD_IP");
        std::string peerHost = podIp && *podIp ? podIp : "127.0.0.1";
        if (peerHost.find(':') != std::string::npos) peerHost = "[" + peerHost + "]";
        peerUrl = "https://" + peerHost + ":" + std::to_string(https.port());
      }
      kubernetes->startLeaderElection(options, peerUrl);
    }
  }
  if (!options.writeKubeconfig.empty()) {
    if (auto written = server::writeKubeconfig(options.writeKubeconfig, url, *certs); !written) {
      return fail("--write-kubeconfig: " + written.error());
    }
  }
  std::string moreBackends;
  for (const auto& b : options.backends) moreBackends += (moreBackends.empty() ? "" : ",") + b;
  spdlog::info(
      "xmetrics serving url={} backend={} more_backends={} dogstatsd={} threads={} "
      "refresh_period={}s max_age={}s cluster={} write_kubeconfig={}",
      url, options.backend, moreBackends.empty() ? "-" : moreBackends,
      dogstatsd ? options.dogstatsdAddress.substr(0, options.dogstatsdAddress.rfind(':')) + ":" +
                      std::to_string(dogstatsd->port())
                : "off",
      options.threads, options.refreshPeriod.count(), options.maxAge.count(),
      *cluster ? (*cluster)->server : std::string("standalone"),
      options.writeKubeconfig.empty() ? "-" : options.writeKubeconfig);

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
  // Everything that can still answer a request finishes while the server runs; then it stops.
  handler.shutdown();
  if (kubernetes) kubernetes->stop();
  poller.stop();
  https.stop();
  if (dogstatsd) dogstatsd->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace xmetrics::cli

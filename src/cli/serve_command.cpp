#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <csignal>
#include <memory>

#include "auth/authenticator.hpp"
#include "backends/embedded/time_series_store.hpp"
#include "catalog/catalog.hpp"
#include "cli/backend_factory.hpp"
#include "cli/commands.hpp"
#include "cli/kubernetes_link.hpp"
#include "cli/logging.hpp"
#include "http/http_client.hpp"
#include "ingest/dogstatsd_listener.hpp"
#include "poller/poller.hpp"
#include "replication/value_replication.hpp"
#include "server/api_handler.hpp"
#include "server/certificates.hpp"
#include "server/https_server.hpp"
#include "store/value_store.hpp"

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

int runServe(const config::ServeOptions& options) {
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

  auto timeSeries = std::make_shared<backends::embedded::TimeSeriesStore>();
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
  std::vector<catalog::ConfiguredMetric> configured;
  for (const auto& m : options.metrics) {
    configured.push_back({m.name, m.ns, m.backend, m.query, m.maxAge, m.timeWindow});
  }

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
      .configured = std::move(configured),
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
  server::ApiHandler handler(
      {.maxAge = options.maxAge,
       .firstFetchTimeout = options.firstFetchTimeout,
       .refreshPeriod = options.refreshPeriod,
       .notReadyReason = [&]() { return kubernetes ? kubernetes->notReadyReason() : ""; },
       .isLeader = [&kubernetes] { return !kubernetes || kubernetes->isLeader(); },
       .configReport =
           [&options] {
             boost::json::array settings;
             for (const auto& e : options.effective) {
               settings.push_back({{"name", e.name}, {"value", e.value}, {"source", e.source}});
             }
             return boost::json::value{{"settings", std::move(settings)}};
           },
       .recentLogs = recentLogLines},
      authenticator, authorizer, values, catalog, poller, extraStatus);
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

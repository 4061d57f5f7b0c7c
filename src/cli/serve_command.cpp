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
#include "ingest/dogstatsd_listener.hpp"
#include "poller/poller.hpp"
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
  auto backend = makeBackend(options, timeSeries);
  if (!backend) return fail(backend.error());

  if (options.useDatadogMetricCrd && !kubernetes) {
    spdlog::warn(
        "--use-datadogmetric-crd is ignored without a cluster (no --kubeconfig, not in a pod): "
        "every metric resolves inline");
  }
  store::ValueStore values;
  catalog::Catalog catalog({
      .inlineQuery = {*query::parseAggregator(options.aggregator), options.rollupSeconds,
                      [&b = **backend](std::string_view m, const core::LabelSelector& s) {
                        return b.translateInline(m, s);
                      }},
      .inactiveAfter = options.inactiveAfter,
      .maxRequested = options.maxMetrics,
      // Without a cluster there are no objects to watch: every name resolves inline.
      .useDatadogMetrics = options.useDatadogMetricCrd && kubernetes != nullptr,
      .autogen = options.datadogMetricAutogen,
      .autogenNamespace = ownNamespace(options, *cluster),
      .maxAge = options.maxAge,
      .bucketSize = options.bucketSize,
  });
  poller::Poller poller(catalog, **backend, values, {.refreshPeriod = options.refreshPeriod});
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
    return extra;
  };
  server::ApiHandler handler(
      {.maxAge = options.maxAge,
       .firstFetchTimeout = options.firstFetchTimeout,
       .refreshPeriod = options.refreshPeriod,
       .notReadyReason = [&]() { return kubernetes ? kubernetes->notReadyReason() : ""; }},
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
  if (!options.writeKubeconfig.empty()) {
    if (auto written = server::writeKubeconfig(options.writeKubeconfig, url, *certs); !written) {
      return fail("--write-kubeconfig: " + written.error());
    }
  }
  spdlog::info(
      "xmetrics serving url={} backend={} dogstatsd={} threads={} refresh_period={}s "
      "max_age={}s cluster={} write_kubeconfig={}",
      url, (*backend)->name(),
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

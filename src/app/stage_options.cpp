#include "app/stage_options.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>

#include "core/build_info.hpp"
#include "demand/config_reload.hpp"

namespace xmetrics::app {
namespace {

// The names the serving certificate covers: the Service of the default manifests, and the one
// named by --service-name in xmetrics' namespace (the chart's <fullname>), as kube-apiserver dials
// it (<service>.<namespace>.svc).
std::vector<std::string> serviceNames(const config::ServeOptions& options, const std::string& ns) {
  std::vector<std::string> names = {"xmetrics", "xmetrics.xmetrics", "xmetrics.xmetrics.svc",
                                    "xmetrics.xmetrics.svc.cluster.local"};
  for (const auto& name : {options.serviceName, options.serviceName + "." + ns,
                           options.serviceName + "." + ns + ".svc",
                           options.serviceName + "." + ns + ".svc.cluster.local"}) {
    if (std::ranges::find(names, name) == names.end()) names.push_back(name);
  }
  return names;
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

}  // namespace

certs::CertificateOptions certificateOptions(const config::ServeOptions& options,
                                             const std::string& ns, bool fromSecret) {
  return {.certDir = options.certDir,
          .dnsNames = serviceNames(options, ns),
          .validity = options.certValidity,
          .generate = !fromSecret};
}

certs::ApiServiceTakeOver apiServiceTakeOver(const config::ServeOptions& options,
                                             const std::string& ns) {
  return {.names = options.takeOverApiService,
          .ns = ns,
          .service = options.serviceName,
          .port = options.servicePort};
}

certs::ServingSecretOptions servingSecretOptions(const config::ServeOptions& options,
                                                 const std::string& ns) {
  // A round every tenth of the lifetime, at most a minute apart: a renewal (a third left) is
  // never missed, and the Secret and APIService are read once a minute per replica.
  auto interval =
      std::clamp(options.certValidity / 10, std::chrono::seconds(1), std::chrono::seconds(60));
  return {.ns = ns,
          .name = options.servingCertSecret,
          .apiServices = options.injectCaBundle,
          .takeOver = apiServiceTakeOver(options, ns),
          .issue = {.dnsNames = serviceNames(options, ns), .validity = options.certValidity},
          .certDir = options.certDir,
          .checkInterval = interval};
}

ingest::DogStatsdListenerOptions dogstatsdOptions(const config::ServeOptions& options) {
  // SO_RCVBUF takes an int; the kernel caps it far below INT_MAX anyway.
  return {.address = options.dogstatsdAddress,
          .receiveBufferBytes =
              static_cast<int>(std::min<std::size_t>(options.dogstatsdReceiveBuffer, 1 << 30))};
}

tsdb::TimeSeriesStoreOptions timeSeriesOptions(const config::ServeOptions& options) {
  return {.maxBytes = options.embeddedMaxBytes};
}

std::vector<std::string> backendNames(const config::ServeOptions& options) {
  std::vector<std::string> names{options.backend};
  names.insert(names.end(), options.backends.begin(), options.backends.end());
  return names;
}

catalog::CatalogOptions catalogOptions(const config::ServeOptions& options, bool inCluster,
                                       std::string autogenNamespace,
                                       decltype(catalog::InlineQueryOptions::translate) translate) {
  return {
      .inlineQuery = {*query::parseAggregator(options.aggregator), options.rollupSeconds,
                      std::move(translate)},
      .inactiveAfter = options.inactiveAfter,
      .maxRequested = options.maxMetrics,
      .maxRequestedBytes = options.maxMetricsBytes,
      .maxRequestedPerRequester = options.maxMetricsPerUser
                                      ? options.maxMetricsPerUser
                                      : std::max<std::size_t>(1, options.maxMetrics / 2),
      .useDatadogMetrics = options.useDatadogMetricCrd && inCluster,
      .autogen = options.datadogMetricAutogen,
      .autogenNamespace = std::move(autogenNamespace),
      .maxAge = options.maxAge,
      .bucketSize = options.bucketSize,
      .maxWindow = options.maxTimeWindow,
      .defaultBackend = options.backend,
      .backends = backendNames(options),
      .configured = demand::configuredMetrics(options),
  };
}

poller::PollerOptions pollerOptions(const config::ServeOptions& options,
                                    std::function<bool()> isLeader,
                                    decltype(poller::PollerOptions::follow) follow) {
  return {.refreshPeriod = options.refreshPeriod,
          .queryValidityPeriod = options.queryValidityPeriod,
          .isLeader = std::move(isLeader),
          .follow = std::move(follow)};
}

server::ApiHandlerOptions apiHandlerOptions(const config::ServeOptions& options,
                                            ApiHandlerHooks hooks) {
  return {.maxAge = options.maxAge,
          .firstFetchTimeout = options.firstFetchTimeout,
          .refreshPeriod = options.refreshPeriod,
          .notReadyReason = std::move(hooks.notReadyReason),
          .isLeader = std::move(hooks.isLeader),
          .dogstatsdPeers = std::move(hooks.dogstatsdPeers),
          .configReport = [report = configReport(options)] { return report; },
          .recentLogs = std::move(hooks.recentLogs),
          .configuration = statusConfiguration(options),
          .extraMetrics = std::move(hooks.extraMetrics),
          .history = hooks.history,
          .historyInterval = options.uiHistoryInterval,
          // The build alone: versions() would load libcurl, which serve loads only when used.
          .versionText = std::string(core::buildInfo().version) + " (" +
                         std::string(core::buildInfo().revision.substr(0, 12)) + ")",
          .startedAt = core::Clock::now()};
}

core::StatusReport::Configuration statusConfiguration(const config::ServeOptions& options) {
  core::StatusReport::Configuration c{.backend = options.backend,
                                      .backendReason = options.backendReason,
                                      .warnings = options.warnings};
  for (const auto& n : options.environment) c.environment.push_back({n.variable, n.level, n.text});
  return c;
}

boost::json::value configReport(const config::ServeOptions& options) {
  boost::json::array settings;
  for (const auto& e : options.effective) {
    settings.push_back({{"name", e.name}, {"value", e.value}, {"source", e.source}});
  }
  boost::json::object report{{"settings", std::move(settings)}};
  auto status = core::toJson(core::StatusReport{.configuration = statusConfiguration(options)});
  for (const auto& [k, v] : status.at("configuration").as_object()) report[k] = v;
  return report;
}

std::size_t connectionCap(std::optional<uint64_t> memoryLimit) {
  constexpr std::size_t kMost = 4096, kLeast = 64;
  if (!memoryLimit) return kMost;
  auto cap = static_cast<std::size_t>(*memoryLimit / 2 / kConnectionBytes);
  return std::clamp(cap, kLeast, kMost);
}

server::HttpsServerOptions httpsServerOptions(const config::ServeOptions& options,
                                              const certs::CertificateFiles& certificates,
                                              std::optional<uint64_t> memoryLimit) {
  return {.bindAddress = options.bindAddress,
          .port = options.securePort,
          .threads = options.threads,
          .tls = {certificates.servingCertificate, certificates.servingKey},
          .maxConnections =
              options.maxConnections ? options.maxConnections : connectionCap(memoryLimit)};
}

std::string serveUrl(const std::string& bindAddress, uint16_t port) {
  return "https://" + bracketed(bindAddress) + ":" + std::to_string(port);
}

std::string dogstatsdRelayAddress(const std::string& listenAddress, uint16_t port,
                                  const char* podIp) {
  auto colon = listenAddress.rfind(':');
  std::string host = listenAddress.substr(0, colon == std::string::npos ? 0 : colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "0.0.0.0" || host == "::") host = podIp ? podIp : "";
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (host.empty() || ec) return "";  // a name (localhost) or nothing: not numeric
  return bracketed(host) + ":" + std::to_string(port);
}

std::string peerUrl(const config::ServeOptions& options, uint16_t port, const char* podIp) {
  if (!options.peerUrl.empty()) return options.peerUrl;
  return serveUrl(podIp && *podIp ? podIp : "127.0.0.1", port);
}

}  // namespace xmetrics::app

#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "catalog/catalog.hpp"
#include "certs/cert_dir.hpp"
#include "certs/serving_secret.hpp"
#include "config/serve_options.hpp"
#include "ingest/dogstatsd_listener.hpp"
#include "poller/poller.hpp"
#include "server/api_handler.hpp"
#include "server/https_server.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::app {

// Options → Config: each stage's option struct from the resolved settings. Pure (no I/O, no
// process state): what a setting turns into is unit-testable without starting anything. The
// running objects a stage calls back into are passed in as functions.

// The serving certificate, covering the in-cluster names the default manifests use.
// `ns` is xmetrics' namespace (its Service's DNS names); `fromSecret`: the serving-cert Secret
// supplies the files, nothing is generated.
certs::CertificateOptions certificateOptions(const config::ServeOptions& options,
                                             const std::string& ns, bool fromSecret);
certs::ServingSecretOptions servingSecretOptions(const config::ServeOptions& options,
                                                 const std::string& ns);

ingest::DogStatsdListenerOptions dogstatsdOptions(const config::ServeOptions& options);
tsdb::TimeSeriesStoreOptions timeSeriesOptions(const config::ServeOptions& options);

// Every backend to run, the default first: it answers every metric that does not choose another.
std::vector<std::string> backendNames(const config::ServeOptions& options);

// `inCluster`: there are objects to watch; without them every name resolves inline.
catalog::CatalogOptions catalogOptions(const config::ServeOptions& options, bool inCluster,
                                       std::string autogenNamespace,
                                       decltype(catalog::InlineQueryOptions::translate) translate);

poller::PollerOptions pollerOptions(const config::ServeOptions& options,
                                    std::function<bool()> isLeader,
                                    decltype(poller::PollerOptions::follow) follow);

// What the handler asks of the rest of the process; each may be empty.
struct ApiHandlerHooks {
  std::function<std::string()> notReadyReason;
  std::function<bool()> isLeader;
  std::function<std::vector<std::string>(const std::string&)> dogstatsdPeers;
  std::function<std::vector<std::string>()> recentLogs;
  telemetry::MetricsSource extraMetrics;
  const ui::ValueHistory* history = nullptr;  // the status page's
};
// The effective settings are those of `options` as started (a reloaded file does not show here).
server::ApiHandlerOptions apiHandlerOptions(const config::ServeOptions& options,
                                            ApiHandlerHooks hooks);

// /xmetrics/v1/config: every setting, secrets already redacted in `effective`.
boost::json::value configReport(const config::ServeOptions& options);
// --take-over-apiservice: the APIServices pointed at xmetrics' Service <ns>/<service-name>.
certs::ApiServiceTakeOver apiServiceTakeOver(const config::ServeOptions& options,
                                             const std::string& ns);
// The status report's `configuration` section: backend and why, warnings, the DD_* review.
core::StatusReport::Configuration statusConfiguration(const config::ServeOptions& options);

// Connections the server holds at once: half the cgroup memory limit at kConnectionBytes each
// (an idle TLS connection costs 16 KB, bench/memory; one reading or writing holds OpenSSL's record
// buffers too), 64-4096; 4096 without a limit. A 128 MiB pod gets 1638, not the 4096 that could
// take it past its limit.
inline constexpr std::size_t kConnectionBytes = 40 * 1024;
std::size_t connectionCap(std::optional<uint64_t> memoryLimit);
server::HttpsServerOptions httpsServerOptions(const config::ServeOptions& options,
                                              const certs::CertificateFiles& certificates,
                                              std::optional<uint64_t> memoryLimit);

// https://host:port, with an IPv6 host in brackets.
std::string serveUrl(const std::string& bindAddress, uint16_t port);

// The URL other replicas reach this one at: --peer-url, else https://$POD_IP:<port>, else
// https://127.0.0.1:<port>. `podIp` is $POD_IP (null or empty: not in a pod).
// Where the other replicas send this one's relayed DogStatsD: the listener's own numeric host, or
// for every interface (`:8125`, `0.0.0.0`, `::`) the pod's IP; empty when neither is known.
std::string dogstatsdRelayAddress(const std::string& listenAddress, uint16_t port,
                                  const char* podIp);
std::string peerUrl(const config::ServeOptions& options, uint16_t port, const char* podIp);

}  // namespace xmetrics::app

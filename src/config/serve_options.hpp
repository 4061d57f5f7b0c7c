#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/time_format.hpp"

namespace xmetrics::config {

// Everything `xmetrics serve` can be told. Each field is settable by flag, by the YAML file given
// with
// --config (same names as the flags), and where the Datadog Cluster Agent has a setting, by its
// DD_* variable. Precedence: flag > environment > file > default. See docs/configuration.md.
struct ServeOptions {
  std::string bindAddress = "127.0.0.1";
  uint16_t securePort = 8443;
  std::string certDir;          // default: $XDG_STATE_HOME or ~/.local/state, + /xmetrics/certs
  std::string writeKubeconfig;  // empty: don't write one
  std::string tokenAuthFile;
  std::string kubeconfig;  // Kubernetes mode outside a pod; in a pod the service account is used
  std::string backend = "embedded";   // the default backend
  std::vector<std::string> backends;  // more backends running alongside it (--backends)
  // The `metrics` setting: per-metric backend choice and explicit queries (docs/backends.md).
  struct MetricSetting {
    std::string name;  // lowercased
    std::string ns;
    std::string backend;
    std::string query;
    std::optional<std::chrono::seconds> maxAge;
    std::optional<std::chrono::seconds> timeWindow;
  };
  std::vector<MetricSetting> metrics;
  std::string dogstatsdAddress = "127.0.0.1:8125";
  std::chrono::seconds refreshPeriod{30};
  std::chrono::seconds maxAge{120};
  std::chrono::seconds bucketSize{300};  // minimum query window, as the Cluster Agent's bucket_size
  int rollupSeconds = 30;
  std::string aggregator = "avg";
  unsigned threads = 0;  // 0: one per core
  std::string logFormat = "text";
  std::string logLevel = "info";
  std::chrono::seconds firstFetchTimeout{5};
  std::chrono::seconds inactiveAfter{600};
  std::size_t maxMetrics = 10'000;  // metrics registered by direct requests (not HPA references)

  // DatadogMetric objects (docs/datadogmetric.md).
  bool useDatadogMetricCrd = false;
  bool datadogMetricAutogen = true;
  std::chrono::seconds autogenExpiry{3 * 3600};
  std::string ns;  // empty: the pod's namespace, else "xmetrics"
  std::string clusterName;

  // High availability (docs/high-availability.md).
  bool leaderElection = false;
  std::string leaderLeaseName = "xmetrics-leader";
  std::chrono::seconds leaderLeaseDuration{15};
  std::chrono::seconds leaderRenewDeadline{10};
  std::chrono::seconds leaderRetryPeriod{2};
  std::string peerUrl;  // empty: https://$POD_IP:<secure-port>, else https://127.0.0.1:<port>

  // --backend datadog. Keys are never logged; prefer the environment or the *-file settings.
  std::string datadogSite = "datadoghq.com";
  std::string datadogEndpoint;   // base URL; empty: https://api.<datadogSite>
  std::string datadogEndpoints;  // failover list after datadogEndpoint (JSON or comma-separated)
  std::string datadogApiKey, datadogAppKey;
  std::string datadogApiKeyFile, datadogAppKeyFile;  // re-read when they change
  std::string datadogProxy;                          // empty: HTTPS_PROXY from the environment
  unsigned datadogChunkSize = 35;
  unsigned datadogMaxParallelQueries = 10;
  std::chrono::seconds datadogTimeout{10};
  std::chrono::seconds datadogEndpointBackoff{30};

  // --backend prometheus.
  std::string prometheusUrl = "http://127.0.0.1:9090";
  std::string prometheusBearerTokenFile;
  std::string prometheusCaFile;
  bool prometheusInsecureSkipVerify = false;
  std::string prometheusAggregation = "sum";

  // Every setting as resolved, for /xmetrics/v1/config and `xmetrics flare`: the value (secrets
  // replaced by "<redacted>") and where it came from (flag, environment variable, file, default).
  struct EffectiveSetting {
    std::string name, value, source;
    std::size_t rawHash =
        0;  // of the unredacted text: tells a changed secret from an unchanged one
  };
  std::vector<EffectiveSetting> effective;
};

// Settings whose values are credentials: never shown, logged or written to a flare.
bool isSecretSetting(std::string_view name);

struct Setting {
  std::string name;              // flag and YAML key, e.g. "secure-port"
  std::vector<std::string> env;  // DD_* variables, first one set wins
  std::string help;
  std::string defaultText;
};

// The settings table: drives flag registration, YAML keys, env lookup and the docs.
const std::vector<Setting>& serveSettings();

// Raw textual sources, already separated; pure so it is unit-testable without a process
// environment.
struct SettingSources {
  std::map<std::string, std::string> flags;  // name -> text, only flags given
  std::map<std::string, std::string> env;    // variable -> text (the process environment)
  std::string configFile;                    // path of --config, empty if none
};

// Builds the options from all sources and validates them. Returns *every* error at once, each
// naming the setting, where it came from, and what is accepted.
std::expected<ServeOptions, std::vector<std::string>> resolveServeOptions(
    const SettingSources& sources);

// Durations of settings: see core::parseDuration.
using core::parseDuration;

}  // namespace xmetrics::config

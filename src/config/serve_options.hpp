#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "config/secret_backend.hpp"
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
  // In a cluster: the Secret shared by every replica (certs/serving_secret.hpp), the APIServices
  // whose caBundle follows it, and the lifetime of the certificates xmetrics issues.
  std::string servingCertSecret;
  std::vector<std::string> injectCaBundle;
  std::chrono::seconds certValidity{365 * 24 * 3600};
  std::string serviceName = "xmetrics";  // the Service in namespace the APIService points at
  int servicePort = 443;                 // its port
  // APIServices another adapter registered (the Cluster Agent's), pointed at that Service.
  std::vector<std::string> takeOverApiService;
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
  std::size_t embeddedMaxBytes = 32 << 20;       // heap the embedded store may hold (its series)
  std::size_t dogstatsdReceiveBuffer = 4 << 20;  // SO_RCVBUF the DogStatsD socket asks for
  std::chrono::seconds refreshPeriod{30};
  std::chrono::seconds maxAge{120};
  // The Cluster Agent's query_validity_period: a value past max-age by no more than this is still
  // served (status says "in grace"), for the delay between a fetch and the HPA's read.
  std::chrono::seconds queryValidityPeriod{30};
  std::chrono::seconds bucketSize{300};  // minimum query window, as the Cluster Agent's bucket_size
  std::chrono::seconds maxTimeWindow{86400};  // longest query window (max_time_window)
  int rollupSeconds = 30;
  std::string aggregator = "avg";
  unsigned threads = 0;  // 0: one per core
  // The status page's history (/xmetrics/v1/ui): samples kept per metric, and how often.
  std::size_t uiHistoryPoints = 120;
  std::chrono::seconds uiHistoryInterval{30};
  // Cluster mode: how often xmetrics runs doctor on itself for the status page; 0: never.
  std::chrono::seconds selfCheckInterval{300};
  std::string logFormat = "text";
  std::string logLevel = "info";
  std::chrono::seconds firstFetchTimeout{5};
  std::chrono::seconds inactiveAfter{600};
  std::size_t maxMetrics = 10'000;  // metrics registered by direct requests (not HPA references)
  std::size_t maxMetricsBytes = 48u << 20;  // what those may cost in heap bytes
  // One user's share of max-metrics; 0: half of it.
  std::size_t maxMetricsPerUser = 0;
  // Connections held at once; 0: 4096, or fewer in a cgroup with a memory limit (connectionCap).
  std::size_t maxConnections = 0;

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
  std::string podName;  // identity on the Lease; empty: the host name

  // The Agent's secret backend: ENC[handle] values of any setting are resolved by running it.
  std::string secretBackendCommand;
  std::vector<std::string> secretBackendArguments;
  std::chrono::seconds secretBackendTimeout{30};
  std::size_t secretBackendOutputMaxSize = 1024 * 1024;
  bool secretBackendAllowGroupExec = false;

  // Why `backend` is the default backend: "--backend" when it was given, else what chose it.
  std::string backendReason = "the default (no backend setting, no Datadog keys)";
  // Values accepted as the Cluster Agent accepts them but changed on the way (clamped, raised):
  // each names the setting, its source and the change. Logged as warnings at start.
  std::vector<std::string> warnings;
  // How each DD_* variable seen (in the environment or a Datadog-style config file) was applied
  // (cluster_agent_settings.hpp). level "info" or "warn"; variable empty for a grouped note.
  struct EnvironmentNote {
    std::string variable, level, text;
  };
  std::vector<EnvironmentNote> environment;

  // Each backend's own settings struct (e.g. backends::datadog::DatadogSettings), under its name:
  // the rows a backend registers fill it. Read it with backendSettings<T>(options, name).
  std::map<std::string, std::any, std::less<>> backendSettings;

  // Every setting as resolved, for /xmetrics/v1/config and `xmetrics flare`: the value (secrets
  // replaced by "<redacted>") and where it came from (flag, environment variable, file, default).
  struct EffectiveSetting {
    std::string name, value, source;
    std::size_t rawHash =
        0;  // of the unredacted text: tells a changed secret from an unchanged one
  };
  std::vector<EffectiveSetting> effective;
};

struct Setting {
  std::string name;              // flag and YAML key, e.g. "secure-port"
  std::vector<std::string> env;  // DD_* variables, first one set wins
  std::string help;
  std::string defaultText;
  bool secret = false;  // a credential: never shown, logged or written to a flare
};

// Parses one setting's text into the options; returns what is accepted when it cannot.
using ApplySetting = std::function<std::optional<std::string>(std::string_view, ServeOptions&)>;

// One row of the settings table: drives flag registration, YAML keys, env lookup and the docs.
struct SettingRow {
  Setting setting;
  ApplySetting apply;
};

// One backend's part of the settings: its name (a value `backend`, `backends` and the metrics
// setting accept), the defaults of its settings struct (held in ServeOptions::backendSettings) and
// its rows. backends::BackendRegistry provides them; config never sees a backend itself.
struct BackendSettings {
  std::string name;
  std::any defaults;  // empty: the backend has no settings
  std::vector<SettingRow> rows;
  // Rows whose presence makes this the default backend when no backend setting is given (the
  // Datadog keys: a Cluster Agent's environment must not land on the embedded store silently).
  std::vector<std::string> selectedBy;
};

// A backend's settings struct. Asking for a backend or type that is not there is a programming
// error (std::bad_any_cast / std::out_of_range).
template <typename T>
const T& backendSettings(const ServeOptions& options, std::string_view backend) {
  auto it = options.backendSettings.find(backend);
  if (it == options.backendSettings.end()) throw std::out_of_range(std::string(backend));
  return std::any_cast<const T&>(it->second);
}
template <typename T>
T& backendSettings(ServeOptions& options, std::string_view backend) {
  return const_cast<T&>(backendSettings<T>(std::as_const(options), backend));
}

// The settings table: the general rows, then each backend's in the order given.
std::vector<Setting> serveSettings(const std::vector<BackendSettings>& backends);

// Raw textual sources, already separated; pure so it is unit-testable without a process
// environment.
struct SettingSources {
  std::map<std::string, std::string> flags;  // name -> text, only flags given
  std::map<std::string, std::string> env;    // variable -> text (the process environment)
  std::string configFile;                    // path of --config, empty if none
  // In a pod (service account mounted, KUBERNETES_SERVICE_HOST set): bind-address defaults to
  // 0.0.0.0 there, since kube-apiserver and the other replicas dial the pod's IP.
  bool inPod = false;
  // Resolves ENC[handle] values (secret_backend.hpp); empty: runs secret-backend-command for real.
  SecretBackend secretBackend;
};

// Builds the options from all sources and validates them. Returns *every* error at once, each
// naming the setting, where it came from, and what is accepted.
// `backends`: the backends of this build (backends::registeredBackends().settings()).
std::expected<ServeOptions, std::vector<std::string>> resolveServeOptions(
    const SettingSources& sources, const std::vector<BackendSettings>& backends);

// Durations of settings: see core::parseDuration.
using core::parseDuration;

}  // namespace xmetrics::config

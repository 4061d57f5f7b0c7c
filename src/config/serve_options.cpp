#include "config/serve_options.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <regex>
#include <set>
#include <thread>

#include "config/cluster_agent_settings.hpp"
#include "config/config_file.hpp"
#include "config/setting_rows.hpp"
#include "core/strings.hpp"

namespace xmetrics::config {
namespace {

using Apply = ApplySetting;

template <typename T>
std::optional<T> parseNumber(std::string_view text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

Apply stringSetting(std::string ServeOptions::*field) {
  return [field](std::string_view v, ServeOptions& o) -> std::optional<std::string> {
    o.*field = std::string(v);
    return std::nullopt;
  };
}

Apply boolSetting(bool ServeOptions::*field) {
  return [field, parse = boolean()](std::string_view v,
                                    ServeOptions& o) -> std::optional<std::string> {
    auto b = parse(v);
    if (!b) return b.error();
    o.*field = *b;
    return std::nullopt;
  };
}

// A comma-separated list of names, blanks around each ignored.
Apply commaList(std::vector<std::string> ServeOptions::*field) {
  return [field](std::string_view v, ServeOptions& o) -> std::optional<std::string> {
    auto& list = o.*field;
    list.clear();
    std::size_t start = 0;
    while (start <= v.size()) {
      auto end = std::min(v.find(',', start), v.size());
      auto item = v.substr(start, end - start);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) list.emplace_back(item);
      start = end + 1;
    }
    return std::nullopt;
  };
}

// A size in bytes, or a number with Ki, Mi or Gi, within [min, 1Ti].
Apply byteSizeSetting(std::size_t ServeOptions::*field, std::size_t min, std::string_view minText) {
  return [field, min, minText](std::string_view v, ServeOptions& o) -> std::optional<std::string> {
    std::size_t unit = 1;
    for (auto [suffix, factor] : {std::pair{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}}) {
      if (v.ends_with(suffix)) {
        unit = static_cast<std::size_t>(factor);
        v.remove_suffix(2);
        break;
      }
    }
    auto n = parseNumber<std::size_t>(v);
    if (!n || *n > (std::size_t{1} << 40) / unit || *n * unit < min) {
      return "must be a size of at least " + std::string(minText) +
             " (bytes, or a number with Ki, Mi or Gi)";
    }
    o.*field = *n * unit;
    return std::nullopt;
  };
}

std::string joined(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return list;
}

// The `metrics` setting: a list of {name, backend, query, namespace, maxAge, timeWindow}.
std::optional<std::string> readMetricSettings(const YAML::Node& root, ServeOptions& o,
                                              const std::vector<std::string>& backendNames);

std::optional<std::string> parseMetricSettings(std::string_view text, ServeOptions& o,
                                               const std::vector<std::string>& backendNames) {
  o.metrics.clear();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return std::string("not YAML/JSON: ") + e.what();
  }
  // Walking the nodes throws too (a conversion of what is not a scalar): an error, never a crash.
  try {
    return readMetricSettings(root, o, backendNames);
  } catch (const YAML::Exception& e) {
    o.metrics.clear();
    return std::string("not a list of {name, backend, query, ...}: ") + e.what();
  }
}

std::optional<std::string> readMetricSettings(const YAML::Node& root, ServeOptions& o,
                                              const std::vector<std::string>& backendNames) {
  if (!root || root.IsNull()) return std::nullopt;
  if (!root.IsSequence()) return "expected a list of {name, backend, query, ...}";
  std::size_t index = 0;
  for (const auto& item : root) {
    std::string where = "item " + std::to_string(index++);
    if (!item.IsMap()) return where + ": expected a map like {name: m, backend: prometheus}";
    ServeOptions::MetricSetting m;
    for (const auto& kv : item) {
      if (!kv.first.IsScalar()) return where + ": a field name must be a word, not a list or a map";
      auto key = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) return where + ": \"" + key + "\" must be a single value";
      auto value = kv.second.as<std::string>();
      if (key == "name") {
        m.name += core::lowercase(value);
      } else if (key == "namespace") {
        m.ns = value;
      } else if (key == "backend") {
        if (std::ranges::find(backendNames, value) == backendNames.end()) {
          return where + ": backend \"" + value + "\" is not one of " + joined(backendNames);
        }
        m.backend = value;
      } else if (key == "query") {
        m.query = value;
      } else if (key == "maxAge" || key == "timeWindow") {
        auto d = core::parseDuration(value);
        if (!d) return where + ": " + key + ": " + d.error();
        (key == "maxAge" ? m.maxAge : m.timeWindow) = *d;
      } else {
        return where + ": unknown field \"" + key +
               "\" (fields: name, namespace, backend, query, maxAge, timeWindow)";
      }
    }
    if (m.name.empty()) return where + ": \"name\" is required";
    if (m.backend.empty() && m.query.empty()) {
      return where + " (" + m.name + "): give a backend, a query, or both";
    }
    o.metrics.push_back(std::move(m));
  }
  return std::nullopt;
}

Apply oneOfSetting(std::string ServeOptions::*field, std::vector<std::string> allowed) {
  return [field, parse = oneOf(std::move(allowed))](std::string_view v,
                                                    ServeOptions& o) -> std::optional<std::string> {
    auto value = parse(v);
    if (!value) return value.error();
    o.*field = *value;
    return std::nullopt;
  };
}

Apply durationSetting(std::chrono::seconds ServeOptions::*field, std::chrono::seconds min) {
  return [field, parse = durationAtLeast(min)](std::string_view v,
                                               ServeOptions& o) -> std::optional<std::string> {
    auto d = parse(v);
    if (!d) return d.error();
    o.*field = *d;
    return std::nullopt;
  };
}

// The general rows, then each backend's.
std::vector<SettingRow> table(const std::vector<BackendSettings>& backends) {
  using O = ServeOptions;
  std::vector<std::string> names;
  for (const auto& b : backends) names.push_back(b.name);
  std::vector<SettingRow> settings = {
      {{"bind-address", {}, "IP address to serve HTTPS on", "127.0.0.1; 0.0.0.0 in a pod"},
       stringSetting(&O::bindAddress)},
      {{"secure-port",
        {"DD_EXTERNAL_METRICS_PROVIDER_PORT"},
        "HTTPS port (0 picks a free one)",
        "8443"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<uint16_t>(v);
         if (!n) return "must be a port number 0-65535";
         o.securePort = *n;
         return std::nullopt;
       }},
      {{"cert-dir",
        {},
        "directory of the serving certificate and local CA; missing files are generated",
        "~/.local/state/xmetrics/certs"},
       stringSetting(&O::certDir)},
      {{"serving-cert-secret",
        {},
        "in a cluster: the Secret (in namespace) that holds the cert dir's files for every "
        "replica; created when absent, written into --cert-dir, rotated before expiry when "
        "xmetrics created it",
        ""},
       stringSetting(&O::servingCertSecret)},
      {{"inject-ca-bundle",
        {},
        "APIService names, comma-separated, whose spec.caBundle xmetrics keeps equal to the "
        "serving-cert Secret's CA bundle",
        ""},
       commaList(&O::injectCaBundle)},
      {{"take-over-apiservice",
        {},
        "APIService names, comma-separated, that another adapter registered (the Cluster "
        "Agent's): xmetrics points them at its Service, drops insecureSkipTLSVerify and keeps "
        "their caBundle (as inject-ca-bundle)",
        ""},
       commaList(&O::takeOverApiService)},
      {{"service-port", {}, "the port of that Service the APIService names", "443"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<uint16_t>(v);
         if (!n || *n == 0) return "must be a port number 1-65535";
         o.servicePort = *n;
         return std::nullopt;
       }},
      {{"service-name",
        {},
        "the Service (in namespace) the APIService points at: the serving certificate covers "
        "<name>.<namespace>.svc",
        "xmetrics"},
       stringSetting(&O::serviceName)},
      {{"cert-validity",
        {},
        "lifetime of the serving and client certificates xmetrics issues (its CA: 10 times "
        "as long); renewed when a third is left",
        "8760h"},
       durationSetting(&O::certValidity, std::chrono::seconds(30))},
      {{"write-kubeconfig",
        {},
        "write a kubeconfig (client certificate from the local CA) to this path",
        ""},
       stringSetting(&O::writeKubeconfig)},
      {{"token-auth-file", {}, "CSV of bearer tokens: token,user,uid,\"group1,group2\"", ""},
       stringSetting(&O::tokenAuthFile)},
      {{"kubeconfig",
        {},
        "connect to this cluster (delegated authn/authz, HPA watch); in a pod the service "
        "account is used without it",
        ""},
       stringSetting(&O::kubeconfig)},
      {{"backend", {}, "the default metrics backend: one of " + joined(names), "embedded"},
       oneOfSetting(&O::backend, names)},
      {{"backends",
        {},
        "more backends to run alongside the default one, comma-separated; metrics choose one "
        "with the metrics setting or a DatadogMetric's xmetrics.io/backend annotation",
        ""},
       [names](std::string_view v, O& o) -> std::optional<std::string> {
         o.backends.clear();
         std::string item;
         auto flush = [&]() -> std::optional<std::string> {
           auto begin = item.find_first_not_of(' '), end = item.find_last_not_of(' ');
           std::string name = begin == std::string::npos ? "" : item.substr(begin, end - begin + 1);
           item.clear();
           if (name.empty()) return std::nullopt;
           if (std::ranges::find(names, name) == names.end()) {
             return "\"" + name + "\" is not one of " + joined(names);
           }
           if (std::ranges::find(o.backends, name) == o.backends.end()) o.backends.push_back(name);
           return std::nullopt;
         };
         for (char c : v) {
           if (c != ',') {
             item += c;
           } else if (auto e = flush()) {
             return e;
           }
         }
         return flush();
       }},
      {{"metrics",
        {},
        "per-metric backend and query, a YAML/JSON list of {name, backend, query, namespace, "
        "maxAge, timeWindow}; in the config file a YAML list",
        ""},
       [names](std::string_view v, O& o) { return parseMetricSettings(v, o, names); }},
      {{"dogstatsd-address",
        {},
        "UDP host:port of the DogStatsD listener (empty: off)",
        "127.0.0.1:8125"},
       stringSetting(&O::dogstatsdAddress)},
      {{"embedded-max-bytes",
        {},
        "memory the embedded store's series may hold, in bytes or with Ki, Mi, Gi; at the bound a "
        "new series evicts the idlest never-queried ones (docs/embedded-backend.md)",
        "32Mi"},
       // Below 1 MiB the store's own tables leave no room for series worth serving.
       byteSizeSetting(&O::embeddedMaxBytes, 1 << 20, "1Mi")},
      {{"dogstatsd-receive-buffer",
        {},
        "UDP receive buffer the DogStatsD socket asks for (SO_RCVBUF), where bursts wait; capped "
        "by net.core.rmem_max without CAP_NET_ADMIN",
        "4Mi"},
       byteSizeSetting(&O::dogstatsdReceiveBuffer, 4 << 10, "4Ki")},
      {{"refresh-period",
        {"DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD"},
        "how often every wanted metric is fetched again",
        "30s"},
       durationSetting(&O::refreshPeriod, std::chrono::seconds(1))},
      {{"max-age",
        {"DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE"},
        "a value whose data point is older than this is served as an error",
        "120s"},
       durationSetting(&O::maxAge, std::chrono::seconds(1))},
      {{"query-validity-period",
        {"DD_EXTERNAL_METRICS_PROVIDER_QUERY_VALIDITY_PERIOD"},
        "a value past max-age by no more than this is still served (status: in grace), for the "
        "delay between a fetch and the HPA's read",
        "30s"},
       durationSetting(&O::queryValidityPeriod, std::chrono::seconds(0))},
      {{"max-time-window",
        {"DD_EXTERNAL_METRICS_PROVIDER_MAX_TIME_WINDOW"},
        "longest window a query looks back, whatever a DatadogMetric's timeWindow or maxAge",
        "24h"},
       durationSetting(&O::maxTimeWindow, std::chrono::seconds(1))},
      {{"bucket-size",
        {"DD_EXTERNAL_METRICS_PROVIDER_BUCKET_SIZE"},
        "shortest query window; a query looks back max(max-age, bucket-size)",
        "300s"},
       durationSetting(&O::bucketSize, std::chrono::seconds(1))},
      {{"rollup",
        {"DD_EXTERNAL_METRICS_PROVIDER_ROLLUP"},
        "rollup interval in seconds of inline queries: .rollup(N)",
        "30"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto d = parseDuration(v);
         if (!d || d->count() < 1 || d->count() > 86400) return "must be 1-86400 seconds";
         o.rollupSeconds = static_cast<int>(d->count());
         return std::nullopt;
       }},
      {{"aggregator",
        {"DD_EXTERNAL_METRICS_AGGREGATOR", "DD_EXTERNAL_METRICS_PROVIDER_AGGREGATOR"},
        "space aggregator of inline queries",
        "avg"},
       oneOfSetting(&O::aggregator, {"avg", "sum", "min", "max"})},
      {{"threads", {}, "HTTPS server threads (0: one per core)", "0"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<unsigned>(v);
         if (!n || *n > 256) return "must be a number 0-256";
         o.threads = *n;
         return std::nullopt;
       }},
      {{"ui-history-points",
        {},
        "samples of each metric's value and validity the status page (/xmetrics/v1/ui) keeps for "
        "its sparklines, 5 bytes each (0: none)",
        "120"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<unsigned>(v);
         if (!n || *n > 10000) return "must be a number 0-10000";
         o.uiHistoryPoints = *n;
         return std::nullopt;
       }},
      {{"ui-history-interval",
        {},
        "how often the status page's history samples every metric (points x interval = the "
        "window its sparklines show)",
        "30s"},
       durationSetting(&O::uiHistoryInterval, std::chrono::seconds(1))},
      {{"self-check-interval",
        {},
        "cluster mode: how often xmetrics runs doctor's walk on itself, for the status page's "
        "header and findings (0: never)",
        "5m"},
       durationSetting(&O::selfCheckInterval, std::chrono::seconds(0))},
      {{"log-format", {}, "text or json", "text"}, oneOfSetting(&O::logFormat, {"text", "json"})},
      {{"log-level",
        {"DD_LOG_LEVEL"},
        "trace, debug, info, warn, error, critical or off (the Cluster Agent's levels)",
        "info"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         std::string lower = core::lowercase(v);
         if (lower == "warning") lower = "warn";
         for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
           if (lower == l) {
             o.logLevel = lower;
             return std::nullopt;
           }
         }
         return "must be one of trace, debug, info, warn, error, critical, off";
       }},
      {{"first-fetch-timeout",
        {},
        "how long the first request of a new metric waits for its value",
        "5s"},
       durationSetting(&O::firstFetchTimeout, std::chrono::seconds(0))},
      {{"inactive-after", {}, "stop polling a metric nobody requested for this long", "10m"},
       durationSetting(&O::inactiveAfter, std::chrono::seconds(1))},
      {{"max-metrics",
        {},
        "most metrics polled because someone asked for them directly (HPA-named ones are not "
        "counted); beyond it new names get 429",
        "10000"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<std::size_t>(v);
         if (!n || *n < 1) return "must be a positive number";
         o.maxMetrics = *n;
         return std::nullopt;
       }},
      {{"max-connections",
        {},
        "most TLS connections held at once; past it a new client takes the place of the one that "
        "did least for longest (a request trickled in, a handshake, then the oldest idle one); "
        "0: 4096, or what half the cgroup memory limit holds at 40 KiB each",
        "0"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<std::size_t>(v);
         if (!n || (*n != 0 && *n < 8) || *n > 1'000'000) return "must be 0 or 8 to 1000000";
         o.maxConnections = *n;
         return std::nullopt;
       }},
      {{"max-metrics-per-user",
        {},
        "once max-metrics (or max-metrics-bytes) is reached, the directly requested metrics one "
        "user (the authenticated name; through the aggregator, the user it acts for) keeps: a "
        "user at it makes room only among their own never-served names, else 429; 0: half of "
        "max-metrics",
        "0"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<std::size_t>(v);
         if (!n) return "must be a number (0: half of max-metrics)";
         o.maxMetricsPerUser = *n;
         return std::nullopt;
       }},
      {{"max-metrics-bytes",
        {},
        "most memory the directly requested metrics may take (their catalog entries and values), "
        "in bytes or with Ki, Mi, Gi; a plain metric takes 2-5 KiB, one with a 4 KB selector "
        "about 80 KiB; beyond it new names get 429",
        "48Mi"},
       byteSizeSetting(&O::maxMetricsBytes, 64 << 10, "64Ki")},
      {{"use-datadogmetric-crd",
        {"DD_EXTERNAL_METRICS_PROVIDER_USE_DATADOGMETRIC_CRD"},
        "watch DatadogMetric objects: datadogmetric@<ns>:<name> and objects named like the metric "
        "resolve to their query, and their status is written",
        "false"},
       boolSetting(&O::useDatadogMetricCrd)},
      {{"datadogmetric-autogen",
        {"DD_EXTERNAL_METRICS_PROVIDER_ENABLE_DATADOGMETRIC_AUTOGEN"},
        "with use-datadogmetric-crd, create a dcaautogen-* DatadogMetric for each inline metric an "
        "HPA names",
        "true"},
       boolSetting(&O::datadogMetricAutogen)},
      {{"autogen-expiry",
        {},
        "delete an autogen DatadogMetric after no HPA named it for this long",
        "3h"},
       durationSetting(&O::autogenExpiry, std::chrono::seconds(1))},
      {{"namespace",
        {"DD_KUBE_RESOURCES_NAMESPACE"},
        "xmetrics' own namespace, where autogen DatadogMetrics are created (default: the pod's, "
        "else xmetrics)",
        ""},
       stringSetting(&O::ns)},
      {{"cluster-name",
        {"DD_CLUSTER_NAME"},
        "the value of %%tag_kube_cluster_name%% in DatadogMetric queries",
        ""},
       stringSetting(&O::clusterName)},
      {{"leader-election",
        {"DD_LEADER_ELECTION"},
        "run several replicas: the holder of a coordination.k8s.io Lease polls the backends and "
        "writes DatadogMetric status; the others mirror its values",
        "false"},
       boolSetting(&O::leaderElection)},
      {{"leader-lease-name",
        {"DD_LEADER_LEASE_NAME"},
        "the Lease, in namespace",
        "xmetrics-leader"},
       stringSetting(&O::leaderLeaseName)},
      {{"leader-lease-duration",
        {"DD_LEADER_LEASE_DURATION"},
        "a leader not renewing for this long is replaced",
        "15s"},
       durationSetting(&O::leaderLeaseDuration, std::chrono::seconds(2))},
      {{"leader-renew-deadline",
        {},
        "a leader that could not renew for this long steps down (less than the lease duration)",
        "10s"},
       durationSetting(&O::leaderRenewDeadline, std::chrono::seconds(1))},
      {{"leader-retry-period", {}, "how often the Lease is renewed or tried", "2s"},
       durationSetting(&O::leaderRetryPeriod, std::chrono::seconds(1))},
      {{"pod-name",
        {"DD_POD_NAME", "POD_NAME"},
        "this replica's identity on the leader Lease",
        "the host name"},
       stringSetting(&O::podName)},
      {{"secret-backend-command",
        {"DD_SECRET_BACKEND_COMMAND"},
        "executable that resolves ENC[handle] values of any setting, with the Datadog Agent's "
        "secret-backend protocol (docs/configuration.md)",
        ""},
       stringSetting(&O::secretBackendCommand)},
      // Secret: arguments may carry a token for the vault the command reads.
      {{"secret-backend-arguments",
        {"DD_SECRET_BACKEND_ARGUMENTS"},
        "its arguments, space-separated",
        "",
        true},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         o.secretBackendArguments.clear();
         std::size_t start = 0;
         while (start < v.size()) {
           auto end = std::min(v.find(' ', start), v.size());
           if (end > start) o.secretBackendArguments.emplace_back(v.substr(start, end - start));
           start = end + 1;
         }
         return std::nullopt;
       }},
      {{"secret-backend-timeout",
        {"DD_SECRET_BACKEND_TIMEOUT"},
        "how long the command may take",
        "30s"},
       durationSetting(&O::secretBackendTimeout, std::chrono::seconds(1))},
      {{"secret-backend-output-max-size",
        {"DD_SECRET_BACKEND_OUTPUT_MAX_SIZE"},
        "most bytes the command may print",
        "1048576"},
       [](std::string_view v, O& o) -> std::optional<std::string> {
         auto n = parseNumber<std::size_t>(v);
         if (!n || *n < 1) return "must be a positive number of bytes";
         o.secretBackendOutputMaxSize = *n;
         return std::nullopt;
       }},
      {{"secret-backend-allow-group-exec",
        {"DD_SECRET_BACKEND_COMMAND_ALLOW_GROUP_EXEC_PERM"},
        "let the command's group execute it (otherwise only its owner, xmetrics' user, may)",
        "false"},
       boolSetting(&O::secretBackendAllowGroupExec)},
      {{"peer-url",
        {},
        "the URL other replicas reach this one at (published on the Lease while leading)",
        "https://$POD_IP:<secure-port>, else https://127.0.0.1:<port>"},
       stringSetting(&O::peerUrl)},
  };
  for (const auto& b : backends) settings.insert(settings.end(), b.rows.begin(), b.rows.end());
  return settings;
}

}  // namespace

std::vector<Setting> serveSettings(const std::vector<BackendSettings>& backends) {
  std::vector<Setting> out;
  for (const auto& s : table(backends)) out.push_back(s.setting);
  return out;
}

std::expected<ServeOptions, std::vector<std::string>> resolveServeOptions(
    const SettingSources& sources, const std::vector<BackendSettings>& backends) {
  const auto rows = table(backends);
  std::vector<std::string> errors;
  ConfigFile file;
  if (!sources.configFile.empty()) {
    file = readConfigFile(sources.configFile, [&](std::string_view key) {
      return std::ranges::any_of(rows, [&](const auto& s) { return s.setting.name == key; });
    });
    errors.insert(errors.end(), file.errors.begin(), file.errors.end());
  }

  // Where each setting's text comes from: flag > environment > file (its own name, then the
  // Cluster Agent key binding one of its variables) > default.
  struct Chosen {
    std::string text, where;
    bool fromSecretBackend = false;  // resolved from ENC[...]: a secret, whatever the setting
  };
  std::vector<std::optional<Chosen>> chosen(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& s = rows[i].setting;
    if (auto it = sources.flags.find(s.name); it != sources.flags.end()) {
      chosen[i] = Chosen{it->second, "flag --" + s.name};
      continue;
    }
    for (const auto& var : s.env) {
      if (auto e = sources.env.find(var); e != sources.env.end() && !e->second.empty()) {
        chosen[i] = Chosen{e->second, "environment variable " + var};
        break;
      }
    }
    if (chosen[i]) continue;
    if (auto f = file.settings.find(s.name); f != file.settings.end()) {
      chosen[i] = Chosen{f->second, "\"" + s.name + "\" in " + sources.configFile};
      continue;
    }
    for (const auto& var : s.env) {
      if (auto f = file.variables.find(var);
          f != file.variables.end() && !f->second.value.empty()) {
        chosen[i] = Chosen{f->second.value, "\"" + f->second.key + "\" in " + sources.configFile};
        break;
      }
    }
  }

  ServeOptions options;
  for (const auto& b : backends) options.backendSettings[b.name] = b.defaults;
  std::set<std::string> given;
  auto apply = [&](std::size_t i) {
    const auto& s = rows[i].setting;
    const auto& c = *chosen[i];
    bool hidden = s.secret || c.fromSecretBackend;
    auto warned = options.warnings.size();
    if (auto error = rows[i].apply(c.text, options)) {
      errors.push_back(c.where + " = \"" + (hidden ? "<redacted>" : c.text) + "\": " + *error);
    }
    // A value taken but changed on the way says where it came from (a secret's change, not what).
    for (auto w = warned; w < options.warnings.size(); ++w) {
      options.warnings[w] =
          c.where + " = " + (hidden ? "<redacted>: changed to be accepted" : options.warnings[w]);
    }
  };
  auto secretBackendRow = [&](std::size_t i) {
    return rows[i].setting.name.starts_with("secret-backend-");
  };

  // ENC[handle] values, resolved in one run of the secret backend, as the Agent does at start.
  std::vector<std::string> handles;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!chosen[i]) continue;
    auto h = encryptedHandle(chosen[i]->text);
    if (!h) continue;
    if (secretBackendRow(i)) {
      // The command cannot resolve its own settings.
      errors.push_back(chosen[i]->where + ": the secret backend's own settings cannot be ENC[...]");
      chosen[i].reset();
      continue;
    }
    if (std::ranges::find(handles, *h) == handles.end()) handles.push_back(*h);
  }
  bool secretBackendApplied = false;
  if (!handles.empty()) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (chosen[i] && secretBackendRow(i)) apply(i);
    }
    secretBackendApplied = true;
    if (options.secretBackendCommand.empty()) {
      errors.push_back("settings hold ENC[...] values (" + joined(handles) +
                       ") but no secret-backend-command (DD_SECRET_BACKEND_COMMAND) resolves them");
    } else {
      SecretBackendCall call{.command = options.secretBackendCommand,
                             .arguments = options.secretBackendArguments,
                             .timeout = options.secretBackendTimeout,
                             .outputMaxSize = options.secretBackendOutputMaxSize,
                             .allowGroupExec = options.secretBackendAllowGroupExec,
                             .handles = handles};
      auto secrets = sources.secretBackend ? sources.secretBackend(call) : runSecretBackend(call);
      if (!secrets) {
        errors.push_back(secrets.error());
      } else {
        for (auto& c : chosen) {
          if (!c) continue;
          auto h = encryptedHandle(c->text);
          if (!h) continue;
          auto secret = secrets->find(*h);
          if (secret == secrets->end()) {
            errors.push_back("secret-backend-command " + options.secretBackendCommand +
                             ": it gave nothing for secret \"" + *h + "\"");
            continue;
          }
          c->where += " (" + c->text + " from secret-backend-command)";
          c->text = secret->second;
          c->fromSecretBackend = true;
        }
      }
    }
  }

  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& s = rows[i].setting;
    auto shown = [&](const std::string& value) {
      if (s.secret && !value.empty()) return std::string("<redacted>");
      return core::redactUrlCredentials(value);  // user:password@ in a proxy or endpoint URL
    };
    if (!chosen[i]) {
      options.effective.push_back({s.name, s.defaultText, "default", 0});
      continue;
    }
    options.effective.push_back(
        {s.name, chosen[i]->fromSecretBackend ? "<redacted>" : shown(chosen[i]->text),
         chosen[i]->where, std::hash<std::string>{}(chosen[i]->text)});
    given.insert(s.name);
    if (encryptedHandle(chosen[i]->text)) continue;             // unresolved: reported above
    if (secretBackendApplied && secretBackendRow(i)) continue;  // applied once, above
    apply(i);
  }

  // Every DD_* variable seen, and what became of it.
  std::map<std::string, std::string> variables;
  for (const auto& [name, v] : file.variables) variables[name] = v.value;
  for (const auto& [name, value] : sources.env) variables[name] = value;
  std::vector<Setting> settings;
  for (const auto& r : rows) settings.push_back(r.setting);
  std::map<std::string, std::string> settingSources;
  for (const auto& e : options.effective) settingSources[e.name] = e.source;
  options.environment = reviewClusterAgentVariables(variables, settings, settingSources);

  if (!given.contains("log-format")) {
    // The Agent's log_format_json: a boolean where xmetrics has text | json.
    auto json = variables.find("DD_LOG_FORMAT_JSON");
    if (json != variables.end() && boolean()(json->second).value_or(false))
      options.logFormat = "json";
  }
  if (!given.contains("backend")) {
    for (const auto& b : backends) {
      auto by =
          std::ranges::find_if(b.selectedBy, [&](const auto& r) { return given.contains(r); });
      if (by == b.selectedBy.end()) continue;
      auto from =
          std::ranges::find_if(options.effective, [&](const auto& e) { return e.name == *by; });
      options.backend = b.name;
      options.backendReason =
          *by + " is set (" + from->source + ") and no backend setting is given";
      break;
    }
  } else {
    auto from =
        std::ranges::find_if(options.effective, [](const auto& e) { return e.name == "backend"; });
    options.backendReason = "chosen by " + from->source;
  }
  if (!given.contains("bind-address") && sources.inPod) {
    options.bindAddress = "0.0.0.0";
    for (auto& e : options.effective) {
      if (e.name == "bind-address") e = {e.name, "0.0.0.0", "default (in a pod)", 0};
    }
  }
  if (options.certDir.empty()) {
    // Private by default: not a shared /tmp path another user could prepare.
    const char* state = std::getenv("XDG_STATE_HOME");
    const char* home = std::getenv("HOME");
    options.certDir = state && *state ? std::string(state) + "/xmetrics/certs"
                      : home && *home ? std::string(home) + "/.local/state/xmetrics/certs"
                                      : "/var/lib/xmetrics/certs";
  }
  if (options.threads == 0) options.threads = std::max(1u, std::thread::hardware_concurrency());
  auto sourceOf = [&](std::string_view name) {
    auto e = std::ranges::find_if(options.effective, [&](const auto& x) { return x.name == name; });
    return e->source;
  };
  // As the Cluster Agent: max-age is max(max_age, 3 x rollup), given or not. A point is stamped
  // with the start of its rollup bucket, so with a long rollup a fresh value is a rollup or two
  // old.
  if (auto floor = std::chrono::seconds(3 * options.rollupSeconds); options.maxAge < floor) {
    if (given.contains("max-age")) {
      options.warnings.push_back(
          sourceOf("max-age") + " = " + std::to_string(options.maxAge.count()) +
          "s is below 3 x rollup (" + std::to_string(floor.count()) + "s): using " +
          std::to_string(floor.count()) +
          "s, as the Cluster Agent does (values are stamped at the start of their rollup bucket)");
    }
    options.maxAge = floor;
  }
  if (options.maxAge + options.queryValidityPeriod < options.refreshPeriod) {
    options.warnings.push_back(
        "max-age (" + std::to_string(options.maxAge.count()) + "s) plus query-validity-period (" +
        std::to_string(options.queryValidityPeriod.count()) +
        "s) is shorter than refresh-period (" + std::to_string(options.refreshPeriod.count()) +
        "s): values will be served as stale for part of every refresh; raise max-age");
  }
  if (options.leaderElection && given.contains("leader-lease-duration") &&
      !given.contains("leader-renew-deadline") && !given.contains("leader-retry-period")) {
    // The Cluster Agent has only the lease duration: the other two follow it, in the proportions
    // of the defaults (15 s / 10 s / 2 s). Under 4 s they cannot be ordered in whole seconds.
    constexpr std::chrono::seconds kShortest{4};
    if (options.leaderLeaseDuration < kShortest) {
      options.warnings.push_back(sourceOf("leader-lease-duration") + " = " +
                                 std::to_string(options.leaderLeaseDuration.count()) +
                                 "s is too short to renew within: using 4s");
      options.leaderLeaseDuration = kShortest;
    }
    options.leaderRenewDeadline = options.leaderLeaseDuration * 2 / 3;
    options.leaderRetryPeriod =
        std::max(std::chrono::seconds(1), options.leaderLeaseDuration * 2 / 15);
  }
  if (options.leaderElection && (options.leaderRenewDeadline >= options.leaderLeaseDuration ||
                                 options.leaderRetryPeriod >= options.leaderRenewDeadline)) {
    errors.push_back(
        "leader election needs leader-retry-period (" +
        std::to_string(options.leaderRetryPeriod.count()) + "s) < leader-renew-deadline (" +
        std::to_string(options.leaderRenewDeadline.count()) + "s) < leader-lease-duration (" +
        std::to_string(options.leaderLeaseDuration.count()) +
        "s): otherwise two replicas could lead at once");
  }
  if (options.useDatadogMetricCrd && options.clusterName.empty()) {
    options.warnings.push_back(
        "cluster-name is empty: a DatadogMetric query with %%tag_kube_cluster_name%% is invalid; "
        "the Cluster Agent detects the name from cloud metadata, xmetrics does not: set "
        "DD_CLUSTER_NAME (or cluster-name)");
  }
  std::erase(options.backends, options.backend);  // the default runs anyway
  auto runs = [&](const std::string& name) {
    return name == options.backend ||
           std::ranges::find(options.backends, name) != options.backends.end();
  };
  for (const auto& m : options.metrics) {
    if (!m.backend.empty() && !runs(m.backend)) {
      errors.push_back("metrics: " + m.name + " asks for backend \"" + m.backend +
                       "\", which is not running: add it to backends (or make it the backend)");
    }
  }
  if (!errors.empty()) return std::unexpected(std::move(errors));
  return options;
}

}  // namespace xmetrics::config

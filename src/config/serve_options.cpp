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

std::string joined(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return list;
}

// The `metrics` setting: a list of {name, backend, query, namespace, maxAge, timeWindow}.
std::optional<std::string> parseMetricSettings(std::string_view text, ServeOptions& o,
                                               const std::vector<std::string>& backendNames) {
  o.metrics.clear();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return std::string("not YAML/JSON: ") + e.what();
  }
  if (!root || root.IsNull()) return std::nullopt;
  if (!root.IsSequence()) return "expected a list of {name, backend, query, ...}";
  std::size_t index = 0;
  for (const auto& item : root) {
    std::string where = "item " + std::to_string(index++);
    if (!item.IsMap()) return where + ": expected a map like {name: m, backend: prometheus}";
    ServeOptions::MetricSetting m;
    for (const auto& kv : item) {
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
       [](std::string_view v, O& o) -> std::optional<std::string> {
         o.injectCaBundle.clear();
         std::size_t start = 0;
         while (start <= v.size()) {
           auto end = std::min(v.find(',', start), v.size());
           auto item = v.substr(start, end - start);
           while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
           while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
           if (!item.empty()) o.injectCaBundle.emplace_back(item);
           start = end + 1;
         }
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
  std::map<std::string, std::string> fromFile;
  if (!sources.configFile.empty()) {
    try {
      YAML::Node root = YAML::LoadFile(sources.configFile);
      if (root && !root.IsNull()) {
        if (!root.IsMap()) {
          errors.push_back("--config " + sources.configFile + ": expected a map of setting: value");
        } else {
          for (const auto& kv : root) {
            auto key = kv.first.as<std::string>();
            bool known = std::any_of(rows.begin(), rows.end(),
                                     [&](const auto& s) { return s.setting.name == key; });
            if (!known) {
              errors.push_back("--config " + sources.configFile + ": unknown setting \"" + key +
                               "\" (see `xmetrics serve --help` for the names)");
            } else if (key == "metrics" && kv.second.IsSequence()) {
              // The one structured setting: handed on as flow-style YAML text, as a flag carries
              // it.
              YAML::Emitter flow;
              flow.SetSeqFormat(YAML::Flow);
              flow.SetMapFormat(YAML::Flow);
              flow << kv.second;
              fromFile[key] = flow.c_str();
            } else if (!kv.second.IsScalar()) {
              errors.push_back("--config " + sources.configFile + ": \"" + key +
                               "\" must be a single value");
            } else {
              fromFile[key] = kv.second.as<std::string>();
            }
          }
        }
      }
    } catch (const YAML::Exception& e) {
      errors.push_back("--config " + sources.configFile + ": " + e.what());
    }
  }

  ServeOptions options;
  for (const auto& b : backends) options.backendSettings[b.name] = b.defaults;
  std::set<std::string> given;
  for (const auto& s : rows) {
    std::optional<std::pair<std::string, std::string>> chosen;  // (value, where)
    if (auto it = sources.flags.find(s.setting.name); it != sources.flags.end()) {
      chosen.emplace(it->second, "flag --" + s.setting.name);
    } else {
      for (const auto& var : s.setting.env) {
        if (auto e = sources.env.find(var); e != sources.env.end() && !e->second.empty()) {
          chosen.emplace(e->second, "environment variable " + var);
          break;
        }
      }
      if (!chosen) {
        if (auto f = fromFile.find(s.setting.name); f != fromFile.end()) {
          chosen.emplace(f->second, "\"" + s.setting.name + "\" in " + sources.configFile);
        }
      }
    }
    auto shown = [&](const std::string& value) {
      if (s.setting.secret && !value.empty()) return std::string("<redacted>");
      return core::redactUrlCredentials(value);  // user:password@ in a proxy or endpoint URL
    };
    if (!chosen) {
      options.effective.push_back({s.setting.name, s.setting.defaultText, "default", 0});
      continue;
    }
    options.effective.push_back({s.setting.name, shown(chosen->first), chosen->second,
                                 std::hash<std::string>{}(chosen->first)});
    given.insert(s.setting.name);
    if (auto error = s.apply(chosen->first, options)) {
      errors.push_back(chosen->second + " = \"" + chosen->first + "\": " + *error);
    }
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
  // As the Cluster Agent: max-age defaults to max(120 s, 3 x rollup). A point is stamped with the
  // start of its rollup bucket, so with a long rollup a fresh value is already a rollup or two old.
  if (!given.contains("max-age")) {
    options.maxAge = std::max(options.maxAge, std::chrono::seconds(3 * options.rollupSeconds));
  } else if (options.maxAge < std::chrono::seconds(2 * options.rollupSeconds)) {
    errors.push_back("max-age (" + std::to_string(options.maxAge.count()) +
                     "s) is shorter than two rollup intervals (" +
                     std::to_string(2 * options.rollupSeconds) +
                     "s): values are stamped at the start of their rollup bucket and would be "
                     "served as stale; raise max-age or lower rollup");
  }
  if (options.maxAge < options.refreshPeriod) {
    errors.push_back("max-age (" + std::to_string(options.maxAge.count()) +
                     "s) is shorter than refresh-period (" +
                     std::to_string(options.refreshPeriod.count()) +
                     "s): every value would go stale between refreshes; raise max-age");
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

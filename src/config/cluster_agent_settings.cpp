#include "config/cluster_agent_settings.hpp"

#include <algorithm>

#include "core/strings.hpp"

namespace xmetrics::config {
namespace {

using Kind = ClusterAgentSetting::Kind;

// Booleans compare by meaning: the Agent reads "1", "t", "TRUE", ... as true (strconv.ParseBool).
std::string normalized(std::string_view value) {
  std::string v = core::lowercase(value);
  if (v == "1" || v == "t") return "true";
  if (v == "0" || v == "f") return "false";
  return v;
}

bool harmless(const ClusterAgentSetting& s, std::string_view value) {
  return std::ranges::any_of(
      s.harmless, [&](const std::string& h) { return normalized(h) == normalized(value); });
}

// Variables a user may mean when writing one nobody reads.
std::string suggestion(std::string_view variable) {
  static const std::map<std::string, std::string, std::less<>> kMeant = {
      {"DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL",
       "DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD (how often values are fetched)"},
      {"DD_EXTERNAL_METRICS_PROVIDER_AGGREGATOR", "DD_EXTERNAL_METRICS_AGGREGATOR"},
      {"DD_EXTERNAL_METRICS_PROVIDER_TIMEOUT", "--datadog-timeout"},
      {"DD_APPLICATION_KEY", "DD_APP_KEY"},
  };
  if (auto it = kMeant.find(variable); it != kMeant.end()) return "; did you mean " + it->second;
  return "";
}

}  // namespace

std::string clusterAgentVariable(std::string_view key) {
  std::string v = "DD_";
  for (char c : key)
    v += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return v;
}

const std::vector<ClusterAgentSetting>& clusterAgentSettings() {
  static const std::vector<ClusterAgentSetting> kSettings = {
      // The external metrics provider.
      {"external_metrics_provider.enabled",
       Kind::Mechanism,
       "xmetrics is the provider and serves either way; false is warned about",
       {"true"}},
      {"external_metrics_provider.port", Kind::Same, "secure-port"},
      {"external_metrics_provider.endpoint", Kind::Same, "datadog-endpoint"},
      {"external_metrics_provider.api_key", Kind::Same, "datadog-api-key"},
      {"external_metrics_provider.app_key", Kind::Same, "datadog-app-key"},
      {"external_metrics_provider.endpoints", Kind::Same, "datadog-endpoints"},
      {"external_metrics_provider.refresh_period", Kind::Same, "refresh-period"},
      {"external_metrics_provider.batch_window",
       Kind::NotApplicable,
       "HPA changes reach the catalog at once from its watch; there is no ConfigMap to batch into",
       {"10"}},
      {"external_metrics_provider.max_age", Kind::Same, "max-age"},
      {"external_metrics_provider.query_validity_period", Kind::Same, "query-validity-period"},
      {"external_metrics.aggregator", Kind::Same, "aggregator"},
      {"external_metrics_provider.max_time_window", Kind::Same, "max-time-window"},
      {"external_metrics_provider.bucket_size", Kind::Same, "bucket-size"},
      {"external_metrics_provider.rollup", Kind::Same, "rollup"},
      {"external_metrics_provider.wpa_controller",
       Kind::NotApplicable,
       "Watermark Pod Autoscalers are not served; HPAs are",
       {"false"}},
      {"external_metrics_provider.use_datadogmetric_crd", Kind::Same, "use-datadogmetric-crd"},
      {"external_metrics_provider.enable_datadogmetric_autogen", Kind::Same,
       "datadogmetric-autogen"},
      {"external_metrics_provider.config",
       Kind::NotApplicable,
       "the API server's options are xmetrics' own flags (secure-port, threads, ...)",
       {"", "{}"}},
      {"external_metrics_provider.local_copy_refresh_rate",
       Kind::NotApplicable,
       "followers mirror the leader's values every second (docs/high-availability.md)",
       {"30"}},
      {"external_metrics_provider.chunk_size", Kind::Same, "datadog-chunk-size"},
      {"external_metrics_provider.split_batches_with_backoff",
       Kind::Mechanism,
       "always on: a batch with a failing query is halved until the query is alone, so its "
       "neighbours keep their values",
       {"true", "false"}},
      {"external_metrics_provider.num_workers",
       Kind::NotApplicable,
       "one poller thread serves every metric; DatadogMetric status is written by one controller",
       {"2"}},
      {"external_metrics_provider.max_parallel_queries", Kind::Same,
       "datadog-max-parallel-queries"},
      {"external_metrics_provider.hpa_label_selector",
       Kind::NotApplicable,
       "every HPA is watched; one that names no external metric costs nothing",
       {""}},
      // General settings the provider reads.
      {"api_key", Kind::Same, "datadog-api-key"},
      {"app_key", Kind::Same, "datadog-app-key"},
      {"site", Kind::Same, "datadog-site"},
      {"cluster_name", Kind::Same, "cluster-name"},
      {"kube_resources_namespace", Kind::Same, "namespace"},
      {"log_level", Kind::Same, "log-level"},
      {"log_format_json", Kind::Mechanism, "true sets log-format to json", {"true", "false"}},
      {"leader_election", Kind::Same, "leader-election"},
      {"leader_lease_name", Kind::Same, "leader-lease-name"},
      {"leader_lease_duration", Kind::Same, "leader-lease-duration"},
      {"leader_election_default_resource",
       Kind::Mechanism,
       "the lock is always a coordination.k8s.io Lease named leader-lease-name",
       {"lease", "configmap", ""}},
      {"pod_name", Kind::Same, "pod-name"},
      {"health_port",
       Kind::Mechanism,
       "/livez and /readyz are served on secure-port (HTTPS); point the probes there, as the "
       "xmetrics chart does",
       {}},
      {"proxy.https", Kind::Same, "datadog-proxy"},
      {"proxy.http", Kind::Same, "datadog-proxy-http"},
      {"proxy.no_proxy", Kind::Same, "datadog-no-proxy"},
      {"skip_ssl_validation", Kind::Same, "datadog-skip-tls-verify"},
      {"secret_backend_command", Kind::Same, "secret-backend-command"},
      {"secret_backend_arguments", Kind::Same, "secret-backend-arguments"},
      {"secret_backend_timeout", Kind::Same, "secret-backend-timeout"},
      {"secret_backend_output_max_size", Kind::Same, "secret-backend-output-max-size"},
      {"hpa_watcher_polling_freq", Kind::NotApplicable, "HPAs are watched, not polled", {"10"}},
      {"hpa_watcher_gc_period",
       Kind::NotApplicable,
       "metrics no HPA names stop being polled after inactive-after",
       {"300"}},
      {"hpa_configmap_name",
       Kind::NotApplicable,
       "no ConfigMap: the catalog lives in memory and is rebuilt from the watches",
       {"datadog-custom-metrics"}},
      {"kubernetes_informers_resync_period",
       Kind::NotApplicable,
       "watches are re-listed when they drop, never on a timer",
       {"300"}},
  };
  return kSettings;
}

bool otherClusterAgentFeature(std::string_view variable) {
  static constexpr std::string_view kPrefixes[] = {
      "DD_ADMISSION_CONTROLLER_",
      "DD_CLUSTER_CHECKS_",
      "DD_ORCHESTRATOR_EXPLORER_",
      "DD_CLUSTER_AGENT_",
      "DD_KUBERNETES_",
      "DD_LANGUAGE_DETECTION_",
      "DD_CSI_",
      "DD_REMOTE_CONFIGURATION_",
      "DD_EXTRA_",
      "DD_APM_",
      "DD_INSTRUMENTATION_",
      "DD_COLLECT_KUBERNETES_EVENTS",
      "DD_TRACE_AGENT_",
      "DD_DOGSTATSD_HOST_SOCKET_PATH",
      "DD_DOGSTATSD_SOCKET",
      "DD_AUTOSCALING_",
      "DD_COMPLIANCE_",
      "DD_PROCESS_",
      "DD_SBOM_",
      "DD_RUNTIME_SECURITY_",
      "DD_CLC_RUNNER_",
      "DD_EXTERNAL_METRICS_PROVIDER_WPA_",  // (the WPA controller has its own entry)
  };
  return std::ranges::any_of(kPrefixes,
                             [&](std::string_view p) { return variable.starts_with(p); });
}

std::vector<ServeOptions::EnvironmentNote> reviewClusterAgentVariables(
    const std::map<std::string, std::string>& variables, const std::vector<Setting>& rows,
    const std::map<std::string, std::string>& sources) {
  std::vector<ServeOptions::EnvironmentNote> notes;
  std::string otherFeatures;
  for (const auto& [variable, value] : variables) {
    if (!variable.starts_with("DD_")) continue;
    auto row = std::ranges::find_if(
        rows, [&](const Setting& s) { return std::ranges::find(s.env, variable) != s.env.end(); });
    if (row != rows.end()) {
      auto source = sources.find(row->name);
      std::string where = source == sources.end() ? "default" : source->second;
      // A file key reads as its variable: "external_metrics_provider.port" is this variable's.
      std::string fileKey;
      if (where.starts_with("\"")) fileKey = where.substr(1, where.find('"', 1) - 1);
      if (where == "environment variable " + variable ||
          (!fileKey.empty() && clusterAgentVariable(fileKey) == variable)) {
        notes.push_back({variable, "info", "read as " + row->name});
      } else if (value.empty()) {
        notes.push_back({variable, "info", "empty: ignored (" + row->name + " keeps its default)"});
      } else {
        notes.push_back(
            {variable, "info", "shadowed by " + where + ", which wins (" + row->name + ")"});
      }
      continue;
    }
    auto entry = std::ranges::find_if(clusterAgentSettings(), [&](const ClusterAgentSetting& s) {
      return clusterAgentVariable(s.key) == variable;
    });
    if (entry != clusterAgentSettings().end() && entry->kind != Kind::Same) {
      bool quiet = entry->kind == Kind::Mechanism
                       ? entry->harmless.empty() || harmless(*entry, value)
                       : harmless(*entry, value);
      std::string what = entry->kind == Kind::Mechanism ? "accepted: " : "not applicable: ";
      notes.push_back({variable, quiet ? "info" : "warn", what + entry->xmetrics});
      continue;
    }
    if (otherClusterAgentFeature(variable)) {
      otherFeatures += (otherFeatures.empty() ? "" : ", ") + variable;
      continue;
    }
    notes.push_back({variable, "warn",
                     "unknown: neither xmetrics nor the Cluster Agent's external metrics provider "
                     "reads it" +
                         suggestion(variable)});
  }
  if (!otherFeatures.empty()) {
    notes.push_back(
        {"", "info",
         "settings of Cluster Agent features xmetrics does not have, ignored: " + otherFeatures});
  }
  return notes;
}

}  // namespace xmetrics::config

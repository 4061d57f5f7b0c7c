// Moving from the Datadog Cluster Agent: what xmetrics made of its settings, and what the Cluster
// Agent's install left that can still break the HPAs (docs/migration.md).
#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "doctor/checks.hpp"

namespace xmetrics::doctor {
namespace {

using core::json::objectAt;
using core::json::str;

const boost::json::object* metadataOf(const boost::json::value& object) {
  return object.is_object() ? objectAt(object.as_object(), "metadata") : nullptr;
}

// "release datadog-agent (chart datadog-3.240.0)", from Helm's annotations and labels.
std::string helmOwner(const boost::json::object* metadata) {
  const auto* labels = objectAt(metadata, "labels");
  const auto* annotations = objectAt(metadata, "annotations");
  std::string release = str(annotations, "meta.helm.sh/release-name");
  if (release.empty()) release = str(labels, "app.kubernetes.io/instance");
  std::string chart = str(labels, "helm.sh/chart");
  return "release " + (release.empty() ? std::string("?") : release) +
         (chart.empty() ? "" : " (chart " + chart + ")");
}

bool datadogChart(const boost::json::object* metadata) {
  return str(objectAt(metadata, "labels"), "helm.sh/chart").starts_with("datadog-");
}

bool kept(const boost::json::object* metadata) {
  return str(objectAt(metadata, "annotations"), "helm.sh/resource-policy") == "keep";
}

Check settingsCheck(const Evidence& e) {
  Check c{.name = "migration-settings"};
  if (!e.status || !e.status->configuration) {
    c.summary = "settings not reported (xmetrics not reached, or older than this doctor)";
    return c;
  }
  const auto& conf = *e.status->configuration;
  c.summary = "backend " + conf.backend + ": " + conf.backendReason;
  bool warned = !conf.warnings.empty();
  for (const auto& w : conf.warnings) c.evidence.push_back("changed to be accepted: " + w);
  for (const auto& n : conf.environment) {
    warned = warned || n.level == "warn";
    c.evidence.push_back((n.level == "warn" ? "WARN " : "") +
                         (n.variable.empty() ? n.text : n.variable + ": " + n.text));
  }
  if (warned) {
    c.verdict = Verdict::kWarn;
    c.problem = "settings-not-applied";
    c.fix =
        "each WARN line is a setting xmetrics did not take as given: change or remove it "
        "(docs/configuration.md, \"Cluster Agent settings\")";
  }
  return c;
}

Check apiServiceCheck(const Evidence& e) {
  Check c{.name = "migration-apiservice"};
  if (!e.apiService) {
    c.summary = "no APIService to judge";
    return c;
  }
  const auto* metadata = metadataOf(*e.apiService);
  if (!datadogChart(metadata)) {
    c.summary = "the APIService does not belong to the datadog chart";
    return c;
  }
  c.evidence.push_back("APIService " + std::string(kApiServiceName) + ": " + helmOwner(metadata) +
                       (kept(metadata) ? ", helm.sh/resource-policy: keep" : ""));
  c.verdict = Verdict::kWarn;
  c.problem = "apiservice-owned-by-cluster-agent";
  c.summary = "the APIService still belongs to the Cluster Agent's " + helmOwner(metadata) +
              (kept(metadata) ? "" : ": uninstalling that release deletes it");
  c.fix =
      "take it over: annotate it helm.sh/resource-policy=keep and for the xmetrics release "
      "(meta.helm.sh/release-name, meta.helm.sh/release-namespace), then helm upgrade --install "
      "xmetrics (docs/migration.md)";
  return c;
}

Check clusterAgentCheck(const Evidence& e) {
  Check c{.name = "migration-cluster-agent"};
  if (!e.clusterAgents) {
    c.verdict = Verdict::kWarn;
    c.problem = "migration-not-checked";
    c.summary = "Cluster Agent Deployments not checked: " + e.clusterAgents.error().message;
    c.fix = "run doctor as a user who may list deployments in every namespace";
    return c;
  }
  const auto* items =
      e.clusterAgents->is_object() ? e.clusterAgents->as_object().if_contains("items") : nullptr;
  std::vector<std::string> serving;
  if (items && items->is_array()) {
    for (const auto& d : items->as_array()) {
      if (!d.is_object()) continue;
      const auto* metadata = objectAt(d.as_object(), "metadata");
      const auto* spec = objectAt(d.as_object(), "spec");
      const auto* replicas = spec ? spec->if_contains("replicas") : nullptr;
      int64_t count = replicas && replicas->is_int64() ? replicas->as_int64() : 1;
      bool provider = false;
      if (const auto* podSpec = objectAt(objectAt(spec, "template"), "spec")) {
        const auto* list = podSpec->if_contains("containers");
        for (const auto& container :
             list && list->is_array() ? list->as_array() : boost::json::array{}) {
          const auto* env =
              container.is_object() ? container.as_object().if_contains("env") : nullptr;
          for (const auto& var : env && env->is_array() ? env->as_array() : boost::json::array{}) {
            if (!var.is_object()) continue;
            std::string value = core::lowercase(str(var.as_object(), "value"));
            provider = provider ||
                       (str(var.as_object(), "name") == "DD_EXTERNAL_METRICS_PROVIDER_ENABLED" &&
                        (value == "true" || value == "1" || value == "t"));
          }
        }
      }
      if (provider && count > 0) {
        serving.push_back(str(metadata, "namespace") + "/" + str(metadata, "name") + " (" +
                          std::to_string(count) + " replicas, " + helmOwner(metadata) + ")");
      }
    }
  }
  if (serving.empty()) {
    c.summary = "no Cluster Agent runs an external metrics provider";
    return c;
  }
  c.verdict = Verdict::kWarn;
  c.problem = "cluster-agent-still-serving";
  c.summary = std::to_string(serving.size()) +
              " Cluster Agent Deployment(s) still run the external metrics provider";
  for (const auto& s : serving) c.evidence.push_back("Deployment " + s);
  c.fix =
      "once the APIService points at xmetrics, turn the Cluster Agent's provider off: helm upgrade "
      "<release> datadog/datadog --reuse-values --set clusterAgent.metricsProvider.enabled=false "
      "(keep the APIService and CRD first: docs/migration.md); two providers both write "
      "DatadogMetric status";
  return c;
}

Check crdCheck(const Evidence& e) {
  Check c{.name = "migration-crd"};
  if (!e.datadogMetricCrd) {
    if (e.datadogMetricCrd.error().status == 404) {
      c.summary = "no DatadogMetric CRD installed";
      return c;
    }
    c.verdict = Verdict::kWarn;
    c.problem = "migration-not-checked";
    c.summary = "DatadogMetric CRD not read: " + e.datadogMetricCrd.error().message;
    c.fix = "run doctor as a user who may get customresourcedefinitions";
    return c;
  }
  const auto* metadata = metadataOf(*e.datadogMetricCrd);
  bool helm = str(objectAt(metadata, "labels"), "app.kubernetes.io/managed-by") == "Helm";
  if (!helm || kept(metadata)) {
    c.summary = std::string("the DatadogMetric CRD ") +
                (helm ? "belongs to " + helmOwner(metadata) + " and is kept on its uninstall"
                      : "is not managed by Helm");
    return c;
  }
  c.verdict = Verdict::kWarn;
  c.problem = "crd-deleted-with-its-release";
  c.summary = "the DatadogMetric CRD belongs to " + helmOwner(metadata) +
              " without helm.sh/resource-policy: keep: that release's uninstall (or an upgrade "
              "with useDatadogMetrics=false) deletes it and every DatadogMetric";
  c.fix =
      "kubectl annotate crd datadogmetrics.datadoghq.com helm.sh/resource-policy=keep "
      "(docs/migration.md)";
  return c;
}

}  // namespace

std::vector<Check> checkMigration(const Evidence& e) {
  return {settingsCheck(e), apiServiceCheck(e), clusterAgentCheck(e), crdCheck(e)};
}

}  // namespace xmetrics::doctor

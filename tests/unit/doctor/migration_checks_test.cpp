// The migration section alone, from Evidence shaped like what the datadog chart leaves.

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "doctor/checks.hpp"

namespace xmetrics::doctor {
namespace {

boost::json::value json(std::string_view text) { return boost::json::parse(text); }

const Check& named(const std::vector<Check>& checks, std::string_view name) {
  for (const auto& c : checks) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no check " + std::string(name));
}

// What the datadog chart 3.240.0 leaves in CRD mode (tests/integration/fixtures/datadog-chart).
Evidence clusterAgentLeftovers() {
  Evidence e;
  e.apiService = json(R"j({"metadata":{"name":"v1beta1.external.metrics.k8s.io",
    "labels":{"helm.sh/chart":"datadog-3.240.0","app.kubernetes.io/instance":"datadog-agent",
              "app.kubernetes.io/managed-by":"Helm"},
    "annotations":{"meta.helm.sh/release-name":"datadog-agent","meta.helm.sh/release-namespace":"datadog"}},
    "spec":{"service":{"namespace":"datadog","name":"datadog-agent-cluster-agent-metrics-api","port":8443}}})j");
  e.datadogMetricCrd = json(R"j({"metadata":{"name":"datadogmetrics.datadoghq.com",
    "labels":{"helm.sh/chart":"datadog-crds-2.23.0","app.kubernetes.io/managed-by":"Helm",
              "app.kubernetes.io/instance":"datadog-agent"},
    "annotations":{"meta.helm.sh/release-name":"datadog-agent"}}})j");
  e.clusterAgents = json(R"j({"items":[{"metadata":{"namespace":"datadog",
    "name":"datadog-agent-cluster-agent","labels":{"helm.sh/chart":"datadog-3.240.0"}},
    "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"cluster-agent","env":[
      {"name":"DD_EXTERNAL_METRICS_PROVIDER_ENABLED","value":"true"}]}]}}}}]})j");
  e.status = *core::parseStatusReport(json(R"j({"metrics":[],"backends":[],"poller":{},
    "configuration":{"backend":"datadog",
      "backendReason":"datadog-api-key is set (environment variable DD_API_KEY) and no backend setting is given",
      "warnings":["environment variable DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE = 50 is outside 1-35"],
      "environment":[{"variable":"DD_SITE","level":"info","text":"read as datadog-site"},
                     {"variable":"DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL","level":"warn",
                      "text":"unknown"}]}})j"));
  return e;
}

TEST(CheckMigration, SettingsSayWhichBackendAndHowEachVariableWasApplied) {
  auto c = named(checkMigration(clusterAgentLeftovers()), "migration-settings");
  EXPECT_EQ(c.verdict, Verdict::kWarn);
  EXPECT_NE(c.summary.find("backend datadog: datadog-api-key is set"), std::string::npos);
  ASSERT_EQ(c.evidence.size(), 3u);
  EXPECT_NE(c.evidence[0].find("CHUNK_SIZE = 50"), std::string::npos);
  EXPECT_EQ(c.evidence[1], "DD_SITE: read as datadog-site");
  EXPECT_EQ(c.evidence[2], "WARN DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL: unknown");
}

TEST(CheckMigration, TheClusterAgentsLeftoversAreEachNamedWithTheFix) {
  auto checks = checkMigration(clusterAgentLeftovers());
  const auto& api = named(checks, "migration-apiservice");
  EXPECT_EQ(api.verdict, Verdict::kWarn);
  EXPECT_NE(api.summary.find("release datadog-agent (chart datadog-3.240.0)"), std::string::npos);
  EXPECT_NE(api.summary.find("uninstalling that release deletes it"), std::string::npos);
  const auto& agent = named(checks, "migration-cluster-agent");
  EXPECT_EQ(agent.verdict, Verdict::kWarn);
  EXPECT_NE(agent.evidence[0].find("datadog/datadog-agent-cluster-agent (2 replicas"),
            std::string::npos);
  EXPECT_NE(agent.fix.find("clusterAgent.metricsProvider.enabled=false"), std::string::npos);
  const auto& crd = named(checks, "migration-crd");
  EXPECT_EQ(crd.verdict, Verdict::kWarn);
  EXPECT_NE(crd.fix.find("helm.sh/resource-policy=keep"), std::string::npos);
}

TEST(CheckMigration, AfterTheCutoverEverythingIsOk) {
  auto e = clusterAgentLeftovers();
  e.apiService = json(R"j({"metadata":{"labels":{"helm.sh/chart":"xmetrics-0.1.0"}}})j");
  e.datadogMetricCrd = json(R"j({"metadata":{"labels":{"app.kubernetes.io/managed-by":"Helm",
    "helm.sh/chart":"datadog-crds-2.23.0"},"annotations":{"helm.sh/resource-policy":"keep"}}})j");
  e.clusterAgents = json(R"j({"items":[{"metadata":{"namespace":"datadog","name":"dca"},
    "spec":{"replicas":0,"template":{"spec":{"containers":[{"env":[
      {"name":"DD_EXTERNAL_METRICS_PROVIDER_ENABLED","value":"true"}]}]}}}}]})j");
  auto checks = checkMigration(e);
  EXPECT_EQ(named(checks, "migration-apiservice").verdict, Verdict::kOk);
  EXPECT_EQ(named(checks, "migration-cluster-agent").verdict, Verdict::kOk);
  EXPECT_EQ(named(checks, "migration-crd").verdict, Verdict::kOk);
  e.datadogMetricCrd = std::unexpected(kube::KubeError{.status = 404, .message = "not found"});
  EXPECT_EQ(named(checkMigration(e), "migration-crd").summary, "no DatadogMetric CRD installed");
}

}  // namespace
}  // namespace xmetrics::doctor

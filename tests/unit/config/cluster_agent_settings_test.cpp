#include "config/cluster_agent_settings.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "backends/registry.hpp"

namespace xmetrics::config {
namespace {

std::vector<Setting> rows() { return serveSettings(backends::registeredBackends().settings()); }

const ServeOptions::EnvironmentNote* noteFor(
    const std::vector<ServeOptions::EnvironmentNote>& notes, std::string_view variable) {
  auto it = std::ranges::find_if(notes, [&](const auto& n) { return n.variable == variable; });
  return it == notes.end() ? nullptr : &*it;
}

TEST(ClusterAgentVariable, IsHowTheAgentBindsItsKeys) {
  EXPECT_EQ(clusterAgentVariable("external_metrics_provider.refresh_period"),
            "DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD");
  EXPECT_EQ(clusterAgentVariable("proxy.no_proxy"), "DD_PROXY_NO_PROXY");
  EXPECT_EQ(clusterAgentVariable("api_key"), "DD_API_KEY");
}

// A "same name and meaning" row that does not read the variable would be a silent drop.
TEST(ClusterAgentSettings, EverySameSettingIsReadByTheXmetricsSettingItNames) {
  auto settings = rows();
  for (const auto& s : clusterAgentSettings()) {
    if (s.kind != ClusterAgentSetting::Kind::Same) continue;
    auto row =
        std::ranges::find_if(settings, [&](const Setting& r) { return r.name == s.xmetrics; });
    ASSERT_NE(row, settings.end()) << s.key << " names " << s.xmetrics << ", not a setting";
    EXPECT_NE(std::ranges::find(row->env, clusterAgentVariable(s.key)), row->env.end())
        << s.xmetrics << " does not read " << clusterAgentVariable(s.key);
  }
}

TEST(ClusterAgentSettings, EveryOneIsInTheConfigurationReference) {
  std::ifstream in(std::string(XMETRICS_SOURCE_DIR) + "/docs/configuration.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(doc.empty());
  for (const auto& s : clusterAgentSettings()) {
    EXPECT_NE(doc.find("| `" + s.key + "` |"), std::string::npos) << s.key << " is not documented";
  }
}

// The Cluster Agent's whole environment as the datadog chart renders it (extract-crd-ha.yaml).
TEST(ReviewClusterAgentVariables, TheDatadogChartsEnvironmentIsFullyAccountedFor) {
  std::map<std::string, std::string> env = {
      {"DD_POD_NAME", "datadog-agent-cluster-agent-abc"},
      {"DD_HEALTH_PORT", "5556"},
      {"DD_API_KEY", "k"},
      {"DD_APP_KEY", "a"},
      {"DD_CLUSTER_NAME", "prod-eu"},
      {"DD_SITE", "datadoghq.eu"},
      {"DD_EXTERNAL_METRICS_PROVIDER_ENABLED", "true"},
      {"DD_EXTERNAL_METRICS_PROVIDER_PORT", "8443"},
      {"DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER", "false"},
      {"DD_EXTERNAL_METRICS_PROVIDER_USE_DATADOGMETRIC_CRD", "true"},
      {"DD_EXTERNAL_METRICS_AGGREGATOR", "avg"},
      {"DD_ADMISSION_CONTROLLER_ENABLED", "true"},
      {"DD_CLUSTER_CHECKS_ENABLED", "true"},
      {"DD_LOG_LEVEL", "INFO"},
      {"DD_LEADER_ELECTION", "true"},
      {"DD_LEADER_ELECTION_DEFAULT_RESOURCE", "configmap"},
      {"DD_LEADER_LEASE_NAME", "datadog-agent-leader-election"},
      {"DD_KUBE_RESOURCES_NAMESPACE", "datadog"},
      {"DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL", "15"},
  };
  auto notes = reviewClusterAgentVariables(env, rows(),
                                           {{"secure-port", "flag --secure-port"},
                                            {"datadog-site", "environment variable DD_SITE"},
                                            {"pod-name", "environment variable DD_POD_NAME"}});
  EXPECT_EQ(noteFor(notes, "DD_SITE")->text, "read as datadog-site");
  EXPECT_EQ(noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_PORT")->text,
            "shadowed by flag --secure-port, which wins (secure-port)");
  EXPECT_EQ(noteFor(notes, "DD_POD_NAME")->text, "read as pod-name");
  // Harmless values of settings that do not apply are info, not warnings.
  EXPECT_EQ(noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER")->level, "info");
  EXPECT_EQ(noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_ENABLED")->level, "info");
  EXPECT_EQ(noteFor(notes, "DD_HEALTH_PORT")->level, "info");
  EXPECT_NE(noteFor(notes, "DD_HEALTH_PORT")->text.find("/readyz"), std::string::npos);
  EXPECT_NE(noteFor(notes, "DD_LEADER_ELECTION_DEFAULT_RESOURCE")->text.find("Lease"),
            std::string::npos);
  // Not a Cluster Agent setting at all: warned, with what was probably meant.
  const auto* polling = noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL");
  ASSERT_NE(polling, nullptr);
  EXPECT_EQ(polling->level, "warn");
  EXPECT_NE(polling->text.find("unknown"), std::string::npos);
  EXPECT_NE(polling->text.find("DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD"), std::string::npos);
  // Other Cluster Agent features: one grouped line naming each.
  const auto* others = noteFor(notes, "");
  ASSERT_NE(others, nullptr);
  EXPECT_NE(others->text.find("DD_ADMISSION_CONTROLLER_ENABLED"), std::string::npos);
  EXPECT_NE(others->text.find("DD_CLUSTER_CHECKS_ENABLED"), std::string::npos);
  // Every variable has its note (the grouped ones in the one line).
  for (const auto& [name, value] : env) {
    bool inGroup = others->text.find(name) != std::string::npos;
    EXPECT_TRUE(noteFor(notes, name) || inGroup) << name << " has no note";
  }
}

TEST(ReviewClusterAgentVariables, ValuesThatWouldChangeBehaviourAreWarnings) {
  auto notes = reviewClusterAgentVariables({{"DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER", "1"},
                                            {"DD_EXTERNAL_METRICS_PROVIDER_ENABLED", "false"},
                                            {"DD_EXTERNAL_METRICS_PROVIDER_NUM_WORKERS", "8"}},
                                           rows(), {});
  for (const auto* v :
       {"DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER", "DD_EXTERNAL_METRICS_PROVIDER_ENABLED",
        "DD_EXTERNAL_METRICS_PROVIDER_NUM_WORKERS"}) {
    ASSERT_NE(noteFor(notes, v), nullptr) << v;
    EXPECT_EQ(noteFor(notes, v)->level, "warn") << v;
  }
  EXPECT_NE(
      noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER")->text.find("not applicable"),
      std::string::npos);
}

// Of two variables for one setting, the one that lost says which won; a file key is its variable.
TEST(ReviewClusterAgentVariables, TheVariableThatLostSaysWhichWon) {
  auto notes = reviewClusterAgentVariables(
      {{"DD_API_KEY", "k1"},
       {"DD_EXTERNAL_METRICS_PROVIDER_API_KEY", "k2"},
       {"DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD", "15"},
       {"DD_SITE", ""}},
      rows(),
      {{"datadog-api-key", "environment variable DD_EXTERNAL_METRICS_PROVIDER_API_KEY"},
       {"refresh-period", "\"external_metrics_provider.refresh_period\" in /etc/dd.yaml"},
       {"datadog-site", "default"}});
  EXPECT_EQ(noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_API_KEY")->text,
            "read as datadog-api-key");
  EXPECT_EQ(noteFor(notes, "DD_API_KEY")->text,
            "shadowed by environment variable DD_EXTERNAL_METRICS_PROVIDER_API_KEY, which wins "
            "(datadog-api-key)");
  EXPECT_EQ(noteFor(notes, "DD_EXTERNAL_METRICS_PROVIDER_REFRESH_PERIOD")->text,
            "read as refresh-period");
  EXPECT_EQ(noteFor(notes, "DD_SITE")->text, "empty: ignored (datadog-site keeps its default)");
}

TEST(ReviewClusterAgentVariables, OtherVariablesAreNotReviewed) {
  EXPECT_TRUE(
      reviewClusterAgentVariables({{"HOME", "/root"}, {"KUBERNETES", "yes"}}, rows(), {}).empty());
}

}  // namespace
}  // namespace xmetrics::config

#include "catalog/datadog_metric.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace xmetrics::catalog {
namespace {

using namespace std::chrono_literals;

boost::json::object object(std::string_view json) { return boost::json::parse(json).as_object(); }

TemplateContext context(std::string cluster = "prod-eu") {
  return {.clusterName = std::move(cluster), .env = [](const std::string& name) {
            return name == "ENV" ? std::optional<std::string>("prod") : std::nullopt;
          }};
}

TEST(DatadogMetric, ReadsTheSpecAsTheClusterAgentDoes) {
  auto m = parseDatadogMetric(object(R"json({
    "metadata": {"namespace": "shop", "name": "checkout-rps",
                 "annotations": {"external-metrics.datadoghq.com/always-active": "true"}},
    "spec": {"query": "avg:nginx.requests{service:checkout}.rollup(30)",
             "maxAge": "5m", "timeWindow": "1h30m"}})json"),
                              context());
  EXPECT_EQ(m.id(), "shop/checkout-rps");
  EXPECT_EQ(m.query, "avg:nginx.requests{service:checkout}.rollup(30)");
  EXPECT_EQ(m.maxAge, 300s);
  EXPECT_EQ(m.timeWindow, 5400s);
  EXPECT_TRUE(m.alwaysActive);
  EXPECT_FALSE(m.autogen);
  EXPECT_EQ(m.invalidReason, "");
}

TEST(DatadogMetric, AutogenObjectsAreRecognisedByNameAndExternalMetricName) {
  auto m = parseDatadogMetric(object(R"json({
    "metadata": {"namespace": "xmetrics", "name": "dcaautogen-0123"},
    "spec": {"query": "avg:q{*}.rollup(30)", "externalMetricName": "Q"}})json"),
                              context());
  EXPECT_TRUE(m.autogen);
  EXPECT_EQ(m.externalMetricName, "q");  // names compare lowercased everywhere
  auto manual = parseDatadogMetric(object(R"json({
    "metadata": {"namespace": "xmetrics", "name": "dcaautogen-0123"},
    "spec": {"query": "avg:q{*}.rollup(30)"}})json"),
                                   context());
  EXPECT_FALSE(manual.autogen);
}

TEST(DatadogMetric, ResolvesTemplateVariables) {
  EXPECT_EQ(resolveTemplateVariables(
                "avg:m{kube_cluster_name:%%tag_kube_cluster_name%%,env:%%env_ENV%%}", context()),
            "avg:m{kube_cluster_name:prod-eu,env:prod}");
  EXPECT_EQ(resolveTemplateVariables("avg:m{*}", context()), "avg:m{*}");
}

TEST(DatadogMetric, AnUnresolvableVariableMakesTheObjectInvalidAndSaysWhy) {
  auto missingEnv = parseDatadogMetric(object(R"json({
    "metadata": {"namespace": "a", "name": "b"},
    "spec": {"query": "avg:m{env:%%env_NOPE%%}"}})json"),
                                       context());
  EXPECT_EQ(missingEnv.query, "");
  EXPECT_NE(missingEnv.invalidReason.find("%%env_NOPE%%"), std::string::npos);
  EXPECT_NE(missingEnv.invalidReason.find("NOPE is not set"), std::string::npos);

  auto noCluster = resolveTemplateVariables("avg:m{c:%%tag_kube_cluster_name%%}", context(""));
  ASSERT_FALSE(noCluster);
  EXPECT_NE(noCluster.error().find("--cluster-name"), std::string::npos);

  EXPECT_FALSE(resolveTemplateVariables("avg:m{c:%%tag_host%%}", context()));
  // Credentials never become part of a query (it is shown in status, logs and HPA conditions).
  TemplateContext leaky{.clusterName = "c", .env = [](const std::string&) {
                          return std::optional<std::string>("0f1e2d3c4b5a6978");
                        }};
  for (const char* var : {"DD_API_KEY", "dd_app_key", "GITHUB_TOKEN", "DB_PASSWORD", "MY_SECRET",
                          "DD_EXTERNAL_METRICS_PROVIDER_ENDPOINTS", "DD_PROXY_HTTPS"}) {
    auto r = resolveTemplateVariables(std::string("avg:m{k:%%env_") + var + "%%}", leaky);
    ASSERT_FALSE(r) << var;
    EXPECT_EQ(r.error().find("0f1e2d3c4b5a6978"), std::string::npos);
    EXPECT_NE(r.error().find("looks like a credential"), std::string::npos);
  }
  EXPECT_FALSE(resolveTemplateVariables("avg:m{c:%%env_X}", context()));
}

TEST(DatadogMetric, BadDurationsAndAMissingQueryAreReasonsNotCrashes) {
  auto m = parseDatadogMetric(object(R"json({
    "metadata": {"namespace": "a", "name": "b"},
    "spec": {"maxAge": "soon"}})json"),
                              context());
  EXPECT_NE(m.invalidReason.find("spec.maxAge"), std::string::npos);
  EXPECT_NE(m.invalidReason.find("spec.query is empty"), std::string::npos);
  auto noSpec = parseDatadogMetric(
      object(R"json({"metadata": {"namespace": "a", "name": "b"}})json"), context());
  EXPECT_NE(noSpec.invalidReason.find("spec.query is empty"), std::string::npos);
}

TEST(DatadogMetric, ReferencesFollowTheClusterAgentsPattern) {
  auto ok = parseReference("datadogmetric@shop:checkout-rps");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->ns, "shop");
  EXPECT_EQ(ok->name, "checkout-rps");
  for (const char* bad :
       {"datadogmetric@shop", "datadogmetric@:x", "datadogmetric@Shop:x", "datadogmetric@shop:x.y",
        "datadogmetric@shop:-x", "datadogmetric@a:b:c"}) {
    auto r = parseReference(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().find("datadogmetric@<namespace>:<name>"), std::string::npos);
  }
}

TEST(DatadogMetric, AutogenNamesAreTheClusterAgents) {
  // "dcaautogen-" + hex of the first 19 bytes of SHA-256 of the query (computed independently).
  EXPECT_EQ(autogenName("avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)"),
            "dcaautogen-fbb10d6e0575de9d0d968b712d287095a2d69c");
  EXPECT_EQ(autogenName("a").size(), std::string("dcaautogen-").size() + 38);
}

TEST(DatadogMetric, ObjectNames) {
  EXPECT_TRUE(isObjectName("proxy-dynamic-min-replicas"));
  EXPECT_TRUE(isObjectName("nginx.requests"));
  EXPECT_FALSE(isObjectName("nginx.net.request_per_s"));
  EXPECT_FALSE(isObjectName("Upper"));
  EXPECT_FALSE(isObjectName("-x"));
  EXPECT_FALSE(isObjectName(""));
}

}  // namespace
}  // namespace xmetrics::catalog

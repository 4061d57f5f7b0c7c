#include "flare/flare.hpp"

#include <gtest/gtest.h>

namespace xmetrics::flare {
namespace {

TEST(FlareRedaction, CredentialLikeEnvValuesAndSecretPayloadsNeverTravel) {
  std::string deployment = R"json({"kind": "DeploymentList", "items": [{
    "metadata": {"name": "xmetrics", "managedFields": [{"manager": "kubectl"}],
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "DD_API_KEY=abc123",
                                 "team": "platform"}},
    "spec": {"template": {"spec": {"containers": [{"name": "xmetrics", "env": [
      {"name": "DD_API_KEY", "value": "abc123"},
      {"name": "DD_APP_KEY", "value": "def456"},
      {"name": "PROMETHEUS_BEARER_TOKEN", "value": "tok789"},
      {"name": "DD_SITE", "value": "datadoghq.eu"},
      {"name": "DD_APP_KEY_FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "dd", "key": "app"}}}
    ]}]}}}}]})json";
  auto out = redactForFlare(deployment);
  for (const char* secret : {"abc123", "def456", "tok789"}) {
    EXPECT_EQ(out.find(secret), std::string::npos) << secret;
  }
  EXPECT_NE(out.find("datadoghq.eu"), std::string::npos);  // not a credential: kept
  EXPECT_NE(out.find("secretKeyRef"), std::string::npos);  // a reference, not a value
  EXPECT_NE(out.find("\"team\":\"platform\""), std::string::npos);
  EXPECT_EQ(out.find("managedFields"), std::string::npos);

  auto secret = redactForFlare(
      R"({"kind": "Secret", "metadata": {"name": "dd"}, "data": {"api": "c2VjcmV0"}, "stringData": {"x": "y"}})");
  EXPECT_EQ(secret.find("c2VjcmV0"), std::string::npos);
  EXPECT_EQ(secret.find("stringData"), std::string::npos);
  EXPECT_EQ(redactForFlare("not json"), "<not JSON; left out>");

  auto pod = redactForFlare(R"json({"spec": {"containers": [{
    "args": ["serve", "--datadog-api-key=abc123", "--backend=datadog", "--datadog-proxy=http://u:pw1@proxy:3128"],
    "env": [{"name": "DD_EXTERNAL_METRICS_PROVIDER_ENDPOINTS", "value": "[{\"api_key\": \"k2\"}]"},
            {"name": "DD_PROXY_HTTPS", "value": "http://user:pw2@proxy:3128"},
            {"name": "PROM_URL", "value": "https://admin:pw3@prom:9090"}]}]}})json");
  for (const char* secret : {"abc123", "pw1", "k2", "pw2", "pw3"}) {
    EXPECT_EQ(pod.find(secret), std::string::npos) << secret << " in " << pod;
  }
  EXPECT_NE(pod.find("--backend=datadog"), std::string::npos);
  EXPECT_NE(pod.find("prom:9090"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::flare

#include "app/stage_options.hpp"

#include <gtest/gtest.h>

namespace xmetrics::app {
namespace {

using std::chrono::seconds;

config::ServeOptions someOptions() {
  config::ServeOptions o;
  o.backend = "prometheus";
  o.backends = {"embedded"};
  o.aggregator = "max";
  o.rollupSeconds = 60;
  o.maxAge = seconds(180);
  o.refreshPeriod = seconds(15);
  o.useDatadogMetricCrd = true;
  o.metrics = {{.name = "queue", .ns = "shop", .backend = "embedded", .query = "q"}};
  return o;
}

TEST(CatalogOptions, CarryTheSettingsAndTheDefaultBackendFirst) {
  auto c = catalogOptions(someOptions(), true, "ops", {});
  EXPECT_EQ(c.inlineQuery.aggregator, query::Aggregator::kMax);
  EXPECT_EQ(c.inlineQuery.rollupSeconds, 60);
  EXPECT_EQ(c.maxAge, seconds(180));
  EXPECT_TRUE(c.useDatadogMetrics);
  EXPECT_EQ(c.autogenNamespace, "ops");
  EXPECT_EQ(c.defaultBackend, "prometheus");
  EXPECT_EQ(c.backends, (std::vector<std::string>{"prometheus", "embedded"}));
  ASSERT_EQ(c.configured.size(), 1u);
  EXPECT_EQ(c.configured[0].ns, "shop");
}

TEST(CatalogOptions, WithoutAClusterEveryMetricResolvesInline) {
  EXPECT_FALSE(catalogOptions(someOptions(), false, "xmetrics", {}).useDatadogMetrics);
}

TEST(ApiHandlerOptions, ReportTheEffectiveSettingsAsStarted) {
  auto o = someOptions();
  o.effective = {{"max-age", "3m", "flag --max-age", 1}};
  auto h = apiHandlerOptions(o, {});
  EXPECT_EQ(h.maxAge, seconds(180));
  EXPECT_EQ(h.refreshPeriod, seconds(15));
  ASSERT_TRUE(h.configReport);
  auto settings = h.configReport().at("settings").as_array();
  ASSERT_EQ(settings.size(), 1u);
  EXPECT_EQ(settings[0].at("source").as_string(), "flag --max-age");
  // The backend and why, and the review of the DD_* variables, travel with the settings.
  EXPECT_EQ(h.configReport().at("backendReason").as_string(), o.backendReason);
  ASSERT_TRUE(h.configuration);
  EXPECT_EQ(h.configuration->backend, o.backend);
}

TEST(ConnectionCap, FollowsTheMemoryLimitWithinItsBounds) {
  EXPECT_EQ(connectionCap(std::nullopt), 4096u);
  EXPECT_EQ(connectionCap(uint64_t{128} << 20), (uint64_t{64} << 20) / kConnectionBytes);
  EXPECT_EQ(connectionCap(uint64_t{128} << 20), 1638u);
  EXPECT_EQ(connectionCap(uint64_t{16} << 20), 204u);
  EXPECT_EQ(connectionCap(uint64_t{1} << 20), 64u);    // never below 64
  EXPECT_EQ(connectionCap(uint64_t{8} << 30), 4096u);  // never above 4096
}

TEST(PeerUrl, FlagThenPodIpThenLoopbackWithIpv6InBrackets) {
  config::ServeOptions o;
  EXPECT_EQ(peerUrl(o, 8443, nullptr), "https://127.0.0.1:8443");
  EXPECT_EQ(peerUrl(o, 8443, "fd00::5"), "https://[fd00::5]:8443");
  o.peerUrl = "https://replica-0:9443";
  EXPECT_EQ(peerUrl(o, 8443, "10.0.0.5"), "https://replica-0:9443");
  EXPECT_EQ(serveUrl("::1", 1), "https://[::1]:1");
}

TEST(DogStatsdRelayAddress, TheListenersNumericHostOrThePodIpForEveryInterface) {
  EXPECT_EQ(dogstatsdRelayAddress(":8125", 8125, "10.0.0.5"), "10.0.0.5:8125");
  EXPECT_EQ(dogstatsdRelayAddress("0.0.0.0:8125", 8125, "fd00::5"), "[fd00::5]:8125");
  EXPECT_EQ(dogstatsdRelayAddress("[::]:0", 40001, "10.0.0.5"), "10.0.0.5:40001");
  EXPECT_EQ(dogstatsdRelayAddress("127.0.0.1:0", 40002, "10.0.0.5"), "127.0.0.1:40002");
  EXPECT_EQ(dogstatsdRelayAddress(":8125", 8125, nullptr), "");              // no pod IP
  EXPECT_EQ(dogstatsdRelayAddress("localhost:8125", 8125, "10.0.0.5"), "");  // a name
}

}  // namespace
}  // namespace xmetrics::app

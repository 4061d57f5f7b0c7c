#include <gtest/gtest.h>

#include <algorithm>

#include "backends/embedded/time_series_store.hpp"
#include "backends/registry.hpp"

namespace xmetrics::app {
namespace {

// The backends `serve` is built with, as app::Service finds them.
TEST(RegisteredBackends, ListEveryEnabledBackendInOrderWithItsSettingsRows) {
  const auto& registry = backends::registeredBackends();
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"embedded", "datadog", "prometheus"}));
  auto settings = config::serveSettings(registry.settings());
  auto has = [&](const std::string& name) {
    return std::ranges::any_of(settings, [&](const auto& s) { return s.name == name; });
  };
  EXPECT_TRUE(has("datadog-api-key"));
  EXPECT_TRUE(has("prometheus-url"));
  EXPECT_TRUE(has("secure-port"));
}

TEST(RegisteredBackends, AnUnknownNameIsNotAvailableInThisBuild) {
  config::ServeOptions options;
  auto made = backends::registeredBackends().make(
      "graphite",
      {.options = options, .timeSeries = std::make_shared<backends::embedded::TimeSeriesStore>()});
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error(), "backend \"graphite\" is not available in this build");
}

TEST(RegisteredBackends, ABackendChecksItsOwnSettings) {
  auto options = config::resolveServeOptions(
      {.flags = {{"backend", "prometheus"}, {"prometheus-url", "ftp://prom:9090"}}},
      backends::registeredBackends().settings());
  ASSERT_TRUE(options);
  auto made = backends::registeredBackends().make(
      "prometheus",
      {.options = *options, .timeSeries = std::make_shared<backends::embedded::TimeSeriesStore>()});
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().find("--prometheus-url"), std::string::npos) << made.error();
}

}  // namespace
}  // namespace xmetrics::app

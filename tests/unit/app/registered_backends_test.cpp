#include <gtest/gtest.h>

#include <algorithm>

#include "backends/registry.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::app {
namespace {

// The backends `serve` is built with, as app::Service finds them: whatever the XMETRICS_BACKEND_*
// options left in, each with its rows in the settings table.
TEST(RegisteredBackends, ListEveryEnabledBackendWithItsSettingsRows) {
  const auto& registry = backends::registeredBackends();
  auto backendSettings = registry.settings();
  ASSERT_EQ(registry.names().size(), backendSettings.size());
  auto settings = config::serveSettings(backendSettings);
  auto has = [&](const std::string& name) {
    return std::ranges::any_of(settings, [&](const auto& s) { return s.name == name; });
  };
  EXPECT_TRUE(has("secure-port"));
  for (std::size_t i = 0; i < backendSettings.size(); ++i) {
    EXPECT_EQ(backendSettings[i].name, registry.names()[i]);
    for (const auto& row : backendSettings[i].rows) EXPECT_TRUE(has(row.setting.name));
  }
}

TEST(RegisteredBackends, AnUnknownNameIsNotAvailableInThisBuild) {
  config::ServeOptions options;
  auto made = backends::registeredBackends().make(
      "graphite", {.options = options, .timeSeries = std::make_shared<tsdb::TimeSeriesStore>()});
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error(), "backend \"graphite\" is not available in this build");
}

TEST(RegisteredBackends, ABackendChecksItsOwnSettings) {
  auto names = backends::registeredBackends().names();
  if (std::ranges::find(names, "prometheus") == names.end()) {
    GTEST_SKIP() << "built with XMETRICS_BACKEND_PROMETHEUS=OFF";
  }
  auto options = config::resolveServeOptions(
      {.flags = {{"backend", "prometheus"}, {"prometheus-url", "ftp://prom:9090"}}},
      backends::registeredBackends().settings());
  ASSERT_TRUE(options);
  auto made = backends::registeredBackends().make(
      "prometheus", {.options = *options, .timeSeries = std::make_shared<tsdb::TimeSeriesStore>()});
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().find("--prometheus-url"), std::string::npos) << made.error();
}

}  // namespace
}  // namespace xmetrics::app

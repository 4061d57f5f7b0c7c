#include "backends/embedded/embedded_backend.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace xmetrics::backends::embedded {
namespace {

using std::chrono::seconds;

const core::Clock::time_point kT0{seconds(1'700'000'010)};

tsdb::Observation gauge(std::string_view name, double value, std::vector<std::string_view> tags) {
  tsdb::Observation m;
  m.name = name;
  m.type = tsdb::MetricType::kGauge;
  m.values = {value};
  m.tags = std::move(tags);
  return m;
}

class EmbeddedBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store->ingest(gauge("nginx.net.request_per_s", 12, {"app:puppet", "env:demo"}), kT0);
    store->ingest(gauge("nginx.net.request_per_s", 99, {"app:other", "env:demo"}), kT0);
  }
  std::shared_ptr<tsdb::TimeSeriesStore> store = std::make_shared<tsdb::TimeSeriesStore>();
  EmbeddedBackend backend{store};
};

TEST_F(EmbeddedBackendTest, AnswersTheClusterAgentsInlineQuery) {
  std::vector<BackendQuery> batch = {
      {"avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)", seconds(300)}};
  auto results = backend.fetch(batch, kT0 + seconds(30));
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].has_value()) << results[0].error();
  EXPECT_DOUBLE_EQ(results[0]->value, 12.0);
  EXPECT_EQ(results[0]->time, kT0);
}

TEST_F(EmbeddedBackendTest, ABadQueryFailsAloneAndNamesItsPosition) {
  std::vector<BackendQuery> batch = {
      {"sum:nginx.net.request_per_s{*}", seconds(300)},
      {"avg:nginx.net.request_per_s{env:demo AND !app:other}", seconds(300)},
      {"max:nginx.net.request_per_s{env:demo}", seconds(300)},
      {"avg:unknown.metric{*}", seconds(300)},
  };
  auto results = backend.fetch(batch, kT0 + seconds(10));
  ASSERT_EQ(results.size(), 4u);
  ASSERT_TRUE(results[0].has_value());
  EXPECT_DOUBLE_EQ(results[0]->value, 111.0);
  ASSERT_FALSE(results[1].has_value());
  EXPECT_NE(results[1].error().find("avg:nginx.net.request_per_s{env:demo AND !app:other}"),
            std::string::npos);
  EXPECT_NE(results[1].error().find("at position 41"), std::string::npos) << results[1].error();
  EXPECT_NE(results[1].error().find("cannot mix"), std::string::npos);
  ASSERT_TRUE(results[2].has_value());
  EXPECT_DOUBLE_EQ(results[2]->value, 99.0);
  ASSERT_FALSE(results[3].has_value());
  EXPECT_NE(results[3].error().find("no series matches"), std::string::npos);
}

TEST_F(EmbeddedBackendTest, IsNamedEmbeddedAndAlwaysReachable) {
  EXPECT_EQ(backend.name(), "embedded");
  EXPECT_TRUE(backend.health().reachable);
  (void)backend.fetch({}, kT0);
  auto health = backend.health();
  EXPECT_TRUE(health.reachable);
  EXPECT_TRUE(health.lastError.empty());
  EXPECT_EQ(health.lastSuccess, kT0);
}

}  // namespace
}  // namespace xmetrics::backends::embedded

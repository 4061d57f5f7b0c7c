#include "backends/embedded/embedded_backend.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "query/coalesce.hpp"

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

namespace xmetrics::backends::embedded {
namespace {

// The same data asked per metric and coalesced: every value, timestamp, unit and error equal.
TEST(EmbeddedBackendCoalescing, GroupedAnswersEqualTheQueriesOwn) {
  auto store = std::make_shared<tsdb::TimeSeriesStore>();
  std::vector<std::string> names;  // the tags' storage outlives the ingest calls
  for (int q = 0; q < 12; ++q) {
    for (int t = 0; t < 6; ++t) {
      if (q == 5 && t > 1) continue;  // a queue that went quiet
      if (q == 9) continue;           // a queue with no series at all
      std::string queue = "queue:q" + std::to_string(q);
      std::string host = "host:h" + std::to_string(q % 3);
      auto at = kT0 + seconds(10 * t);
      store->ingest(gauge("jobs.depth", q * 10.0 + t, {queue, host, "env:prod"}), at);
      store->ingest(gauge("jobs.depth", q + 0.5, {queue, "env:dev"}), at);
    }
  }
  std::vector<BackendQuery> batch;
  for (std::string agg : {"avg", "sum", "max"}) {
    for (std::string rollup : {"", ".rollup(30)", ".rollup(max,60)"}) {
      for (int q = 0; q < 12; ++q) {
        batch.push_back({agg + ":jobs.depth{env:prod,queue:q" + std::to_string(q) + "}" + rollup,
                         seconds(300)});
      }
    }
  }
  batch.push_back({"avg:jobs.depth{queue:q1}", seconds(300)});
  batch.push_back({"avg:jobs.depth{queue:q2}", seconds(300)});
  // The batch does coalesce (9 groups of 12 values, one of two), or the comparison proves nothing.
  std::vector<query::CoalesceInput> inputs;
  for (const auto& q : batch) inputs.push_back({q.query, q.window.count()});
  auto plan = query::coalesce(inputs);
  EXPECT_EQ(plan.groups.size(), 10u);
  EXPECT_TRUE(plan.alone.empty());
  EmbeddedBackend coalesced(store, true);
  EmbeddedBackend alone(store, false);
  for (auto now : {kT0 + seconds(55), kT0 + seconds(200), kT0 + seconds(400)}) {
    auto a = coalesced.fetch(batch, now);
    auto b = alone.fetch(batch, now);
    ASSERT_EQ(a.size(), b.size());
    std::size_t valued = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].has_value(), b[i].has_value()) << batch[i].query;
      if (!a[i]) {
        EXPECT_EQ(a[i].error(), b[i].error()) << batch[i].query;
        continue;
      }
      ++valued;
      EXPECT_EQ(a[i]->value, b[i]->value) << batch[i].query;
      EXPECT_EQ(a[i]->time, b[i]->time) << batch[i].query;
      EXPECT_EQ(a[i]->unit, b[i]->unit) << batch[i].query;
    }
    if (now == kT0 + seconds(55)) {
      EXPECT_GT(valued, batch.size() / 2);
    }
  }
}

}  // namespace
}  // namespace xmetrics::backends::embedded

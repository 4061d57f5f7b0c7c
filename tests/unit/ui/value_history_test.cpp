#include "ui/value_history.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "core/time_format.hpp"

namespace xmetrics::ui {
namespace {

using std::chrono::seconds;

const core::Clock::time_point kT0 = *core::parseRfc3339("2026-12-07T12:00:00Z");

store::MetricValuePtr valueOf(const std::string& name, std::optional<double> v,
                              core::Clock::time_point pointTime, std::string error = "") {
  store::MetricIdentity id;
  id.ns = "default";
  id.metricName = name;
  id.maxAge = seconds(120);
  id.grace = seconds(30);
  auto value = std::make_shared<store::MetricValue>();
  value->metric = store::shareIdentity(std::move(id));
  if (v) value->sample = core::Sample{.value = *v, .time = pointTime};
  value->error = std::move(error);
  value->lastSuccess = v ? pointTime : core::Clock::time_point{};
  return value;
}

store::ValueSnapshot snapshotOf(std::vector<store::MetricValuePtr> values) {
  auto base = std::make_shared<store::ValueMap>();
  for (auto& v : values) base->put(std::move(v));
  store::ValueSnapshot s;
  s.base = std::move(base);
  return s;
}

TEST(Validity, AsTheRequestPathJudgesIt) {
  auto now = kT0 + seconds(200);
  EXPECT_EQ(validityOf(*valueOf("a", 1, now - seconds(10)), now), Validity::kValid);
  EXPECT_EQ(validityOf(*valueOf("a", 1, now - seconds(130)), now), Validity::kGrace);
  EXPECT_EQ(validityOf(*valueOf("a", 1, now - seconds(151)), now), Validity::kStale);
  EXPECT_EQ(validityOf(*valueOf("a", std::nullopt, now, "no series"), now), Validity::kError);
  EXPECT_EQ(validityOf(*valueOf("a", std::nullopt, now), now), Validity::kNone);
  EXPECT_EQ(validityName(Validity::kGrace), "grace");
}

TEST(ValueHistory, KeepsTheLastCapacitySamplesOfEachMetricOldestFirst) {
  ValueHistory history(3);
  store::ServiceStatus status;
  auto key = valueOf("queue", 1, kT0)->key();
  for (int i = 0; i < 5; ++i) {
    auto t = kT0 + seconds(10 * i);
    history.sample(snapshotOf({valueOf("queue", 1.5 + i, t)}), status, t);
  }
  auto points = history.metric(key);
  ASSERT_EQ(points.size(), 3U);
  EXPECT_EQ(points[0].value, 3.5);
  EXPECT_EQ(points[2].value, 5.5);
  EXPECT_EQ(points[0].at, kT0 + seconds(20));
  EXPECT_EQ(points[2].at, kT0 + seconds(40));
  EXPECT_EQ(points[2].validity, Validity::kValid);
  EXPECT_EQ(history.metrics(), 1U);
  EXPECT_GE(history.approxBytes(), 3 * 5U);
}

TEST(ValueHistory, AMetricWithoutAValueIsNanAndAMetricNoLongerPublishedIsForgotten) {
  ValueHistory history(10);
  store::ServiceStatus status;
  auto failing = valueOf("failing", std::nullopt, kT0, "backend down");
  auto kept = valueOf("kept", 2, kT0);
  history.sample(snapshotOf({failing, kept}), status, kT0);
  auto points = history.metric(failing->key());
  ASSERT_EQ(points.size(), 1U);
  EXPECT_TRUE(std::isnan(points[0].value));
  EXPECT_EQ(points[0].validity, Validity::kError);

  history.sample(snapshotOf({kept}), status, kT0 + seconds(1));
  EXPECT_TRUE(history.metric(failing->key()).empty());
  EXPECT_EQ(history.metric(kept->key()).size(), 2U);
  EXPECT_EQ(history.metrics(), 1U);
}

TEST(ValueHistory, BackendsCallsAndErrorsAreSampledToo) {
  ValueHistory history(2);
  store::ServiceStatus status;
  status.backends.push_back({.name = "datadog"});
  status.backends[0].health.calls = 10;
  status.backends[0].health.callsByOutcome = {{"ok", 7}, {"rate_limited", 2}, {"error", 1}};
  history.sample(snapshotOf({}), status, kT0);
  status.backends[0].health.calls = 14;
  status.backends[0].health.callsByOutcome = {{"ok", 10}, {"rate_limited", 3}, {"error", 1}};
  history.sample(snapshotOf({}), status, kT0 + seconds(1));
  history.sample(snapshotOf({}), status, kT0 + seconds(2));
  auto points = history.backend("datadog");
  ASSERT_EQ(points.size(), 2U);  // capacity
  EXPECT_EQ(points[0].calls, 14U);
  EXPECT_EQ(points[0].errors, 4U);
  EXPECT_TRUE(history.backend("prometheus").empty());
}

TEST(ValueHistory, ZeroCapacityKeepsNothing) {
  ValueHistory history(0);
  auto v = valueOf("a", 1, kT0);
  history.sample(snapshotOf({v}), {}, kT0);
  EXPECT_TRUE(history.metric(v->key()).empty());
  EXPECT_EQ(history.metrics(), 0U);
}

TEST(HistorySampler, SamplesTheStoreUntilDestroyed) {
  store::ValueStore values;
  values.publish(snapshotOf({valueOf("a", 4, core::Clock::now())}));
  ValueHistory history(100);
  auto key = valueOf("a", 4, kT0)->key();
  {
    HistorySampler sampler(history, values, std::chrono::milliseconds(5));
    for (int i = 0; i < 400 && history.metric(key).size() < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  auto taken = history.metric(key).size();
  EXPECT_GE(taken, 3U);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(history.metric(key).size(), taken);  // stopped with the sampler
  EXPECT_EQ(history.metric(key).back().value, 4);
}

}  // namespace
}  // namespace xmetrics::ui

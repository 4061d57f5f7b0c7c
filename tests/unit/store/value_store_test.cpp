#include "store/value_store.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

namespace xmetrics::store {
namespace {

core::Clock::time_point at(int64_t unixSeconds) {
  return core::Clock::time_point(std::chrono::seconds(unixSeconds));
}

TEST(MetricKey, IsCaseInsensitiveOnTheNameOnly) {
  EXPECT_EQ(metricKey("Shop.Visits", "env=Prod"), metricKey("shop.visits", "env=Prod"));
  EXPECT_NE(metricKey("shop.visits", "env=Prod"), metricKey("shop.visits", "env=prod"));
  EXPECT_NE(metricKey("a", "b=c"), metricKey("a\x1f"
                                             "b",
                                             "=c"));
}

TEST(RenderValueList, IsTheExactShapeTheHpaDecodes) {
  MetricValue v;
  v.metricName = "queue_len";
  v.labels = {{"q", "a"}};
  v.sample = core::Sample{1.5, at(1777636800)};  // 2026-05-01T12:00:00Z
  auto body = boost::json::parse(renderValueList(v)).as_object();
  EXPECT_EQ(body.at("kind"), "ExternalMetricValueList");
  EXPECT_EQ(body.at("apiVersion"), "external.metrics.k8s.io/v1beta1");
  EXPECT_TRUE(body.at("metadata").as_object().empty());
  const auto& item = body.at("items").as_array().at(0).as_object();
  EXPECT_EQ(item.at("metricName"), "queue_len");
  EXPECT_EQ(item.at("metricLabels").as_object().at("q"), "a");
  EXPECT_EQ(item.at("timestamp"), "2026-05-01T12:00:00Z");
  EXPECT_EQ(item.at("value"), "1500m");
}

TEST(RenderValueList, NoSampleNoBody) { EXPECT_EQ(renderValueList(MetricValue{}), ""); }

TEST(ValueStore, ReadersKeepTheirSnapshotWhileANewOneIsPublished) {
  ValueStore store;
  ValueSnapshot first;
  auto v = std::make_shared<MetricValue>();
  v->metricName = "a";
  first.values["k"] = v;
  store.publish(std::move(first));
  auto held = store.snapshot();
  store.publish(ValueSnapshot{});
  EXPECT_NE(held->find("k"), nullptr);
  EXPECT_EQ(store.snapshot()->find("k"), nullptr);
  EXPECT_EQ(store.snapshot()->generation, held->generation + 1);
}

TEST(ValueStore, ConcurrentReadersSeeWholeSnapshots) {
  ValueStore store;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      auto s = store.snapshot();
      // Every snapshot published below holds exactly generation-many... entries or none.
      ASSERT_TRUE(s->values.empty() || s->values.size() == 3u);
    }
  });
  for (int i = 0; i < 2000; ++i) {
    ValueSnapshot next;
    for (const char* k : {"a", "b", "c"}) next.values[k] = std::make_shared<MetricValue>();
    store.publish(std::move(next));
  }
  done = true;
  reader.join();
  EXPECT_EQ(store.snapshot()->generation, 2000u);
}

}  // namespace
}  // namespace xmetrics::store

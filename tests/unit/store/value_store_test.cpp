#include "store/value_store.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/quantity.hpp"
#include "core/time_format.hpp"

namespace xmetrics::store {
namespace {

core::Clock::time_point at(int64_t unixSeconds) {
  return core::Clock::time_point(std::chrono::seconds(unixSeconds));
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

// The body as a boost::json tree serialises it: what renderValueList writes by hand, byte for byte.
std::string serialisedTree(const MetricValue& v) {
  boost::json::object labels;
  for (const auto& [k, val] : v.labels) labels[k] = val;
  boost::json::object item{{"metricName", v.metricName},
                           {"metricLabels", labels},
                           {"timestamp", core::rfc3339(v.sample->time)},
                           {"value", core::formatQuantity(v.sample->value)}};
  return boost::json::serialize(
      boost::json::object{{"kind", "ExternalMetricValueList"},
                          {"apiVersion", "external.metrics.k8s.io/v1beta1"},
                          {"metadata", boost::json::object{}},
                          {"items", boost::json::array{std::move(item)}}});
}

TEST(RenderValueList, IsByteForByteWhatAJsonTreeSerialises) {
  const std::vector<core::Labels> labelSets = {
      {},
      {{"q", "a"}},
      {{"app", "web"}, {"kube_namespace", "prod"}, {"zone", "eu-west-1a"}},
      {{"quote", "say \"hi\""}, {"back\\slash", "tab\there"}, {"ctl", std::string("\x01\x1f", 2)}},
      {{"utf8", "caf\xc3\xa9 \xe2\x82\xac"}},
  };
  const std::vector<std::string> names = {"queue_len", "datadogmetric@ns:name", "we\"ird\\name\n"};
  const std::vector<double> values = {0, -0.0, 1.5, -2, 1e-9, 123456789.25, 3e21};
  for (const auto& labels : labelSets) {
    for (const auto& name : names) {
      for (double value : values) {
        MetricValue v;
        v.metricName = name;
        v.labels = labels;
        v.sample = core::Sample{value, at(1777636800)};
        ASSERT_EQ(renderValueList(v), serialisedTree(v)) << name << " " << value;
      }
    }
  }
}

TEST(RenderValueList, NoSampleNoBody) { EXPECT_EQ(renderValueList(MetricValue{}), ""); }

TEST(ValueStore, ReadersKeepTheirSnapshotWhileANewOneIsPublished) {
  ValueStore store;
  ValueSnapshot first;
  auto v = std::make_shared<MetricValue>();
  v->metricName = "a";
  first.recent["k"] = v;
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
      // Every snapshot published below holds all three entries, or (the initial one) none.
      auto n = s->size();
      ASSERT_TRUE(n == 0u || n == 3u) << n;
    }
  });
  for (int i = 0; i < 2000; ++i) {
    ValueSnapshot next;
    auto base = std::make_shared<ValueMap>();
    for (const char* k : {"a", "b"}) (*base)[k] = std::make_shared<MetricValue>();
    next.base = base;
    next.recent["c"] = std::make_shared<MetricValue>();
    next.recent["a"] = std::make_shared<MetricValue>();  // shadows base, counted once
    store.publish(std::move(next));
  }
  done = true;
  reader.join();
  EXPECT_EQ(store.snapshot()->generation, 2000u);
}

TEST(ValueSnapshot, RecentEntriesShadowTheBaseAndAreVisitedOnce) {
  ValueSnapshot s;
  auto oldValue = std::make_shared<MetricValue>();
  oldValue->metricName = "old";
  auto newValue = std::make_shared<MetricValue>();
  newValue->metricName = "new";
  s.base = std::make_shared<const ValueMap>(ValueMap{{"k", oldValue}, {"j", oldValue}});
  s.recent["k"] = newValue;
  EXPECT_EQ(s.find("k")->metricName, "new");
  EXPECT_EQ(s.find("j")->metricName, "old");
  EXPECT_EQ(s.size(), 2u);
  int visits = 0;
  s.forEach([&](const std::string&, const MetricValuePtr&) { ++visits; });
  EXPECT_EQ(visits, 2);
}

}  // namespace
}  // namespace xmetrics::store

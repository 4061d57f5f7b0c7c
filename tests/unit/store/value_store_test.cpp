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

// A value of the metric `name` with these labels (and `selector`, which makes the key).
MetricValue valueOf(std::string name, core::Labels labels = {}, std::string selector = {}) {
  MetricIdentity identity;
  identity.ns = "default";
  identity.metricName = std::move(name);
  identity.selector = std::move(selector);
  identity.labels = std::move(labels);
  MetricValue v;
  v.metric = shareIdentity(std::move(identity));
  return v;
}

MetricValuePtr shared(std::string name, std::string selector = {}) {
  return std::make_shared<MetricValue>(valueOf(std::move(name), {}, std::move(selector)));
}

TEST(RenderValueList, IsTheExactShapeTheHpaDecodes) {
  MetricValue v = valueOf("queue_len", {{"q", "a"}});
  v.sample = core::Sample{1.5, at(1777636800)};  // 2026-05-01T12:00:00Z
  auto body = boost::json::parse(*renderValueList(v)).as_object();
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
  for (const auto& [k, val] : v.metric->labels) labels[k] = val;
  boost::json::object item{{"metricName", v.metric->metricName},
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
        MetricValue v = valueOf(name, labels);
        v.sample = core::Sample{value, at(1777636800)};
        ASSERT_EQ(*renderValueList(v), serialisedTree(v)) << name << " " << value;
      }
    }
  }
}

TEST(RenderValueList, NoSampleNoBody) { EXPECT_EQ(renderValueList(MetricValue{}), nullptr); }

TEST(ShareIdentity, TheKeyIsMadeFromTheNames) {
  MetricIdentity identity;
  identity.ns = "shop";
  identity.metricName = "requests";
  identity.selector = "app=web";
  EXPECT_EQ(shareIdentity(identity)->key, core::metricKey("shop", "requests", "app=web"));
}

TEST(ValueMap, FilesEachValueUnderItsOwnKey) {
  ValueMap map;
  auto a = shared("a");
  map.put(a);
  EXPECT_EQ(map.find(a->key()), a);
  // Replaced by an equal key whose string is another object: the old one may go away.
  auto again = shared("a");
  map.put(again);
  a.reset();
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(map.find(core::metricKey("default", "a", "")), again);
  map.forEach([](std::string_view key, const MetricValuePtr& value) {
    EXPECT_EQ(key.data(), value->key().data());
  });
  EXPECT_FALSE(map.putIfAbsent(shared("a")));
  EXPECT_EQ(map.find(again->key()), again);
  EXPECT_TRUE(map.putIfAbsent(shared("b")));
  EXPECT_EQ(map.size(), 2u);
  EXPECT_EQ(map.find("no such key"), nullptr);
}

TEST(ValueStore, ReadersKeepTheirSnapshotWhileANewOneIsPublished) {
  ValueStore store;
  ValueSnapshot first;
  auto v = shared("a");
  first.recent.put(v);
  store.publish(std::move(first));
  auto held = store.snapshot();
  store.publish(ValueSnapshot{});
  EXPECT_EQ(held->find(v->key()), v);
  EXPECT_EQ(store.snapshot()->find(v->key()), nullptr);
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
    for (const char* k : {"a", "b"}) base->put(shared(k));
    next.base = base;
    next.recent.put(shared("c"));
    next.recent.put(shared("a"));  // shadows base, counted once
    store.publish(std::move(next));
  }
  done = true;
  reader.join();
  EXPECT_EQ(store.snapshot()->generation, 2000u);
}

TEST(ValueSnapshot, RecentEntriesShadowTheBaseAndAreVisitedOnce) {
  ValueSnapshot s;
  auto oldK = shared("k");
  auto oldJ = shared("j");
  auto newK = shared("k");
  auto base = std::make_shared<ValueMap>();
  base->put(oldK);
  base->put(oldJ);
  s.base = base;
  s.recent.put(newK);
  EXPECT_EQ(s.find(newK->key()), newK);
  EXPECT_EQ(s.find(oldJ->key()), oldJ);
  EXPECT_EQ(s.size(), 2u);
  int visits = 0;
  s.forEach([&](std::string_view, const MetricValuePtr&) { ++visits; });
  EXPECT_EQ(visits, 2);
}

}  // namespace
}  // namespace xmetrics::store

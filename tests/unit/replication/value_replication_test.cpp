#include "replication/value_replication.hpp"

#include <gtest/gtest.h>

#include "core/time_format.hpp"

namespace xmetrics::replication {
namespace {

using namespace std::chrono_literals;

store::ValueSnapshot snapshotWith(std::vector<store::MetricValue> values, uint64_t generation) {
  auto map = std::make_shared<store::ValueMap>();
  for (auto& v : values) map->put(std::make_shared<store::MetricValue>(std::move(v)));
  store::ValueSnapshot s;
  s.base = map;
  s.generation = generation;
  return s;
}

TEST(ValueReplication, ValuesSurviveTheTripExactly) {
  store::MetricIdentity requests;
  requests.ns = "shop";
  requests.metricName = "requests";
  requests.selector = "app=web";
  requests.query = "avg:requests{app:web}.rollup(30)";
  requests.backend = "datadog";
  requests.resolution = "datadogmetric shop/requests (rule 2: named like the metric)";
  requests.object = "shop/requests";
  requests.maxAge = 300s;
  requests.labels = {{"app", "web"}};
  store::MetricValue good;
  good.metric = store::shareIdentity(requests);
  good.sample = core::Sample{0.1 + 0.2, core::Clock::time_point(1'795'000'000'123'456'789ns), "s"};
  good.lastFetch = core::Clock::time_point(1'795'000'001'000'000'000ns);
  store::MetricIdentity gone;
  gone.ns = "shop";
  gone.metricName = "datadogmetric@shop:gone";
  store::MetricValue missing;
  missing.metric = store::shareIdentity(gone);
  missing.errorCode = 404;
  missing.error = "DatadogMetric shop/gone not found";

  auto body = encodeSnapshot(snapshotWith({good, missing}, 7), 3);
  auto decoded = decodeSnapshot(body);
  ASSERT_TRUE(decoded) << decoded.error();
  EXPECT_EQ(decoded->generation, 7u);
  ASSERT_TRUE(decoded->values);
  ASSERT_EQ(decoded->values->size(), 2u);
  for (const auto& v : *decoded->values) {
    EXPECT_EQ(v.key(), core::metricKey(v.metric->ns, v.metric->metricName, v.metric->selector));
    if (v.metric->metricName == "requests") {
      ASSERT_TRUE(v.sample);
      EXPECT_EQ(v.sample->value, 0.1 + 0.2);  // bit-exact: what the leader serves
      EXPECT_EQ(v.sample->time, good.sample->time);
      EXPECT_EQ(v.sample->unit, "s");
      EXPECT_EQ(v.lastFetch, good.lastFetch);
      EXPECT_EQ(v.metric->labels, requests.labels);
      EXPECT_EQ(v.metric->maxAge, 300s);
      EXPECT_EQ(v.metric->resolution, requests.resolution);
      EXPECT_EQ(v.metric->object, "shop/requests");
      EXPECT_EQ(v.metric->query, requests.query);
      EXPECT_EQ(v.metric->backend, "datadog");
      EXPECT_EQ(*store::renderValueList(v), *store::renderValueList(good));
    } else {
      EXPECT_FALSE(v.sample);
      EXPECT_EQ(v.errorCode, 404);
      EXPECT_EQ(v.error, missing.error);
    }
  }
}

TEST(ValueReplication, AnUnchangedGenerationSendsNoValues) {
  store::MetricIdentity m;
  m.metricName = "m";
  store::MetricValue v;
  v.metric = store::shareIdentity(m);
  auto decoded = decodeSnapshot(encodeSnapshot(snapshotWith({v}, 5), 5));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->generation, 5u);
  EXPECT_FALSE(decoded->values);
}

TEST(ValueReplication, RequestsCarryTheDemand) {
  ReplicateRequest r{.generation = 9, .demand = {{"shop", "requests", "app=web"}, {"a", "b", ""}}};
  auto decoded = decodeRequest(encodeRequest(r));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->generation, 9u);
  ASSERT_EQ(decoded->demand.size(), 2u);
  EXPECT_EQ(decoded->demand[0].ns, "shop");
  EXPECT_EQ(decoded->demand[0].selector, "app=web");
}

TEST(ValueReplication, GarbageIsAnErrorNotACrash) {
  EXPECT_FALSE(decodeSnapshot("not json"));
  EXPECT_FALSE(decodeSnapshot(R"({"generation": 1, "values": 3})"));
  EXPECT_FALSE(decodeSnapshot(R"({"generation": 1, "values": [{"metricName": ""}]})"));
  EXPECT_FALSE(decodeSnapshot(
      R"({"generation": 1, "values": [{"metricName": "m", "sample": {"value": "x"}}]})"));
  EXPECT_FALSE(decodeRequest("[1]"));
  EXPECT_FALSE(decodeRequest(R"({"demand": [1]})"));
}

// Found by fuzz/fuzz_replication.cpp: Boost.JSON 1.81 reads "3.0000000000000004E-2" as
// 0.030000000000000002 (strtod: ...04), so a value that went through a leader's answer, and was
// encoded again, came back different.
TEST(ValueReplication, SampleValuesTravelExactlyAndAnOlderLeadersNumberStillReads) {
  for (double value : {0.030000000000000006, 3.0000000000000004E-2, 0.1, 1e300, -2.5e-308, 0.0}) {
    store::MetricValue v;
    store::MetricIdentity m;
    m.ns = "shop";
    m.metricName = "m";
    v.metric = store::shareIdentity(std::move(m));
    v.sample = core::Sample{value, core::Clock::time_point(1s), "s"};
    auto decoded = decodeSnapshot(encodeSnapshot(snapshotWith({v}, 2), 1));
    ASSERT_TRUE(decoded && decoded->values && decoded->values->size() == 1);
    EXPECT_EQ((*decoded->values)[0].sample->value, value);
  }
  auto old = decodeSnapshot(
      R"({"generation": 1, "values": [{"metricName": "m", "sample": {"value": 0.5, "time": 1}}]})");
  ASSERT_TRUE(old && old->values && old->values->size() == 1);
  EXPECT_EQ((*old->values)[0].sample->value, 0.5);
  EXPECT_FALSE(decodeSnapshot(
      R"({"generation": 1, "values": [{"metricName": "m", "sample": {"valueText": "1x"}}]})"));
}

// Found writing fuzz/fuzz_replication.cpp (which now serves each decoded value): these decoded, and
// a follower's `now - time` or `time + maxAge` then overflowed its clock (9223372036854775808
// arrives as -2^63).
TEST(ValueReplication, TimesBeforeTheEpochAndDurationsPastTenYearsAreRefused) {
  for (const char* field :
       {R"("maxAgeSeconds": -1)", R"("maxAgeSeconds": 9223372036854775808)",
        R"("graceSeconds": 315360001)", R"("lastFetch": -5)",
        R"("lastSuccess": 18446744073709551615)", R"("sample": {"value": 1, "time": -1})"}) {
    std::string body = std::string(R"({"generation": 1, "values": [{"metricName": "queue.depth", )"
                                   R"("namespace": "shop", "selector": "env=prod", )") +
                       field + "}]}";
    auto decoded = decodeSnapshot(body);
    ASSERT_FALSE(decoded) << body;
    // The follower's log says which of the leader's values is wrong.
    EXPECT_NE(decoded.error().find(R"(queue.depth{env=prod} in namespace "shop")"),
              std::string::npos)
        << decoded.error();
  }
  auto fine = decodeSnapshot(
      R"({"generation": 1, "values": [{"metricName": "m", "maxAgeSeconds": 315360000,)"
      R"( "graceSeconds": 0, "lastFetch": 0, "sample": {"value": 1, "time": 9223372036854775807}}]})");
  ASSERT_TRUE(fine) << fine.error();
  EXPECT_EQ((*fine->values)[0].metric->maxAge, core::kMaxDuration);
}

}  // namespace
}  // namespace xmetrics::replication

namespace xmetrics::replication {
namespace {

TEST(ValueReplication, TheDogStatsdAddressesTravelBothWays) {
  ReplicateRequest request{.generation = 3, .dogstatsdAddress = "10.0.0.6:8125"};
  auto decoded = decodeRequest(encodeRequest(request));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->dogstatsdAddress, "10.0.0.6:8125");
  store::ValueSnapshot snapshot;
  snapshot.generation = 3;
  auto answer = decodeSnapshot(encodeSnapshot(snapshot, 3, {"10.0.0.5:8125", "10.0.0.6:8125"}));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->dogstatsdPeers, (std::vector<std::string>{"10.0.0.5:8125", "10.0.0.6:8125"}));
  // An older leader sends none: no relay, nothing else changes.
  auto old = decodeSnapshot(encodeSnapshot(snapshot, 3));
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->dogstatsdPeers.empty());
}

TEST(DogStatsdPeers, TheLeaderListsLiveFollowersAndEachRelaysToTheOthers) {
  auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  DogStatsdPeers leader("10.0.0.5:8125");
  EXPECT_EQ(leader.followerSeen("10.0.0.6:8125", t0),
            (std::vector<std::string>{"10.0.0.5:8125", "10.0.0.6:8125"}));
  leader.followerSeen("10.0.0.7:8125", t0 + std::chrono::seconds(5));
  EXPECT_EQ(leader.targets(true, t0 + std::chrono::seconds(6)),
            (std::vector<std::string>{"10.0.0.6:8125", "10.0.0.7:8125"}));
  // A follower not heard from for the expiry (10 s) is dropped.
  EXPECT_EQ(leader.targets(true, t0 + std::chrono::seconds(12)),
            (std::vector<std::string>{"10.0.0.7:8125"}));

  DogStatsdPeers follower("10.0.0.6:8125");
  follower.leaderSaid({"10.0.0.5:8125", "10.0.0.6:8125", "10.0.0.7:8125"});
  EXPECT_EQ(follower.targets(false, t0),
            (std::vector<std::string>{"10.0.0.5:8125", "10.0.0.7:8125"}));
}

}  // namespace
}  // namespace xmetrics::replication

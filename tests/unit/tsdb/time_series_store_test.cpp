#include "tsdb/time_series_store.hpp"

#include <gtest/gtest.h>
#include <malloc.h>

#include <string>
#include <thread>
#include <vector>

namespace xmetrics::tsdb {
namespace {

using DogStatsdMetric = Observation;
using std::chrono::seconds;

// Aligned to the 10 s resolution and to 30 s rollups, so bucket arithmetic in tests stays readable.
const core::Clock::time_point kT0{seconds(1'700'000'010)};

core::Clock::time_point at(int offsetSeconds) { return kT0 + seconds(offsetSeconds); }

DogStatsdMetric metric(std::string_view name, MetricType type, std::vector<double> values,
                       std::vector<std::string_view> tags = {}) {
  DogStatsdMetric m;
  m.name = name;
  m.type = type;
  m.values = std::move(values);
  m.tags = std::move(tags);
  return m;
}

DogStatsdMetric setMember(std::string_view name, std::string_view member,
                          std::vector<std::string_view> tags = {}) {
  DogStatsdMetric m;
  m.name = name;
  m.type = MetricType::kSet;
  m.setValue = member;
  m.tags = std::move(tags);
  return m;
}

query::DatadogQuery q(std::string_view text) {
  auto parsed = query::parseQuery(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(query::DatadogQuery{});
}

// Evaluates and expects a value; returns the sample for further checks.
core::Sample valueOf(const TimeSeriesStore& store, std::string_view text,
                     core::Clock::time_point now, seconds window = seconds(300)) {
  auto result = store.evaluate(q(text), window, now);
  EXPECT_TRUE(result.has_value()) << text << ": " << (result ? "" : result.error());
  return result.value_or(core::Sample{});
}

std::string errorOf(const TimeSeriesStore& store, std::string_view text,
                    core::Clock::time_point now, seconds window = seconds(300)) {
  auto result = store.evaluate(q(text), window, now);
  EXPECT_FALSE(result.has_value()) << text;
  return result ? std::string() : result.error();
}

// --- what each DogStatsD type becomes ---

TEST(TimeSeriesStore, CountBecomesAPerSecondRateOverItsBucket) {
  TimeSeriesStore store;
  for (int i = 0; i < 30; ++i)
    store.ingest(metric("requests", MetricType::kCount, {1}), at(i % 10));
  auto sample = valueOf(store, "sum:requests{*}", at(10));
  EXPECT_DOUBLE_EQ(sample.value, 3.0);
  EXPECT_EQ(sample.time, at(0));
  EXPECT_EQ(sample.unit, "per second");
}

TEST(TimeSeriesStore, OnlyRatesCarryAUnit) {
  TimeSeriesStore store;
  store.ingest(metric("queue.depth", MetricType::kGauge, {4}), at(1));
  EXPECT_EQ(valueOf(store, "avg:queue.depth{*}", at(10)).unit, "");
}

TEST(TimeSeriesStore, SampleRateScalesCounts) {
  TimeSeriesStore store;
  auto m = metric("requests", MetricType::kCount, {1});
  m.sampleRate = 0.5;
  for (int i = 0; i < 30; ++i) store.ingest(m, at(1));
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:requests{*}", at(10)).value, 6.0);
}

TEST(TimeSeriesStore, PackedCountValuesAllCount) {
  TimeSeriesStore store;
  store.ingest(metric("requests", MetricType::kCount, {10, 20, 30}), at(1));
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:requests{*}", at(10)).value, 6.0);
}

TEST(TimeSeriesStore, GaugeKeepsTheLastValueOfItsBucket) {
  TimeSeriesStore store;
  store.ingest(metric("queue.depth", MetricType::kGauge, {1}), at(1));
  store.ingest(metric("queue.depth", MetricType::kGauge, {5}), at(2));
  store.ingest(metric("queue.depth", MetricType::kGauge, {3}), at(9));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:queue.depth{*}", at(10)).value, 3.0);
}

// As in the Datadog Agent, a signed gauge (`-3|g`) sets the value; there are no StatsD deltas.
TEST(TimeSeriesStore, NegativeGaugesSetTheValue) {
  TimeSeriesStore store;
  store.ingest(metric("temperature", MetricType::kGauge, {-5}), at(1));
  store.ingest(metric("temperature", MetricType::kGauge, {-5}), at(2));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:temperature{*}", at(10)).value, -5.0);
}

TEST(TimeSeriesStore, SetCountsDistinctMembersPerBucket) {
  TimeSeriesStore store;
  for (auto member : {"alice", "bob", "alice", "carol", "bob"}) {
    store.ingest(setMember("users.unique", member), at(3));
  }
  store.ingest(setMember("users.unique", "alice"), at(11));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:users.unique{*}", at(10)).value, 3.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:users.unique{*}", at(20)).value, 1.0);
}

TEST(TimeSeriesStore, HistogramYieldsTheAgentsDerivedSeries) {
  TimeSeriesStore store;
  for (int v = 1; v <= 100; ++v) {
    store.ingest(metric("latency", MetricType::kHistogram, {static_cast<double>(v)}), at(4));
  }
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.avg{*}", at(10)).value, 50.5);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.count{*}", at(10)).value, 10.0);  // 100 in 10 s
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.max{*}", at(10)).value, 100.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.min{*}", at(10)).value, 1.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.median{*}", at(10)).value, 50.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.95percentile{*}", at(10)).value, 95.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.sum{*}", at(10)).value, 5050.0);
  // Like in Datadog, a histogram has no series under its own name.
  EXPECT_NE(errorOf(store, "avg:latency{*}", at(10)).find("no series matches"), std::string::npos);
}

TEST(TimeSeriesStore, PercentilesOfTheOpenBucketAreReadBeforeItCloses) {
  TimeSeriesStore store;
  for (int v = 1; v <= 9; ++v) {
    store.ingest(metric("latency", MetricType::kTimer, {static_cast<double>(v)}), at(11));
  }
  auto sample = valueOf(store, "avg:latency.median{*}", at(15));
  EXPECT_DOUBLE_EQ(sample.value, 5.0);
  EXPECT_EQ(sample.time, at(10));
}

TEST(TimeSeriesStore, HistogramSampleRateWeighsCountSumAndAverage) {
  TimeSeriesStore store;
  auto m = metric("latency", MetricType::kHistogram, {2, 4});
  m.sampleRate = 0.25;
  store.ingest(m, at(1));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.count{*}", at(10)).value, 0.8);  // 8 samples / 10 s
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.sum{*}", at(10)).value, 24.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.avg{*}", at(10)).value, 3.0);
}

TEST(TimeSeriesStore, PercentilesPastTheReservoirAreThoseOfAUniformSampleOfTheStream) {
  TimeSeriesStore store;
  for (int v = 1; v <= 10'000; ++v) {
    store.ingest(metric("latency", MetricType::kHistogram, {static_cast<double>(v)}), at(5));
  }
  store.expire(at(10));  // closes the bucket: the reservoir is summarized and freed
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.count{*}", at(10)).value, 1000.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.max{*}", at(10)).value, 10'000.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:latency.min{*}", at(10)).value, 1.0);
  // The reservoir keeps 128 of the 10,000 samples, as a uniform random subset when it works.
  // Sorted, its median is the 64th of the 128 and its p95 the 122nd (medianAndP95's ranks). The
  // chance that the k-th smallest of a uniform subset is below x is the chance that at least k of
  // the 128 are <= x, a hypergeometric tail (10,000 values, x of them "small", 128 drawn):
  //   p95 < 8,000: 5.6e-7    p95 > 9,960: 6.3e-7    median < 3,000: 1.4e-6    median > 7,000: 6e-7
  // so a uniform reservoir is inside both bands with probability above 1 - 3.2e-6 whatever its seed
  // (the store's generator is seeded, so this run is deterministic). Samples arrive in increasing
  // order: keeping the first 128 would answer 64 and 122, keeping the last 128 9,936 and 9,994.
  double median = valueOf(store, "avg:latency.median{*}", at(10)).value;
  double p95 = valueOf(store, "avg:latency.95percentile{*}", at(10)).value;
  EXPECT_GE(median, 3'000.0);
  EXPECT_LE(median, 7'000.0);
  EXPECT_GE(p95, 8'000.0);
  EXPECT_LE(p95, 9'960.0);
  EXPECT_LT(median, p95);
}

TEST(TimeSeriesStore, HistogramValuesReadBackAsTheDecimalsSent) {
  TimeSeriesStore store;
  store.ingest(metric("latency", MetricType::kHistogram, {0.123, 0.1, 0.07}), at(1));
  store.expire(at(10));
  EXPECT_EQ(valueOf(store, "avg:latency.max{*}", at(10)).value, 0.123);
  EXPECT_EQ(valueOf(store, "avg:latency.min{*}", at(10)).value, 0.07);
  EXPECT_EQ(valueOf(store, "avg:latency.median{*}", at(10)).value, 0.1);
}

TEST(TimeSeriesStore, DistributionAlsoAnswersItsOwnNameWithTheAverage) {
  TimeSeriesStore store;
  store.ingest(metric("payload.bytes", MetricType::kDistribution, {100, 300}), at(2));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:payload.bytes{*}", at(10)).value, 200.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:payload.bytes.max{*}", at(10)).value, 300.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:payload.bytes.count{*}", at(10)).value, 0.2);
}

TEST(TimeSeriesStore, MetricNamesMatchWhateverTheCase) {
  TimeSeriesStore store;
  store.ingest(metric("MyApp.Requests", MetricType::kGauge, {7}), at(1));
  store.ingest(metric("myapp.requests", MetricType::kGauge, {9}), at(2));  // the same series
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:myapp.requests{*}", at(10)).value, 9.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:MYAPP.REQUESTS{*}", at(10)).value, 9.0);
  EXPECT_EQ(store.stats().series, 1u);
}

TEST(TimeSeriesStore, TagOrderDuplicatesAndCaseDoNotMakeNewSeries) {
  TimeSeriesStore store;
  store.ingest(metric("m", MetricType::kGauge, {1}, {"env:prod", "app:web"}), at(1));
  store.ingest(metric("m", MetricType::kGauge, {2}, {"app:web", "env:prod", "app:web"}), at(2));
  store.ingest(metric("m", MetricType::kGauge, {3}, {"App:Web", "ENV:prod"}), at(3));
  EXPECT_EQ(store.stats().series, 1u);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:m{app:WEB}", at(10)).value, 3.0);
}

// --- space and time aggregation ---

class ThreePods : public ::testing::Test {
 protected:
  void SetUp() override {
    store.ingest(metric("rps", MetricType::kGauge, {10}, {"env:prod", "pod:web-1"}), at(1));
    store.ingest(metric("rps", MetricType::kGauge, {20}, {"env:prod", "pod:web-2"}), at(1));
    store.ingest(metric("rps", MetricType::kGauge, {60}, {"env:dev", "pod:api-1"}), at(1));
  }
  TimeSeriesStore store;
};

TEST_F(ThreePods, AggregatesAcrossSeriesWithTheSpaceAggregator) {
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:rps{*}", at(10)).value, 30.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:rps{*}", at(10)).value, 90.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "min:rps{*}", at(10)).value, 10.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "max:rps{*}", at(10)).value, 60.0);
}

TEST_F(ThreePods, TagFiltersSelectTheSeriesAggregated) {
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:rps{env:prod}", at(10)).value, 30.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:rps{env:prod}", at(10)).value, 15.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:rps{!env:prod}", at(10)).value, 60.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:rps{pod:web-*}", at(10)).value, 30.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:rps{pod IN (web-2,api-1)}", at(10)).value, 80.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "max:rps{env:dev OR pod:web-1}", at(10)).value, 60.0);
}

TEST_F(ThreePods, AveragesOnlyTheSeriesThatHaveAValue) {
  store.ingest(metric("rps", MetricType::kGauge, {40}, {"env:prod", "pod:web-1"}), at(11));
  // In [10, 20) only web-1 reported: the average is its value, not 40 / 3.
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:rps{*}", at(20)).value, 40.0);
}

TEST(TimeSeriesStore, RollupAggregatesNativeBucketsOverItsInterval) {
  TimeSeriesStore store;
  store.ingest(metric("g", MetricType::kGauge, {1}), at(0));
  store.ingest(metric("g", MetricType::kGauge, {2}), at(10));
  store.ingest(metric("g", MetricType::kGauge, {6}), at(20));
  auto avg = valueOf(store, "avg:g{*}.rollup(30)", at(30));
  EXPECT_DOUBLE_EQ(avg.value, 3.0);
  EXPECT_EQ(avg.time, at(0));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:g{*}.rollup(max,30)", at(30)).value, 6.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:g{*}.rollup(min,30)", at(30)).value, 1.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:g{*}.rollup(sum,30)", at(30)).value, 9.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:g{*}.rollup(count,30)", at(30)).value, 3.0);
  // An interval that is not a multiple of the resolution is rounded up to one.
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:g{*}.rollup(25)", at(30)).value, 3.0);
}

TEST(TimeSeriesStore, RollupOfACountAveragesItsPerSecondRates) {
  TimeSeriesStore store;
  store.ingest(metric("hits", MetricType::kCount, {10}), at(0));   // 1/s
  store.ingest(metric("hits", MetricType::kCount, {30}), at(10));  // 3/s
  store.ingest(metric("hits", MetricType::kCount, {20}), at(20));  // 2/s
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:hits{*}.rollup(30)", at(30)).value, 2.0);
}

TEST(TimeSeriesStore, RollupAppliesPerSeriesBeforeSpaceAggregation) {
  TimeSeriesStore store;
  store.ingest(metric("g", MetricType::kGauge, {1}, {"pod:a"}), at(0));
  store.ingest(metric("g", MetricType::kGauge, {3}, {"pod:a"}), at(10));
  store.ingest(metric("g", MetricType::kGauge, {10}, {"pod:b"}), at(20));
  // pod:a averages to 2, pod:b to 10: the sum of the per-series rollups is 12.
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:g{*}.rollup(avg,30)", at(30)).value, 12.0);
}

// --- which bucket answers ---

TEST(TimeSeriesStore, PrefersTheNewestCompleteBucketOverTheOpenOne) {
  TimeSeriesStore store;
  store.ingest(metric("hits", MetricType::kCount, {100}), at(5));
  store.ingest(metric("hits", MetricType::kCount, {1}), at(15));  // [10, 20) is still filling
  auto sample = valueOf(store, "sum:hits{*}", at(17));
  EXPECT_DOUBLE_EQ(sample.value, 10.0);
  EXPECT_EQ(sample.time, at(0));
}

TEST(TimeSeriesStore, FallsBackToTheOpenBucketWhenNoCompleteOneHasData) {
  TimeSeriesStore store;
  store.ingest(metric("g", MetricType::kGauge, {4}), at(15));
  auto sample = valueOf(store, "avg:g{*}", at(17));
  EXPECT_DOUBLE_EQ(sample.value, 4.0);
  EXPECT_EQ(sample.time, at(10));
}

TEST(TimeSeriesStore, SkipsEmptyBucketsBackToTheNewestWithData) {
  TimeSeriesStore store;
  store.ingest(metric("g", MetricType::kGauge, {4}), at(25));
  auto sample = valueOf(store, "avg:g{*}", at(95));
  EXPECT_DOUBLE_EQ(sample.value, 4.0);
  EXPECT_EQ(sample.time, at(20));
  auto rolled = valueOf(store, "avg:g{*}.rollup(30)", at(95));
  EXPECT_EQ(rolled.time, at(0));  // the 30 s bucket [0, 30) holds the point
}

TEST(TimeSeriesStore, TimestampedPointsLandInTheirOwnBucket) {
  TimeSeriesStore store;
  auto m = metric("g", MetricType::kGauge, {8});
  m.timestamp = 1'700'000'010 + 42;
  store.ingest(m, at(55));
  auto sample = valueOf(store, "avg:g{*}", at(60));
  EXPECT_DOUBLE_EQ(sample.value, 8.0);
  EXPECT_EQ(sample.time, at(40));
}

TEST(TimeSeriesStore, RejectsTimestampsBeyondRetentionOrTooFarAhead) {
  TimeSeriesStore store({.retention = seconds(900)});
  auto old = metric("g", MetricType::kGauge, {1});
  old.timestamp = 1'700'000'010 + 1000 - 901;
  store.ingest(old, at(1000));
  auto ahead = metric("g", MetricType::kGauge, {1});
  ahead.timestamp = 1'700'000'010 + 1000 + 61;
  store.ingest(ahead, at(1000));
  EXPECT_EQ(store.stats().rejectedPoints, 2u);
  EXPECT_EQ(store.stats().points, 0u);
  auto nearFuture = metric("g", MetricType::kGauge, {5});
  nearFuture.timestamp = 1'700'000'010 + 1000 + 60;
  store.ingest(nearFuture, at(1000));
  EXPECT_EQ(store.stats().points, 1u);
}

TEST(TimeSeriesStore, IgnoresTimestampsOnTypesTheProtocolDoesNotStamp) {
  TimeSeriesStore store;
  auto m = metric("latency", MetricType::kHistogram, {5});
  m.timestamp = 1'700'000'010 + 2;
  store.ingest(m, at(33));
  EXPECT_EQ(valueOf(store, "avg:latency.max{*}", at(45)).time, at(30));
}

// --- errors ---

TEST(TimeSeriesStore, SaysWhenNoSeriesMatches) {
  TimeSeriesStore store;
  store.ingest(metric("rps", MetricType::kGauge, {1}, {"env:prod"}), at(1));
  EXPECT_EQ(errorOf(store, "avg:rps{env:dev}", at(10)),
            "no series matches avg:rps{env:dev} in the last 300s");
  EXPECT_EQ(errorOf(store, "avg:other{*}", at(10), seconds(60)),
            "no series matches avg:other{*} in the last 60s");
}

TEST(TimeSeriesStore, SaysWhenMatchingSeriesHaveNoDataInTheWindow) {
  TimeSeriesStore store;
  store.ingest(metric("rps", MetricType::kGauge, {1}), at(1));
  EXPECT_EQ(errorOf(store, "avg:rps{*}.rollup(30)", at(400)),
            "no data for avg:rps{*}.rollup(30) in the last 300s");
}

TEST(TimeSeriesStore, RefusesGroupedQueries) {
  TimeSeriesStore store;
  store.ingest(metric("rps", MetricType::kGauge, {1}), at(1));
  auto error = errorOf(store, "avg:rps{*} by {host}", at(10));
  EXPECT_NE(error.find("grouped queries are not supported by the embedded backend"),
            std::string::npos);
  EXPECT_NE(error.find("avg:rps{*} by {host}"), std::string::npos);
}

// --- memory bounds ---

TEST(TimeSeriesStore, ExpireDropsIdleSeriesAndPointsPastRetention) {
  TimeSeriesStore store({.retention = seconds(900), .idleExpiry = seconds(600)});
  store.ingest(metric("busy", MetricType::kGauge, {1}), at(0));
  store.ingest(metric("idle", MetricType::kGauge, {1}), at(0));
  for (int t = 10; t <= 950; t += 10) store.ingest(metric("busy", MetricType::kGauge, {2}), at(t));
  EXPECT_EQ(store.stats().series, 2u);
  store.expire(at(955));
  auto stats = store.stats();
  EXPECT_EQ(stats.series, 1u);
  EXPECT_EQ(stats.points, 91u);  // buckets 50..950: the newest 900 s
  EXPECT_NE(errorOf(store, "avg:idle{*}", at(955)).find("no series matches"), std::string::npos);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:busy{*}", at(955)).value, 2.0);
  store.expire(at(955 + 601));
  EXPECT_EQ(store.stats().series, 0u);
  EXPECT_EQ(store.stats().points, 0u);
}

TEST(TimeSeriesStore, EvaluateNeverServesPointsOlderThanRetention) {
  TimeSeriesStore store({.retention = seconds(300)});
  store.ingest(metric("g", MetricType::kGauge, {1}), at(0));
  EXPECT_NE(errorOf(store, "avg:g{*}", at(500), seconds(3600)).find("no data"), std::string::npos);
}

TEST(TimeSeriesStore, AtMaxSeriesANewSeriesTakesTheIdlestUnqueriedOnesPlace) {
  TimeSeriesStore store({.maxSeries = 2});
  store.ingest(metric("m", MetricType::kGauge, {1}, {"pod:a"}), at(1));
  store.ingest(metric("m", MetricType::kGauge, {1}, {"pod:b"}), at(2));
  store.ingest(metric("m", MetricType::kGauge, {3}, {"pod:c"}), at(3));  // pod:a, idlest, goes
  store.ingest(metric("m", MetricType::kGauge, {5}, {"pod:b"}), at(4));  // known: accepted
  auto stats = store.stats();
  EXPECT_EQ(stats.series, 2u);
  EXPECT_EQ(stats.evictedSeries, 1u);
  EXPECT_EQ(stats.refusedSeries, 0u);
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:m{*}", at(10)).value, 8.0);
  EXPECT_NE(errorOf(store, "avg:m{pod:a}", at(10)).find("no series matches"), std::string::npos);
}

TEST(TimeSeriesStore, SeriesAQueryMatchedRecentlyAreNeverEvicted) {
  TimeSeriesStore store({.idleExpiry = seconds(900), .maxSeries = 2});
  store.ingest(metric("read", MetricType::kGauge, {1}), at(1));
  store.ingest(metric("unread", MetricType::kGauge, {2}), at(2));
  valueOf(store, "avg:read{*}", at(10));  // an HPA reads it: protected
  store.ingest(metric("new", MetricType::kGauge, {3}), at(11));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:read{*}", at(20)).value, 1.0);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:new{*}", at(20)).value, 3.0);
  EXPECT_NE(errorOf(store, "avg:unread{*}", at(20)).find("no series matches"), std::string::npos);
  // Both held series are protected now: a newcomer is refused, and counted.
  store.ingest(metric("late", MetricType::kGauge, {4}), at(21));
  auto stats = store.stats();
  EXPECT_EQ(stats.refusedSeries, 1u);
  EXPECT_EQ(stats.evictedSeries, 1u);
  EXPECT_NE(errorOf(store, "avg:late{*}", at(30)).find("no series matches"), std::string::npos);
  // Protection lasts idleExpiry after the last match; then the series may make room again.
  store.ingest(metric("read", MetricType::kGauge, {1}), at(905));
  store.ingest(metric("new", MetricType::kGauge, {3}), at(905));
  store.ingest(metric("late", MetricType::kGauge, {4}), at(925));
  EXPECT_EQ(store.stats().evictedSeries, 2u);
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:late{*}", at(930)).value, 4.0);
}

TEST(TimeSeriesStore, OneShotSeriesMakeRoomBeforeSeriesFedRepeatedly) {
  TimeSeriesStore store({.maxSeries = 2});
  store.ingest(metric("steady", MetricType::kGauge, {1}), at(1));
  store.ingest(metric("steady", MetricType::kGauge, {1}), at(11));  // a second bucket
  store.ingest(metric("once", MetricType::kGauge, {2}), at(12));    // fed later, but only once
  store.ingest(metric("new", MetricType::kGauge, {3}), at(13));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:steady{*}", at(20)).value, 1.0);
  EXPECT_NE(errorOf(store, "avg:once{*}", at(20)).find("no series matches"), std::string::npos);
}

TEST(TimeSeriesStore, OfTheIdlestTheCostliestMakesRoomFirst) {
  TimeSeriesStore store({.maxSeries = 2});
  store.ingest(metric("gauge", MetricType::kGauge, {1}), at(1));
  store.ingest(metric("timer", MetricType::kTimer, {5}), at(2));  // a ring 3 times as big
  store.ingest(metric("new", MetricType::kGauge, {3}), at(3));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:gauge{*}", at(10)).value, 1.0);
  EXPECT_NE(errorOf(store, "avg:timer.avg{*}", at(10)).find("no series matches"),
            std::string::npos);
}

// Issue 13, item 6: a million invented tag sets of histograms took 773 MB before maxSeries
// refused the rest, and then every new series for 15 minutes.
TEST(TimeSeriesStore, AFloodOfHistogramTagSetsStaysUnderMaxBytesAndNewSeriesStillGetIn) {
  constexpr std::size_t kMaxBytes = 4 << 20;
  TimeSeriesStore store({.maxBytes = kMaxBytes});
  store.ingest(metric("app.requests", MetricType::kCount, {1}, {"env:prod"}), at(1));
  valueOf(store, "sum:app.requests{env:prod}", at(10));  // an HPA reads it
  std::size_t highest = 0;
  constexpr int kFlood = 100'000;  // about 380 MB of histograms without the bound
  for (int i = 0; i < kFlood; ++i) {
    std::string id = "request_id:" + std::to_string(i);
    store.ingest(metric("flood.latency", MetricType::kHistogram, {0.5, 1.5}, {"env:prod", id}),
                 at(11 + i / 10'000));
    highest = std::max(highest, store.stats().approxBytes);
  }
  auto stats = store.stats();
  EXPECT_LE(highest, kMaxBytes);
  EXPECT_EQ(stats.maxBytes, kMaxBytes);
  EXPECT_GT(stats.evictedSeries, kFlood / 2u);
  EXPECT_EQ(stats.series + stats.evictedSeries, kFlood + 1u);
  EXPECT_EQ(stats.refusedSeries + stats.refusedForBytes, 0u);
  // The series an HPA reads survived; a brand-new one is stored and answers at once.
  store.ingest(metric("app.requests", MetricType::kCount, {1}, {"env:prod"}), at(25));
  store.ingest(metric("checkout.latency", MetricType::kTimer, {42}, {"env:prod"}), at(25));
  EXPECT_DOUBLE_EQ(valueOf(store, "avg:checkout.latency.avg{env:prod}", at(30)).value, 42.0);
  EXPECT_GT(valueOf(store, "sum:app.requests{env:prod}", at(30)).value, 0.0);
  EXPECT_LE(store.stats().approxBytes, kMaxBytes);
}

TEST(TimeSeriesStore, SetMembersBeyondMaxBytesAreRefusedAndCounted) {
  constexpr std::size_t kMaxBytes = 1 << 20;
  TimeSeriesStore store({.maxBytes = kMaxBytes});
  store.ingest(setMember("users", "u0"), at(1));
  valueOf(store, "avg:users{*}", at(1));  // protected: nothing can make room
  std::vector<std::string> members;
  for (int i = 1; i < 50'000; ++i) members.push_back("u" + std::to_string(i));
  for (const auto& member : members) store.ingest(setMember("users", member), at(2));
  auto stats = store.stats();
  EXPECT_LE(stats.approxBytes, kMaxBytes);
  EXPECT_GT(stats.refusedForBytes, 0u);
  double distinct = valueOf(store, "avg:users{*}", at(9)).value;
  EXPECT_LT(distinct, 50'000.0);
  // Each of the 50,000 distinct members is either counted or refused, never both or neither.
  EXPECT_EQ(distinct + static_cast<double>(stats.refusedForBytes), 50'000.0);
}

TEST(TimeSeriesStore, ReportsItsMemory) {
  TimeSeriesStore store;
  auto empty = store.stats().approxBytes;
  for (int i = 0; i < 100; ++i) {
    std::string pod = "pod:web-" + std::to_string(i);
    store.ingest(metric("m", MetricType::kCount, {1}, {pod}), at(1));
  }
  auto stats = store.stats();
  EXPECT_EQ(stats.series, 100u);
  EXPECT_GT(stats.approxBytes, empty + 100 * 1000);
  EXPECT_LT(stats.approxBytes, empty + 100 * 4000);
}

// approxBytes is what maxBytes bounds, so it has to be what the heap really holds: checked against
// glibc's own count of the bytes in use (not meaningful under a sanitizer's allocator).
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && defined(__GLIBC__)
TEST(TimeSeriesStore, ApproxBytesIsWhatTheHeapHolds) {
  std::vector<std::string> names;
  for (int i = 0; i < 4000; ++i) names.push_back("pod:web-" + std::to_string(i));
  // In use from the arenas plus the large blocks malloc maps on their own.
  auto heap = [] {
    auto info = mallinfo2();
    return static_cast<double>(info.uordblks + info.hblkhd);
  };
  double before = heap();
  {
    TimeSeriesStore store;
    auto empty = static_cast<double>(store.stats().approxBytes);
    for (int i = 0; i < 4000; ++i) {
      std::string_view pod = names[i];
      store.ingest(metric("hits", MetricType::kCount, {1}, {"env:prod", pod}), at(1));
      store.ingest(metric("depth", MetricType::kGauge, {1}, {pod}), at(1));
      for (int v = 0; v < 20; ++v) {
        store.ingest(metric("latency", MetricType::kHistogram, {v * 1.0}, {pod}), at(1));
      }
      if (i % 10 == 0) {
        for (int u = 0; u < 50; ++u) {
          store.ingest(setMember("users", names[u], {pod}), at(1));
        }
      }
    }
    double counted = static_cast<double>(store.stats().approxBytes) - empty;
    double held = heap() - before;
    EXPECT_GT(counted, 0.95 * held) << "counted " << counted << ", heap " << held;
    EXPECT_LT(counted, 1.05 * held) << "counted " << counted << ", heap " << held;
  }
}
#endif

// --- threads ---

TEST(TimeSeriesStore, IngestAndEvaluateRunConcurrently) {
  TimeSeriesStore store;
  constexpr int kPerPod = 2000;
  std::thread writer([&] {
    for (int i = 0; i < kPerPod; ++i) {
      for (std::string_view pod : {"pod:a", "pod:b", "pod:c"}) {
        store.ingest(metric("hits", MetricType::kCount, {1}, {pod}), at(i % 10));
      }
    }
  });
  std::thread reader([&] {
    for (int i = 0; i < 500; ++i) {
      (void)store.evaluate(q("sum:hits{pod:a OR pod:b}"), seconds(300), at(10));
      (void)store.stats();
    }
  });
  std::thread expirer([&] {
    for (int i = 0; i < 100; ++i) store.expire(at(9));
  });
  writer.join();
  reader.join();
  expirer.join();
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:hits{*}", at(10)).value, 3 * kPerPod / 10.0);
}

}  // namespace
}  // namespace xmetrics::tsdb

namespace xmetrics::tsdb {
namespace {

// As the Datadog Agent reports an idle counter as 0 (dogstatsd_expiry_seconds, 300 s), a rate falls
// to 0 when traffic stops, so an HPA scales back down instead of holding the last busy rate.
TEST(TimeSeriesStore, ACounterThatStopsReadsZeroThenExpires) {
  TimeSeriesStore store;
  for (int i = 0; i < 30; ++i) store.ingest(metric("requests", MetricType::kCount, {1}), at(1));
  EXPECT_DOUBLE_EQ(valueOf(store, "sum:requests{*}", at(10)).value, 3.0);
  // Traffic stopped after the first bucket: the newest complete bucket is an idle one.
  auto idle = valueOf(store, "sum:requests{*}", at(25));
  EXPECT_DOUBLE_EQ(idle.value, 0.0);
  EXPECT_EQ(idle.time, at(10));
  // Long after the counter went quiet (> 300 s), there is no data rather than a made-up 0.
  errorOf(store, "sum:requests{*}", at(700), seconds(300));
}

}  // namespace
}  // namespace xmetrics::tsdb

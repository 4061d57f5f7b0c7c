// evaluateGrouped() against evaluate(): every group of a `by {...}` query must be exactly the
// answer of the query narrowed to the group's tags (issue 14, coalescing), computed alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "tsdb/time_series_store.hpp"

namespace xmetrics::tsdb {
namespace {

using std::chrono::seconds;

// Aligned to 60 s, so every rollup of these tests has its buckets start on a multiple of kT0.
const core::Clock::time_point kT0{seconds(1'700'000'040)};

core::Clock::time_point at(int offsetSeconds) { return kT0 + seconds(offsetSeconds); }

query::DatadogQuery q(std::string_view text) {
  auto parsed = query::parseQuery(text);
  EXPECT_TRUE(parsed.has_value()) << text << ": " << (parsed ? "" : parsed.error().message);
  return parsed.value_or(query::DatadogQuery{});
}

std::string join(const std::vector<std::string>& parts, std::string_view glue) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += glue;
    out += part;
  }
  return out;
}

// A series of the data set: its tags as sent and in which 10 s buckets it is fed.
struct SeriesSpec {
  std::vector<std::string_view> tags;
  bool (*fedIn)(int bucket);
};

const std::vector<SeriesSpec> kSeries = {
    {{"env:prod", "queue:a", "host:h1"}, [](int) { return true; }},
    {{"env:prod", "queue:a", "host:h2", "az:1"}, [](int b) { return b % 2 == 0; }},
    {{"env:prod", "queue:b", "host:h1"}, [](int b) { return b % 3 == 0; }},
    {{"env:dev", "queue:b"}, [](int) { return true; }},
    {{"env:prod", "queue:c", "queue:d", "host:h2"},
     [](int b) { return b % 5 != 2; }},                                      // two values
    {{"env:prod", "host:h1"}, [](int) { return true; }},                     // no queue at all
    {{"env:prod", "queue", "host:h3"}, [](int) { return true; }},            // bare key: no value
    {{"env:prod", "queue:e", "host:h1"}, [](int b) { return b < 5; }},       // goes quiet early
    {{"env:prod", "QUEUE:F", "Host:H1"}, [](int b) { return b % 4 == 1; }},  // stored lowercase
    // Groups a and b hold 3 series or more, where a sum in another order would differ in its last
    // bits.
    {{"env:prod", "queue:a", "host:h3", "team:x"}, [](int b) { return b % 3 != 1; }},
    {{"env:dev", "queue:a", "host:h1"}, [](int) { return true; }},
    {{"env:prod", "queue:b", "host:h2", "team:y"}, [](int b) { return b % 2 == 1; }},
    {{"env:prod", "queue:b", "host:h1", "az:2"}, [](int) { return true; }},
};

// Values with all 53 bits in use, so that summing the same numbers in another order would show.
double valueFor(std::size_t series, int bucket, int sample) {
  auto k = static_cast<double>((series * 7 + bucket * 13 + sample * 3) % 17 + 1);
  return std::sqrt(k) * 3.7 + static_cast<double>(series) / 3.0;
}

Observation observation(std::string_view name, MetricType type, std::vector<double> values,
                        const std::vector<std::string_view>& tags = {}) {
  Observation m;
  m.name = name;
  m.type = type;
  m.values = std::move(values);
  m.tags = tags;
  return m;
}

// Feeds every metric type the store keeps, for native buckets [from, to).
void feed(TimeSeriesStore& store, int from, int to) {
  for (int b = from; b < to; ++b) {
    for (std::size_t i = 0; i < kSeries.size(); ++i) {
      const SeriesSpec& spec = kSeries[i];
      if (!spec.fedIn(b)) continue;
      auto when = at(b * 10 + 1 + static_cast<int>(i % 5));
      store.ingest(observation("q.depth", MetricType::kGauge, {valueFor(i, b, 0)}, spec.tags),
                   when);
      auto hits = observation("q.hits", MetricType::kCount, {valueFor(i, b, 1)}, spec.tags);
      hits.sampleRate = i % 2 == 0 ? 1.0 : 0.25;
      store.ingest(hits, when);
      store.ingest(
          observation("q.lat", MetricType::kDistribution,
                      {valueFor(i, b, 2), valueFor(i, b, 3), valueFor(i, b, 4)}, spec.tags),
          when);
      store.ingest(observation("q.time", MetricType::kTimer, {valueFor(i, b, 5), valueFor(i, b, 6)},
                               spec.tags),
                   when);
      for (int k = 0; k < static_cast<int>(i % 4) + 1; ++k) {
        Observation member;
        member.name = "q.users";
        member.type = MetricType::kSet;
        std::string text = "user-" + std::to_string((b + k) % 6);
        member.setValue = text;
        member.tags = spec.tags;
        store.ingest(member, when);
      }
      // One name, two types: a group's unit depends on which of them it holds.
      if (i <= 2) {
        store.ingest(observation("q.mixed", MetricType::kCount, {valueFor(i, b, 7)}, spec.tags),
                     when);
      }
      if (i >= 2) {
        store.ingest(observation("q.mixed", MetricType::kGauge, {valueFor(i, b, 8)}, spec.tags),
                     when);
      }
    }
  }
}

void expectSameResult(const TimeSeriesStore::Result& grouped, const TimeSeriesStore::Result& alone,
                      const std::string& context) {
  ASSERT_EQ(grouped.has_value(), alone.has_value())
      << context << ": " << (grouped ? "" : grouped.error()) << (alone ? "" : alone.error());
  if (!alone) {
    EXPECT_EQ(grouped.error(), alone.error()) << context;
    return;
  }
  // == on purpose: the same series aggregated by the same code in the same order.
  EXPECT_EQ(grouped->value, alone->value) << context;
  EXPECT_EQ(grouped->time, alone->time) << context;
  EXPECT_EQ(grouped->unit, alone->unit) << context;
}

struct Filter {
  std::string text;
  bool functional;
};

// The query a member of a coalesced group would have sent: the filter and the group's tags.
std::string narrowedFilter(const Filter& filter, const std::vector<std::string>& tags) {
  if (filter.text == "*") return join(tags, ",");
  if (filter.functional) return "(" + filter.text + ") AND " + join(tags, " AND ");
  return filter.text + "," + join(tags, ",");
}

// Every combination of candidate values: those in the data, and some that are not.
std::vector<std::vector<std::string>> combinations(
    const std::vector<std::vector<std::string>>& perKey) {
  std::vector<std::vector<std::string>> out{{}};
  for (const auto& values : perKey) {
    std::vector<std::vector<std::string>> next;
    for (const auto& prefix : out) {
      for (const auto& value : values) {
        next.push_back(prefix);
        next.back().push_back(value);
      }
    }
    out = std::move(next);
  }
  return out;
}

TEST(GroupedEvaluation, EachGroupIsItsNarrowedQueryExactly) {
  TimeSeriesStore store;
  const std::vector<std::string> metrics = {
      "q.depth",     "q.hits",     "q.lat",      "q.lat.avg",    "q.lat.95percentile",
      "q.lat.count", "q.time.max", "q.time.sum", "q.time.count", "q.users",
      "q.mixed"};
  const std::vector<std::string> aggregators = {"avg", "sum", "min", "max"};
  const std::vector<std::string> rollups = {
      "", ".rollup(avg,30)", ".rollup(sum,60)", ".rollup(count)", ".rollup(max)", ".rollup(45)"};
  const std::vector<Filter> filters = {{"*", false},
                                       {"env:prod", false},
                                       {"!host:h2", false},
                                       {"queue:*", false},
                                       {"env:prod AND queue IN (a,b,e)", true},
                                       {"host:h1 OR env:dev", true}};
  const std::vector<std::string> queues = {"queue:a", "queue:b", "queue:c", "queue:d",
                                           "queue:e", "queue:f", "queue:zz"};
  const std::vector<std::string> hosts = {"host:h1", "host:h2", "host:h3", "host:h9"};
  struct GroupBy {
    std::string text;  // as the query spells it
    std::vector<std::vector<std::string>> candidates;
  };
  // (The order of a group's tags, `by {host,queue}`, has its own test below.)
  const std::vector<GroupBy> groupBys = {{"queue", {queues}}, {"Queue,host", {queues, hosts}}};

  std::size_t groupsSeen = 0, errorsSeen = 0;
  auto compareAll = [&](core::Clock::time_point now, seconds window) {
    for (const auto& metric : metrics) {
      for (const auto& aggregator : aggregators) {
        for (const auto& rollup : rollups) {
          for (const auto& filter : filters) {
            for (const auto& groupBy : groupBys) {
              std::string head = aggregator + ":" + metric + "{";
              std::string text = head + filter.text + "} by {" + groupBy.text + "}" + rollup;
              auto groups = store.evaluateGrouped(q(text), window, now);
              std::set<std::vector<std::string>> expected;
              for (const auto& tags : combinations(groupBy.candidates)) {
                std::string alone = head + narrowedFilter(filter, tags) + "}" + rollup;
                auto want = store.evaluate(q(alone), window, now);
                if (!want && want.error().starts_with("no series matches")) continue;
                expected.insert(tags);
                auto it = std::find_if(groups.begin(), groups.end(),
                                       [&](const GroupResult& g) { return g.tags == tags; });
                ASSERT_NE(it, groups.end()) << text << ": no group for " << alone;
                expectSameResult(it->result, want, text + " vs " + alone);
                ++groupsSeen;
                if (!want) ++errorsSeen;
              }
              std::set<std::vector<std::string>> got;
              for (const auto& g : groups) got.insert(g.tags);
              EXPECT_EQ(got, expected) << text;
              EXPECT_EQ(got.size(), groups.size()) << text << ": a group twice";
            }
          }
        }
      }
    }
  };

  feed(store, 0, 30);
  compareAll(at(300), seconds(300));  // the bucket starting now is open and empty
  compareAll(at(305), seconds(60));   // mid-bucket
  feed(store, 30, 60);
  compareAll(at(600), seconds(300));  // queue:e is quiet: its group has no data
  compareAll(at(607), seconds(60));
  compareAll(at(1200), seconds(300));  // no data anywhere
  // The data set exercises what it claims to: many groups, some of them errors.
  EXPECT_GT(groupsSeen, 10'000u);
  EXPECT_GT(errorsSeen, 1'000u);
}

// --- what groups there are ---

class QueueGroups : public ::testing::Test {
 protected:
  void SetUp() override { feed(store, 0, 30); }
  std::vector<std::vector<std::string>> tagsOf(std::string_view text,
                                               core::Clock::time_point now = at(300)) {
    std::vector<std::vector<std::string>> out;
    for (const auto& g : store.evaluateGrouped(q(text), seconds(300), now)) out.push_back(g.tags);
    return out;
  }
  TimeSeriesStore store;
};

TEST_F(QueueGroups, OneGroupPerValueInTagOrderLowercaseSkippingSeriesWithoutTheKey) {
  // kSeries 5 (no queue tag) and 6 (a bare `queue`) are in no group: Datadog's N/A is not served.
  EXPECT_EQ(tagsOf("avg:q.depth{*} by {QUEUE}"),
            (std::vector<std::vector<std::string>>{
                {"queue:a"}, {"queue:b"}, {"queue:c"}, {"queue:d"}, {"queue:e"}, {"queue:f"}}));
}

TEST_F(QueueGroups, AnInFilterReturnsOnlyItsValues) {
  EXPECT_EQ(tagsOf("avg:q.depth{env:prod AND queue IN (a,b)} by {queue}.rollup(30)"),
            (std::vector<std::vector<std::string>>{{"queue:a"}, {"queue:b"}}));
  EXPECT_EQ(tagsOf("sum:q.hits{queue IN (b,zz)} by {queue}"),
            (std::vector<std::vector<std::string>>{{"queue:b"}}));
}

TEST_F(QueueGroups, TagsFollowTheGroupByOrder) {
  EXPECT_EQ(tagsOf("max:q.depth{queue IN (a,b)} by {host,queue}"),
            (std::vector<std::vector<std::string>>{{"host:h1", "queue:a"},
                                                   {"host:h1", "queue:b"},
                                                   {"host:h2", "queue:a"},
                                                   {"host:h2", "queue:b"},
                                                   {"host:h3", "queue:a"}}));
}

TEST_F(QueueGroups, ASeriesWithTwoValuesOfTheKeyIsInBothGroups) {
  auto groups =
      store.evaluateGrouped(q("avg:q.depth{queue IN (c,d)} by {queue}"), seconds(300), at(300));
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_TRUE(groups[0].result && groups[1].result);
  EXPECT_EQ(groups[0].tags, std::vector<std::string>{"queue:c"});
  EXPECT_EQ(groups[1].tags, std::vector<std::string>{"queue:d"});
  EXPECT_EQ(groups[0].result->value, groups[1].result->value);
  EXPECT_EQ(groups[0].result->value,
            store.evaluate(q("avg:q.depth{host:h2,queue:c}"), seconds(300), at(300))->value);
}

TEST_F(QueueGroups, AGroupWithoutDataInTheWindowSaysSoNamingItsNarrowedQuery) {
  auto groups = store.evaluateGrouped(q("avg:q.depth{env:prod AND queue IN (a,e)} by {queue}"),
                                      seconds(60), at(300));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].result.has_value());
  ASSERT_FALSE(groups[1].result.has_value());
  EXPECT_EQ(groups[1].result.error(),
            "no data for avg:q.depth{env:prod AND queue IN (a,e) AND queue:e} in the last 60s");
}

TEST_F(QueueGroups, NoMatchingSeriesMeansNoGroups) {
  EXPECT_TRUE(tagsOf("avg:q.depth{env:staging} by {queue}").empty());
  EXPECT_TRUE(tagsOf("avg:nothing{*} by {queue}").empty());
  EXPECT_TRUE(tagsOf("avg:q.depth{*} by {region}").empty());  // no series has the key
}

TEST_F(QueueGroups, WithoutGroupByTheOneGroupIsEvaluate) {
  auto groups =
      store.evaluateGrouped(q("sum:q.hits{env:prod}.rollup(sum,60)"), seconds(300), at(300));
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_TRUE(groups[0].tags.empty());
  expectSameResult(groups[0].result,
                   store.evaluate(q("sum:q.hits{env:prod}.rollup(sum,60)"), seconds(300), at(300)),
                   "no groupBy");
}

TEST_F(QueueGroups, EvaluateStillRefusesGroupedQueries) {
  auto result = store.evaluate(q("avg:q.depth{*} by {queue}"), seconds(300), at(300));
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().find("grouped queries are not supported"), std::string::npos);
}

// --- eviction ---

TEST(GroupedEvaluation, SeriesInAGroupAreProtectedThoseWithoutTheKeyAreNot) {
  TimeSeriesStore store({.maxSeries = 2});
  store.ingest(observation("read", MetricType::kGauge, {1}, {"queue:a"}), at(1));
  store.ingest(observation("read", MetricType::kGauge, {2}, {"host:h1"}), at(1));
  ASSERT_EQ(store.evaluateGrouped(q("avg:read{*} by {queue}"), seconds(300), at(10)).size(), 1u);
  // The series without `queue` was matched by the filter but served to no group: it makes room.
  store.ingest(observation("new", MetricType::kGauge, {3}), at(11));
  EXPECT_EQ(store.stats().evictedSeries, 1u);
  auto groups = store.evaluateGrouped(q("avg:read{*} by {queue}"), seconds(300), at(20));
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].result->value, 1.0);
  EXPECT_NE(store.evaluate(q("avg:read{host:h1}"), seconds(300), at(20))
                .error()
                .find("no series matches"),
            std::string::npos);
}

TEST(GroupedEvaluation, EverySeriesOfEveryGroupIsProtected) {
  TimeSeriesStore store({.maxSeries = 2});
  store.ingest(observation("read", MetricType::kGauge, {1}, {"queue:a"}), at(1));
  store.ingest(observation("read", MetricType::kGauge, {2}, {"queue:b"}), at(1));
  ASSERT_EQ(store.evaluateGrouped(q("avg:read{*} by {queue}"), seconds(300), at(10)).size(), 2u);
  store.ingest(observation("new", MetricType::kGauge, {3}), at(11));
  EXPECT_EQ(store.stats().refusedSeries, 1u);
  EXPECT_EQ(store.stats().evictedSeries, 0u);
}

}  // namespace
}  // namespace xmetrics::tsdb

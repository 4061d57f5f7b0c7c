#include "query/coalesce.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "query/datadog_query.hpp"

namespace xmetrics::query {
namespace {

CoalescePlan plan(const std::vector<std::string>& queries, std::vector<int64_t> partitions = {},
                  CoalesceLimits limits = {}) {
  std::vector<CoalesceInput> inputs;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    inputs.push_back({queries[i], i < partitions.size() ? partitions[i] : 0});
  }
  return coalesce(inputs, limits);
}

TEST(Coalesce, QueriesDifferingInOneTagValueBecomeOneGroupedQuery) {
  auto p =
      plan({"avg:q.depth{env:prod,queue:b}.rollup(30)", "avg:q.depth{queue:a,env:prod}.rollup(30)",
            "avg:q.depth{env:prod,queue:c}.rollup(30)"});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_TRUE(p.alone.empty());
  const auto& g = p.groups[0];
  EXPECT_EQ(g.query, "avg:q.depth{env:prod AND queue IN (a,b,c)} by {queue}.rollup(30)");
  EXPECT_EQ(g.key, "queue");
  EXPECT_EQ(g.members, (std::vector<std::size_t>{1, 0, 2}));  // by value: a, b, c
  EXPECT_EQ(g.values, (std::vector<std::string>{"a", "b", "c"}));
  // The grouped text is in the language the parser accepts, and means what it says.
  auto back = parseQuery(g.query);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->groupBy, std::vector<std::string>{"queue"});
}

TEST(Coalesce, ASingleTagFilterGroupsWithoutARest) {
  auto p = plan({"sum:jobs{queue:a}", "sum:jobs{queue:b}"});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].query, "sum:jobs{queue IN (a,b)} by {queue}");
}

TEST(Coalesce, ValuesAreComparedIgnoringCaseAsDatadogLowercasesTags) {
  auto p = plan({"avg:m{queue:A}", "avg:m{queue:a}", "avg:m{queue:b}"});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].query, "avg:m{queue IN (a,b)} by {queue}");
  EXPECT_EQ(p.groups[0].values, (std::vector<std::string>{"a", "a", "b"}));
}

TEST(Coalesce, OnlyQueriesSharingEverythingButOneValueAreGrouped) {
  auto p = plan({
      "avg:m{env:prod,queue:a}",             // 0 \ one group
      "avg:m{env:prod,queue:b}",             // 1 /
      "sum:m{env:prod,queue:c}",             // 2 other aggregator
      "avg:n{env:prod,queue:d}",             // 3 other metric
      "avg:m{env:prod,queue:e}.rollup(60)",  // 4 other rollup
      "avg:m{env:dev,region:eu,queue:f}",    // 5 two terms differ from 0
  });
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].members, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(p.alone, (std::vector<std::size_t>{2, 3, 4, 5}));
}

TEST(Coalesce, DifferentPartitionsNeverShareAGroup) {
  auto p = plan({"avg:m{queue:a}", "avg:m{queue:b}", "avg:m{queue:c}"}, {300, 300, 600});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].members, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(p.alone, std::vector<std::size_t>{2});
}

TEST(Coalesce, WhatAGroupedQueryCannotGiveIdenticallyIsLeftAlone) {
  std::vector<std::string> refused = {
      "avg:m{queue:a*}",                // wildcard
      "avg:m{!queue:a}",                // negation
      "avg:m{queue:a OR queue:b}",      // OR
      "avg:m{queue IN (a,b)}",          // IN
      "avg:m{queue:a} by {host}",       // its own grouping
      "avg:m{queue}",                   // bare key
      "avg:m{queue:a,queue:b}",         // a key twice
      "sum:m{queue:a}/sum:n{queue:a}",  // arithmetic
      "abs(avg:m{queue:a})",            // a function
      "avg:m{*}",                       // nothing to vary
  };
  for (const auto& q : refused) {
    auto p = plan({q, "avg:m{queue:zz}", "avg:m{queue:yy}"});
    for (const auto& g : p.groups) {
      EXPECT_EQ(std::count(g.members.begin(), g.members.end(), 0u), 0) << q << " -> " << g.query;
    }
  }
}

TEST(Coalesce, TheTermThatVariesIsTheOneMostQueriesShare) {
  // 0..2 differ in queue (env:prod); 2 and 3 differ in env (queue:c). Query 2 joins the larger.
  auto p = plan({"avg:m{env:prod,queue:a}", "avg:m{env:prod,queue:b}", "avg:m{env:prod,queue:c}",
                 "avg:m{env:dev,queue:c}"});
  ASSERT_EQ(p.groups.size(), 1u);
  EXPECT_EQ(p.groups[0].key, "queue");
  EXPECT_EQ(p.groups[0].members, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(p.alone, std::vector<std::size_t>{3});
}

TEST(Coalesce, ALargeGroupIsSplitByValueCountAndLength) {
  std::vector<std::string> queries;
  for (int i = 0; i < 250; ++i)
    queries.push_back("avg:m{env:prod,queue:q" + std::to_string(i) + "}");
  auto byCount = plan(queries, {}, {.maxValues = 100});
  ASSERT_EQ(byCount.groups.size(), 3u);
  EXPECT_EQ(byCount.groups[0].values.size(), 100u);
  EXPECT_EQ(byCount.groups[2].values.size(), 50u);

  CoalesceLimits tight{.maxValues = 1000, .maxLength = 200};
  auto byLength = plan(queries, {}, tight);
  std::size_t members = 0;
  for (const auto& g : byLength.groups) {
    EXPECT_LE(g.query.size(), 200u) << g.query;
    members += g.members.size();
  }
  // Some 45 bytes of query around values of 3-4 bytes: no more than ~40 values fit in 200.
  EXPECT_GE(byLength.groups.size(), 250u / 40);
  EXPECT_EQ(members + byLength.alone.size(), 250u);
}

TEST(Coalesce, TheLengthLimitCountsWhatTheCallerMeasures) {
  // Measured escaped, each value costs three times its bytes: fewer fit.
  auto escaped = [](std::string_view s) { return s.size() * 3; };
  std::vector<std::string> queries;
  for (int i = 0; i < 40; ++i) queries.push_back("avg:m{queue:q" + std::to_string(i) + "}");
  auto p = plan(queries, {}, {.maxValues = 1000, .maxLength = 300, .length = escaped});
  ASSERT_FALSE(p.groups.empty());
  for (const auto& g : p.groups) EXPECT_LE(g.query.size() * 3, 300u) << g.query;
}

TEST(NormalisedQuery, SpellingsOfOneQueryAreOneText) {
  EXPECT_EQ(normalisedQuery("avg:m{env:prod,app:a}"), normalisedQuery("avg:m{app:a, env:prod}"));
  EXPECT_EQ(normalisedQuery("avg:m{a:1 AND b IN (y,x,y)}"),
            normalisedQuery("avg:m{b IN (x,y) AND a:1}"));
  EXPECT_NE(normalisedQuery("avg:m{env:prod}"), normalisedQuery("sum:m{env:prod}"));
  EXPECT_EQ(normalisedQuery("sum:a{*}/sum:b{*}"), "sum:a{*}/sum:b{*}");  // not ours to reorder
}

TEST(Coalesce, TagValuesReadsTheSplitKeyFromASeriesTagSet) {
  std::vector<std::string> tags = {"env:prod", "Queue:B", "queue:c", "queuex:d"};
  EXPECT_EQ(tagValues(tags, "queue"), (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(tagValues(tags, "region").empty());
}

}  // namespace
}  // namespace xmetrics::query

#include "backends/prometheus/coalescing.hpp"

#include <gtest/gtest.h>

namespace xmetrics::backends::prometheus {
namespace {

using namespace std::chrono_literals;

std::string queue(int i, std::string_view env = "prod", std::string_view agg = "sum") {
  return std::string(agg) + "(queue_depth{env=\"" + std::string(env) + "\",queue=\"q" +
         std::to_string(i) + "\"})";
}

std::vector<BackendQuery> queries(std::vector<std::string> texts, std::chrono::seconds w = 300s) {
  std::vector<BackendQuery> out;
  for (auto& t : texts) out.push_back({std::move(t), w});
  return out;
}

TEST(PlanCoalescing, QueriesDifferingInOneLabelValueBecomeOneGroupedQuery) {
  std::vector<std::string> texts;
  for (int i = 0; i < 12; ++i) texts.push_back(queue(i));
  auto batch = queries(texts);
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_TRUE(plan.alone.empty());
  const auto& g = plan.groups[0];
  EXPECT_EQ(g.promql,
            "sum by (queue)(queue_depth{env=\"prod\",queue=~\"q0|q1|q10|q11|q2|q3|q4|q5|q6|q7|q8|"
            "q9\"})")
      << "values sorted: the same text whatever the order of the batch";
  EXPECT_EQ(g.key, "queue");
  EXPECT_EQ(g.members, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(g.values[0], "q0");
  EXPECT_EQ(g.values[11], "q11");
}

TEST(PlanCoalescing, OnlyQueriesSharingEverythingButOneValueAreGrouped) {
  auto batch = queries({
      queue(0),                                               // 0: with 1
      queue(1),                                               // 1
      queue(2, "dev"),                                        // 2: another env, and another queue
      queue(3, "prod", "max"),                                // 3: another aggregation
      "sum(other{env=\"prod\",queue=\"q4\"})",                // 4: another metric
      "sum(queue_depth{env=\"prod\",queue=\"q5\",x=\"1\"})",  // 5: one more matcher
      "sum(queue_depth{queue=\"q6\"})",                       // 6: one fewer
  });
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].members, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(plan.alone, (std::vector<std::size_t>{2, 3, 4, 5, 6}));
}

TEST(PlanCoalescing, DifferentWindowsNeverShareAGroup) {
  std::vector<BackendQuery> batch = {
      {queue(0), 300s}, {queue(1), 60s}, {queue(2), 300s}, {queue(3), 60s}, {queue(4), 120s}};
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 2u);
  std::vector<std::vector<std::size_t>> members = {plan.groups[0].members, plan.groups[1].members};
  std::sort(members.begin(), members.end());
  EXPECT_EQ(members, (std::vector<std::vector<std::size_t>>{{0, 2}, {1, 3}}));
  EXPECT_EQ(plan.alone, (std::vector<std::size_t>{4}));
}

TEST(PlanCoalescing, WhatIsNotTheInlineShapeIsLeftAlone) {
  auto batch = queries({
      "sum(queue_depth{env=\"prod\",queue=~\"q0|q1\"})",  // regex
      "sum(queue_depth{env=\"prod\",queue!=\"q1\"})",     // negation
      "queue_depth{env=\"prod\",queue=\"q2\"}",           // aggregation none
      "max(queue_depth{env=\"prod\",queue=\"q3\"}) * 2",  // user-written PromQL
      "sum by (queue)(queue_depth{env=\"prod\",queue=\"q4\"})",
      "sum(queue_depth{env=\"prod\", queue=\"q5\"})",  // not inlinePromql's text
      "sum(queue_depth{env=\"prod\",queue=\"\"})",     // the varying value would be absence
      "sum(queue_depth{env=\"prod\",queue=\"q7\",queue=\"q8\"})",  // a label twice
      "sum(queue_depth{env=\"prod\",queue=\"q9\",queue=\"q10\"})",
      "sum(m{__name__=\"a\"})",  // internal labels do not vary
      "sum(m{__name__=\"b\"})",
  });
  auto plan = planCoalescing(batch);
  EXPECT_TRUE(plan.groups.empty()) << plan.groups[0].promql;
  EXPECT_EQ(plan.alone.size(), batch.size());
}

TEST(PlanCoalescing, TheLabelThatVariesIsTheOneMostQueriesShare) {
  // 0-2 differ in queue (env=prod); 2 and 3 differ in env (queue=q2). Queue groups more.
  auto batch = queries({queue(0), queue(1), queue(2), queue(2, "dev")});
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].key, "queue");
  EXPECT_EQ(plan.groups[0].members, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(plan.alone, (std::vector<std::size_t>{3}));
}

TEST(PlanCoalescing, TheMatchersOrderDoesNotMatter) {
  auto batch = queries({"sum(m{a=\"1\",b=\"x\",c=\"2\"})", "sum(m{c=\"2\",b=\"y\",a=\"1\"})"});
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].promql, "sum by (b)(m{a=\"1\",c=\"2\",b=~\"x|y\"})");
  EXPECT_EQ(plan.groups[0].values, (std::vector<std::string>{"x", "y"}));
}

TEST(PlanCoalescing, MembersWantingTheSameValueShareIt) {
  auto batch = queries({queue(0), queue(1), queue(0)});
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].promql, "sum by (queue)(queue_depth{env=\"prod\",queue=~\"q0|q1\"})");
  EXPECT_EQ(plan.groups[0].members, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(plan.groups[0].values, (std::vector<std::string>{"q0", "q1", "q0"}));
  // Two copies of one value are not a group.
  auto same = queries({queue(0), queue(0)});
  EXPECT_TRUE(planCoalescing(same).groups.empty());
}

TEST(PlanCoalescing, ALargeGroupIsSplitByValueCountAndLength) {
  std::vector<std::string> texts;
  for (int i = 10; i <= 20; ++i) texts.push_back(queue(i));  // q10..q20: sorted as numbered
  auto batch = queries(texts);
  auto plan = planCoalescing(batch, {.maxValues = 5});
  ASSERT_EQ(plan.groups.size(), 2u);
  EXPECT_EQ(plan.groups[0].members, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(plan.groups[1].members, (std::vector<std::size_t>{5, 6, 7, 8, 9}));
  EXPECT_EQ(plan.alone, (std::vector<std::size_t>{10})) << "a part of one value goes alone";

  // The length bound: 49 bytes without values; "q10|q11|q12|q13" fits 64, "|q14" would not.
  plan = planCoalescing(batch, {.maxQueryBytes = 64});
  ASSERT_EQ(plan.groups.size(), 3u);
  EXPECT_EQ(plan.groups[0].promql,
            "sum by (queue)(queue_depth{env=\"prod\",queue=~\"q10|q11|q12|q13\"})");
  EXPECT_EQ(plan.groups[0].promql.size(), 64u);
  EXPECT_EQ(plan.groups[1].members, (std::vector<std::size_t>{4, 5, 6, 7}));
  EXPECT_EQ(plan.groups[2].members, (std::vector<std::size_t>{8, 9, 10}));
  EXPECT_TRUE(plan.alone.empty());
  // A bound no grouped query fits leaves everything alone.
  plan = planCoalescing(batch, {.maxQueryBytes = 10});
  EXPECT_TRUE(plan.groups.empty());
  EXPECT_EQ(plan.alone.size(), batch.size());
}

TEST(PlanCoalescing, TheDefaultLimitsAllowAHundredValues) {
  std::vector<std::string> texts;
  for (int i = 0; i < 250; ++i) texts.push_back(queue(i));
  auto batch = queries(texts);
  auto plan = planCoalescing(batch);
  ASSERT_EQ(plan.groups.size(), 3u);
  EXPECT_EQ(plan.groups[0].members.size(), 100u);
  EXPECT_EQ(plan.groups[1].members.size(), 100u);
  EXPECT_EQ(plan.groups[2].members.size(), 50u);
  EXPECT_TRUE(plan.alone.empty());
}

TEST(PlanCoalescing, IsDeterministic) {
  auto batch = queries({queue(3), queue(2, "dev"), queue(1), "sum(m{a=\"1\"})", queue(0, "dev"),
                        "sum(m{a=\"2\"})", queue(2)});
  auto a = planCoalescing(batch), b = planCoalescing(batch);
  ASSERT_EQ(a.groups.size(), b.groups.size());
  for (std::size_t i = 0; i < a.groups.size(); ++i) {
    EXPECT_EQ(a.groups[i].promql, b.groups[i].promql);
    EXPECT_EQ(a.groups[i].members, b.groups[i].members);
  }
  EXPECT_EQ(a.alone, b.alone);
  EXPECT_EQ(a.groups.size(), 3u);  // prod queues, dev queues, m by a
}

}  // namespace
}  // namespace xmetrics::backends::prometheus

#include "backends/datadog/batch_planner.hpp"

#include <gtest/gtest.h>

namespace xmetrics::backends::datadog {
namespace {

using std::chrono::seconds;

std::vector<BackendQuery> manyQueries(std::size_t n, std::size_t padTo = 0,
                                      seconds window = seconds(300)) {
  std::vector<BackendQuery> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::string q = "avg:m" + std::to_string(i) + "{*}";
    if (q.size() < padTo) q += std::string(padTo - q.size(), 'x');
    out.push_back({q, window});
  }
  return out;
}

TEST(EscapeQuery, EscapesLikeGosQueryEscape) {
  EXPECT_EQ(escapeQuery("system.cpu.idle{*}"), "system.cpu.idle%7B%2A%7D");
  EXPECT_EQ(escapeQuery("avg:a{k:v,x:y} by {h}"), "avg%3Aa%7Bk%3Av%2Cx%3Ay%7D%20by%20%7Bh%7D");
}

TEST(PlanBatches, AtMost35QueriesPerCall) {
  auto queries = manyQueries(100);
  auto plan = planBatches(queries, {});
  ASSERT_EQ(plan.calls.size(), 3u);
  EXPECT_EQ(plan.calls[0].queries.size(), 35u);
  EXPECT_EQ(plan.calls[1].queries.size(), 35u);
  EXPECT_EQ(plan.calls[2].queries.size(), 30u);
  EXPECT_EQ(plan.calls[2].queries.back(), 99u);
}

TEST(PlanBatches, StopsBeforeTheEscapedTextPasses7000Characters) {
  auto queries = manyQueries(10, 1000);  // ~1000 characters each
  auto plan = planBatches(queries, {});
  ASSERT_EQ(plan.calls.size(), 2u);
  EXPECT_EQ(plan.calls[0].queries.size(), 6u);  // 6 × ~1005 + separators < 7000 < 7 ×
  for (const auto& call : plan.calls) {
    std::size_t chars = 0;
    for (auto i : call.queries) chars += escapeQuery(queries[i].query).size() + 3;
    EXPECT_LE(chars - 3, 7000u);
  }
}

TEST(PlanBatches, LengthsGivenByTheCallerPlanAsComputedOnes) {
  // Mixed lengths and windows, some past the limit alone: the same plan either way.
  auto queries = manyQueries(120, 0);
  for (std::size_t i = 0; i < queries.size(); ++i) {
    queries[i].query += std::string((i * 397) % 1900, i % 3 ? 'x' : ',');
    if (i % 7 == 0) queries[i].window = seconds(3600);
  }
  queries[5].query += std::string(7000, 'x');
  std::vector<std::size_t> lengths;
  for (const auto& q : queries) lengths.push_back(escapeQuery(q.query).size());
  auto computed = planBatches(queries, {});
  auto given = planBatches(queries, {}, {}, lengths);
  EXPECT_EQ(given.tooLong, computed.tooLong);
  EXPECT_EQ(given.tooLong, std::vector<std::size_t>{5});
  ASSERT_EQ(given.calls.size(), computed.calls.size());
  for (std::size_t c = 0; c < given.calls.size(); ++c) {
    EXPECT_EQ(given.calls[c].window, computed.calls[c].window);
    EXPECT_EQ(given.calls[c].queries, computed.calls[c].queries);
  }
  // And they are what it goes by: a query said to be too long is refused.
  lengths[0] = 7001;
  EXPECT_EQ(planBatches(queries, {}, {}, lengths).tooLong, (std::vector<std::size_t>{0, 5}));
}

TEST(PlanBatches, RefusesAQueryThatCannotFitAlone) {
  auto queries = manyQueries(3);
  queries[1].query += std::string(7000, 'x');
  auto plan = planBatches(queries, {});
  EXPECT_EQ(plan.tooLong, std::vector<std::size_t>{1});
  ASSERT_EQ(plan.calls.size(), 1u);
  EXPECT_EQ(plan.calls[0].queries, (std::vector<std::size_t>{0, 2}));
}

TEST(PlanBatches, DifferentWindowsNeverShareACall) {
  auto queries = manyQueries(4);
  queries[1].window = seconds(3600);
  queries[3].window = seconds(3600);
  auto plan = planBatches(queries, {});
  ASSERT_EQ(plan.calls.size(), 2u);
  EXPECT_EQ(plan.calls[0].queries, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(plan.calls[1].queries, (std::vector<std::size_t>{1, 3}));
  EXPECT_EQ(plan.calls[1].window, seconds(3600));
}

TEST(PlanBatches, SkipsQueriesAnsweredElsewhere) {
  auto queries = manyQueries(3);
  auto plan = planBatches(queries, {.maxQueries = 2}, {true, false, false});
  ASSERT_EQ(plan.calls.size(), 1u);
  EXPECT_EQ(plan.calls[0].queries, (std::vector<std::size_t>{1, 2}));
}

}  // namespace
}  // namespace xmetrics::backends::datadog

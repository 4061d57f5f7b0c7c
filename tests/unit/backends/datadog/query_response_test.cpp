#include "backends/datadog/query_response.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <limits>
#include <string>
#include <vector>

namespace xmetrics::backends::datadog {
namespace {

using std::chrono::milliseconds;

std::string fixtureBody(const std::string& name) {
  auto root = YAML::LoadFile(std::string(XMETRICS_SOURCE_DIR) +
                             "/tests/integration/fixtures/datadog/" + name);
  return root["interactions"][0]["response"]["body"]["string"].as<std::string>();
}

TEST(ChoosePoint, TakesTheSecondNewestNonNullPointBecauseTheNewestBucketIsStillFilling) {
  std::vector<Point> points = {
      {1000, 1.0}, {2000, 2.0}, {3000, std::nullopt}, {4000, 4.0}, {5000, std::nullopt}};
  auto p = choosePoint(points);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->timestampMs, 2000);
  EXPECT_EQ(*p->value, 2.0);
}

TEST(ChoosePoint, TakesTheOnlyNonNullPoint) {
  std::vector<Point> points = {{1000, std::nullopt}, {2000, 7.5}, {3000, std::nullopt}};
  auto p = choosePoint(points);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p->value, 7.5);
  EXPECT_EQ(p->timestampMs, 2000);
}

TEST(ChoosePoint, AllNullIsTheClusterAgentsError) {
  std::vector<Point> points = {{1000, std::nullopt}, {2000, std::nullopt}};
  auto p = choosePoint(points);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("only null values found"), std::string::npos) << p.error();
  EXPECT_FALSE(choosePoint({}));
}

TEST(ParseQueryResponse, ReadsTheRecordedAnswerWithMillisecondTimestampsAndItsUnit) {
  std::vector<std::string> queries = {"system.cpu.idle{*}"};
  auto results = parseQueryResponse(
      fixtureBody("test_query_timeseries_points_returns_ok_response.yaml"), queries);
  ASSERT_TRUE(results) << results.error();
  ASSERT_EQ(results->size(), 1u);
  const auto& r = (*results)[0];
  ASSERT_TRUE(r) << r.error();
  // The pointlist ends ...[1641429900000, 92.05671568477855], [1641430200000, 92.577...]].
  EXPECT_DOUBLE_EQ(r->value, 92.05671568477855);
  EXPECT_EQ(r->time, core::Clock::time_point(milliseconds(1641429900000)));
  EXPECT_EQ(r->unit, "percent");  // [percent, null]
}

TEST(ParseQueryResponse, MapsSeriesBackByQueryIndexNotByOrder) {
  std::vector<std::string> queries = {"a{*}", "b{*}", "c{*}"};
  std::string body = R"({"status":"ok","series":[
    {"query_index":2,"pointlist":[[1000,3.0],[2000,33.0]]},
    {"query_index":0,"pointlist":[[1000,1.0]],"unit":[{"name":"byte"},{"name":"second"}]}]})";
  auto results = parseQueryResponse(body, queries);
  ASSERT_TRUE(results) << results.error();
  ASSERT_EQ(results->size(), 3u);
  ASSERT_TRUE((*results)[0]);
  EXPECT_EQ((*results)[0]->value, 1.0);
  EXPECT_EQ((*results)[0]->unit, "byte per second");
  ASSERT_FALSE((*results)[1]);
  EXPECT_EQ((*results)[1].error(), "no serie was found for this query");
  ASSERT_TRUE((*results)[2]);
  EXPECT_EQ((*results)[2]->value, 3.0);
}

TEST(ParseQueryResponse, SeveralSeriesForOneQueryIsAnErrorNotAnArbitraryPick) {
  std::vector<std::string> queries = {"avg:a{*} by {host}"};
  std::string body = R"({"series":[{"query_index":0,"pointlist":[[1000,1.0]]},
                                   {"query_index":0,"pointlist":[[1000,2.0]]}]})";
  auto results = parseQueryResponse(body, queries);
  ASSERT_TRUE(results);
  ASSERT_FALSE((*results)[0]);
  EXPECT_NE((*results)[0].error().find("2 series"), std::string::npos);
}

TEST(ParseQueryResponse, GarbageFailsTheWholeAnswer) {
  std::vector<std::string> queries = {"a{*}"};
  EXPECT_FALSE(parseQueryResponse("<html>oops</html>", queries));
  EXPECT_FALSE(parseQueryResponse(R"([1,2])", queries));
  EXPECT_FALSE(parseQueryResponse(R"({"series":{}})", queries));
}

// Out-of-range and missing indexes used to fail the whole answer, so one query returning extra
// series backed the endpoint off for everyone; now they fail no query but the one left without.
TEST(ParseQueryResponse, OutOfRangeAndMissingIndexesFailOnlyTheQueriesLeftWithout) {
  std::vector<std::string> queries = {"a{*}"};
  auto outOfRange = parseQueryResponse(R"({"series":[{"query_index":3,"pointlist":[]}]})", queries);
  ASSERT_TRUE(outOfRange) << outOfRange.error();
  ASSERT_FALSE((*outOfRange)[0]);
  EXPECT_NE((*outOfRange)[0].error().find("no serie was found"), std::string::npos);
  std::vector<std::string> two = {"a{*}", "b{*}"};
  auto unindexed = parseQueryResponse(R"({"series":[{"pointlist":[[1,2]]}]})", two);
  ASSERT_TRUE(unindexed) << unindexed.error();
  EXPECT_FALSE((*unindexed)[0]);
  EXPECT_FALSE((*unindexed)[1]);
}

TEST(ParseQueryResponse, FindsItsFieldsInAnyOrderAndUnderEscapedNames) {
  std::vector<std::string> queries = {"a{*}"};
  std::string body = R"({"series":[{"unit":[{"n\u0061me":"byte"},null],"pointlist":[[1000,2.5]],
    "metric":{"nested":[["query_index",9]]},"query_index":0}],"status":"ok"})";
  auto results = parseQueryResponse(body, queries);
  ASSERT_TRUE(results) << results.error();
  ASSERT_TRUE((*results)[0]) << (*results)[0].error();
  EXPECT_EQ((*results)[0]->value, 2.5);
  EXPECT_EQ((*results)[0]->unit, "byte");
}

TEST(ParseQueryResponse, ARepeatedKeyCountsOnceWithItsLastValueAsInAJsonObject) {
  std::vector<std::string> queries = {"a{*}", "b{*}"};
  std::string body = R"({"series":[{"query_index":0,"pointlist":[["bad"]],"pointlist":[[1000,5]],
    "query_index":1}]})";
  auto results = parseQueryResponse(body, queries);
  ASSERT_TRUE(results) << results.error();
  EXPECT_FALSE((*results)[0]);
  ASSERT_TRUE((*results)[1]);
  EXPECT_EQ((*results)[1]->value, 5);
}

TEST(ParseQueryResponse, AValueThatIsNotANumberIsANullPoint) {
  std::vector<std::string> queries = {"a{*}"};
  auto results = parseQueryResponse(
      R"({"series":[{"pointlist":[[1000,"7"],[2000,3,{"extra":[1]}],[3000,null]]}]})", queries);
  ASSERT_TRUE(results) << results.error();
  ASSERT_TRUE((*results)[0]);
  EXPECT_EQ((*results)[0]->value, 3);  // the only number, though not the second newest point
}

// A fault inside one series is that query's alone (issue: one object's query must never stop
// its neighbours' refresh): the query fails with the reason, the others keep their values.
// Found by fuzz_datadog_answer: a timestamp past int64 was converted anyway (undefined behaviour).
TEST(ParseQueryResponse, ATimestampTheClockCannotHoldFailsOnlyItsQuery) {
  std::vector<std::string> queries = {"a{*}", "b{*}"};
  auto results = parseQueryResponse(
      R"({"series":[{"query_index":0,"pointlist":[[1.64137e+19,1],[1000,2]]},
                    {"query_index":1,"pointlist":[[-5,1]]}]})",
      queries);
  ASSERT_TRUE(results) << results.error();
  for (const auto& result : *results) {
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().find("a point whose timestamp is out of range"), std::string::npos)
        << result.error();
  }
  EXPECT_EQ(pointTimestampMs(1641344100000.0), 1641344100000);
  EXPECT_EQ(pointTimestampMs(0), 0);
  EXPECT_FALSE(pointTimestampMs(-1));
  EXPECT_FALSE(pointTimestampMs(1e19));
  EXPECT_FALSE(pointTimestampMs(std::numeric_limits<double>::quiet_NaN()));
}

TEST(ParseQueryResponse, APointWithoutTwoEntriesOrATimestampFailsOnlyItsQuery) {
  std::vector<std::string> queries = {"a{*}", "b{*}"};
  auto shortPoint = parseQueryResponse(
      R"({"series":[{"query_index":0,"pointlist":[[1000]]},
                    {"query_index":1,"pointlist":[[1000,4]]}]})",
      queries);
  ASSERT_TRUE(shortPoint) << shortPoint.error();
  ASSERT_FALSE((*shortPoint)[0]);
  EXPECT_NE((*shortPoint)[0].error().find("a malformed point"), std::string::npos)
      << (*shortPoint)[0].error();
  ASSERT_TRUE((*shortPoint)[1]);
  EXPECT_EQ((*shortPoint)[1]->value, 4);
  auto noTime =
      parseQueryResponse(R"({"series":[{"pointlist":[["now",1]]}]})", {queries.data(), 1});
  ASSERT_TRUE(noTime) << noTime.error();
  ASSERT_FALSE((*noTime)[0]);
  EXPECT_NE((*noTime)[0].error().find("without a timestamp"), std::string::npos)
      << (*noTime)[0].error();
}

TEST(ParseQueryResponse, ASeriesNamingNoQueryOfTheCallFailsNoNeighbour) {
  std::vector<std::string> queries = {"a{*}", "b{*}"};
  // An index out of range (what `avg:a{*},avg:b{*}` smuggled into one query does), one without
  // an index in a batch, and one that is not an object.
  auto results = parseQueryResponse(
      R"({"series":[{"query_index":0,"pointlist":[[1000,1]]},
                    {"query_index":2,"pointlist":[[1000,9]]},
                    {"pointlist":[[1000,8]]}, 7]})",
      queries);
  ASSERT_TRUE(results) << results.error();
  ASSERT_TRUE((*results)[0]) << (*results)[0].error();
  EXPECT_EQ((*results)[0]->value, 1);
  ASSERT_FALSE((*results)[1]);
  EXPECT_EQ((*results)[1].error(),
            "no serie was found for this query (the answer also held 3 series that name no query "
            "of this call)");
}

TEST(ParseQueryAnswers, AGroupedAnswerIsSplitByTheTagSetOfEachSeries) {
  // The v1 shape of `avg:q{env:prod AND queue IN (a,b,c)} by {queue}`: one series per group.
  std::string body = R"({"status":"ok","res_type":"time_series","series":[
    {"metric":"q","scope":"env:prod,queue:b","tag_set":["queue:b"],"query_index":0,
     "pointlist":[[1000,2],[2000,20],[3000,200]],"unit":null},
    {"metric":"q","scope":"env:prod,queue:a","tag_set":["Queue:A"],"query_index":0,
     "pointlist":[[1000,1],[2000,10],[3000,null]],"unit":[{"name":"job"},null]}]})";
  auto answers = parseQueryAnswers(body, 1);
  ASSERT_TRUE(answers) << answers.error();
  ASSERT_EQ((*answers)[0].series.size(), 2u);
  EXPECT_EQ((*answers)[0].series[0].tagSet, std::vector<std::string>{"queue:b"});
  std::vector<std::string> wanted = {"a", "b", "c", "b"};
  auto split = splitByTag((*answers)[0], "queue", wanted);
  ASSERT_EQ(split.size(), 4u);
  ASSERT_TRUE(split[0]) << split[0].error();
  EXPECT_EQ(split[0]->value, 1);  // the second newest non-null point, as for any query
  EXPECT_EQ(split[0]->time, core::Clock::time_point(std::chrono::milliseconds(1000)));
  EXPECT_EQ(split[0]->unit, "job");
  ASSERT_TRUE(split[1]);
  EXPECT_EQ(split[1]->value, 20);
  EXPECT_EQ(split[1]->time, core::Clock::time_point(std::chrono::milliseconds(2000)));
  ASSERT_FALSE(split[2]);
  EXPECT_EQ(split[2].error(), "no serie was found for this query");
  ASSERT_TRUE(split[3]);
  EXPECT_EQ(split[3]->value, 20);
  // Read as an ungrouped query, two series are an error, as before.
  EXPECT_FALSE(singleResult((*answers)[0]));
}

TEST(ParseQueryResponse, StatusErrorWinsWhereverItStands) {
  std::vector<std::string> queries = {"a{*}"};
  auto results = parseQueryResponse(
      R"({"series":[{"pointlist":[[1000,1]]}],"errors":["over quota"],"status":"error"})", queries);
  ASSERT_FALSE(results);
  EXPECT_NE(results.error().find("over quota"), std::string::npos) << results.error();
}

TEST(ParseQueryResponse, TrailingDataIsNotJson) {
  std::vector<std::string> queries = {"a{*}"};
  auto results = parseQueryResponse(R"({"series":[]} x)", queries);
  ASSERT_FALSE(results);
  EXPECT_NE(results.error().find("not JSON"), std::string::npos) << results.error();
}

TEST(ErrorMessage, JoinsTheApisErrors) {
  EXPECT_EQ(errorMessage(R"({"errors":["Error parsing query: foo","bar"]})"),
            "Error parsing query: foo; bar");
  EXPECT_EQ(errorMessage(R"({"status":"error","error":"Rate limit of 1600 requests"})"),
            "Rate limit of 1600 requests");
  EXPECT_EQ(errorMessage(
                fixtureBody("test_scalar_cross_product_query_returns_bad_request_response.yaml")),
            "Queries ending outside the retention date are invalid");
}

}  // namespace
}  // namespace xmetrics::backends::datadog

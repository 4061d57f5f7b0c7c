#include "backends/datadog/v2_query.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/datadog/datadog_backend.hpp"

namespace xmetrics::backends::datadog {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

YAML::Node fixtureExchange(const std::string& name) {
  auto root = YAML::LoadFile(std::string(XMETRICS_SOURCE_DIR) +
                             "/tests/integration/fixtures/datadog/" + name);
  return root["interactions"][0];
}
std::string fixtureBody(const std::string& name) {
  return fixtureExchange(name)["response"]["body"]["string"].as<std::string>();
}

const char* kTimeseriesOk = "test_timeseries_cross_product_query_returns_ok_response.yaml";
const char* kScalarOk = "test_scalar_cross_product_query_returns_ok_response.yaml";
const char* kScalarBad = "test_scalar_cross_product_query_returns_bad_request_response.yaml";

std::set<std::string> keysOf(const json::object& o) {
  std::set<std::string> keys;
  for (const auto& kv : o) keys.emplace(kv.key());
  return keys;
}

TEST(TimeseriesRequestBody, HasTheShapeOfTheRecordedRequestOneFormulaPerQuery) {
  auto recorded =
      json::parse(fixtureExchange(kTimeseriesOk)["request"]["body"].as<std::string>()).as_object();
  std::vector<std::string_view> queries = {"avg:a{*}", "avg:b{env:prod AND q IN (x,y)} by {q}"};
  auto sent = json::parse(timeseriesRequestBody(queries, 1711977601000, 1711981201000));
  const auto& data = sent.at("data").as_object();
  EXPECT_EQ(data.at("type"), recorded.at("data").at("type"));  // "timeseries_request"
  const auto& attributes = data.at("attributes").as_object();
  EXPECT_EQ(attributes.at("from").as_int64(), 1711977601000);
  EXPECT_EQ(attributes.at("to").as_int64(), 1711981201000);
  const auto& wanted = recorded.at("data").at("attributes").at("queries").at(0).as_object();
  const auto& list = attributes.at("queries").as_array();
  const auto& formulas = attributes.at("formulas").as_array();
  ASSERT_EQ(list.size(), 2u);
  ASSERT_EQ(formulas.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    const auto& q = list[k].as_object();
    EXPECT_EQ(keysOf(q), keysOf(wanted));  // data_source, name, query
    EXPECT_EQ(q.at("data_source"), wanted.at("data_source"));
    EXPECT_EQ(q.at("query").as_string(), queries[k]);
    // query_index k of the answer names formula k, which is query k.
    EXPECT_EQ(formulas[k].at("formula"), q.at("name"));
  }
  // Datadog picks the rollup, as for v1.
  EXPECT_FALSE(attributes.contains("interval"));
}

TEST(TimeseriesRequestBody, QueryTextIsJsonEscapedNotSpliced) {
  std::vector<std::string_view> queries = {R"(avg:m{name:"a\b"})"};
  auto sent = json::parse(timeseriesRequestBody(queries, 0, 1000));
  EXPECT_EQ(sent.at("data").at("attributes").at("queries").at(0).at("query").as_string(),
            queries[0]);
}

TEST(ParseTimeseriesAnswers, ReadsTheRecordedAnswerWithTheSecondNewestPoint) {
  auto answers = parseTimeseriesAnswers(fixtureBody(kTimeseriesOk), 1);
  ASSERT_TRUE(answers) << answers.error();
  ASSERT_EQ(answers->size(), 1u);
  auto r = singleResult((*answers)[0]);
  ASSERT_TRUE(r) << r.error();
  // times [1711977645000, 1711977705000, 1711980225000], values [[1, 1, 87]]: the newest bucket
  // (87, still filling) is passed over, as v1's pointlist would be.
  EXPECT_EQ(r->value, 1);
  EXPECT_EQ(r->time, core::Clock::time_point(milliseconds(1711977705000)));
  EXPECT_EQ(r->unit, "");  // "unit": null
}

TEST(ParseTimeseriesAnswers, MapsSeriesByQueryIndexAndKeepsGroupTagsForSplitting) {
  std::string body = R"({"data":{"type":"timeseries_response","attributes":{
    "series":[{"group_tags":["queue:b"],"query_index":1,"unit":null},
              {"group_tags":[],"query_index":0,
               "unit":[{"name":"byte","short_name":"B"},{"name":"second"}]},
              {"group_tags":["queue:a"],"query_index":1,"unit":null}],
    "times":[1000,2000,3000],
    "values":[[5,6,null],[1,null,3],[7,null,null]]}}})";
  auto answers = parseTimeseriesAnswers(body, 3);
  ASSERT_TRUE(answers) << answers.error();
  ASSERT_EQ(answers->size(), 3u);
  auto plain = singleResult((*answers)[0]);
  ASSERT_TRUE(plain) << plain.error();
  EXPECT_EQ(plain->value, 1);  // nulls skipped: 3 is the newest non-null, 1 the second
  EXPECT_EQ(plain->time, core::Clock::time_point(milliseconds(1000)));
  EXPECT_EQ(plain->unit, "byte per second");
  EXPECT_EQ((*answers)[1].series[0].tagSet, std::vector<std::string>{"queue:b"});
  std::vector<std::string> wanted = {"a", "b", "c"};
  auto split = splitByTag((*answers)[1], "queue", wanted);
  ASSERT_TRUE(split[0]) << split[0].error();
  EXPECT_EQ(split[0]->value, 7);  // the only non-null point
  ASSERT_TRUE(split[1]) << split[1].error();
  EXPECT_EQ(split[1]->value, 5);
  EXPECT_EQ(split[1]->time, core::Clock::time_point(milliseconds(1000)));
  ASSERT_FALSE(split[2]);
  EXPECT_EQ(split[2].error(), "no serie was found for this query");
  ASSERT_FALSE(singleResult((*answers)[2]));
  EXPECT_EQ(singleResult((*answers)[2]).error(), "no serie was found for this query");
}

TEST(ParseTimeseriesAnswers, AFaultySeriesFailsItsOwnQueryOnly) {
  std::string body = R"({"data":{"attributes":{
    "series":[{"query_index":0},{"query_index":1},{"query_index":2},{"query_index":3},
              {"query_index":4},{"query_index":9},"junk"],
    "times":[1000,2000],
    "values":[[1,2],[1],[1,"x"],[null,null],{"no":"row"}]}}})";
  auto answers = parseTimeseriesAnswers(body, 6);
  ASSERT_TRUE(answers) << answers.error();
  auto ok = singleResult((*answers)[0]);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->value, 1);
  auto error = [&](std::size_t k) { return singleResult((*answers)[k]).error(); };
  EXPECT_EQ(error(1), "Datadog answered 1 values for 2 times in this query's series");
  EXPECT_EQ(error(2), "Datadog answered a malformed point in this query's series");
  EXPECT_EQ(error(3), "only null values found in the last 2 points");
  EXPECT_EQ(error(4), "Datadog answered no values in this query's series");
  // query_index 9 and "junk" name no query of the call: left out, and said where none came.
  EXPECT_EQ(error(5),
            "no serie was found for this query (the answer also held 2 series that name no query "
            "of this call)");
}

TEST(ParseTimeseriesAnswers, WithoutQueryIndexOnlyAOneQueryCallKnowsWhoseSeriesItIs) {
  std::string body = R"({"data":{"attributes":{"series":[{"group_tags":[]}],
                        "times":[1000],"values":[[4]]}}})";
  auto one = parseTimeseriesAnswers(body, 1);
  ASSERT_TRUE(one) << one.error();
  EXPECT_EQ(singleResult((*one)[0])->value, 4);
  auto two = parseTimeseriesAnswers(body, 2);
  ASSERT_TRUE(two) << two.error();
  EXPECT_TRUE((*two)[0].series.empty());
  EXPECT_TRUE((*two)[1].series.empty());
}

TEST(ParseTimeseriesAnswers, AnAnswerWithoutSeriesHasNoSerieForEachQuery) {
  auto answers = parseTimeseriesAnswers(
      R"({"data":{"type":"timeseries_response","attributes":{"series":[],"times":[],"values":[]}}})",
      2);
  ASSERT_TRUE(answers) << answers.error();
  ASSERT_EQ(answers->size(), 2u);
  EXPECT_EQ(singleResult((*answers)[1]).error(), "no serie was found for this query");
}

TEST(ParseTimeseriesAnswers, OnlyAnAnswerNotOfTheShapeFailsTheWholeCall) {
  for (std::string body : {
           std::string("<html>maintenance</html>"), std::string("[]"),
           std::string(R"({"status":"ok","series":[]})"),  // a v1 answer
           std::string(R"({"data":{"type":"timeseries_response"}})"),
           std::string(R"({"data":{"attributes":{"series":{}}}})"),
           std::string(R"({"data":{"attributes":{"series":[],"times":[1,"x"]}}})"),
           std::string(R"({"data":{"attributes":{"series":[],"values":3}}})"),
           fixtureBody(kScalarOk),  // a scalar answer: columns, no series
       }) {
    auto answers = parseTimeseriesAnswers(body, 1);
    ASSERT_FALSE(answers) << body;
    EXPECT_NE(answers.error().find("not a v2 timeseries response"), std::string::npos)
        << answers.error();
  }
}

TEST(ParseTimeseriesAnswers, ErrorsBesideTheDataAreNotedErrorsAloneFailTheCall) {
  auto alone = parseTimeseriesAnswers(R"({"errors":"query timed out"})", 2);
  ASSERT_FALSE(alone);
  EXPECT_EQ(alone.error(), "Datadog answered an error: query timed out");
  auto beside = parseTimeseriesAnswers(
      R"({"data":{"attributes":{"series":[{"query_index":0}],"times":[1],"values":[[2]]}},
          "errors":"some queries timed out"})",
      2);
  ASSERT_TRUE(beside) << beside.error();
  EXPECT_EQ(singleResult((*beside)[0])->value, 2);
  EXPECT_EQ(singleResult((*beside)[1]).error(),
            "no serie was found for this query (Datadog also answered: some queries timed out)");
}

TEST(ParseTimeseriesAnswers, TheRecordedBadRequestGivesTheApisMessage) {
  // A v2 400 is read like v1's: the call is halved until the bad query is alone, with these words.
  EXPECT_EQ(errorMessage(fixtureBody(kScalarBad)),
            "Queries ending outside the retention date are invalid");
}

// The backend with --datadog-api v2: the same planning, riders, halving and mapping as v1, over a
// POST with a JSON body. A fake v2 API answers each query from `values`, one series per group
// from `groups`, and refuses a body holding a query in `bad` with 400.
struct FakeV2 {
  struct Call {
    http::Request request;
    std::vector<std::string> queries;
  };
  std::map<std::string, double> values;
  std::map<std::string, std::vector<std::pair<std::string, double>>> groups;
  std::set<std::string> bad;
  std::vector<Call> calls;

  Transport transport() {
    return [this](const http::Request& r) -> std::expected<http::Response, std::string> {
      Call call{r, {}};
      auto body = json::parse(r.body).as_object();
      const auto& attributes = body.at("data").at("attributes").as_object();
      for (const auto& q : attributes.at("queries").as_array()) {
        call.queries.emplace_back(q.at("query").as_string());
      }
      calls.push_back(call);
      http::Response res;
      for (const auto& q : call.queries) {
        if (bad.contains(q)) {
          res.status = 400;
          res.body = R"({"errors":["Error parsing query: )" + q + "\"]}";
          return res;
        }
      }
      int64_t to = attributes.at("to").as_int64();
      json::array series, rows;
      for (std::size_t i = 0; i < call.queries.size(); ++i) {
        auto add = [&](json::array tags, double v) {
          series.push_back(
              json::object{{"group_tags", std::move(tags)}, {"query_index", i}, {"unit", nullptr}});
          rows.push_back(json::array{v, nullptr});
        };
        if (auto g = groups.find(call.queries[i]); g != groups.end()) {
          for (const auto& [tag, v] : g->second) add(json::array{json::string(tag)}, v);
        } else if (auto it = values.find(call.queries[i]); it != values.end()) {
          add(json::array{}, it->second);
        }
      }
      json::object attrs{{"series", std::move(series)},
                         {"times", json::array{to - 60000, to - 30000}},
                         {"values", std::move(rows)}};
      res.status = 200;
      res.body =
          json::serialize(json::object{{"data", json::object{{"type", "timeseries_response"},
                                                             {"attributes", std::move(attrs)}}}});
      return res;
    };
  }
};

const core::Clock::time_point kNow{std::chrono::seconds(1'700'000'000)};

DatadogOptions v2Options() {
  DatadogOptions o;
  o.endpoints.push_back({"https://api.datadoghq.com", Secret::fromValue("api-key-0123456789"),
                         Secret::fromValue("app-key-9876543210")});
  o.maxParallelCalls = 1;
  o.api = Api::kV2;
  o.limits.maxEscapedChars = kV2MaxQueryChars;
  return o;
}

// A fake clock that sleeping moves on: pacing costs no real time.
Timing fakeTiming() {
  auto clock = std::make_shared<std::atomic<int64_t>>(0);
  return {
      [clock] { return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(*clock)); },
      [clock](std::chrono::steady_clock::duration d) {
        *clock += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
      }};
}

TEST(DatadogBackendV2, PostsTheBatchAsAJsonBodyAndMapsTheAnswerBackAsV1Does) {
  FakeV2 dd;
  std::vector<BackendQuery> qs = {{"avg:q{env:prod,queue:b}", 300s},
                                  {"avg:q{env:prod,queue:a}", 300s},
                                  {"avg:q{env:prod,queue:c}", 300s},
                                  {"avg:other{*}", 300s},
                                  {"avg:missing{*}", 300s}};
  const std::string grouped = "avg:q{env:prod AND queue IN (a,b,c)} by {queue}";
  dd.groups[grouped] = {{"queue:a", 1}, {"queue:b", 2}};
  dd.values["avg:other{*}"] = 9;
  DatadogBackend backend(v2Options(), dd.transport(), fakeTiming());
  auto results = backend.fetch(qs, kNow);
  ASSERT_EQ(dd.calls.size(), 1u);
  const auto& request = dd.calls[0].request;
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://api.datadoghq.com/api/v2/query/timeseries");
  EXPECT_EQ(request.headers.at("content-type"), "application/json");
  EXPECT_EQ(request.headers.at("DD-API-KEY"), "api-key-0123456789");
  EXPECT_EQ(dd.calls[0].queries,
            (std::vector<std::string>{grouped, "avg:other{*}", "avg:missing{*}"}));
  auto attributes = json::parse(request.body).at("data").at("attributes");
  EXPECT_EQ(attributes.at("from").as_int64(), 1'699'999'700'000);  // the window, in ms
  EXPECT_EQ(attributes.at("to").as_int64(), 1'700'000'000'000);
  ASSERT_TRUE(results[0]) << results[0].error();
  EXPECT_EQ(results[0]->value, 2);
  EXPECT_EQ(results[0]->time, kNow - 60s);
  ASSERT_TRUE(results[1]) << results[1].error();
  EXPECT_EQ(results[1]->value, 1);
  EXPECT_EQ(results[2].error(), "no serie was found for this query");
  EXPECT_EQ(results[3]->value, 9);
  EXPECT_EQ(results[4].error(), "no serie was found for this query");
}

TEST(DatadogBackendV2, LongQueriesShareACallThatV1WouldSplitAtSevenThousandCharacters) {
  std::vector<BackendQuery> qs;
  FakeV2 dd;
  for (int i = 0; i < 20; ++i) {
    // 20 queries of ~440 escaped characters: 8,800 in all, past v1's URL limit.
    qs.push_back(
        {"avg:m" + std::to_string(i) + "{env:prod,app:" + std::string(400, 'a') + "}", 300s});
    dd.values[qs.back().query] = i;
  }
  auto o = v2Options();
  o.coalesce = false;
  DatadogBackend backend(o, dd.transport(), fakeTiming());
  auto results = backend.fetch(qs, kNow);
  EXPECT_EQ(dd.calls.size(), 1u);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(results[i]) << results[i].error();
    EXPECT_EQ(results[i]->value, i);
  }
  // The chunk size still caps a call.
  FakeV2 chunked;
  for (const auto& [k, v] : dd.values) chunked.values[k] = v;
  o.limits.maxQueries = 8;
  DatadogBackend capped(o, chunked.transport(), fakeTiming());
  capped.fetch(qs, kNow);
  EXPECT_EQ(chunked.calls.size(), 3u);
}

TEST(DatadogBackendV2, ARejectedQueryIsFoundByHalvingAndFailsAlone) {
  FakeV2 dd;
  std::vector<BackendQuery> qs;
  for (int i = 0; i < 10; ++i) {
    qs.push_back({"avg:m" + std::to_string(i) + "{*}", 300s});
    dd.values[qs.back().query] = i;
  }
  dd.bad.insert(qs[6].query);
  DatadogBackend backend(v2Options(), dd.transport(), fakeTiming());
  auto results = backend.fetch(qs, kNow);
  for (int i = 0; i < 10; ++i) {
    if (i == 6) {
      ASSERT_FALSE(results[i]);
      EXPECT_EQ(results[i].error(), "Datadog rejected the query: Error parsing query: avg:m6{*}");
      continue;
    }
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error();
    EXPECT_EQ(results[i]->value, i);
  }
}

// Found by fuzz_datadog_answer (in v1; v2's times shared the conversion): a time the clock cannot
// hold is not converted, and spoils the answer as a time that is not a number does.
TEST(ParseTimeseriesAnswers, ATimeOutOfTheClocksRangeFailsTheAnswer) {
  for (const char* time : {"1e300", "-1000", "9.3e15"}) {
    std::string body =
        std::string(R"({"data":{"attributes":{"series":[{"query_index":0}],"times":[)") + time +
        R"(],"values":[[1]]}}})";
    auto answers = parseTimeseriesAnswers(body, 1);
    ASSERT_FALSE(answers) << time;
    EXPECT_NE(answers.error().find("(a time out of range)"), std::string::npos) << answers.error();
  }
}

}  // namespace
}  // namespace xmetrics::backends::datadog

#include "backends/prometheus/prometheus_backend.hpp"

#include <gtest/gtest.h>

#include <boost/url/url_view.hpp>
#include <map>

#include "backends/prometheus/promql.hpp"

namespace xmetrics::backends::prometheus {
namespace {

using namespace std::chrono_literals;

const core::Clock::time_point kNow{std::chrono::seconds(1'700'000'000)};

core::LabelSelector selector(std::string_view text) { return *core::LabelSelector::parse(text); }

TEST(InlinePromql, TranslatesEveryOperator) {
  EXPECT_EQ(inlinePromql("http_requests_total", {}, "sum"), "sum(http_requests_total)");
  EXPECT_EQ(inlinePromql("nginx.net.request_per_s", selector("app=web"), "sum"),
            "sum(nginx_net_request_per_s{app=\"web\"})");
  EXPECT_EQ(
      inlinePromql("m", selector("env=prod,region in (eu,us),tier!=free,team,!canary"), "avg"),
      "avg(m{canary=\"\",env=\"prod\",region=~\"eu|us\",team!=\"\",tier!=\"free\"})")
      << "canonical selector order";
  EXPECT_EQ(inlinePromql("m", selector("v notin (1.2,x-y)"), "none"), "m{v!~\"1\\\\.2|x-y\"}");
}

struct Fake {
  long status = 200;
  std::string body;
  std::vector<http::Request> requests;
  Transport transport() {
    return [this](const http::Request& r) -> std::expected<http::Response, std::string> {
      requests.push_back(r);
      if (status == 0) return std::unexpected("GET http://127.0.0.1:9 failed: Couldn't connect");
      return http::Response{status, {}, body};
    };
  }
};

BackendResult one(Fake& fake, std::string query = "sum(up)", PrometheusOptions o = {}) {
  PrometheusBackend backend(o, fake.transport());
  std::vector<BackendQuery> batch = {{query, 300s}};
  return backend.fetch(batch, kNow)[0];
}

TEST(PrometheusBackend, ReadsAnInstantVectorOfOneSeriesAtTheGivenTime) {
  Fake fake;
  fake.body = R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{},"value":[1699999999.5,"42.25"]}]}})";
  auto r = one(fake);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->value, 42.25);
  EXPECT_EQ(r->time, kNow - 500ms);
  ASSERT_EQ(fake.requests.size(), 1u);
  EXPECT_EQ(fake.requests[0].method, "GET");
  EXPECT_EQ(fake.requests[0].url,
            "http://127.0.0.1:9090/api/v1/query?query=sum%28up%29&time=1700000000.000");
}

// Found by fuzz_prometheus_answer: a timestamp beyond the clock was converted anyway (undefined
// behaviour), a missing one read as the epoch, and "12abc" read as 12.
TEST(PrometheusBackend, ASampleWithABadTimestampOrValueIsAnErrorThatSaysSo) {
  auto answer = [](std::string sample) {
    Fake fake;
    fake.body =
        R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":)" +
        sample + "}]}}";
    return one(fake);
  };
  EXPECT_EQ(answer(R"([1.7e20,"1"])").error(),
            "Prometheus returned a sample whose timestamp is out of range");
  EXPECT_EQ(answer(R"([-1,"1"])").error(),
            "Prometheus returned a sample whose timestamp is out of range");
  EXPECT_EQ(answer(R"(["now","1"])").error(), "Prometheus returned a sample without a timestamp");
  EXPECT_EQ(answer(R"([1699999999,"12abc"])").error(),
            "Prometheus returned a sample value \"12abc\" is not a number");
  auto whole = answer(R"([1699999999,"12"])");
  ASSERT_TRUE(whole) << whole.error();
  EXPECT_EQ(whole->time, kNow - 1s);
}

TEST(PrometheusBackend, LongQueriesArePosted) {
  Fake fake;
  fake.body = R"({"status":"success","data":{"resultType":"scalar","result":[1.0,"3"]}})";
  auto r = one(fake, "sum(m{a=\"" + std::string(3000, 'x') + "\"})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(fake.requests[0].method, "POST");
  EXPECT_TRUE(fake.requests[0].body.starts_with("query=sum%28m%7Ba%3D%22xxx"));
  EXPECT_EQ(fake.requests[0].headers.at("Content-Type"), "application/x-www-form-urlencoded");
}

TEST(PrometheusBackend, EmptyNanAndSeveralSeriesAreErrorsThatSaySo) {
  Fake fake;
  fake.body = R"({"status":"success","data":{"resultType":"vector","result":[]}})";
  EXPECT_NE(one(fake).error().find("no series"), std::string::npos);
  fake.body = R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{},"value":[1,"NaN"]}]}})";
  EXPECT_NE(one(fake).error().find("NaN"), std::string::npos);
  fake.body = R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}})";
  EXPECT_NE(one(fake).error().find("2 series"), std::string::npos);
}

TEST(PrometheusBackend, BadQueriesAndUnreachableServersNameTheCause) {
  Fake fake;
  fake.status = 400;
  fake.body = R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})";
  auto r = one(fake);
  EXPECT_EQ(r.error(), "Prometheus rejected the query (400 bad_data): parse error at char 4");
  fake.status = 0;
  EXPECT_NE(one(fake).error().find("Couldn't connect"), std::string::npos);
}

TEST(PrometheusBackend, CountsCallsByOutcome) {
  Fake fake;
  PrometheusBackend backend({}, fake.transport());
  std::vector<BackendQuery> batch = {{"sum(up)", 300s}};
  fake.body = R"({"status":"success","data":{"resultType":"vector","result":[]}})";
  backend.fetch(batch, kNow);  // answered, even though with no series
  fake.status = 400;
  fake.body = R"({"status":"error","errorType":"bad_data","error":"parse error"})";
  backend.fetch(batch, kNow);
  fake.status = 503;
  fake.body = "<html>down</html>";
  backend.fetch(batch, kNow);
  fake.status = 0;
  backend.fetch(batch, kNow);
  std::map<std::string, uint64_t> outcomes;
  for (const auto& [name, n] : backend.health().callsByOutcome) outcomes[std::string(name)] = n;
  EXPECT_EQ(outcomes["ok"], 1u);
  EXPECT_EQ(outcomes["rejected"], 1u);
  EXPECT_EQ(outcomes["error"], 2u);
  EXPECT_EQ(outcomes["timeout"], 0u);
  EXPECT_TRUE(backend.health().rateLimits.empty());
}

// Issue 13, item 2: a stopped Prometheus answers nothing; one timeout per batch, not per query.
TEST(PrometheusBackend, AfterATimeoutTheRestOfTheBatchIsNotSent) {
  int sent = 0;
  PrometheusBackend backend(
      {}, [&](const http::Request&) -> std::expected<http::Response, std::string> {
        ++sent;
        return std::unexpected("GET http://127.0.0.1:9 failed: Timeout was reached");
      });
  std::vector<BackendQuery> batch = {{"sum(a)", 300s}, {"sum(b)", 300s}, {"sum(c)", 300s}};
  auto results = backend.fetch(batch, kNow);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(sent, 1);
  EXPECT_NE(results[0].error().find("Timeout was reached"), std::string::npos);
  for (int i : {1, 2}) {
    EXPECT_NE(results[i].error().find("not asked"), std::string::npos) << results[i].error();
    EXPECT_NE(results[i].error().find("Timeout was reached"), std::string::npos);
  }
}

TEST(PrometheusBackend, SendsTheBearerTokenFromItsFile) {
  std::string path = ::testing::TempDir() + "/prom-token";
  FILE* f = fopen(path.c_str(), "w");
  fputs("tok-123\n", f);
  fclose(f);
  Fake fake;
  fake.body = R"({"status":"success","data":{"resultType":"scalar","result":[1.0,"3"]}})";
  ASSERT_TRUE(one(fake, "1", {.bearerTokenFile = path}));
  EXPECT_EQ(fake.requests[0].headers.at("Authorization"), "Bearer tok-123");
  std::remove(path.c_str());
}

TEST(PrometheusBackend, TranslatesInlineMetricsItself) {
  Fake fake;
  PrometheusBackend backend({.aggregation = "max"}, fake.transport());
  EXPECT_EQ(backend.translateInline("queue.depth", selector("q=emails")),
            "max(queue_depth{q=\"emails\"})");
}

// Issue 14: inline queries differing in one label's value, answered by one grouped query.

// The PromQL of a request, GET or POST.
std::string promqlOf(const http::Request& r) {
  std::string url = r.method == "POST" ? "http://x/?" + r.body : r.url;
  for (auto p : boost::urls::url_view(url).params()) {
    if (p.key == "query") return p.value;
  }
  return "";
}

// Answers each PromQL text with its own body; 404 for any other.
struct Scripted {
  std::map<std::string, std::pair<long, std::string>> answers;
  std::vector<std::string> asked;
  Transport transport() {
    return [this](const http::Request& r) -> std::expected<http::Response, std::string> {
      asked.push_back(promqlOf(r));
      auto it = answers.find(asked.back());
      if (it == answers.end()) return http::Response{404, {}, "not scripted: " + asked.back()};
      return http::Response{it->second.first, {}, it->second.second};
    };
  }
};

std::string q(std::string_view queue) {
  return "sum(queue_depth{env=\"prod\",queue=\"" + std::string(queue) + "\"})";
}

std::string vectorOf(std::vector<std::pair<std::string, std::string>> series) {
  std::string out = R"({"status":"success","data":{"resultType":"vector","result":[)";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& [labels, value] = series[i];
    out += (i ? "," : "") + std::string(R"({"metric":)") + labels + R"(,"value":[1700000000,")" +
           value + "\"]}";
  }
  return out + "]}}";
}

// What a query gets by itself from Prometheus answering `body`: the reference for the split.
BackendResult alone(const std::string& query, const std::string& body, long status = 200) {
  Scripted fake;
  fake.answers[query] = {status, body};
  PrometheusBackend backend({.coalesceQueries = false}, fake.transport());
  std::vector<BackendQuery> batch = {{query, 300s}};
  return backend.fetch(batch, kNow)[0];
}

const std::string kGrouped = "sum by (queue)(queue_depth{env=\"prod\",queue=~\"q0|q1|q2\"})";

TEST(PrometheusCoalescing, InlineQueriesDifferingInOneLabelAreOneCallSplitByIt) {
  Scripted fake;
  fake.answers[kGrouped] = {200,
                            vectorOf({{R"({"queue":"q1"})", "7"}, {R"({"queue":"q0"})", "2.5"}})};
  fake.answers["max(m) * 2"] = {
      200, R"({"status":"success","data":{"resultType":"scalar","result":[1700000000,"9"]}})"};
  PrometheusBackend backend({}, fake.transport());
  std::vector<BackendQuery> batch = {
      {q("q0"), 300s}, {"max(m) * 2", 300s}, {q("q1"), 300s}, {q("q2"), 300s}};
  auto results = backend.fetch(batch, kNow);
  EXPECT_EQ(fake.asked, (std::vector<std::string>{kGrouped, "max(m) * 2"}))
      << "the group where its first member stands, the rest as before";
  ASSERT_EQ(results.size(), 4u);
  ASSERT_TRUE(results[0]) << results[0].error();
  EXPECT_EQ(results[0]->value, 2.5);
  EXPECT_EQ(results[0]->time, kNow);
  ASSERT_TRUE(results[1]) << results[1].error();
  EXPECT_EQ(results[1]->value, 9);
  ASSERT_TRUE(results[2]) << results[2].error();
  EXPECT_EQ(results[2]->value, 7);
  EXPECT_EQ(results[2]->time, kNow);
  // q2 has no series: the error its own query gets from an empty answer, word for word.
  auto reference = alone(q("q2"), vectorOf({}));
  ASSERT_FALSE(reference);
  ASSERT_FALSE(results[3]);
  EXPECT_EQ(results[3].error(), reference.error());
  EXPECT_EQ(backend.health().calls, 2u);
}

TEST(PrometheusCoalescing, EachMemberGetsExactlyWhatItsOwnQueryGets) {
  // Per series: a value, NaN, an infinity, a malformed sample; the same answers one at a time.
  std::vector<std::pair<std::string, std::string>> cases = {
      {"q0", "41"}, {"q1", "NaN"}, {"q2", "+Inf"}, {"q3", "x"}};
  std::vector<std::pair<std::string, std::string>> series;
  std::vector<BackendQuery> batch;
  for (const auto& [queue, value] : cases) {
    series.emplace_back(R"({"queue":")" + queue + "\"}", value);
    batch.push_back({q(queue), 300s});
  }
  Scripted fake;
  fake.answers["sum by (queue)(queue_depth{env=\"prod\",queue=~\"q0|q1|q2|q3\"})"] = {
      200, vectorOf(series)};
  PrometheusBackend backend({}, fake.transport());
  auto results = backend.fetch(batch, kNow);
  ASSERT_EQ(fake.asked.size(), 1u);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto reference = alone(batch[i].query, vectorOf({{"{}", cases[i].second}}));
    EXPECT_EQ(results[i].has_value(), reference.has_value()) << cases[i].first;
    if (reference) {
      EXPECT_EQ(results[i]->value, reference->value);
      EXPECT_EQ(results[i]->time, reference->time);
    } else {
      EXPECT_EQ(results[i].error(), reference.error());
    }
  }
  EXPECT_EQ(results[0]->value, 41);
  EXPECT_NE(results[1].error().find("NaN"), std::string::npos);
  EXPECT_NE(results[2].error().find("infinite"), std::string::npos);
}

TEST(PrometheusCoalescing, OffEveryQueryIsItsOwnCall) {
  Scripted fake;
  PrometheusBackend backend({.coalesceQueries = false}, fake.transport());
  std::vector<BackendQuery> batch = {{q("q0"), 300s}, {q("q1"), 300s}, {q("q2"), 300s}};
  backend.fetch(batch, kNow);
  EXPECT_EQ(fake.asked, (std::vector<std::string>{q("q0"), q("q1"), q("q2")}));
  auto health = backend.health();
  std::map<std::string, std::string> details(health.details.begin(), health.details.end());
  EXPECT_EQ(details["coalescing"], "off");
}

TEST(PrometheusCoalescing, ARefusedGroupedQueryFallsBackToTheMembersOwnQueries) {
  Scripted fake;
  fake.answers[kGrouped] = {
      422, R"({"status":"error","errorType":"execution","error":"query processing would load )"
           R"(too many samples into memory in query execution"})"};
  fake.answers[q("q0")] = {200, vectorOf({{"{}", "1"}})};
  fake.answers[q("q1")] = {200, vectorOf({})};
  fake.answers[q("q2")] = {200, vectorOf({{"{}", "3"}})};
  PrometheusBackend backend({}, fake.transport());
  std::vector<BackendQuery> batch = {{q("q0"), 300s}, {q("q1"), 300s}, {q("q2"), 300s}};
  auto results = backend.fetch(batch, kNow);
  EXPECT_EQ(fake.asked, (std::vector<std::string>{kGrouped, q("q0"), q("q1"), q("q2")}));
  ASSERT_TRUE(results[0]);
  EXPECT_EQ(results[0]->value, 1);
  EXPECT_EQ(results[1].error(), alone(q("q1"), vectorOf({})).error());
  ASSERT_TRUE(results[2]);
  EXPECT_EQ(results[2]->value, 3);
}

TEST(PrometheusCoalescing, AFailedGroupedCallFailsEveryMemberAsItsOwnCallWould) {
  Scripted fake;
  fake.answers[kGrouped] = {503, "<html>down</html>"};
  PrometheusBackend backend({}, fake.transport());
  std::vector<BackendQuery> batch = {{q("q0"), 300s}, {q("q1"), 300s}, {q("q2"), 300s}};
  auto results = backend.fetch(batch, kNow);
  EXPECT_EQ(fake.asked.size(), 1u);
  auto reference = alone(q("q0"), "<html>down</html>", 503);
  for (const auto& r : results) EXPECT_EQ(r.error(), reference.error());
  EXPECT_FALSE(backend.health().reachable);
}

TEST(PrometheusCoalescing, AfterAGroupedCallTimesOutTheRestOfTheBatchIsNotSent) {
  int sent = 0;
  PrometheusBackend backend(
      {}, [&](const http::Request&) -> std::expected<http::Response, std::string> {
        ++sent;
        return std::unexpected("GET http://127.0.0.1:9 failed: Timeout was reached");
      });
  std::vector<BackendQuery> batch = {
      {q("q0"), 300s}, {"sum(a)", 300s}, {q("q1"), 300s}, {"sum(b)", 300s}};
  auto results = backend.fetch(batch, kNow);
  EXPECT_EQ(sent, 1);
  for (int i : {0, 2}) {
    EXPECT_EQ(results[i].error(), "Prometheus GET http://127.0.0.1:9 failed: Timeout was reached");
  }
  for (int i : {1, 3}) {
    EXPECT_NE(results[i].error().find("not asked"), std::string::npos) << results[i].error();
    EXPECT_NE(results[i].error().find("Timeout was reached"), std::string::npos);
  }
}

}  // namespace
}  // namespace xmetrics::backends::prometheus

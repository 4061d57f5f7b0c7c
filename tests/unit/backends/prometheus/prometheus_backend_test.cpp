#include "backends/prometheus/prometheus_backend.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace xmetrics::backends::prometheus

#include "core/status_report.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

namespace xmetrics::core {
namespace {

std::string fixtureText(const std::string& name) {
  std::ifstream in(std::string(XMETRICS_SOURCE_DIR) + "/tests/unit/core/testdata/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

boost::json::value fixture(const std::string& name) {
  return boost::json::parse(fixtureText(name));
}

// The same bytes once serialized: same keys, same order, same kinds of numbers.
void expectSameJson(const boost::json::value& a, const boost::json::value& b) {
  EXPECT_EQ(boost::json::serialize(a), boost::json::serialize(b));
}

// Captured from `xmetrics serve` (embedded backend, DogStatsD on, no cluster) after two metrics
// were sent and three read (one with no series): the body of GET /xmetrics/v1/status as served.
TEST(StatusReport, AReportTheServerWroteParsesAndWritesBackIdentically) {
  auto served = fixture("status_standalone.json");
  auto report = parseStatusReport(served);
  ASSERT_TRUE(report) << report.error();
  expectSameJson(toJson(*report), served);
  // Byte for byte: the file is the body the server sent.
  EXPECT_EQ(boost::json::serialize(toJson(*report)), fixtureText("status_standalone.json"));

  ASSERT_FALSE(report->metrics.empty());
  const auto& m = report->metrics.front();
  EXPECT_FALSE(m.metricName.empty());
  EXPECT_TRUE(m.sample.has_value());
  EXPECT_TRUE(m.valid);
  EXPECT_EQ(report->backend.name, "embedded");
  ASSERT_EQ(report->backends.size(), 1u);
  EXPECT_TRUE(report->backends[0].reachable);
  // The numbers the fixture holds, each read from its own key.
  EXPECT_EQ(report->poller.refreshPeriodSeconds, 1);
  EXPECT_EQ(report->poller.cycles, 6);
  EXPECT_EQ(report->poller.firstFetches, 3);
  ASSERT_TRUE(report->dogstatsd.has_value());
  EXPECT_EQ(report->dogstatsd->packets, 6);
  ASSERT_TRUE(report->embedded.has_value());
  EXPECT_EQ(report->embedded->series, 2);
  EXPECT_EQ(report->embedded->approxBytes, 3275);
  ASSERT_TRUE(report->leader.has_value());
  EXPECT_FALSE(report->leader->enabled);
  EXPECT_FALSE(report->leader->election.has_value());
  EXPECT_FALSE(report->kubernetes.has_value());
  EXPECT_FALSE(report->crdMode());
  EXPECT_TRUE(report->unknown.empty());
}

// The cluster sections as KubernetesLink::status() and leaderStatus() write them: watches that do
// not run are {}, an elector that runs adds its facts.
TEST(StatusReport, ClusterSectionsRoundTripAndSayWhetherTheCrdIsUsed) {
  auto served = fixture("status_cluster.json");
  auto report = parseStatusReport(served);
  ASSERT_TRUE(report) << report.error();
  expectSameJson(toJson(*report), served);

  ASSERT_TRUE(report->kubernetes.has_value());
  const auto& k = *report->kubernetes;
  ASSERT_TRUE(k.hpaWatch.has_value());
  EXPECT_TRUE(k.hpaWatch->synced);
  EXPECT_EQ(k.hpaWatch->objects, 3);
  ASSERT_TRUE(k.datadogMetricWatch.has_value());
  EXPECT_TRUE(report->crdMode());
  ASSERT_TRUE(k.datadogMetricController.has_value());
  EXPECT_EQ(k.datadogMetricController->autogenCreated, 1);
  ASSERT_TRUE(report->leader && report->leader->election);
  EXPECT_EQ(report->leader->election->lease, "xmetrics/xmetrics-leader");
  ASSERT_EQ(report->backends.size(), 2u);
  ASSERT_EQ(report->backends[0].details.size(), 2u);
  EXPECT_EQ(report->backends[0].details[0].first, "endpoint https://api.datadoghq.com");
  const auto* metric = report->findMetric("shop", "checkout.requests", "app=web");
  ASSERT_NE(metric, nullptr);
  EXPECT_EQ(metric->datadogMetric, "xmetrics/dcaautogen-abc");
  EXPECT_FALSE(metric->valid);
  EXPECT_EQ(metric->error, "stale: older than max-age 120s");
  EXPECT_EQ(report->findMetric("shop", "checkout.requests", ""), nullptr);
}

TEST(StatusReport, WithoutTheDatadogMetricWatchItIsNotCrdMode) {
  auto served = fixture("status_cluster.json");
  served.as_object()["kubernetes"].as_object()["datadogMetricWatch"] = boost::json::object{};
  served.as_object()["kubernetes"].as_object()["datadogMetricController"] = boost::json::object{};
  auto report = parseStatusReport(served);
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->crdMode());
  EXPECT_FALSE(report->kubernetes->datadogMetricController.has_value());
  expectSameJson(toJson(*report), served);
}

TEST(StatusReport, ABuiltReportRoundTrips) {
  StatusReport report;
  report.time = "2026-12-01T20:00:00Z";
  report.metrics.push_back({.ns = "shop",
                            .metricName = "queue.depth",
                            .selector = "app=web",
                            .query = "avg:queue.depth{app:web}.rollup(30)",
                            .resolution = "inline",
                            .backend = "datadog",
                            .references = {"shop/web"},
                            .sample = StatusReport::Metric::Sample{.value = "1500m",
                                                                   .valueNumber = 1.5,
                                                                   .unit = "per second",
                                                                   .timestamp = "t",
                                                                   .ageSeconds = 4},
                            .valid = true,
                            .lastFetch = "t",
                            .lastFetchAgeSeconds = 2});
  report.backend = {.name = "datadog",
                    .details = {{"b", "2"}, {"a", "1"}},
                    .rateLimits = {{.endpoint = "https://api",
                                    .limit = 1600,
                                    .remaining = 12,
                                    .resetSeconds = 30}},
                    .callsByOutcome = {{"ok", 9}, {"rate_limited", 1}},
                    .lastRefresh = std::pair<int64_t, int64_t>{200, 4}};
  report.backends = {report.backend};
  report.poller.following = true;
  report.hpas.push_back({.ns = "shop",
                         .name = "web",
                         .scaleTarget = "Deployment/web",
                         .maxReplicas = 3,
                         .currentReplicas = 2,
                         .desiredReplicas = 3,
                         .metrics = {{.name = "queue.depth",
                                      .selector = "app=web",
                                      .targetType = "Value",
                                      .target = "40",
                                      .current = "42"}}});
  report.leader = StatusReport::Leader{.enabled = true,
                                       .isLeader = false,
                                       .election = StatusReport::Leader::Election{.holder = "b"}};
  report.selfCheck = StatusReport::SelfCheck{
      .ran = "t",
      .ok = 3,
      .warn = 1,
      .findings = {
          {.name = "rbac-xmetrics", .verdict = "WARN", .summary = "s", .fix = "grant it"}}};
  report.unknown["future"] = boost::json::array{1, 2};
  auto json = toJson(report);
  auto parsed = parseStatusReport(json);
  ASSERT_TRUE(parsed);
  expectSameJson(toJson(*parsed), json);
  EXPECT_EQ(parsed->metrics.at(0).sample->valueNumber, 1.5);
  EXPECT_EQ(parsed->metrics.at(0).references, std::vector<std::string>{"shop/web"});
  EXPECT_EQ(parsed->backend.details.at(0).first, "b");  // the backend's order, kept
  EXPECT_TRUE(parsed->poller.following);
  EXPECT_EQ(parsed->leader->election->holder, "b");
  EXPECT_EQ(boost::json::serialize(parsed->unknown.at("future")), "[1,2]");
  EXPECT_EQ(parsed->backend.rateLimits.at(0).remaining, 12);
  EXPECT_EQ(parsed->backend.callsByOutcome.at(1).first, "rate_limited");
  EXPECT_EQ(parsed->backend.lastRefresh, (std::pair<int64_t, int64_t>{200, 4}));
  ASSERT_TRUE(parsed->selfCheck);
  EXPECT_EQ(parsed->selfCheck->warn, 1);
  ASSERT_EQ(parsed->selfCheck->findings.size(), 1U);
  EXPECT_EQ(parsed->selfCheck->findings[0].fix, "grant it");
  ASSERT_NE(parsed->findHpa("shop/web"), nullptr);
  EXPECT_EQ(parsed->findHpa("shop/web")->metrics.at(0).current, "42");
  EXPECT_EQ(parsed->findHpa("shop/we"), nullptr);
  EXPECT_EQ(parsed->findHpa("sho/pweb"), nullptr);
  // A valid metric writes no error; an invalid one always does, even empty.
  EXPECT_FALSE(json.at("metrics").as_array()[0].as_object().contains("error"));
  report.metrics[0].valid = false;
  EXPECT_EQ(toJson(report).at("metrics").as_array()[0].as_object().at("error").as_string(), "");
}

TEST(StatusReport, ASelfCheckKeepsTheChecksThatWereNotOk) {
  auto doctorReport = boost::json::parse(R"({"checks":[
      {"name":"apiservice","verdict":"OK","summary":"ok"},
      {"name":"hpa","subject":"shop/web","verdict":"FAIL","summary":"no series","fix":"fix it"},
      {"name":"migration-cluster-agent","verdict":"WARN","summary":"not checked"}],
      "ok":1,"warn":1,"fail":1,"exitCode":1})");
  auto s = selfCheckFromDoctor(doctorReport.as_object(), "2026-12-07T12:00:00Z", 420);
  EXPECT_EQ(s.ok, 1);
  EXPECT_EQ(s.warn, 1);
  EXPECT_EQ(s.fail, 1);
  EXPECT_EQ(s.tookMilliseconds, 420);
  ASSERT_EQ(s.findings.size(), 2U);
  EXPECT_EQ(s.findings[0].subject, "shop/web");
  EXPECT_EQ(s.findings[0].fix, "fix it");
  EXPECT_EQ(s.findings[1].verdict, "WARN");
}

TEST(StatusReport, OlderServersWithOnlyOneBackendAndNoExtras) {
  auto report = parseStatusReport(boost::json::parse(
      R"j({"time":"t","metrics":[],"backend":{"name":"datadog","reachable":false,"lastError":"x","calls":1},
          "poller":{"cycles":3}})j"));
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->hasBackends);
  ASSERT_EQ(report->allBackends().size(), 1u);
  EXPECT_FALSE(report->allBackends()[0].reachable);
  EXPECT_EQ(report->poller.cycles, 3);
  EXPECT_FALSE(report->leader.has_value());
  EXPECT_FALSE(report->embedded.has_value());
  auto json = toJson(*report);
  EXPECT_FALSE(json.contains("backends"));
  EXPECT_FALSE(json.contains("leader"));
}

TEST(StatusReport, OnlyAnObjectIsAReport) {
  EXPECT_FALSE(parseStatusReport(boost::json::parse("[1]")));
  EXPECT_FALSE(parseStatusReport(boost::json::parse("\"status\"")));
  EXPECT_FALSE(parseStatusMetric(boost::json::parse("3")));
  EXPECT_FALSE(parseStatusBackend(boost::json::parse("null")));
  // A field of another type reads as absent rather than failing the whole report.
  auto odd = parseStatusReport(boost::json::parse(R"j({"metrics":{"x":1},"poller":[]})j"));
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->metrics.empty());
}

}  // namespace
}  // namespace xmetrics::core

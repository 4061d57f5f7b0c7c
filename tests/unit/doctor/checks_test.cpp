// Each check alone, from an Evidence built by hand: no cluster, no xmetrics.

#include "doctor/checks.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace xmetrics::doctor {
namespace {

boost::json::value json(std::string_view text) { return boost::json::parse(text); }

// An APIService pointing at xmetrics/xmetrics:443, Available, and its ClusterIP Service with one
// ready endpoint; xmetrics reached and ready.
Evidence healthy() {
  Evidence e;
  e.now = core::Clock::now();
  e.apiService = json(R"j({"spec":{"service":{"namespace":"xmetrics","name":"xmetrics","port":443}},
    "status":{"conditions":[{"type":"Available","status":"True","reason":"Passed"}]}})j");
  e.serviceNs = "xmetrics";
  e.serviceName = "xmetrics";
  e.hasServiceRef = true;
  e.apiServiceAvailable = true;
  e.availableReason = "Passed";
  e.service = json(R"j({"spec":{"type":"ClusterIP","clusterIP":"10.0.0.9",
    "ports":[{"name":"https","port":443}],"selector":{"app":"xmetrics"}}})j");
  e.endpointSlices = json(R"j({"items":[{"endpoints":[{"conditions":{"ready":true}}]}]})j");
  e.address = "https://10.0.0.9:443";
  e.status = *core::parseStatusReport(json(R"j({"metrics":[],"backends":[],
    "poller":{"refreshPeriodSeconds":30,"maxAgeSeconds":120,"cycles":4}})j"));
  e.ready = true;
  e.readyz = "ok";
  return e;
}

TEST(CheckApiService, AMissingApiServiceSaysHowToCreateIt) {
  Evidence e;
  e.apiService = std::unexpected(kube::KubeError{.status = 404, .message = "not found"});
  auto c = checkApiService(e);
  EXPECT_EQ(c.verdict, Verdict::kFail);
  EXPECT_EQ(c.problem, "apiservice-missing");
  EXPECT_NE(c.fix.find("40-apiservice.yaml"), std::string::npos);
}

TEST(CheckApiService, AvailableIsOk) {
  auto c = checkApiService(healthy());
  EXPECT_EQ(c.verdict, Verdict::kOk);
  EXPECT_EQ(c.evidence.front(), "spec.service: xmetrics/xmetrics port 443");
}

TEST(CheckService, APortTheServiceDoesNotExposeIsTheWrongPort) {
  auto e = healthy();
  e.servicePort = 8443;
  auto c = checkService(e);
  EXPECT_EQ(c.problem, "apiservice-wrong-port");
  EXPECT_NE(c.fix.find("\"port\":443"), std::string::npos) << c.fix;
  EXPECT_EQ(serviceCandidates(e), (std::vector<std::string>{"https://10.0.0.9:8443",
                                                            "https://xmetrics.xmetrics.svc:8443"}));
}

TEST(CheckService, NoReadyEndpointFails) {
  auto e = healthy();
  e.endpointSlices = json(R"j({"items":[{"endpoints":[{"conditions":{"ready":false}}]}]})j");
  EXPECT_EQ(checkService(e).problem, "service-no-endpoints");
}

TEST(CheckService, AnExternalNameServiceAnsweringOnItsOwnPortMeansTheApiServicePortIsWrong) {
  auto e = healthy();
  e.service = json(R"j({"spec":{"type":"ExternalName","externalName":"x.example",
    "ports":[{"port":8443}]}})j");
  e.endpointSlices.reset();
  e.candidates = serviceCandidates(e);
  ASSERT_EQ(e.candidates.size(), 2u);
  e.address = e.candidates[1];
  e.reachError = "connection refused";
  auto c = checkService(e);
  EXPECT_EQ(c.problem, "apiservice-wrong-port");
  EXPECT_NE(c.summary.find("answers on the Service's port 8443"), std::string::npos) << c.summary;
}

TEST(CheckService, AMissingServiceAfterAWrongOneIsEvidence) {
  auto e = healthy();
  e.service = std::unexpected(kube::KubeError{.status = 404});
  auto missing = checkService(e);
  EXPECT_EQ(missing.problem, "service-missing");
  EXPECT_EQ(missing.summary, "Service xmetrics/xmetrics does not exist");
  e.options.service = "xmetrics/other";
  auto wrong = checkService(e);
  EXPECT_EQ(wrong.problem, "apiservice-wrong-service");
  EXPECT_EQ(wrong.evidence, std::vector<std::string>{"Service xmetrics/xmetrics does not exist"});
}

TEST(CheckXmetrics, UnsyncedWatchesAreNotReady) {
  auto e = healthy();
  e.status->kubernetes = core::StatusReport::Kubernetes{
      .hpaWatch = core::StatusReport::Watch{.synced = false, .lastError = "403 Forbidden"}};
  auto c = checkXmetrics(e);
  EXPECT_EQ(c.problem, "xmetrics-not-ready");
  EXPECT_NE(c.evidence[1].find("hpaWatch: NOT synced"), std::string::npos) << c.evidence[1];
  EXPECT_EQ(checkXmetrics(healthy()).verdict, Verdict::kOk);
}

TEST(CheckHpaRbac, ADeniedListIsWrongRbac) {
  Evidence e;
  e.hpaReviews = {auth::AccessDecision{.allowed = true}, auth::AccessDecision{.allowed = false}};
  auto c = checkHpaRbac(e);
  EXPECT_EQ(c.problem, "wrong-rbac");
  EXPECT_NE(c.summary.find("may not list"), std::string::npos) << c.summary;
  e.hpaReviews = {std::unexpected(std::string("forbidden"))};
  EXPECT_EQ(checkHpaRbac(e).problem, "not-checked");
}

TEST(XmetricsNeeds, LeaderElectionAndTheCrdAddTheirPermissions) {
  auto e = healthy();
  auto base = xmetricsNeeds(e).size();
  e.status = *core::parseStatusReport(json(R"j({"metrics":[],
    "kubernetes":{"datadogMetricWatch":{"synced":true}},
    "leader":{"enabled":true,"isLeader":true,"identity":"a","lease":"ops/lock"}})j"));
  auto needs = xmetricsNeeds(e);
  EXPECT_EQ(needs.size(), base + 5 + 3);
  EXPECT_EQ(needs.back().request.namespace_, "ops");
}

TEST(CheckHpas, TheArithmeticOnWhatTheApiAnswers) {
  auto e = healthy();
  e.hpas = json(R"j({"items":[]})j");
  HpaMetricEvidence h{.ns = "shop",
                      .hpaName = "web",
                      .name = "queue.depth",
                      .metricName = "queue.depth",
                      .selectorText = std::string(),
                      .selector = core::LabelSelector::parse(""),
                      .target = json(R"j({"type":"AverageValue","averageValue":"9"})j").as_object(),
                      .maxReplicas = 3,
                      .currentReplicas = 3,
                      .desiredReplicas = 3};
  h.read = {.status = 200, .value = 2472, .items = 1};
  e.hpaMetrics.push_back(h);
  auto checks = checkHpas(e);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].verdict, Verdict::kOk);
  EXPECT_EQ(checks[0].summary, "824/9 (avg) → desired 3 (HPA: 3)");
  e.hpaMetrics.clear();
  EXPECT_EQ(checkHpas(e)[0].summary, "no HorizontalPodAutoscaler names an External metric");
}

TEST(Judge, EveryLinkInOrder) {
  auto e = healthy();
  e.hpas = json(R"j({"items":[]})j");
  e.lease = std::unexpected(kube::KubeError{.status = 404});
  std::vector<std::string> names;
  for (const auto& c : judge(e)) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"apiservice", "service", "certificate", "discovery",
                                             "rbac-hpa", "rbac-xmetrics", "xmetrics", "leader",
                                             "hpa", "migration-settings", "migration-apiservice",
                                             "migration-cluster-agent", "migration-crd"}));
}

}  // namespace
}  // namespace xmetrics::doctor

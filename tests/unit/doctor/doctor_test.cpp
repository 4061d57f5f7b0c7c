#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "certs/cert_dir.hpp"
#include "core/time_format.hpp"
#include "doctor/checks.hpp"

namespace xmetrics::doctor {
namespace {

using namespace std::chrono_literals;

// The classifiers read the typed status report; the fixtures are its JSON, as the server writes it.
StatusMetric statusMetricOf(const boost::json::value& v) { return *core::parseStatusMetric(v); }
StatusMetric statusMetric(std::string_view text) {
  return statusMetricOf(boost::json::parse(text));
}
StatusBackend statusBackend(std::string_view text) {
  return *core::parseStatusBackend(boost::json::parse(text));
}
core::StatusReport::Leader statusLeader(std::string_view text) {
  boost::json::object report{{"leader", boost::json::parse(text)}};
  return *core::parseStatusReport(report)->leader;
}
std::vector<StatusMetric> statusMetrics(const boost::json::array& metrics) {
  std::vector<StatusMetric> out;
  for (const auto& m : metrics) out.push_back(statusMetricOf(m));
  return out;
}

bool has(const std::vector<std::string>& lines, std::string_view text) {
  for (const auto& l : lines) {
    if (l.find(text) != std::string::npos) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The HPA arithmetic

TEST(ExplainHpa, DatadogsWalkthroughExample2472Over3ReplicasIs824PerPod) {
  auto m = explainHpa({.type = TargetType::kAverageValue,
                       .target = 9,
                       .targetText = "9",
                       .value = 2472,
                       .currentReplicas = 3,
                       .minReplicas = 1,
                       .maxReplicas = 3});
  EXPECT_EQ(m.shown, "824/9 (avg)");  // as `kubectl get hpa` shows it
  EXPECT_EQ(m.desired, 3);
  EXPECT_FALSE(m.withinTolerance);
  EXPECT_NE(m.explanation.find("2472/3 = 824 per pod"), std::string::npos) << m.explanation;
  EXPECT_NE(m.explanation.find("ceil(2472/9) = 275"), std::string::npos) << m.explanation;
  EXPECT_NE(m.explanation.find("capped at maxReplicas 3"), std::string::npos) << m.explanation;
}

TEST(ExplainHpa, AverageValueAsksForCeilOfUsageOverTarget) {
  auto m = explainHpa({.type = TargetType::kAverageValue,
                       .target = 9,
                       .targetText = "9",
                       .value = 2472,
                       .currentReplicas = 3,
                       .minReplicas = 1,
                       .maxReplicas = 500});
  EXPECT_EQ(m.desired, 275);
  EXPECT_NEAR(m.ratio, 2472.0 / 27, 1e-9);
}

TEST(ExplainHpa, WithinTheToleranceKeepsTheCurrentReplicas) {
  auto avg = explainHpa({.type = TargetType::kAverageValue,
                         .target = 800,
                         .targetText = "800",
                         .value = 2472,  // 824 per pod: ratio 1.03
                         .currentReplicas = 3,
                         .minReplicas = 1,
                         .maxReplicas = 10});
  EXPECT_TRUE(avg.withinTolerance);
  EXPECT_EQ(avg.desired, 3);
  EXPECT_NE(avg.explanation.find("keep 3"), std::string::npos) << avg.explanation;
  auto value = explainHpa({.type = TargetType::kValue,
                           .target = 40,
                           .targetText = "40",
                           .value = 42,
                           .currentReplicas = 1,
                           .minReplicas = 1,
                           .maxReplicas = 3});
  EXPECT_EQ(value.shown, "42/40");
  EXPECT_TRUE(value.withinTolerance);
  EXPECT_EQ(value.desired, 1);
}

TEST(ExplainHpa, ValueScalesTheReplicasByTheRatio) {
  auto m = explainHpa({.type = TargetType::kValue,
                       .target = 10,
                       .targetText = "10",
                       .value = 35,
                       .currentReplicas = 2,
                       .minReplicas = 1,
                       .maxReplicas = 10});
  EXPECT_EQ(m.shown, "35/10");
  EXPECT_EQ(m.desired, 7);  // ceil(2 × 3.5)
  EXPECT_NE(m.explanation.find("ceil(2 × 3.5) = 7"), std::string::npos) << m.explanation;
}

TEST(ExplainHpa, PerPodValueIsRoundedUpInMilliUnitsLikeTheController) {
  auto m = explainHpa({.type = TargetType::kAverageValue,
                       .target = 0.5,
                       .targetText = "500m",
                       .value = 10,
                       .currentReplicas = 3,
                       .minReplicas = 2,
                       .maxReplicas = 30});
  EXPECT_EQ(m.shown, "3334m/500m (avg)");  // ceil(10000m / 3)
  EXPECT_EQ(m.desired, 20);
}

TEST(ExplainHpa, MinReplicasRaisesTheResult) {
  auto m = explainHpa({.type = TargetType::kValue,
                       .target = 100,
                       .targetText = "100",
                       .value = 1,
                       .currentReplicas = 4,
                       .minReplicas = 2,
                       .maxReplicas = 10});
  EXPECT_EQ(m.desired, 2);
  EXPECT_NE(m.explanation.find("raised to minReplicas 2"), std::string::npos) << m.explanation;
}

// ---------------------------------------------------------------------------------------------
// The report

std::vector<Check> sampleChecks() {
  return {
      {.name = "apiservice", .summary = "v1beta1.external.metrics.k8s.io is Available"},
      {.name = "rbac-hpa",
       .verdict = Verdict::kFail,
       .summary = "wrong RBAC",
       .problem = "wrong-rbac",
       .evidence = {"get denied"},
       .fix = "kubectl apply -f deploy/manifests/10-rbac.yaml"},
      {.name = "hpa",
       .subject = "shop/web m",
       .verdict = Verdict::kWarn,
       .summary = "824/9 (avg)",
       .problem = "hpa-not-scaling",
       .fix = "wait"},
  };
}

TEST(RenderText, OneLinePerCheckEvidenceIndentedAndAFixForWhatIsNotOk) {
  std::string text = renderText(sampleChecks());
  EXPECT_EQ(text,
            "OK   apiservice  v1beta1.external.metrics.k8s.io is Available\n"
            "FAIL rbac-hpa    wrong RBAC\n"
            "                 get denied\n"
            "                 fix: kubectl apply -f deploy/manifests/10-rbac.yaml\n"
            "WARN hpa         shop/web m: 824/9 (avg)\n"
            "                 fix: wait\n"
            "\n"
            "1 OK, 1 WARN, 1 FAIL\n");
}

TEST(RenderJson, CarriesVerdictProblemFixAndTheExitCode) {
  auto o = renderJson(sampleChecks());
  EXPECT_EQ(o.at("exitCode").as_int64(), 1);
  EXPECT_EQ(o.at("fail").as_int64(), 1);
  const auto& checks = o.at("checks").as_array();
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].as_object().at("verdict").as_string(), "OK");
  EXPECT_FALSE(checks[0].as_object().contains("fix"));
  EXPECT_FALSE(checks[0].as_object().contains("problem"));
  EXPECT_EQ(checks[1].as_object().at("problem").as_string(), "wrong-rbac");
  EXPECT_EQ(checks[1].as_object().at("fix").as_string(),
            "kubectl apply -f deploy/manifests/10-rbac.yaml");
  EXPECT_EQ(checks[2].as_object().at("subject").as_string(), "shop/web m");
}

TEST(ExitCode, ZeroWhenAllOkOneOnAnyFailTwoForOnlyWarnings) {
  auto checks = sampleChecks();
  EXPECT_EQ(exitCode(checks), 1);
  checks[1].verdict = Verdict::kOk;
  EXPECT_EQ(exitCode(checks), 2);
  checks[2].verdict = Verdict::kOk;
  EXPECT_EQ(exitCode(checks), 0);
  EXPECT_EQ(exitCode({}), 0);
}

// ---------------------------------------------------------------------------------------------
// Backends

TEST(ClassifyBackend, A403MeansInvalidKeys) {
  auto f = classifyBackend(statusBackend(R"j({"name":"datadog","reachable":false,
    "lastError":"Datadog https://api.datadoghq.com answered 403 Forbidden: Forbidden (check the API and application keys: DD_API_KEY / DD_APP_KEY or their files)",
    "details":{"endpoint https://api.datadoghq.com":"failing (…); rate limit not announced yet"}})j"));
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_EQ(f.problem, "invalid-keys");
  EXPECT_NE(f.summary.find("403 Forbidden"), std::string::npos);
  EXPECT_NE(f.fix.find("DD_API_KEY"), std::string::npos);
  EXPECT_TRUE(has(f.evidence, "last error: Datadog https://api.datadoghq.com answered 403"));
}

TEST(ClassifyBackend, A429OrASpentBudgetMeansRateLimitedWithTheBudget) {
  auto answered = classifyBackend(statusBackend(R"j({"name":"datadog","reachable":true,
    "lastError":"Datadog https://api.datadoghq.com answered 429 Too Many Requests",
    "details":{"endpoint https://api.datadoghq.com":"ok; 0 of 1600 calls left per 3600s, resets in 3500s, rate limited for 3500s"}})j"));
  EXPECT_EQ(answered.problem, "rate-limited");
  EXPECT_EQ(answered.verdict, Verdict::kFail);
  EXPECT_NE(answered.summary.find("0 of 1600 calls left per 3600s"), std::string::npos);
  // xmetrics paces itself and refuses calls before Datadog does: no error, a spent budget.
  auto spent = classifyBackend(statusBackend(R"j({"name":"datadog","reachable":true,"lastError":"",
    "details":{"endpoint https://api.datadoghq.com":"ok; 0 of 3 calls left per 86400s, resets in 80000s"}})j"));
  EXPECT_EQ(spent.problem, "rate-limited");
}

TEST(ClassifyBackend, AStretchedRefreshWarnsWithTheNumbers) {
  auto f = classifyBackend(statusBackend(R"j({"name":"datadog","reachable":true,"lastError":"",
    "details":{"endpoint https://api.datadoghq.com":"ok; 900 of 1600 calls left per 3600s, resets in 2000s",
    "refresh stretched":"budget 1,458/h, want 2,300/h: 120 metrics no HPA names refreshed every 45 s instead of 30 s"}})j"));
  EXPECT_EQ(f.verdict, Verdict::kWarn);
  EXPECT_EQ(f.problem, "refresh-stretched");
  EXPECT_NE(f.summary.find("budget 1,458/h, want 2,300/h: 120 metrics"), std::string::npos)
      << f.summary;
  EXPECT_NE(f.fix.find("--refresh-period"), std::string::npos);
}

TEST(ClassifyBackend, UnreachableAndHealthy) {
  auto down = classifyBackend(statusBackend(
      R"j({"name":"prometheus","reachable":false,"lastError":"Couldn't connect to server"})j"));
  EXPECT_EQ(down.problem, "backend-unreachable");
  auto ok = classifyBackend(
      statusBackend(R"j({"name":"datadog","reachable":true,"lastError":"","calls":12,
    "details":{"endpoint https://api.datadoghq.com":"ok; 1187 of 1600 calls left per 3600s, resets in 3500s","rejected queries":"0"}})j"));
  EXPECT_EQ(ok.verdict, Verdict::kOk);
  EXPECT_NE(ok.summary.find("1187 of 1600"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Metrics

TEST(ClassifyMetric, ValidIsOk) {
  EXPECT_EQ(classifyMetric(statusMetric(R"j({"valid":true,"value":"3"})j")).verdict, Verdict::kOk);
}

TEST(ClassifyMetric, DatadogMetricMissingNamesTheObjectToCreate) {
  auto f = classifyMetric(statusMetric(R"j({"valid":false,"datadogMetric":"shop/proxy",
    "resolution":"datadogmetric shop/proxy (rule 1: datadogmetric@ reference)",
    "error":"DatadogMetric shop/proxy not found: create a DatadogMetric named \"proxy\" in namespace \"shop\", or fix the HPA's metric name"})j"));
  EXPECT_EQ(f.problem, "datadogmetric-missing");
  EXPECT_NE(f.fix.find(R"(named "proxy" in namespace "shop")"), std::string::npos) << f.fix;
}

TEST(ClassifyMetric, DatadogMetricInvalidGivesTheReasonAndTheEdit) {
  auto f = classifyMetric(statusMetric(R"j({"valid":false,"datadogMetric":"shop/q",
    "error":"DatadogMetric shop/q is invalid: template variable %%env_NOPE%% is not set; fix its spec (kubectl edit datadogmetric -n shop q)"})j"));
  EXPECT_EQ(f.problem, "datadogmetric-invalid");
  EXPECT_EQ(f.fix,
            "fix its spec (kubectl edit datadogmetric -n shop q): template variable "
            "%%env_NOPE%% is not set");
}

TEST(ClassifyMetric, AValueThatIsNotValidIsStale) {
  auto f =
      classifyMetric(statusMetric(R"j({"valid":false,"value":"7","ageSeconds":200,"metricName":"m",
    "timestamp":"2026-01-01T00:00:00Z","query":"avg:m{*}","error":"stale: older than max-age 120s"})j"));
  EXPECT_EQ(f.problem, "stale-value");
  EXPECT_NE(f.summary.find("200s old"), std::string::npos);
  EXPECT_NE(f.fix.find("stopped reporting"), std::string::npos);
  auto failing = classifyMetric(statusMetric(R"j({"valid":false,"value":"7","ageSeconds":200,
    "error":"Datadog https://api.datadoghq.com answered 403 Forbidden"})j"));
  EXPECT_EQ(failing.problem, "stale-value");
  EXPECT_NE(failing.fix.find("fetches fail"), std::string::npos);
}

TEST(ClassifyMetric, NoSeriesFromEveryBackendAndNoData) {
  for (const char* error :
       {"no series matches avg:queue.depth{*}.rollup(30) in the last 300s",
        "no serie was found for this query",
        "Prometheus returned no series (is the metric scraped, and do its labels match the "
        "selector?)"}) {
    boost::json::object m{{"valid", false}, {"error", error}, {"query", "q"}};
    EXPECT_EQ(classifyMetric(statusMetricOf(m)).problem, "no-series") << error;
  }
  for (const char* error : {"no data for avg:m{*}.rollup(10) in the last 300s",
                            "only null values found in the last 4 points"}) {
    boost::json::object m{{"valid", false}, {"error", error}};
    EXPECT_EQ(classifyMetric(statusMetricOf(m)).problem, "no-data") << error;
  }
}

TEST(ClassifyMetric, KeysRateLimitsAndRejectedQueries) {
  EXPECT_EQ(
      classifyMetric(
          statusMetric(
              R"j({"valid":false,"error":"Datadog http://x answered 403 Forbidden: Forbidden (check the API and application keys: DD_API_KEY / DD_APP_KEY or their files) (next try in 1s)"})j"))
          .problem,
      "invalid-keys");
  EXPECT_EQ(
      classifyMetric(
          statusMetric(
              R"j({"valid":false,"error":"Datadog's rate limit \"query\" (3 calls per 86400s) is spent; calls resume in 81737s"})j"))
          .problem,
      "rate-limited");
  EXPECT_EQ(
      classifyMetric(
          statusMetric(
              R"j({"valid":false,"error":"rate limited: Datadog http://x answered 429 Too Many Requests"})j"))
          .problem,
      "rate-limited");
  EXPECT_EQ(
      classifyMetric(
          statusMetric(
              R"j({"valid":false,"error":"Datadog rejected the query: Error parsing query"})j"))
          .problem,
      "rejected-query");
}

TEST(DescribeResolution, SaysWhichObjectServes) {
  EXPECT_EQ(describeResolution(statusMetric(R"j({"resolution":"inline"})j")), "inline");
  EXPECT_EQ(
      describeResolution(statusMetric(R"j({"resolution":"inline, autogen xmetrics/dcaautogen-ab",
    "datadogMetric":"xmetrics/dcaautogen-ab"})j")),
      "inline (served through autogen DatadogMetric xmetrics/dcaautogen-ab)");
  EXPECT_EQ(describeResolution(statusMetric(
                R"j({"resolution":"datadogmetric shop/p (rule 2: named like the metric)",
    "datadogMetric":"shop/p"})j")),
            "DatadogMetric shop/p (rule 2: named like the metric)");
}

TEST(ClassifyNoSeries, NoSeriesAtAllIsAMissingMetric) {
  auto f = classifyNoSeries("checkout.reqeusts", false, "no series matches …", {});
  EXPECT_EQ(f.problem, "metric-missing");
  EXPECT_NE(f.summary.find("checkout.reqeusts"), std::string::npos);
}

TEST(ClassifyNoSeries, TheRequirementThatFindsNothingAloneIsTheTypo) {
  auto f = classifyNoSeries("orders", true, "",
                            {{"env=prod", true, ""}, {"queue=email", false, "no series matches"}});
  EXPECT_EQ(f.problem, "tag-typo");
  EXPECT_NE(f.summary.find("no series has queue=email"), std::string::npos) << f.summary;
  EXPECT_EQ(f.fix.find("env=prod"), std::string::npos) << f.fix;
  EXPECT_TRUE(has(f.evidence, "with only env=prod: data"));
}

TEST(ClassifyNoSeries, EachTagMatchesButNotTogether) {
  auto f = classifyNoSeries("orders", true, "", {{"env=prod", true, ""}, {"queue=a", true, ""}});
  EXPECT_EQ(f.problem, "tag-typo");
  EXPECT_NE(f.summary.find("all together"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Leader election

boost::json::object lease(const std::string& holder, core::Clock::time_point renewed, int seconds) {
  return {{"spec",
           {{"holderIdentity", holder},
            {"renewTime", core::rfc3339(renewed)},
            {"leaseDurationSeconds", seconds}}}};
}

TEST(ClassifyLeader, OlderServersWithoutLeaderElectionAreASingleReplica) {
  auto f = classifyLeader(nullptr, nullptr, "xmetrics/xmetrics-leader", core::Clock::now());
  EXPECT_EQ(f.verdict, Verdict::kOk);
  auto off = statusLeader(R"j({"enabled":false,"isLeader":false,"holder":"","identity":"a"})j");
  EXPECT_EQ(classifyLeader(&off, nullptr, "l", core::Clock::now()).verdict, Verdict::kOk);
}

TEST(ClassifyLeader, EnabledWithoutALeaseIsNotElected) {
  auto on = statusLeader(R"j({"enabled":true,"isLeader":false,"holder":"","identity":"pod-a"})j");
  auto f = classifyLeader(&on, nullptr, "xmetrics/xmetrics-leader", core::Clock::now());
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_EQ(f.problem, "leader-not-elected");
  EXPECT_NE(f.fix.find("leases"), std::string::npos);
}

TEST(ClassifyLeader, AnExpiredLeaseIsNotElectedAFreshOneIsTheLeader) {
  auto now = core::Clock::now();
  auto on =
      statusLeader(R"j({"enabled":true,"isLeader":false,"holder":"pod-b","identity":"pod-a"})j");
  auto expired = lease("pod-b", now - 60s, 15);
  auto f = classifyLeader(&on, &expired, "xmetrics/xmetrics-leader", now);
  EXPECT_EQ(f.problem, "leader-not-elected");
  EXPECT_EQ(f.verdict, Verdict::kFail);
  EXPECT_NE(f.summary.find("held by pod-b expired"), std::string::npos) << f.summary;
  auto fresh = lease("pod-b", now - 2s, 15);
  auto ok = classifyLeader(&on, &fresh, "xmetrics/xmetrics-leader", now);
  EXPECT_EQ(ok.verdict, Verdict::kOk);
  EXPECT_NE(ok.summary.find("pod-b"), std::string::npos);
  auto noHolder = lease("", now, 15);
  EXPECT_EQ(classifyLeader(&on, &noHolder, "l", now).problem, "leader-not-elected");
  // A stale Lease next to a server that does not report leader election: a leftover, a warning.
  EXPECT_EQ(classifyLeader(nullptr, &expired, "l", now).verdict, Verdict::kWarn);
}

// ---------------------------------------------------------------------------------------------
// The serving certificate

struct Pki {
  std::string ca, leaf;
  explicit Pki(const std::string& name) {
    auto files = certs::ensureCertificates(
        {::testing::TempDir() + "/doctor-" + name, {"xmetrics.xmetrics.svc"}});
    EXPECT_TRUE(files) << (files ? "" : files.error());
    ca = *certs::readFile(files->caCertificate);
    leaf = *certs::readFile(files->servingCertificate);
  }
};

TEST(InspectServingCertificate, VerifiesAgainstTheBundleForTheServiceName) {
  Pki pki("ok");
  auto facts =
      inspectServingCertificate({pki.leaf}, pki.ca, "xmetrics.xmetrics.svc", core::Clock::now());
  EXPECT_EQ(facts.error, "");
  EXPECT_FALSE(facts.names.empty());
  EXPECT_EQ(facts.bundleSubjects.size(), 1u);
  EXPECT_GT(facts.secondsLeft, 0);
  EXPECT_FALSE(certificateExpiring(facts));
}

TEST(InspectServingCertificate, AnotherCaOrAnotherNameDoesNotVerify) {
  Pki served("served"), other("other");
  auto wrongCa = inspectServingCertificate({served.leaf}, other.ca, "xmetrics.xmetrics.svc",
                                           core::Clock::now());
  EXPECT_NE(wrongCa.error, "");
  auto wrongName =
      inspectServingCertificate({served.leaf}, served.ca, "other.xmetrics.svc", core::Clock::now());
  EXPECT_NE(wrongName.error.find("not valid for other.xmetrics.svc"), std::string::npos)
      << wrongName.error;
  EXPECT_EQ(inspectServingCertificate({served.leaf}, "", "x", core::Clock::now()).error,
            "the APIService has no caBundle");
  EXPECT_EQ(inspectServingCertificate({}, served.ca, "x", core::Clock::now()).error,
            "the server presented no certificate");
}

TEST(CertificateExpiring, OnlyWhenLessThanAThirdOfItsLifeAndAMonthAreLeft) {
  CertificateFacts shortLived{.secondsLeft = 20 * 3600, .lifetimeSeconds = 25 * 3600};
  EXPECT_FALSE(certificateExpiring(shortLived));  // a fresh 1-day certificate
  CertificateFacts yearly{.secondsLeft = 5 * 86400, .lifetimeSeconds = 365 * 86400};
  EXPECT_TRUE(certificateExpiring(yearly));
}

// ---------------------------------------------------------------------------------------------
// Autogen shadowing

boost::json::object datadogMetric(const std::string& ns, const std::string& name,
                                  const std::string& query, const std::string& externalName = "") {
  boost::json::object spec{{"query", query}};
  if (!externalName.empty()) spec["externalMetricName"] = externalName;
  return {{"metadata", {{"namespace", ns}, {"name", name}}}, {"spec", std::move(spec)}};
}

TEST(FindAutogenShadowing, TheManualObjectServesAndTheUnusedAutogenOneIsReported) {
  auto metrics = boost::json::parse(R"j([{"namespace":"shop","metricName":"proxy.requests",
    "selector":"","resolution":"datadogmetric shop/proxy.requests (rule 2: named like the metric)",
    "datadogMetric":"shop/proxy.requests","query":"max:proxy.min{*}"}])j")
                     .as_array();
  auto findings =
      findAutogenShadowing(statusMetrics(metrics),
                           {datadogMetric("shop", "proxy.requests", "max:proxy.min{*}"),
                            datadogMetric("xmetrics", "dcaautogen-abc",
                                          "avg:proxy.requests{*}.rollup(30)", "proxy.requests")});
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].verdict, Verdict::kWarn);
  EXPECT_EQ(findings[0].problem, "autogen-shadowing");
  EXPECT_NE(findings[0].summary.find("shop/proxy.requests serves"), std::string::npos);
  EXPECT_TRUE(has(findings[0].evidence, "(rule 2: named like the metric)"));
  EXPECT_NE(findings[0].fix.find("kubectl delete datadogmetric -n xmetrics dcaautogen-abc"),
            std::string::npos);
}

TEST(FindAutogenShadowing, AnAutogenObjectStillServingAnotherNamespaceIsNotShadowed) {
  auto metrics = boost::json::parse(R"j([
    {"namespace":"shop","metricName":"m","resolution":"datadogmetric shop/m (rule 2: named like the metric)","datadogMetric":"shop/m"},
    {"namespace":"blog","metricName":"m","resolution":"inline, autogen xmetrics/dcaautogen-abc","datadogMetric":"xmetrics/dcaautogen-abc","query":"avg:m{*}.rollup(30)"}])j")
                     .as_array();
  auto findings = findAutogenShadowing(
      statusMetrics(metrics),
      {datadogMetric("shop", "m", "max:x{*}"),
       datadogMetric("xmetrics", "dcaautogen-abc", "avg:m{*}.rollup(30)", "m")});
  // blog/m is served by the autogen object; shop/m's object is in shop, rule 2 is per namespace.
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_NE(findings[0].summary.find("autogen xmetrics/dcaautogen-abc serves blog/m"),
            std::string::npos)
      << findings[0].summary;
  EXPECT_TRUE(has(findings[0].evidence, "only from the HPA's namespace blog"));
}

TEST(FindAutogenShadowing, ARule3ObjectWithAnotherQuerySaysWhyItDoesNotWin) {
  auto metrics = boost::json::parse(R"j([{"namespace":"shop","metricName":"m","selector":"app=web",
    "resolution":"inline, autogen xmetrics/dcaautogen-abc","datadogMetric":"xmetrics/dcaautogen-abc",
    "query":"avg:m{app:web}.rollup(30)"}])j")
                     .as_array();
  auto findings = findAutogenShadowing(
      statusMetrics(metrics),
      {datadogMetric("shop", "mine", "avg:m{app:web}.rollup(60)", "m"),
       datadogMetric("xmetrics", "dcaautogen-abc", "avg:m{app:web}.rollup(30)", "m")});
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_TRUE(has(findings[0].evidence, "only when its query is exactly the inline one"));
}

TEST(FindAutogenShadowing, NothingToSayWithoutAutogenObjects) {
  auto metrics =
      boost::json::parse(R"j([{"namespace":"shop","metricName":"m","resolution":"inline"}])j")
          .as_array();
  EXPECT_TRUE(
      findAutogenShadowing(statusMetrics(metrics), {datadogMetric("shop", "other", "q")}).empty());
}

}  // namespace
}  // namespace xmetrics::doctor

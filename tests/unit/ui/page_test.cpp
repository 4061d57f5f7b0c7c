#include "ui/page.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <tuple>

#include "core/metric_key.hpp"
#include "core/time_format.hpp"

namespace xmetrics::ui {
namespace {

using std::chrono::seconds;

const core::Clock::time_point kNow = *core::parseRfc3339("2026-12-07T12:00:00Z");

core::StatusReport::Metric metric(std::string ns, std::string name, std::string selector,
                                  std::optional<double> value, std::string backend = "embedded") {
  core::StatusReport::Metric m{.ns = std::move(ns),
                               .metricName = std::move(name),
                               .selector = std::move(selector),
                               .query = "avg:q{*}",
                               .resolution = "inline",
                               .backend = std::move(backend)};
  if (value) {
    m.valid = true;
    m.sample = core::StatusReport::Metric::Sample{
        .value = "1500m", .valueNumber = *value, .unit = "per second", .ageSeconds = 12};
  } else {
    m.error = "no series matches avg:q{*}";
  }
  return m;
}

PageContext context() {
  return {.version = "0.1.0 (abc)",
          .startedAt = kNow - seconds(3725),
          .now = kNow,
          .historyInterval = std::chrono::milliseconds(30000)};
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(ParsePageQuery, FiltersAndPagesDecodedAndBounded) {
  auto q = parsePageQuery(
      "ns=shop&validity=invalid&backend=datadog&q=queue+depth%2B1&page=3&per_page=9999&x=1");
  EXPECT_EQ(q.ns, "shop");
  EXPECT_EQ(q.validity, "invalid");
  EXPECT_EQ(q.backend, "datadog");
  EXPECT_EQ(q.text, "queue depth+1");
  EXPECT_EQ(q.page, 3U);
  EXPECT_EQ(q.perPage, PageQuery::kMaxPerPage);
  auto bad = parsePageQuery("page=0&per_page=abc&q=" + std::string(1000, 'a'));
  EXPECT_EQ(bad.page, 1U);
  EXPECT_EQ(bad.perPage, PageQuery::kDefaultPerPage);
  EXPECT_EQ(bad.text.size(), 256U);
  EXPECT_EQ(parsePageQuery("").page, 1U);
}

TEST(RenderPage, EverythingFromTheReportIsEscaped) {
  core::StatusReport report;
  report.metrics.push_back(metric("default", "<script>alert(1)</script>", "a=\"b\"", std::nullopt));
  report.metrics.back().error = "<img src=x onerror=alert(2)>";
  report.backends.push_back({.name = "embedded", .lastError = "<b>"});
  auto html = renderPage(report, nullptr, {}, context());
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(2)&gt;"), std::string::npos);
  EXPECT_NE(html.find("a=&quot;b&quot;"), std::string::npos);
  EXPECT_EQ(escapeHtml("<&>\"'"), "&lt;&amp;&gt;&quot;&#39;");
}

TEST(RenderPage, HeaderSaysVersionRoleUptimeAndCounts) {
  core::StatusReport report;
  report.metrics.push_back(metric("default", "a", "", 1.5));
  report.metrics.push_back(metric("default", "b", "", std::nullopt));
  report.leader = core::StatusReport::Leader{.enabled = true, .isLeader = false};
  report.leader->election = core::StatusReport::Leader::Election{.holder = "xmetrics-0"};
  report.poller.refreshPeriodSeconds = 30;
  report.poller.maxAgeSeconds = 120;
  auto html = renderPage(report, nullptr, {}, context());
  EXPECT_NE(html.find("0.1.0 (abc)"), std::string::npos);
  EXPECT_NE(html.find("follower (leader: xmetrics-0)"), std::string::npos);
  EXPECT_NE(html.find("1h 2m"), std::string::npos);  // 3725 s
  EXPECT_NE(html.find("2 (1 not valid)"), std::string::npos);
  EXPECT_NE(html.find("every 30 s, max-age 120 s"), std::string::npos);
  EXPECT_NE(html.find("1500m</b> <span class=\"muted\">(1.5 per second)"), std::string::npos);
  EXPECT_NE(html.find("12s old"), std::string::npos);
  EXPECT_NE(html.find("no series matches avg:q{*}"), std::string::npos);
}

TEST(RenderPage, FiltersAndPaginates) {
  core::StatusReport report;
  for (int i = 0; i < 120; ++i) {
    report.metrics.push_back(metric(i % 2 ? "shop" : "mail", "m" + std::to_string(i), "",
                                    i % 3 ? std::optional<double>(1) : std::nullopt,
                                    i % 5 ? "embedded" : "prometheus"));
  }
  auto all = renderPage(report, nullptr, {}, context());
  EXPECT_EQ(count(all, "<tr class=\"metric\""), 50U);
  EXPECT_NE(all.find("metrics 1–50 of 120"), std::string::npos);
  EXPECT_NE(all.find("page 1 of 3"), std::string::npos);
  EXPECT_NE(all.find("href=\"?page=2\""), std::string::npos);

  auto last = renderPage(report, nullptr, parsePageQuery("page=3"), context());
  EXPECT_EQ(count(last, "<tr class=\"metric\""), 20U);
  EXPECT_NE(last.find("rel=\"prev\" href=\"?page=2\""), std::string::npos);
  EXPECT_EQ(last.find("rel=\"next\""), std::string::npos);

  auto beyond = renderPage(report, nullptr, parsePageQuery("page=99"), context());
  EXPECT_EQ(count(beyond, "<tr class=\"metric\""), 20U);  // the last page

  auto shop = renderPage(report, nullptr, parsePageQuery("ns=shop&per_page=100"), context());
  EXPECT_EQ(count(shop, "data-namespace=\"shop\""), 60U);
  EXPECT_EQ(count(shop, "data-namespace=\"mail\""), 0U);
  EXPECT_NE(shop.find("(filtered from 120)"), std::string::npos);

  auto invalid =
      renderPage(report, nullptr, parsePageQuery("validity=invalid&per_page=500"), context());
  EXPECT_EQ(count(invalid, "<tr class=\"metric\""), 40U);  // i % 3 == 0
  EXPECT_EQ(count(invalid, "data-validity=\"valid\""), 0U);

  auto prom =
      renderPage(report, nullptr, parsePageQuery("backend=prometheus&ns=mail&page=1"), context());
  EXPECT_EQ(count(prom, "<tr class=\"metric\""), 12U);  // i % 10 == 0
  auto none = renderPage(report, nullptr, parsePageQuery("q=nothing-like-it"), context());
  EXPECT_NE(none.find("No metric matches the filter."), std::string::npos);
  // A filter stays in the page links.
  auto twoPages = renderPage(report, nullptr, parsePageQuery("ns=shop"), context());
  EXPECT_NE(twoPages.find("href=\"?ns=shop&amp;page=2\""), std::string::npos);
}

TEST(RenderPage, SparklineAndValidityStripFromTheHistory) {
  core::StatusReport report;
  report.metrics.push_back(metric("default", "queue", "q=a", 7));
  auto key = core::metricKey("default", "queue", "q=a");
  ValueHistory history(4);
  // Feed the history the way the sampler does: three samples 30 s apart.
  store::MetricIdentity id;
  id.ns = "default";
  id.metricName = "queue";
  id.selector = "q=a";
  auto identity = store::shareIdentity(id);
  ASSERT_EQ(identity->key, key);
  double values[] = {1.5, 7, 12};
  for (int i = 0; i < 3; ++i) {
    auto value = std::make_shared<store::MetricValue>();
    value->metric = identity;
    auto at = kNow - seconds(60 - 30 * i);
    value->sample = core::Sample{.value = values[i], .time = at};
    value->lastSuccess = at;
    auto map = std::make_shared<store::ValueMap>();
    map->put(value);
    store::ValueSnapshot snapshot;
    snapshot.base = map;
    history.sample(snapshot, {}, at);
  }
  auto html = renderPage(report, &history, {}, context());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("data-values=\"([^\"]*)\"")));
  EXPECT_EQ(m[1].str(), "1.5 7 12");
  ASSERT_TRUE(std::regex_search(html, m, std::regex("<polyline points=\"([^\"]*)\"")));
  // Three points from the first sample to now (the ring is not full yet: its window starts at its
  // first sample), the highest value at the top (y = 3), the lowest at the bottom (y = 25).
  EXPECT_EQ(m[1].str(), "2,25 80,13.5 158,3 ");
  EXPECT_NE(html.find("<circle cx=\"158\" cy=\"3\" r=\"2\"/>"), std::string::npos);
  EXPECT_EQ(count(html, "class=\"v-valid\""), 3U);
  EXPECT_NE(html.find("History: 4 samples per metric, one every 30 s"), std::string::npos);
}

TEST(RenderPage, ARemoteBackendsCallsFailuresAndBudget) {
  core::StatusReport report;
  report.backends.push_back({.name = "datadog",
                             .calls = 14,
                             .rateLimits = {{.endpoint = "https://api.datadoghq.com",
                                             .limit = 1600,
                                             .remaining = 1187,
                                             .resetSeconds = 3500}},
                             .callsByOutcome = {{"ok", 10}, {"rate_limited", 3}, {"error", 1}},
                             .lastRefresh = std::pair<int64_t, int64_t>{10000, 50}});
  ValueHistory history(10);
  store::ServiceStatus status;
  status.backends.push_back({.name = "datadog"});
  // 10 calls, then 14 (4 more, 1 failed), then a reload's new backend: 2 calls since.
  for (auto [calls, ok, t] : {std::tuple{10, 8, 0}, {14, 11, 30}, {2, 2, 60}}) {
    status.backends[0].health.calls = static_cast<uint64_t>(calls);
    status.backends[0].health.callsByOutcome = {{"ok", ok}, {"error", calls - ok}};
    history.sample({}, status, kNow - seconds(60 - t));
  }
  auto html = renderPage(report, &history, {}, context());
  EXPECT_NE(html.find("14 calls since start, 4 not ok"), std::string::npos);
  EXPECT_NE(html.find("last refresh: 10,000 metrics, 50 distinct queries"), std::string::npos);
  EXPECT_NE(html.find("<meter min=\"0\" max=\"1600\" value=\"1187\"></meter>"), std::string::npos);
  EXPECT_NE(html.find("1,187 of 1,600 calls left, resets in 58m 20s"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(html, m, std::regex("calls</span><svg[^>]*data-values=\"([^\"]*)\"")));
  EXPECT_EQ(m[1].str(), "4 2");  // the reset counts from zero, not as 2^64 - 12
  ASSERT_TRUE(
      std::regex_search(html, m, std::regex("not ok</span><svg[^>]*data-values=\"([^\"]*)\"")));
  EXPECT_EQ(m[1].str(), "1 0");
}

TEST(RenderPage, TheApiServiceAsTheAggregatorSeesIt) {
  core::StatusReport report;
  EXPECT_NE(renderPage(report, nullptr, {}, context()).find("none (standalone)"),
            std::string::npos);
  report.kubernetes = core::StatusReport::Kubernetes{.server = "https://10.0.0.1"};
  report.kubernetes->apiService = core::StatusReport::Kubernetes::ApiService{
      .name = "v1beta1.external.metrics.k8s.io",
      .available = "False",
      .reason = "FailedDiscoveryCheck",
      .message = "failing or missing response from https://10.96.0.12:443",
      .checked = "2026-12-07T11:59:50Z"};
  auto html = renderPage(report, nullptr, {}, context());
  EXPECT_NE(html.find("data-available=\"False\""), std::string::npos);
  EXPECT_NE(html.find("<span class=\"bad\">Available=False (FailedDiscoveryCheck)</span>"),
            std::string::npos);
  EXPECT_NE(html.find("failing or missing response from https://10.96.0.12:443"),
            std::string::npos);
  EXPECT_NE(html.find("read 10s ago"), std::string::npos);
  report.kubernetes->apiService->available = "True";
  report.kubernetes->apiService->reason = "Passed";
  html = renderPage(report, nullptr, {}, context());
  EXPECT_NE(html.find("<span class=\"ok\">Available=True (Passed)</span>"), std::string::npos);
}

TEST(RenderPage, TheSelfCheckCountsLinkToItsFindings) {
  core::StatusReport report;
  report.kubernetes = core::StatusReport::Kubernetes{.server = "https://10.0.0.1"};
  EXPECT_NE(renderPage(report, nullptr, {}, context()).find("runs them on itself too; not yet"),
            std::string::npos);
  report.selfCheck = core::StatusReport::SelfCheck{
      .ran = "2026-12-07T11:58:00Z",
      .ok = 12,
      .warn = 1,
      .fail = 1,
      .findings = {
          {.name = "hpa",
           .subject = "shop/web",
           .verdict = "FAIL",
           .summary = "no series <b>",
           .fix = "fix the tag"},
          {.name = "migration-cluster-agent", .verdict = "WARN", .summary = "not checked"}}};
  auto html = renderPage(report, nullptr, {}, context());
  EXPECT_NE(html.find("data-ok=\"12\" data-warn=\"1\" data-fail=\"1\""), std::string::npos);
  EXPECT_NE(html.find("doctor, run by xmetrics on itself 2m 0s ago"), std::string::npos);
  EXPECT_NE(html.find("<a href=\"#findings\">findings</a>"), std::string::npos);
  EXPECT_NE(html.find("<section id=\"findings\">"), std::string::npos);
  EXPECT_EQ(count(html, "<tr class=\"finding\""), 2U);
  EXPECT_NE(html.find("no series &lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("fix the tag"), std::string::npos);
  report.selfCheck->error = "give --kubeconfig";
  EXPECT_NE(renderPage(report, nullptr, {}, context()).find("could not run: give --kubeconfig"),
            std::string::npos);
}

TEST(RenderPage, EachHpaNamingAMetricWithItsArithmetic) {
  core::StatusReport report;
  auto m = metric("shop", "requests", "app=web", 2472);
  m.sample->value = "2472";
  m.references = {"hpa:shop/web", "hpa:shop/gone"};
  report.metrics.push_back(m);
  report.hpas.push_back({.ns = "shop",
                         .name = "web",
                         .scaleTarget = "Deployment/web",
                         .minReplicas = 1,
                         .maxReplicas = 3,
                         .currentReplicas = 3,
                         .desiredReplicas = 3,
                         .metrics = {{.name = "requests",
                                      .selector = "app=web",
                                      .targetType = "AverageValue",
                                      .target = "9",
                                      .current = "824"}}});
  auto html = renderPage(report, nullptr, {}, context());
  EXPECT_NE(html.find("data-hpa=\"shop/web\" data-desired=\"3\""), std::string::npos);
  EXPECT_NE(html.find("Deployment/web"), std::string::npos);
  EXPECT_NE(html.find("target 9 per pod · replicas 3 (min 1, max 3), desired 3 · it read 824"),
            std::string::npos);
  EXPECT_NE(html.find("data-wants=\"3\">824/9 (avg): "), std::string::npos);
  EXPECT_NE(html.find("2472/3 = 824 per pod"), std::string::npos);
  EXPECT_NE(html.find("capped at maxReplicas 3 → 3 replicas"), std::string::npos);
  // A reference to an HPA the report does not list is still named.
  EXPECT_NE(html.find("<div>hpa:shop/gone</div>"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::ui

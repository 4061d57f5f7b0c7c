#include "server/metrics_endpoint.hpp"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>

#include "poller/poller.hpp"
#include "server/api_handler.hpp"
#include "support/capturing_slot.hpp"
#include "support/fake_backend.hpp"
#include "support/test_certificates.hpp"

namespace xmetrics::server {
namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;

std::string_view className(std::string_view target) {
  return requestPathClasses().at(requestPathClass(target));
}

TEST(RequestPathClass, NamesTheRouteNeverThePath) {
  EXPECT_EQ(className("/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue.depth"
                      "?labelSelector=env%3Dprod"),
            "external_metric");
  EXPECT_EQ(className("/apis"), "discovery");
  EXPECT_EQ(className("/apis/external.metrics.k8s.io"), "discovery");
  EXPECT_EQ(className("/apis/external.metrics.k8s.io/v1beta1/"), "discovery");
  EXPECT_EQ(className("/xmetrics/v1/status"), "status");
  EXPECT_EQ(className("/xmetrics/v1/logs"), "status");
  EXPECT_EQ(className("/healthz"), "health");
  EXPECT_EQ(className("/readyz?verbose"), "health");
  EXPECT_EQ(className("/openapi/v2"), "openapi");
  EXPECT_EQ(className("/openapi/v3/apis/x"), "openapi");
  EXPECT_EQ(className("/metrics"), "metrics");
  EXPECT_EQ(className("/xmetrics/v1/replicate"), "replication");
  EXPECT_EQ(className("/apis/external.metrics.k8s.io/v1beta1/namespaces/shop"), "other");
  EXPECT_EQ(className("/apis/external.metrics.k8s.io/v1beta1/namespaces/a/b/c"), "other");
  EXPECT_EQ(className("/metricsz"), "other");
  EXPECT_EQ(className("/anything/else"), "other");
  EXPECT_EQ(className(""), "other");  // a request that could not be parsed
}

using testing::CapturingSlot;

store::MetricValuePtr value(std::string ns, std::string metric, std::string selector,
                            std::optional<core::Sample> sample) {
  store::MetricIdentity identity;
  identity.ns = std::move(ns);
  identity.metricName = std::move(metric);
  identity.selector = std::move(selector);
  identity.maxAge = 120s;
  auto v = std::make_shared<store::MetricValue>();
  v->metric = store::shareIdentity(std::move(identity));
  v->sample = sample;
  return v;
}

struct MetricsEndpointTest : ::testing::Test {
  testing::FakeBackend backend;
  store::ValueStore values;
  catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s}};
  poller::Poller poller{catalog, backend, values, {.refreshPeriod = 30s}};
  testing::TestCertificates certs{"metrics-endpoint"};
  auth::Authenticator authenticator{
      {.clientCa = certs.pool, .tokens = *auth::parseTokenFile("tok,alice,1\n", "t")}};
  auth::Authorizer authorizer;
  int extraCalls = 0;
  ApiHandler handler{
      {.maxAge = 120s,
       .firstFetchTimeout = 2s,
       .extraMetrics =
           [this](telemetry::ExpositionWriter& out) {
             ++extraCalls;
             out.family("xmetrics_leader", telemetry::MetricType::kGauge, "L.").sample({}, 1.0);
           }},
      authenticator,
      authorizer,
      values,
      poller};
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
  std::thread ioThread{[this] { ioc.run(); }};

  ~MetricsEndpointTest() override {
    work.reset();
    ioc.stop();
    ioThread.join();
  }

  HttpResponse get(std::string target, PeerCertificate peer, http::verb method = http::verb::get) {
    HttpRequest req{method, target, 11};
    auto slot = std::make_shared<CapturingSlot>(ioc);
    handler.handle(req, peer, slot);
    return slot->get();
  }
};

TEST_F(MetricsEndpointTest, NeedsCredentialsLikeEveryOtherPath) {
  auto r = get("/metrics", PeerCertificate{});
  EXPECT_EQ(r.result_int(), 401);
  EXPECT_EQ(extraCalls, 0);
}

TEST_F(MetricsEndpointTest, AnswersTheTextFormatWithEveryPart) {
  // What the server reports after answering two metric reads and a health check.
  HttpRequest metricRead{http::verb::get,
                         "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/m", 11};
  handler.responded(metricRead, 200, 40us);
  handler.responded(metricRead, 404, 3ms);
  handler.responded(HttpRequest{http::verb::get, "/livez", 11}, 200, 10us);

  auto r = get("/metrics", certs.client);
  ASSERT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(r[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const auto& text = r.body();
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"external_metric\",code=\"200\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"external_metric\",code=\"404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"health\",code=\"200\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_http_request_duration_seconds_count{path=\"external_metric\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_refresh_cycles_total 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("xmetrics_backend_first_fetches_total 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE xmetrics_refresh_cycle_duration_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("xmetrics_leader 1\n"), std::string::npos);
  EXPECT_EQ(extraCalls, 1);
  // HEAD is answered too (the server drops the body).
  EXPECT_EQ(get("/metrics", certs.client, http::verb::head).result_int(), 200);
  EXPECT_EQ(get("/metrics", certs.client, http::verb::post).result_int(), 405);
}

TEST_F(MetricsEndpointTest, AgeAndValidityComeFromThePublishedValues) {
  auto now = core::Clock::now();
  store::ValueMap map;
  map.put(value("shop", "queue.depth", "env=prod", core::Sample{4, now - 30s}));
  map.put(value("shop", "old.metric", "", core::Sample{1, now - 600s}));
  map.put(value("default", "never.sent", "a=\"b\"", std::nullopt));
  store::ValueSnapshot snapshot;
  snapshot.base = std::make_shared<const store::ValueMap>(std::move(map));
  values.publish(std::move(snapshot));

  auto text = handler.metricsExposition();
  auto line = [&](std::string_view prefix) {
    auto at = text.find(prefix);
    EXPECT_NE(at, std::string::npos) << prefix << "\n" << text;
    if (at == std::string::npos) return std::string();
    return text.substr(at + prefix.size(), text.find('\n', at) - at - prefix.size());
  };
  double freshAge = std::stod(line(
      "xmetrics_metric_value_age_seconds{namespace=\"shop\",metric=\"queue.depth\",selector=\"env="
      "prod\"} "));
  EXPECT_GE(freshAge, 30);
  EXPECT_LT(freshAge, 40);
  EXPECT_EQ(line("xmetrics_metric_valid{namespace=\"shop\",metric=\"queue.depth\",selector=\"env="
                 "prod\"} "),
            "1");
  EXPECT_GE(std::stod(line("xmetrics_metric_value_age_seconds{namespace=\"shop\",metric=\"old."
                           "metric\",selector=\"\"} ")),
            600);
  EXPECT_EQ(line("xmetrics_metric_valid{namespace=\"shop\",metric=\"old.metric\",selector=\"\"} "),
            "0");
  // No data point: no age, and not valid. The selector's quotes are escaped.
  EXPECT_EQ(line("xmetrics_metric_valid{namespace=\"default\",metric=\"never.sent\",selector=\"a="
                 "\\\"b\\\"\"} "),
            "0");
  EXPECT_EQ(text.find("xmetrics_metric_value_age_seconds{namespace=\"default\""),
            std::string::npos);
}

TEST(BackendMetrics, CallsByOutcomeAndTheBudgetPerEndpoint) {
  backends::BackendHealth health;
  health.callsByOutcome = {{"ok", 12}, {"rate_limited", 1}};
  health.rateLimits = {{"https://api.datadoghq.eu", 1600, 1187, 3500}};
  telemetry::ExpositionWriter out;
  writeBackendMetrics(out, "datadog", health);
  auto text = out.text();
  EXPECT_NE(text.find("xmetrics_backend_calls_total{backend=\"datadog\",outcome=\"ok\"} 12\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("xmetrics_backend_calls_total{backend=\"datadog\",outcome=\"rate_limited\"} 1\n"),
      std::string::npos);
  EXPECT_NE(text.find("xmetrics_backend_rate_limit_limit{backend=\"datadog\",endpoint=\"https://"
                      "api.datadoghq.eu\"} 1600\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_backend_rate_limit_remaining{backend=\"datadog\",endpoint=\"https:"
                      "//api.datadoghq.eu\"} 1187\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_backend_rate_limit_reset_seconds{backend=\"datadog\",endpoint="
                      "\"https://api.datadoghq.eu\"} 3500\n"),
            std::string::npos);
}

TEST(BackendMetrics, AStretchedRefreshShowsItsNumbersAndNoneIsZero) {
  backends::BackendHealth health;
  health.callsByOutcome = {{"ok", 12}};
  {
    telemetry::ExpositionWriter out;
    writeBackendMetrics(out, "datadog", health);
    auto text = out.text();
    EXPECT_NE(text.find("xmetrics_backend_refresh_stretched_metrics{backend=\"datadog\"} 0\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("xmetrics_backend_calls_budget_per_hour"), std::string::npos);
  }
  health.stretch = core::BackendHealth::Stretch{1600, 2300, 120, 45};
  telemetry::ExpositionWriter out;
  writeBackendMetrics(out, "datadog", health);
  auto text = out.text();
  for (std::string line :
       {"xmetrics_backend_refresh_stretched_metrics{backend=\"datadog\"} 120\n",
        "xmetrics_backend_refresh_stretched_interval_seconds{backend=\"datadog\"} "
        "45\n",
        "xmetrics_backend_calls_budget_per_hour{backend=\"datadog\"} 1600\n",
        "xmetrics_backend_calls_wanted_per_hour{backend=\"datadog\"} 2300\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " in\n" << text;
  }
}

TEST(BackendMetrics, AnInProcessBackendHasNoCallSeries) {
  telemetry::ExpositionWriter out;
  writeBackendMetrics(out, "embedded", backends::BackendHealth{});
  EXPECT_EQ(out.text(), "");
}

}  // namespace
}  // namespace xmetrics::server

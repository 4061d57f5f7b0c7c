#include "server/metrics_endpoint.hpp"

#include <algorithm>

#include "server/api_handler.hpp"
#include "server/router.hpp"

namespace xmetrics::server {
namespace {

using telemetry::Label;
using telemetry::MetricType;

}  // namespace

void writeValueMetrics(telemetry::ExpositionWriter& out, const store::ValueSnapshot& snapshot,
                       core::Clock::time_point now) {
  auto& age = out.family(
      "xmetrics_metric_value_age_seconds", MetricType::kGauge,
      "Age of the newest data point of each served metric (from its time bucket's start), at "
      "scrape time. Absent while the metric has no data point.");
  auto& valid = out.family(
      "xmetrics_metric_valid", MetricType::kGauge,
      "1 when a request for the metric is answered with a value (it has a data point no older "
      "than max-age), 0 when it gets an error.");
  snapshot.forEach([&](std::string_view, const store::MetricValuePtr& value) {
    const auto& metric = *value->metric;
    const Label labels[] = {
        {"namespace", metric.ns}, {"metric", metric.metricName}, {"selector", metric.selector}};
    bool isValid = false;
    if (value->sample) {
      auto elapsed = now - value->sample->time;
      age.sample(labels, std::chrono::duration<double>(elapsed).count());
      // The same comparison the request path makes.
      isValid = value->errorCode == 0 && store::isFresh(*value, now);
    }
    valid.sample(labels, isValid ? 1.0 : 0.0);
  });
}

void writePollerMetrics(telemetry::ExpositionWriter& out, const store::PollerStatus& status) {
  out.family("xmetrics_refresh_cycle_duration_seconds", MetricType::kGauge,
             "How long the last complete refresh of every wanted metric took.")
      .sample({}, std::chrono::duration<double>(status.lastCycleDuration).count());
  out.family("xmetrics_refresh_cycles_total", MetricType::kCounter,
             "Complete refreshes of every wanted metric since start.")
      .sample({}, status.cycles);
  out.family("xmetrics_backend_first_fetches_total", MetricType::kCounter,
             "Fetches made at once for a metric asked for the first time, ahead of the refresh "
             "cycle.")
      .sample({}, status.firstFetches);
}

void writeBackendMetrics(telemetry::ExpositionWriter& out, std::string_view backend,
                         const core::BackendHealth& health) {
  auto& calls = out.family(
      "xmetrics_backend_calls_total", MetricType::kCounter,
      "Calls to a remote backend by outcome: ok, rejected (the query itself was refused), "
      "rate_limited (429), timeout, error.");
  for (const auto& [outcome, n] : health.callsByOutcome) {
    calls.sample({{"backend", backend}, {"outcome", outcome}}, n);
  }
  auto& limit = out.family("xmetrics_backend_rate_limit_limit", MetricType::kGauge,
                           "Calls the backend allows per rate-limit period, as last announced.");
  auto& remaining =
      out.family("xmetrics_backend_rate_limit_remaining", MetricType::kGauge,
                 "Calls left in the backend's current rate-limit period, as last announced.");
  auto& reset = out.family("xmetrics_backend_rate_limit_reset_seconds", MetricType::kGauge,
                           "Seconds until the backend's current rate-limit period ends.");
  for (const auto& r : health.rateLimits) {
    std::initializer_list<Label> labels = {{"backend", backend}, {"endpoint", r.endpoint}};
    limit.sample(labels, r.limit);
    remaining.sample(labels, r.remaining);
    reset.sample(labels, r.resetSeconds);
  }
  if (health.callsByOutcome.empty()) return;  // an in-process backend has no budget to stretch
  std::initializer_list<Label> labels = {{"backend", backend}};
  out.family("xmetrics_backend_refresh_stretched_metrics", MetricType::kGauge,
             "Metrics no HPA names that the last refresh deferred because the rate-limit budget "
             "cannot cover every metric at the refresh period (0: none).")
      .sample(labels, health.stretch ? static_cast<double>(health.stretch->metrics) : 0.0);
  if (!health.stretch) return;
  out.family("xmetrics_backend_refresh_stretched_interval_seconds", MetricType::kGauge,
             "How often a deferred metric is refreshed at the current budget (0: not at all).")
      .sample(labels, health.stretch->intervalSeconds);
  out.family("xmetrics_backend_calls_budget_per_hour", MetricType::kGauge,
             "Calls per hour the announced rate-limit budget sustains, while it stretches the "
             "refresh.")
      .sample(labels, health.stretch->budgetPerHour);
  out.family("xmetrics_backend_calls_wanted_per_hour", MetricType::kGauge,
             "Calls per hour a full refresh at the refresh period would take, while the budget "
             "stretches it.")
      .sample(labels, health.stretch->wantPerHour);
}

void ApiHandler::responded(const HttpRequest& request, unsigned status,
                           std::chrono::steady_clock::duration elapsed) {
  requests_.record(requestPathClass(request.target()), status,
                   std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed));
}

std::string ApiHandler::metricsExposition() const {
  telemetry::ExpositionWriter out;
  requests_.write(out);
  writeValueMetrics(out, *values_.snapshot(), core::Clock::now());
  auto service = values_.status();
  writePollerMetrics(out, service->poller);
  for (const auto& backend : service->backends)
    writeBackendMetrics(out, backend.name, backend.health);
  if (options_.extraMetrics) options_.extraMetrics(out);
  return out.text();
}

HttpResponse ApiHandler::metricsResponse(unsigned version) const {
  HttpResponse response{boost::beast::http::status::ok, version};
  response.set(boost::beast::http::field::content_type, telemetry::kExpositionContentType);
  response.set(boost::beast::http::field::cache_control, "no-cache, private");
  response.body() = metricsExposition();
  return response;
}

}  // namespace xmetrics::server

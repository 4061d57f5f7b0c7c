#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "backends/backend.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::prometheus {

struct PrometheusOptions {
  std::string url = "http://127.0.0.1:9090";  // base URL of the Prometheus HTTP API
  std::string bearerTokenFile;                // read again on every call (projected tokens rotate)
  std::string aggregation = "sum";            // of inline queries: sum, avg, min, max, count, none
  std::chrono::milliseconds timeout{10'000};
  std::size_t maxGetUrl = 2000;  // longer queries go as a POST form body
  // Fails the calls in flight and every later one (HttpClient::cancel): shutdown.
  std::function<void()> cancelTransport;
};

using Transport = std::function<std::expected<http::Response, std::string>(const http::Request&)>;

// Instant queries on /api/v1/query, one per metric, evaluated at the poller's `now`. A result must
// be exactly one sample (or a scalar); no series, several series and NaN are errors that say so.
class PrometheusBackend final : public Backend {
 public:
  PrometheusBackend(PrometheusOptions options, Transport transport);

  // Backend
  std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                   core::Clock::time_point now) override;
  std::string_view name() const override { return "prometheus"; }
  BackendHealth health() const override;
  std::optional<std::string> translateInline(std::string_view metric,
                                             const core::LabelSelector& selector) const override;
  void cancel() override {
    if (options_.cancelTransport) options_.cancelTransport();
  }

 private:
  // `timedOut`: set when Prometheus did not answer in time (the transport's timeout).
  BackendResult query(const std::string& promql, core::Clock::time_point now, bool& timedOut);

  PrometheusOptions options_;
  Transport transport_;
  mutable std::mutex mutex_;
  std::string lastError_;
  core::Clock::time_point lastSuccess_, lastFailure_;
  uint64_t calls_ = 0;
  bool reachable_ = true;
  CallCounts callCounts_;
};

}  // namespace xmetrics::backends::prometheus

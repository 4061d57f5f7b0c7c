#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/prometheus/coalescing.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::prometheus {

struct PrometheusOptions {
  std::string url = "http://127.0.0.1:9090";  // base URL of the Prometheus HTTP API
  std::string bearerTokenFile;                // read again on every call (projected tokens rotate)
  std::string aggregation = "sum";            // of inline queries: sum, avg, min, max, count, none
  std::chrono::milliseconds timeout{10'000};
  std::size_t maxGetUrl = 2000;  // longer queries go as a POST form body
  // Issue 14: inline queries of a batch that differ in one label's value go as one grouped query
  // (coalescing.hpp). Off: every query is sent by itself.
  bool coalesceQueries = true;
  CoalesceLimits coalesceLimits;
  // Fails the calls in flight and every later one (HttpClient::cancel): shutdown.
  std::function<void()> cancelTransport;
};

using Transport = std::function<std::expected<http::Response, std::string>(const http::Request&)>;

// Instant queries on /api/v1/query, one per metric, evaluated at the poller's `now`. A result must
// be exactly one sample (or a scalar); no series, several series and NaN are errors that say so.
// With coalesceQueries, inline queries that differ in one label's value share one grouped query,
// whose answer is split so that each gets the value, timestamp or error its own query gives.
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
  // A successful call's answer: `data.resultType` and `data.result`.
  struct Answer {
    std::string type;
    boost::json::value result;
    std::string bearerToken;  // the call's, to scrub from error texts made of the answer
  };
  struct CallError {
    std::string message;
    bool rejected = false;  // 400/422: about the query itself, not Prometheus
    bool timedOut = false;  // Prometheus did not answer in time (the transport's timeout)
  };
  // One instant query at `now`; counts the call and records the backend's health.
  std::expected<Answer, CallError> call(const std::string& promql, core::Clock::time_point now);
  // `timedOut`: set when Prometheus did not answer in time (the transport's timeout).
  BackendResult query(const std::string& promql, core::Clock::time_point now, bool& timedOut);
  // Answers every member of `group` into `out` with one call; falls back to the members' own
  // queries when Prometheus refuses the grouped one.
  void queryGroup(const QueryGroup& group, std::span<const BackendQuery> batch,
                  core::Clock::time_point now, std::vector<std::optional<BackendResult>>& out,
                  std::optional<std::string>& timedOut);

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

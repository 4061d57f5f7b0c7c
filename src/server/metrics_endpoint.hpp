#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"
#include "core/sample.hpp"
#include "poller/poller.hpp"
#include "store/value_store.hpp"
#include "telemetry/exposition.hpp"

namespace xmetrics::server {

// What /metrics serves of the request path, the published values, the poller and the backend.
// The rest (process, DogStatsD, the cluster's watches, the DatadogMetric controller, leadership)
// comes through ApiHandlerOptions::extraMetrics.

// The `path` label values of xmetrics_http_requests_total: a class per route, never the raw path,
// so that arbitrary URLs cannot grow the number of series.
const std::vector<std::string>& requestPathClasses();
// The index into requestPathClasses() of a request target (path and query, as sent).
std::size_t requestPathClass(std::string_view target);

// xmetrics_metric_value_age_seconds and xmetrics_metric_valid per served metric, at `now`.
void writeValueMetrics(telemetry::ExpositionWriter& out, const store::ValueSnapshot& snapshot,
                       core::Clock::time_point now);
void writePollerMetrics(telemetry::ExpositionWriter& out, const poller::PollerStatus& status);
// Calls by outcome and rate-limit budgets, labelled with the backend's name.
void writeBackendMetrics(telemetry::ExpositionWriter& out, std::string_view backend,
                         const backends::BackendHealth& health);

}  // namespace xmetrics::server

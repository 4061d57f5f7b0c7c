#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/backend_health.hpp"
#include "core/sample.hpp"
#include "store/value_store.hpp"
#include "telemetry/exposition.hpp"

namespace xmetrics::server {

// What /metrics serves of the request path, the published values, the poller and the backend.
// The rest (process, DogStatsD, the cluster's watches, the DatadogMetric controller, leadership)
// comes through ApiHandlerOptions::extraMetrics.

// xmetrics_metric_value_age_seconds and xmetrics_metric_valid per served metric, at `now`.
void writeValueMetrics(telemetry::ExpositionWriter& out, const store::ValueSnapshot& snapshot,
                       core::Clock::time_point now);
void writePollerMetrics(telemetry::ExpositionWriter& out, const store::PollerStatus& status);
// Calls by outcome and rate-limit budgets, labelled with the backend's name.
void writeBackendMetrics(telemetry::ExpositionWriter& out, std::string_view backend,
                         const core::BackendHealth& health);

}  // namespace xmetrics::server

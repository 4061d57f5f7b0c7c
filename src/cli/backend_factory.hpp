#pragma once

#include <expected>
#include <memory>
#include <string>

#include "backends/backend.hpp"
#include "config/serve_options.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::cli {

// Builds the backend named `name` (embedded, datadog, prometheus) from its settings. `timeSeries`
// is the embedded store the DogStatsD listener feeds. The error names the setting to fix.
std::expected<backends::BackendPtr, std::string> makeBackend(
    const config::ServeOptions& options, std::string_view name,
    std::shared_ptr<tsdb::TimeSeriesStore> timeSeries);

}  // namespace xmetrics::cli

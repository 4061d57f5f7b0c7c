#pragma once

#include <expected>
#include <memory>
#include <string>

#include "backends/backend.hpp"
#include "backends/embedded/time_series_store.hpp"
#include "config/serve_options.hpp"

namespace xmetrics::app {

// Builds the backend named `name` (embedded, datadog, prometheus) from its settings. `timeSeries`
// is the embedded store the DogStatsD listener feeds. The error names the setting to fix.
std::expected<backends::BackendPtr, std::string> makeBackend(
    const config::ServeOptions& options, std::string_view name,
    std::shared_ptr<backends::embedded::TimeSeriesStore> timeSeries);

}  // namespace xmetrics::app

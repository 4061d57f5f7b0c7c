#pragma once

#include <vector>

#include "catalog/catalog.hpp"
#include "config/serve_options.hpp"

namespace xmetrics::demand {

// The `metrics` setting as the catalog's configured metrics.
std::vector<catalog::ConfiguredMetric> configuredMetrics(const config::ServeOptions& options);

// What a changed --config file can change in a running process: the log level and the `metrics`
// setting. Everything else is logged as needing a restart rather than half-applied. `running` is
// replaced by the new settings when they are valid; invalid ones are logged and leave it as is.
// `backends`: the settings of the backends of this build, as at start.
void applyConfigChange(config::ServeOptions& running, const config::SettingSources& sources,
                       const std::vector<config::BackendSettings>& backends,
                       catalog::Catalog& catalog);

}  // namespace xmetrics::demand

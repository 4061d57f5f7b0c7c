#include "cli/backend_factory.hpp"

#include "backends/embedded/embedded_backend.hpp"

namespace xmetrics::cli {

std::expected<backends::BackendPtr, std::string> makeBackend(
    const config::ServeOptions& options,
    std::shared_ptr<backends::embedded::TimeSeriesStore> timeSeries) {
  if (options.backend == "embedded") {
    return std::make_unique<backends::embedded::EmbeddedBackend>(std::move(timeSeries));
  }
  return std::unexpected("--backend \"" + options.backend + "\" is not available in this build");
}

}  // namespace xmetrics::cli

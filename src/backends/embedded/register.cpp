// The embedded backend's entry in the registry: no settings of its own; it answers from the store
// the DogStatsD listener feeds.
#include "backends/embedded/embedded_backend.hpp"
#include "backends/registry.hpp"

namespace xmetrics::backends::embedded {

void registerBackend(BackendRegistry& registry) {
  registry.add(
      {.name = "embedded",
       .settings = {},
       .make = [](const BackendContext& context) -> std::expected<BackendPtr, std::string> {
         return std::make_unique<EmbeddedBackend>(context.timeSeries);
       }});
}

}  // namespace xmetrics::backends::embedded

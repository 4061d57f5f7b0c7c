#include "backends/registry.hpp"

namespace xmetrics::backends {

void BackendRegistry::add(BackendRegistration registration) {
  registration.settings.name = registration.name;
  registrations_.push_back(std::move(registration));
}

std::vector<std::string> BackendRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& r : registrations_) out.push_back(r.name);
  return out;
}

std::vector<config::BackendSettings> BackendRegistry::settings() const {
  std::vector<config::BackendSettings> out;
  for (const auto& r : registrations_) out.push_back(r.settings);
  return out;
}

std::expected<BackendPtr, std::string> BackendRegistry::make(std::string_view name,
                                                             const BackendContext& context) const {
  for (const auto& r : registrations_) {
    if (r.name == name) return r.make(context);
  }
  return std::unexpected("backend \"" + std::string(name) + "\" is not available in this build");
}

}  // namespace xmetrics::backends

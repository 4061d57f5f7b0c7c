#include "demand/config_reload.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <string>
#include <utility>

namespace xmetrics::demand {

std::vector<catalog::ConfiguredMetric> configuredMetrics(const config::ServeOptions& options) {
  std::vector<catalog::ConfiguredMetric> out;
  for (const auto& m : options.metrics) {
    out.push_back({m.name, m.ns, m.backend, m.query, m.maxAge, m.timeWindow});
  }
  return out;
}

void applyConfigChange(config::ServeOptions& running, const config::SettingSources& sources,
                       const std::vector<config::BackendSettings>& backends,
                       catalog::Catalog& catalog) {
  auto next = config::resolveServeOptions(sources, backends);
  if (!next) {
    // The running settings stay; the file says what to fix.
    for (const auto& e : next.error()) {
      spdlog::error("component=config event=reload_rejected file={} error=\"{}\"",
                    sources.configFile, e);
    }
    return;
  }
  // Compared on the unredacted values: a changed key must not look unchanged behind <redacted>.
  std::map<std::string, std::pair<std::string, std::size_t>> before;
  for (const auto& e : running.effective) before[e.name] = {e.value, e.rawHash};
  std::vector<std::string> needRestart;
  for (const auto& e : next->effective) {
    if (before[e.name] == std::pair(e.value, e.rawHash)) continue;
    if (e.name == "log-level") {
      // Said before it applies: a higher level (warn) would swallow its own announcement.
      spdlog::info("component=config event=reloaded setting=log-level value={}", e.value);
      spdlog::set_level(spdlog::level::from_str(next->logLevel));
    } else if (e.name == "metrics") {
      // What resolves differently the poller fetches at once: it hears of it from the catalog.
      auto changed = catalog.setConfigured(configuredMetrics(*next));
      spdlog::info("component=config event=reloaded setting=metrics entries={} re_resolved={}",
                   next->metrics.size(), changed.size());
    } else {
      needRestart.push_back(e.name);
    }
  }
  for (const auto& name : needRestart) {
    spdlog::warn("component=config event=needs_restart setting={} file={}", name,
                 sources.configFile);
  }
  running = std::move(*next);
}

}  // namespace xmetrics::demand

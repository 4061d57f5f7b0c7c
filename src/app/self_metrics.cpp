#include "app/self_metrics.hpp"

#include "core/build_info.hpp"
#include "telemetry/process_metrics.hpp"

namespace xmetrics::app {

using telemetry::MetricType;

telemetry::MetricsSource selfMetrics(SelfMetricsSources sources) {
  return [sources = std::move(sources)](telemetry::ExpositionWriter& out) {
    const auto& build = core::buildInfo();
    telemetry::writeBuildInfo(out, build.version, build.revision);
    telemetry::writeProcessMetrics(out);
    out.family("xmetrics_leader", MetricType::kGauge,
               "1 when this replica is the leader (writes DatadogMetric status and autogen "
               "objects), else 0.")
        .sample({}, sources.isLeader && sources.isLeader() ? 1.0 : 0.0);
    if (const auto* dogstatsd = sources.dogstatsd) {
      auto s = dogstatsd->stats();
      out.family("xmetrics_dogstatsd_packets_total", MetricType::kCounter,
                 "DogStatsD datagrams received.")
          .sample({}, s.packets);
      out.family("xmetrics_dogstatsd_malformed_total", MetricType::kCounter,
                 "DogStatsD lines that could not be parsed and were ignored.")
          .sample({}, s.malformed);
      out.family("xmetrics_dogstatsd_dropped_total", MetricType::kCounter,
                 "DogStatsD datagrams the kernel dropped because the receive buffer was full.")
          .sample({}, s.dropped);
    }
    if (sources.kubernetes) sources.kubernetes->writeMetrics(out);
    if (sources.servingSecret) sources.servingSecret->writeMetrics(out);
  };
}

}  // namespace xmetrics::app

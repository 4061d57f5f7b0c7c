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
      auto& relayed = out.family(
          "xmetrics_dogstatsd_relayed_total", MetricType::kCounter,
          "DogStatsD datagrams between replicas: `sent` on to the others (one per replica), "
          "`failed` to send, `received` from another replica.");
      relayed.sample({{"direction", "sent"}}, s.relayed);
      relayed.sample({{"direction", "failed"}}, s.relayFailed);
      relayed.sample({{"direction", "received"}}, s.fromReplicas);
    }
    if (const auto* store = sources.timeSeries) {
      auto s = store->stats();
      out.family("xmetrics_embedded_series", MetricType::kGauge, "Series the embedded store holds.")
          .sample({}, s.series);
      out.family("xmetrics_embedded_bytes", MetricType::kGauge,
                 "Heap the embedded store holds; kept at or under xmetrics_embedded_max_bytes.")
          .sample({}, s.approxBytes);
      out.family("xmetrics_embedded_max_bytes", MetricType::kGauge,
                 "The embedded store's memory bound (--embedded-max-bytes).")
          .sample({}, s.maxBytes);
      out.family("xmetrics_embedded_evicted_series_total", MetricType::kCounter,
                 "Series evicted before their idle expiry to make room for a new one.")
          .sample({}, s.evictedSeries);
      auto& refused = out.family(
          "xmetrics_embedded_refused_total", MetricType::kCounter,
          "New series (and set members) refused at a bound because every series held had been "
          "read by a query within the idle expiry; bound is series or bytes.");
      refused.sample({{"bound", "series"}}, s.refusedSeries);
      refused.sample({{"bound", "bytes"}}, s.refusedForBytes);
      out.family("xmetrics_embedded_rejected_points_total", MetricType::kCounter,
                 "Points refused for a timestamp before the retention or over 60 s ahead.")
          .sample({}, s.rejectedPoints);
    }
    if (sources.kubernetes) sources.kubernetes->writeMetrics(out);
    if (sources.servingSecret) sources.servingSecret->writeMetrics(out);
  };
}

}  // namespace xmetrics::app

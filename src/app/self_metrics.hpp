#pragma once

#include <functional>

#include "certs/serving_secret.hpp"
#include "demand/kubernetes_link.hpp"
#include "ingest/dogstatsd_listener.hpp"
#include "telemetry/exposition.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::app {

// What /metrics shows beyond the server's own families. Each pointer may be null (not running).
struct SelfMetricsSources {
  const ingest::DogStatsdListener* dogstatsd = nullptr;
  const tsdb::TimeSeriesStore* timeSeries = nullptr;  // the embedded store DogStatsD feeds
  const demand::KubernetesLink* kubernetes = nullptr;
  const certs::ServingSecret* servingSecret = nullptr;
  // Whether this replica is the leader (the one writing DatadogMetric status). A single replica is
  // its own leader; leader election plugs its answer in here.
  std::function<bool()> isLeader = [] { return true; };
};

// Build info, process, leadership, DogStatsD and, in a cluster, the watches and the DatadogMetric
// controller, and the serving-cert Secret's certificates.
telemetry::MetricsSource selfMetrics(SelfMetricsSources sources);

}  // namespace xmetrics::app

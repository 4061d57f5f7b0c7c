#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

// client/metrics_api: what `xmetrics query` asks any server of the metrics APIs (xmetrics, the
// Datadog Cluster Agent, KEDA, prometheus-adapter, or kube-apiserver in front of any of them), and
// how it reads the answers. Only the wire contract is known here: the paths and query parameters
// k8s.io/metrics' clients send, and the MetricValueList shapes they decode.
namespace xmetrics::client {

// One question. `object` empty: external.metrics.k8s.io; otherwise custom.metrics.k8s.io about
// "RESOURCE/NAME" (pods/*, deployment/web, namespace/prod, ingresses.networking.k8s.io/front).
struct MetricsQuestion {
  std::string ns = "default";
  std::string metric;
  std::string labelSelector;   // external: the metric's labels; custom: which objects (NAME "*")
  std::string metricSelector;  // custom only: the metric's labels
  std::string object;
  std::string apiVersion;  // empty: v1beta1 for external, v1beta2 for custom
};

// The request target (path and query string, escaped) for `q`; the error names the part that is
// wrong and how to write it.
std::expected<std::string, std::string> metricsTarget(const MetricsQuestion& q);

// One item of a MetricValueList of any of the three shapes (external v1beta1, custom v1beta1 and
// v1beta2), flattened for printing.
struct MetricsRow {
  std::string object;  // custom: Kind/namespace/name (Kind/name when root-scoped); external: empty
  std::string metric;
  std::string labels;            // external metricLabels as k=v,...; custom: the metric's selector
  std::string value;             // the quantity as served, e.g. "1500m"
  std::optional<double> number;  // the quantity read as a number, when it is one
  std::string timestamp;         // as served (RFC 3339)
  std::optional<std::int64_t> ageSeconds;     // now - timestamp, when the timestamp parses
  std::optional<std::int64_t> windowSeconds;  // when served
};

// The rows of a MetricValueList (kind ExternalMetricValueList or MetricValueList); the error says
// what the body is instead.
std::expected<std::vector<MetricsRow>, std::string> parseMetricValueList(
    const boost::json::value& body, std::chrono::system_clock::time_point now);

// A failed answer as a person reads it: "404 NotFound: <message>" from a Kubernetes Status body,
// else the status and the start of the body.
std::string describeFailure(unsigned status, const std::string& body);

}  // namespace xmetrics::client

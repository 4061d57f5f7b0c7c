#pragma once

#include <cstddef>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::server {

// Every path xmetrics answers, as one table: the handler dispatches on it, and the `path` label of
// xmetrics_http_requests_total is derived from it, so the two can never disagree.
enum class Route {
  kHealth,          // /healthz /livez /readyz — open, no authentication
  kMetrics,         // /metrics
  kStatus,          // /xmetrics/v1/status
  kUi,              // /xmetrics/v1/ui: the status page (HTML)
  kConfig,          // /xmetrics/v1/config
  kLogs,            // /xmetrics/v1/logs
  kReplicate,       // /xmetrics/v1/replicate (POST, leader only)
  kOpenapiRoot,     // /openapi
  kOpenapiV2,       // /openapi/v2
  kOpenapiV3,       // /openapi/v3
  kOpenapiOther,    // /openapi/...
  kDiscovery,       // /apis, /apis/external.metrics.k8s.io[/v1beta1]
  kExternalMetric,  // /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}
  kUnknownInGroup,  // anything else below /apis/external.metrics.k8s.io/v1beta1
  kNotFound,        // anything else
};

struct RouteMatch {
  Route route = Route::kNotFound;
  std::string_view ns;      // kExternalMetric only; views into the segments given
  std::string_view metric;  // kExternalMetric only
};

// A request target (origin form, as sent) the way the handler reads it. The error says what is
// malformed (a 400's message).
struct RequestTarget {
  std::string path;                // decoded, without a trailing '/' (except "/")
  std::vector<std::string> parts;  // the decoded '/'-separated segments
  std::string selector;            // the decoded labelSelector parameter; empty when absent
  std::string query;               // the query string as sent, without the '?'
};
std::expected<RequestTarget, std::string> parseRequestTarget(std::string_view target);

// Pure: `path` without its query and without a trailing '/', `segments` its '/'-separated parts
// (decoded by the handler; as sent for the request counter, which must not decode on every
// response).
RouteMatch route(std::string_view path, std::span<const std::string_view> segments);

// The `path` label values of xmetrics_http_requests_total: a class per route, never the raw path,
// so that arbitrary URLs cannot grow the number of series.
const std::vector<std::string>& requestPathClasses();
std::size_t requestPathClass(Route route);
// The index into requestPathClasses() of a request target (path and query, as sent).
std::size_t requestPathClass(std::string_view target);

}  // namespace xmetrics::server

#include "server/router.hpp"

#include <boost/url/parse.hpp>

#include "replication/value_replication.hpp"

namespace xmetrics::server {
namespace {

constexpr std::string_view kGroup = "external.metrics.k8s.io";
constexpr std::string_view kGroupPath = "/apis/external.metrics.k8s.io";
constexpr std::string_view kGroupVersionPath = "/apis/external.metrics.k8s.io/v1beta1";

enum PathClass : std::size_t {
  kDiscoveryClass,
  kExternalMetricClass,
  kStatusClass,
  kHealthClass,
  kOpenapiClass,
  kMetricsClass,
  kReplicationClass,
  kOtherClass,
};

bool inGroupVersion(std::span<const std::string_view> s) {
  return s.size() >= 3 && s[0] == "apis" && s[1] == kGroup && s[2] == "v1beta1";
}

}  // namespace

std::expected<RequestTarget, std::string> parseRequestTarget(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::unexpected("malformed request target: " + url.error().message());
  RequestTarget out;
  out.path = url->path();
  // "/apis/external.metrics.k8s.io/v1beta1/" names the same resource as the path without the
  // slash; every trailing slash goes, so "//" cannot route differently from "/".
  while (out.path.size() > 1 && out.path.back() == '/') out.path.pop_back();
  auto segments = url->segments();
  out.parts.assign(segments.begin(), segments.end());
  out.query = url->encoded_query();
  if (auto it = url->params().find("labelSelector"); it != url->params().end()) {
    out.selector = (*it).value;
  }
  return out;
}

RouteMatch route(std::string_view path, std::span<const std::string_view> segments) {
  if (path == "/healthz" || path == "/livez" || path == "/readyz") return {Route::kHealth};
  if (path == "/metrics") return {Route::kMetrics};
  if (path == "/xmetrics/v1/status") return {Route::kStatus};
  if (path == "/xmetrics/v1/ui") return {Route::kUi};
  if (path == "/xmetrics/v1/config") return {Route::kConfig};
  if (path == "/xmetrics/v1/logs") return {Route::kLogs};
  if (path == replication::kReplicatePath) return {Route::kReplicate};
  if (path == "/openapi") return {Route::kOpenapiRoot};
  if (path == "/openapi/v2") return {Route::kOpenapiV2};
  if (path == "/openapi/v3") return {Route::kOpenapiV3};
  if (path.starts_with("/openapi/")) return {Route::kOpenapiOther};
  if (segments.size() == 6 && inGroupVersion(segments) && segments[3] == "namespaces") {
    return {Route::kExternalMetric, segments[4], segments[5]};
  }
  if (path == "/apis" || path == kGroupPath || path == kGroupVersionPath) {
    return {Route::kDiscovery};
  }
  if (inGroupVersion(segments)) return {Route::kUnknownInGroup};
  return {Route::kNotFound};
}

const std::vector<std::string>& requestPathClasses() {
  static const std::vector<std::string> classes = {
      "discovery", "external_metric", "status",      "health",
      "openapi",   "metrics",         "replication", "other"};
  return classes;
}

std::size_t requestPathClass(Route route) {
  switch (route) {
    case Route::kHealth:
      return kHealthClass;
    case Route::kMetrics:
      return kMetricsClass;
    // The diagnostic reports `xmetrics status` and `xmetrics flare` read.
    case Route::kStatus:
    case Route::kUi:
    case Route::kConfig:
    case Route::kLogs:
      return kStatusClass;
    case Route::kReplicate:
      return kReplicationClass;
    case Route::kOpenapiRoot:
    case Route::kOpenapiV2:
    case Route::kOpenapiV3:
    case Route::kOpenapiOther:
      return kOpenapiClass;
    case Route::kDiscovery:
      return kDiscoveryClass;
    case Route::kExternalMetric:
      return kExternalMetricClass;
    case Route::kUnknownInGroup:
    case Route::kNotFound:
      return kOtherClass;
  }
  return kOtherClass;
}

std::size_t requestPathClass(std::string_view target) {
  // Runs for every response: string views into the target, no decoding, no allocation beyond the
  // segment list (a path has a handful of segments).
  auto path = target.substr(0, target.find('?'));
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::string_view segmentStorage[8];
  std::size_t count = 0;
  bool tooMany = false;
  if (path.starts_with('/')) {
    auto rest = path.substr(1);
    while (true) {
      auto slash = rest.find('/');
      if (count == std::size(segmentStorage)) {
        tooMany = true;
        break;
      }
      segmentStorage[count++] = rest.substr(0, slash);
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
  }
  // More segments than any route has: only the path comparisons can still match (none do).
  std::span<const std::string_view> segments(segmentStorage, tooMany ? 0 : count);
  return requestPathClass(route(path, segments).route);
}

}  // namespace xmetrics::server

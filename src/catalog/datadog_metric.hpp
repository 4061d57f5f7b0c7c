#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::catalog {

// What the catalog needs of one `datadoghq.com/v1alpha1` DatadogMetric object.
struct DatadogMetric {
  std::string ns;
  std::string name;
  std::string query;               // spec.query with template variables resolved
  std::string externalMetricName;  // spec.externalMetricName, lowercased (autogen objects set it)
  std::optional<std::chrono::seconds> maxAge;
  std::optional<std::chrono::seconds> timeWindow;
  bool alwaysActive = false;  // annotation external-metrics.datadoghq.com/always-active: "true"
  std::string
      backend;  // annotation xmetrics.io/backend: which backend runs the query; empty: default
  bool autogen = false;  // created by the autogen rule (dcaautogen-* with externalMetricName)
  // Why the object cannot be used (bad duration, unresolvable template variable, no query);
  // empty when it is usable. Served as the metric's error.
  std::string invalidReason;

  std::string id() const { return ns + "/" + name; }
  bool operator==(const DatadogMetric&) const = default;
};

// Resolves `%%tag_kube_cluster_name%%` and `%%env_<VAR>%%` in queries.
struct TemplateContext {
  std::string clusterName;                                            // empty: unknown
  std::function<std::optional<std::string>(const std::string&)> env;  // nullptr: std::getenv
};

inline constexpr std::string_view kAutogenPrefix = "dcaautogen-";
inline constexpr std::string_view kAlwaysActiveAnnotation =
    "external-metrics.datadoghq.com/always-active";
inline constexpr std::string_view kReferencePrefix = "datadogmetric@";
inline constexpr std::string_view kBackendAnnotation = "xmetrics.io/backend";

// Reads one object as the watch delivers it. Never fails: a spec xmetrics cannot use yields an
// object with `invalidReason` set, so the metric says why instead of vanishing.
DatadogMetric parseDatadogMetric(const boost::json::object& object, const TemplateContext& context);

// Replaces every template variable; the error names the variable and how to provide it.
std::expected<std::string, std::string> resolveTemplateVariables(std::string_view query,
                                                                 const TemplateContext& context);

// `datadogmetric@<ns>:<name>` -> {ns, name}. The error says what the accepted form is. Only call it
// for names with the prefix.
struct ObjectReference {
  std::string ns;
  std::string name;
};
std::expected<ObjectReference, std::string> parseReference(std::string_view metricName);

// The autogen object's name for an inline query: "dcaautogen-" + hex of the first 19 bytes of the
// query's SHA-256, as the Cluster Agent names it (so objects it created are recognised).
std::string autogenName(std::string_view query);

// Whether `name` can be a Kubernetes object name (RFC 1123 subdomain), so rule 2 can apply.
bool isObjectName(std::string_view name);

}  // namespace xmetrics::catalog

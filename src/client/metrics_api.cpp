#include "client/metrics_api.hpp"

#include <array>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <string_view>

#include "core/json_fields.hpp"
#include "core/quantity.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"

namespace xmetrics::client {
namespace {

using core::json::str;
namespace json = core::json;

std::string escaped(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

// A path segment the server can route: not empty, no '/', nothing a URL would end at.
std::optional<std::string> segmentProblem(std::string_view what, std::string_view text) {
  if (text.empty()) return std::string(what) + " is empty";
  if (text.find_first_of("/?#") != std::string_view::npos || text == "." || text == "..") {
    return std::string(what) + " \"" + std::string(text) +
           "\" cannot be a path segment (no '/', '?', '#', and not . or ..)";
  }
  return std::nullopt;
}

// kubectl's names for the resources an HPA's Object and Pods metrics name, as the custom metrics
// API spells them (plural.group; the core group has no suffix). Root-scoped ones say so.
struct ResourceName {
  std::array<std::string_view, 4> aliases;
  std::string_view resource;
  bool rootScoped = false;
};
constexpr std::array<ResourceName, 11> kResources{{
    {{"pod", "pods", "po", ""}, "pods"},
    {{"service", "services", "svc", ""}, "services"},
    {{"deployment", "deployments", "deploy", "deployments.apps"}, "deployments.apps"},
    {{"statefulset", "statefulsets", "sts", "statefulsets.apps"}, "statefulsets.apps"},
    {{"replicaset", "replicasets", "rs", "replicasets.apps"}, "replicasets.apps"},
    {{"daemonset", "daemonsets", "ds", "daemonsets.apps"}, "daemonsets.apps"},
    {{"job", "jobs", "jobs.batch", ""}, "jobs.batch"},
    {{"ingress", "ingresses", "ing", "ingresses.networking.k8s.io"}, "ingresses.networking.k8s.io"},
    {{"namespace", "namespaces", "ns", ""}, "namespaces", true},
    {{"node", "nodes", "no", ""}, "nodes", true},
    {{"persistentvolumeclaim", "persistentvolumeclaims", "pvc", ""}, "persistentvolumeclaims"},
}};

const ResourceName* knownResource(std::string_view name) {
  for (const auto& r : kResources) {
    for (auto alias : r.aliases) {
      if (!alias.empty() && alias == name) return &r;
    }
  }
  return nullptr;
}

std::string joinLabels(const boost::json::object* labels) {
  std::string out;
  if (!labels) return out;
  for (const auto& [k, v] : *labels) {
    if (!out.empty()) out += ",";
    out += std::string(k) + "=" + (v.is_string() ? std::string(v.get_string()) : "");
  }
  return out;
}

// A LabelSelector object ({"matchLabels": {...}, "matchExpressions": [...]}) as selector text.
std::string selectorText(const boost::json::object* selector) {
  if (!selector) return "";
  std::string out = joinLabels(json::objectAt(selector, "matchLabels"));
  if (const auto* expressions = json::arrayAt(selector, "matchExpressions")) {
    for (const auto& e : *expressions) {
      if (!e.is_object()) continue;
      const auto& o = e.get_object();
      std::string op = core::lowercase(str(o, "operator"));
      std::string values;
      if (const auto* vs = json::arrayAt(o, "values")) {
        for (const auto& v : *vs) {
          if (v.is_string()) values += (values.empty() ? "" : ",") + std::string(v.get_string());
        }
      }
      if (!out.empty()) out += ",";
      if (op == "exists") {
        out += str(o, "key");
      } else if (op == "doesnotexist") {
        out += "!" + str(o, "key");
      } else {
        out += str(o, "key") + " " + op + " (" + values + ")";
      }
    }
  }
  return out;
}

}  // namespace

std::expected<std::string, std::string> metricsTarget(const MetricsQuestion& q) {
  if (auto problem = segmentProblem("the metric name", q.metric)) {
    return std::unexpected(*problem);
  }
  if (auto problem = segmentProblem("the namespace", q.ns)) return std::unexpected(*problem);
  std::string query;
  auto param = [&query](std::string_view name, const std::string& value) {
    if (value.empty()) return;
    query += (query.empty() ? "?" : "&") + std::string(name) + "=" + escaped(value);
  };
  if (q.object.empty()) {
    if (!q.metricSelector.empty()) {
      return std::unexpected(
          "--metric-selector is for custom metrics (with --custom); an external metric's labels "
          "are its -l/--selector");
    }
    std::string version = q.apiVersion.empty() ? "v1beta1" : q.apiVersion;
    if (version != "v1beta1") {
      return std::unexpected("external.metrics.k8s.io has only v1beta1, not \"" + version + "\"");
    }
    param("labelSelector", q.labelSelector);
    return "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + escaped(q.ns) + "/" +
           escaped(q.metric) + query;
  }
  std::string version = q.apiVersion.empty() ? "v1beta2" : q.apiVersion;
  if (version != "v1beta2" && version != "v1beta1") {
    return std::unexpected("custom.metrics.k8s.io serves v1beta2 and v1beta1, not \"" + version +
                           "\"");
  }
  auto slash = q.object.find('/');
  if (slash == std::string::npos) {
    return std::unexpected("--custom \"" + q.object +
                           "\" is not RESOURCE/NAME (e.g. pods/*, deployment/web, namespace/prod)");
  }
  std::string resource = core::lowercase(q.object.substr(0, slash));
  std::string name = q.object.substr(slash + 1);
  if (auto problem = segmentProblem("the resource of --custom", resource)) {
    return std::unexpected(*problem);
  }
  if (auto problem = segmentProblem("the object name of --custom", name)) {
    return std::unexpected(*problem);
  }
  bool rootScoped = false;
  if (const auto* known = knownResource(resource)) {
    resource = known->resource;
    rootScoped = known->rootScoped;
  }
  if (name == "*" && rootScoped) {
    return std::unexpected("--custom " + resource + "/* : name one " + resource +
                           " (the API has no list of root-scoped objects' metrics)");
  }
  param("labelSelector", name == "*" ? q.labelSelector : "");
  if (name != "*" && !q.labelSelector.empty()) {
    return std::unexpected(
        "-l selects objects for RESOURCE/* only; for one named object, select "
        "the metric's labels with --metric-selector");
  }
  param("metricSelector", q.metricSelector);
  std::string base = "/apis/custom.metrics.k8s.io/" + version + "/";
  std::string objectName = name == "*" ? "*" : escaped(name);
  if (resource == "namespaces") {
    // A namespace's own metrics: the API's special path, metrics/ in place of the resource.
    return base + "namespaces/" + objectName + "/metrics/" + escaped(q.metric) + query;
  }
  if (rootScoped) return base + resource + "/" + objectName + "/" + escaped(q.metric) + query;
  return base + "namespaces/" + escaped(q.ns) + "/" + resource + "/" + objectName + "/" +
         escaped(q.metric) + query;
}

std::expected<std::vector<MetricsRow>, std::string> parseMetricValueList(
    const boost::json::value& body, std::chrono::system_clock::time_point now) {
  if (!body.is_object()) return std::unexpected(std::string("the answer is not a JSON object"));
  const auto& list = body.get_object();
  std::string kind = str(list, "kind");
  if (kind != "ExternalMetricValueList" && kind != "MetricValueList") {
    return std::unexpected("the answer is a " +
                           (kind.empty() ? "JSON object without a kind" : kind) +
                           ", not a MetricValueList");
  }
  const auto* items = json::arrayAt(list, "items");
  if (!items) return std::unexpected(std::string("the " + kind + " has no items array"));
  std::vector<MetricsRow> rows;
  rows.reserve(items->size());
  for (const auto& item : *items) {
    if (!item.is_object()) return std::unexpected(std::string("an item is not an object"));
    const auto& o = item.get_object();
    MetricsRow row;
    if (kind == "ExternalMetricValueList") {
      row.metric = str(o, "metricName");
      row.labels = joinLabels(json::objectAt(o, "metricLabels"));
    } else {
      const auto* described = json::objectAt(o, "describedObject");
      std::string ns = str(described, "namespace");
      row.object =
          str(described, "kind") + "/" + (ns.empty() ? "" : ns + "/") + str(described, "name");
      if (const auto* metric = json::objectAt(o, "metric")) {  // v1beta2
        row.metric = str(metric, "name");
        row.labels = selectorText(json::objectAt(metric, "selector"));
      } else {  // v1beta1
        row.metric = str(o, "metricName");
        row.labels = selectorText(json::objectAt(o, "selector"));
      }
    }
    // A quantity is a string on the wire; a number is accepted too, as Go's decoder would.
    if (const auto* v = o.if_contains("value")) {
      if (v->is_string()) {
        row.value = std::string(v->get_string());
        row.number = core::parseQuantity(row.value);
      } else if (v->is_number()) {
        row.number = v->template to_number<double>();
        row.value = core::formatQuantity(*row.number);
      }
    }
    if (row.value.empty()) return std::unexpected("the item of " + row.metric + " has no value");
    row.timestamp = str(o, "timestamp");
    if (auto t = core::parseRfc3339(row.timestamp)) {
      row.ageSeconds = std::chrono::duration_cast<std::chrono::seconds>(now - *t).count();
    }
    if (const auto* w = o.if_contains("windowSeconds"); w && w->is_int64()) {
      row.windowSeconds = w->get_int64();
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string describeFailure(unsigned status, const std::string& body) {
  boost::system::error_code ec;
  auto json = boost::json::parse(body, ec);
  if (!ec && json.is_object() && str(json.get_object(), "kind") == "Status") {
    const auto& s = json.get_object();
    std::string reason = str(s, "reason");
    return std::to_string(status) + (reason.empty() ? "" : " " + reason) + ": " +
           core::oneLine(str(s, "message"));
  }
  std::string start = core::oneLine(core::validUtf8(body.substr(0, 300)));
  return std::to_string(status) + (start.empty() ? " with an empty body" : ": " + start);
}

}  // namespace xmetrics::client

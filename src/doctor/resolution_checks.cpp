// The resolution link: which query a metric resolved to (inline, autogen, a DatadogMetric), what
// its status entry says went wrong, and autogen DatadogMetrics competing with manual ones.

#include <algorithm>
#include <set>

#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "doctor/checks.hpp"
#include "doctor/wording.hpp"

namespace xmetrics::doctor {

using core::lowercase;
using core::json::objectAt;
using core::json::str;
using detail::contains;
using detail::decimal;
using detail::isInvalidKeys;
using detail::isRateLimited;
using detail::kKeysFix;
using detail::kRateFix;

std::string describeResolution(const StatusMetric& metric) {
  const std::string& resolution = metric.resolution;
  const std::string& object = metric.datadogMetric;
  if (resolution.starts_with("datadogmetric ")) return "DatadogMetric " + resolution.substr(14);
  if (contains(resolution, "autogen") && !object.empty()) {
    return std::string(resolution.starts_with("configured") ? "configured" : "inline") +
           " (served through autogen DatadogMetric " + object + ")";
  }
  return resolution.empty() ? "inline" : resolution;
}

Finding classifyMetric(const StatusMetric& metric) {
  Finding f;
  const std::string& error = metric.error;
  const std::string& query = metric.query;
  const std::string& object = metric.datadogMetric;
  bool valid = metric.valid;
  bool hasValue = metric.sample.has_value();
  if (valid) {
    f.summary = "valid";
    return f;
  }
  f.verdict = Verdict::kFail;
  f.evidence.push_back("error: " + error);
  if (error.starts_with("DatadogMetric ") && contains(error, " not found")) {
    f.problem = "datadogmetric-missing";
    f.summary = "DatadogMetric " + object + " does not exist";
    auto slash = object.find('/');
    f.fix = slash == std::string::npos
                ? "create the DatadogMetric, or fix the HPA's metric name"
                : "create it (kubectl apply a DatadogMetric named \"" + object.substr(slash + 1) +
                      "\" in namespace \"" + object.substr(0, slash) +
                      "\"), or fix the HPA's metric name";
    return f;
  }
  if (contains(error, "names a DatadogMetric, but DatadogMetric support is off")) {
    f.problem = "datadogmetric-missing";
    f.summary = "the HPA names a DatadogMetric but xmetrics runs without DatadogMetric support";
    f.fix = "start xmetrics with --use-datadogmetric-crd=true (and the CRD installed)";
    return f;
  }
  if (error.starts_with("DatadogMetric ") &&
      (contains(error, " is invalid") || contains(error, "asks for backend"))) {
    f.problem = "datadogmetric-invalid";
    f.summary = "DatadogMetric " + object + " is invalid";
    if (auto at = error.find(" is invalid: "); at != std::string::npos) {
      f.summary += ": " + error.substr(at + 13, error.find("; fix its spec") - at - 13);
    }
    auto fix = error.find("; ");
    f.fix = fix == std::string::npos ? "fix the object's spec" : error.substr(fix + 2);
    if (contains(error, " is invalid")) {
      f.fix = "fix its spec (kubectl edit datadogmetric -n " + object.substr(0, object.find('/')) +
              " " + object.substr(object.find('/') + 1) +
              "): " + error.substr(error.find(" is invalid: ") + 13);
      if (auto cut = f.fix.rfind("; fix its spec"); cut != std::string::npos) f.fix.resize(cut);
    }
    return f;
  }
  if (hasValue) {
    // There is a point, but it is older than max-age (the only way a metric with a value is not
    // valid): served as an error, never as a number. The error says why no newer point came.
    f.problem = "stale-value";
    const auto& sample = *metric.sample;
    f.summary = "stale value: " + sample.value + ": its newest data point is " +
                decimal(static_cast<double>(sample.ageSeconds)) + "s old";
    if (!sample.timestamp.empty()) f.evidence.push_back("data point at " + sample.timestamp);
    if (isInvalidKeys(error) || isRateLimited(error) || !error.starts_with("stale")) {
      f.fix =
          "the fetches fail (see the error and the backend check); the value comes back with "
          "the next successful fetch";
    } else {
      f.fix = "the source stopped reporting " + metric.metricName +
              ": check the app or agent that sends it (the query is " + query + ")";
    }
    return f;
  }
  if (isInvalidKeys(error)) {
    f.problem = "invalid-keys";
    f.summary = "invalid keys: the backend refuses xmetrics' credentials (see the backend check)";
    f.fix = kKeysFix;
    return f;
  }
  if (isRateLimited(error)) {
    f.problem = "rate-limited";
    f.summary = "rate limited: the backend's rate limit stops the fetch (see the backend check)";
    f.fix = kRateFix;
    return f;
  }
  if (contains(error, "no series matches") || contains(error, "no serie was found") ||
      contains(error, "returned no series")) {
    f.problem = "no-series";
    f.summary = "no series matches " + query;
    f.fix = "check the metric name and tags the app sends against the query " + query;
    return f;
  }
  if (contains(error, "no data for") || contains(error, "only null values")) {
    f.problem = "no-data";
    f.summary = "no data: the series exist but have no point in the query window";
    f.fix = "the source stopped sending " + metric.metricName +
            "; check the app or agent (the query is " + query + ")";
    return f;
  }
  if (contains(error, "rejected the query")) {
    f.problem = "rejected-query";
    f.summary = "bad query: the backend rejects " + query;
    f.fix =
        "fix the query (the DatadogMetric's spec.query, the metrics setting, or the HPA's "
        "metric name and selector)";
    return f;
  }
  f.problem = "metric-error";
  f.summary = "not valid";
  f.fix = "see the error";
  return f;
}

Finding classifyNoSeries(const std::string& metricName, bool metricHasData,
                         const std::string& metricMessage, const std::vector<TagProbe>& probes) {
  Finding f;
  f.verdict = Verdict::kFail;
  if (!metricHasData) {
    f.problem = "metric-missing";
    f.summary = "missing metric: " + metricName + " has no series at all, with any tags";
    f.evidence.push_back("the same metric without a selector: " + metricMessage);
    f.fix =
        "check the metric name (spelling, dots, the namespace the app reports) and that the "
        "app or agent sends it";
    return f;
  }
  f.evidence.push_back("the same metric without a selector has data");
  std::vector<std::string> bad;
  for (const auto& p : probes) {
    f.evidence.push_back("with only " + p.requirement + ": " +
                         (p.hasData ? std::string("data") : "no data (" + p.message + ")"));
    if (!p.hasData) bad.push_back(p.requirement);
  }
  f.problem = "tag-typo";
  if (bad.empty()) {
    f.summary = "typo in tags: metric " + metricName +
                " exists and each selector requirement matches series, but no series matches "
                "them all together";
    f.fix =
        "compare the HPA's selector with the tags the series carry; one series must have "
        "all of them";
    return f;
  }
  std::string list;
  for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
  f.summary = "typo in tags: metric " + metricName + " exists, but no series has " + list;
  f.fix = "fix the HPA's metric.selector (" + list +
          ") to the tags the app sends, or tag the metric that way";
  return f;
}

std::vector<Finding> findAutogenShadowing(const std::vector<StatusMetric>& metrics,
                                          const std::vector<boost::json::object>& objects) {
  std::vector<Finding> out;
  struct Object {
    std::string id, ns, name, externalName, query;
    bool autogen = false;
  };
  std::vector<Object> all;
  for (const auto& o : objects) {
    Object x;
    if (auto* meta = objectAt(o, "metadata")) {
      x.ns = str(*meta, "namespace");
      x.name = str(*meta, "name");
    }
    if (auto* spec = objectAt(o, "spec")) {
      x.externalName = lowercase(str(*spec, "externalMetricName"));
      x.query = str(*spec, "query");
    }
    x.id = x.ns + "/" + x.name;
    x.autogen = x.name.starts_with("dcaautogen-");
    all.push_back(std::move(x));
  }
  std::set<std::string> serving;
  for (const auto& m : metrics) {
    if (!m.datadogMetric.empty()) serving.insert(m.datadogMetric);
  }
  std::set<std::pair<std::string, std::string>> reported;
  for (const auto& m : metrics) {
    std::string metricName = lowercase(m.metricName);
    const std::string& ns = m.ns;
    const std::string& object = m.datadogMetric;
    const std::string& resolution = m.resolution;
    std::string where = ns + "/" + metricName;
    if (resolution.starts_with("datadogmetric ")) {
      // A manual object serves; an autogen object for the same metric that nothing uses any more
      // is the Cluster Agent's collision, harmless here.
      for (const auto& a : all) {
        if (!a.autogen || a.externalName != metricName || serving.contains(a.id)) continue;
        if (!reported.insert({a.id, object}).second) continue;
        Finding f;
        f.verdict = Verdict::kWarn;
        f.problem = "autogen-shadowing";
        f.summary = "autogen DatadogMetric " + a.id + " and DatadogMetric " + object +
                    " both exist for metric " + where + "; " + object + " serves";
        auto open = resolution.find(" (");
        std::string rule = open == std::string::npos ? "" : resolution.substr(open);
        f.evidence = {
            where + " resolves to DatadogMetric " + object + rule,
            "autogen " + a.id + " (query " + a.query + ") serves no metric any more",
            "xmetrics resolves from the objects that exist now: a DatadogMetric named like the "
            "metric in the HPA's namespace, or one referenced as datadogmetric@ns:name, wins over "
            "the inline query and its autogen object at once, without a restart"};
        f.fix =
            "nothing is wrong with the values; to clean up now: kubectl delete "
            "datadogmetric -n " +
            a.ns + " " + a.name +
            " (xmetrics deletes it by itself --autogen-expiry after it went inactive); to "
            "avoid it, create DatadogMetrics before the HPAs that name them, or run with "
            "--datadogmetric-autogen=false";
        out.push_back(std::move(f));
      }
      continue;
    }
    if (object.find("/dcaautogen-") == std::string::npos) continue;
    // An autogen object serves although a manual object names this metric: say why it does not win.
    for (const auto& o : all) {
      if (o.autogen) continue;
      std::string why;
      if (o.name == metricName && o.ns != ns) {
        why = "rule 2 takes a DatadogMetric named like the metric only from the HPA's namespace " +
              ns + "; " + o.id + " is in " + o.ns;
      } else if (o.externalName == metricName && o.query != m.query) {
        why = "rule 3 takes an object whose externalMetricName is " + metricName +
              " only when its query is exactly the inline one (" + m.query + "); " + o.id +
              "'s is " + o.query;
      } else {
        continue;
      }
      if (!reported.insert({object, o.id}).second) continue;
      Finding f;
      f.verdict = Verdict::kWarn;
      f.problem = "autogen-shadowing";
      f.summary = "DatadogMetric " + o.id + " names metric " + metricName + ", but autogen " +
                  object + " serves " + where;
      f.evidence = {why};
      f.fix = "name the HPA's metric datadogmetric@" + o.ns + ":" + o.name +
              ", or create the DatadogMetric as " + metricName + " in namespace " + ns;
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::vector<Check> checkAutogen(const Evidence& e) {
  if (!e.status || !e.status->crdMode() || !e.datadogMetrics) return {};
  Check c{.name = "autogen"};
  const auto& list = *e.datadogMetrics;
  if (!list) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "cannot list DatadogMetrics: " + list.error().describe();
    c.fix = "the kubeconfig's user must be allowed to list datadogmetrics";
    return {c};
  }
  std::vector<boost::json::object> objects;
  for (const auto& o : detail::itemsOf(*list)) {
    if (o.is_object()) objects.push_back(o.as_object());
  }
  auto findings = findAutogenShadowing(e.status->metrics, objects);
  if (findings.empty()) {
    std::size_t autogen = std::ranges::count_if(objects, [](const auto& o) {
      const auto* meta = objectAt(o, "metadata");
      return meta && str(*meta, "name").starts_with("dcaautogen-");
    });
    c.summary = "no autogen DatadogMetric competes with a manual one (" +
                std::to_string(objects.size()) + " objects, " + std::to_string(autogen) +
                " autogen)";
    return {c};
  }
  std::vector<Check> checks;
  for (const auto& f : findings) {
    Check shadowed{.name = "autogen"};
    apply(shadowed, f);
    checks.push_back(std::move(shadowed));
  }
  return checks;
}

}  // namespace xmetrics::doctor

// The last link: each HPA's External metrics as the HPA reads them, and the HPA's arithmetic on
// the value (kube-controller-manager's replica calculator).

#include <algorithm>
#include <cmath>

#include "core/json_fields.hpp"
#include "core/quantity.hpp"
#include "doctor/checks.hpp"
#include "doctor/wording.hpp"

namespace xmetrics::doctor {

Finding classifyHpaMetric(const StatusMetric* entry, const MetricRead& read,
                          const std::string& metricName) {
  if (entry) return classifyMetric(*entry);
  if (read.status == 200) return {};
  // No status to read: classify from the answer's message (it carries the same errors).
  Finding f =
      classifyMetric(StatusMetric{.metricName = metricName, .valid = false, .error = read.message});
  // xmetrics' own 503s are Status bodies with a reason; the aggregator's is plain text.
  if (f.problem == "metric-error" && read.status == 503 &&
      !read.message.starts_with("ServiceUnavailable")) {
    f.problem = "apiservice-unavailable";
    f.summary = "kube-apiserver cannot reach xmetrics";
    f.fix = "see the apiservice check";
  }
  f.evidence.clear();
  return f;
}

bool needsProbes(const StatusMetric* entry, const Finding& finding) {
  return finding.problem == "no-series" &&
         (!entry || !entry->resolution.starts_with("datadogmetric"));
}

namespace {

// What xmetrics' status says of the metric: how it resolved, its query, its value.
void addStatusEvidence(Check& c, const StatusMetric* entry, bool haveStatus) {
  if (entry) {
    c.evidence.push_back("resolution: " + describeResolution(*entry));
    if (!entry->query.empty()) {
      c.evidence.push_back("query: " + entry->query + " (backend " + entry->backend + ")");
    }
    if (entry->sample) {
      c.evidence.push_back(
          "value: " + entry->sample->value + ", " + std::to_string(entry->sample->ageSeconds) +
          "s old, " + (classifyMetric(*entry).verdict == Verdict::kOk ? "valid" : "NOT valid"));
    }
  } else if (haveStatus) {
    c.evidence.push_back(
        "xmetrics' status has no entry for it: the HPA watch has not seen this HPA");
  }
}

// The request the HPA makes, through kube-apiserver, and its answer.
std::string readLine(const HpaMetricEvidence& h, const std::string& canonical) {
  const auto& read = h.read;
  return "GET " + detail::externalMetricPath(h.ns, h.metricName, canonical) + " → " +
         (read.status ? std::to_string(read.status) : std::string("error")) +
         (read.status == 200 && read.value
              ? ", " + std::to_string(read.items) + " item(s), value " +
                    core::formatQuantity(*read.value)
              : ": " + read.message);
}

// The finding for the metric, a "no series" refined by the probes: is the name wrong or a tag?
Finding metricFinding(const StatusMetric* entry, const HpaMetricEvidence& h) {
  Finding f = classifyHpaMetric(entry, h.read, h.metricName);
  if (needsProbes(entry, f) && h.whole) {
    const auto& whole = *h.whole;
    auto refined = classifyNoSeries(h.name, whole.status == 200 && whole.value.has_value(),
                                    whole.message, h.probes);
    f.problem = refined.problem;
    f.summary = refined.summary;
    f.fix = refined.fix;
    f.evidence.insert(f.evidence.end(), refined.evidence.begin(), refined.evidence.end());
  }
  return f;
}

// The HPA's arithmetic on `value` against its target; nullopt when either is missing.
std::optional<HpaMath> arithmetic(const HpaMetricEvidence& h, std::optional<double> value) {
  std::string type = h.target ? core::json::str(*h.target, "type") : "";
  std::string text =
      h.target ? core::json::str(*h.target, type == "AverageValue" ? "averageValue" : "value") : "";
  auto target = core::parseQuantity(text);
  if (!value || !target || (type != "Value" && type != "AverageValue")) return std::nullopt;
  return explainHpa(
      {.type = type == "AverageValue" ? TargetType::kAverageValue : TargetType::kValue,
       .target = *target,
       .targetText = text,
       .value = *value,
       .currentReplicas = h.currentReplicas,
       .minReplicas = h.minReplicas,
       .maxReplicas = h.maxReplicas});
}

// A metric that fails: the finding's words, and the DatadogMetric's spec when one is named.
void judgeFailure(Check& c, const HpaMetricEvidence& h, const Finding& f) {
  c.verdict = Verdict::kFail;
  c.problem = f.problem.empty() ? "metric-error" : f.problem;
  c.summary = f.summary.empty() ? "the external metrics API answers " +
                                      std::to_string(h.read.status) + ": " + h.read.message
                                : f.summary;
  c.fix = f.fix.empty() ? "see the answer above" : f.fix;
  if (!h.datadogMetric) return;
  const auto& object = *h.datadogMetric;
  if (object) {
    const auto* spec =
        object->is_object() ? core::json::objectAt(object->as_object(), "spec") : nullptr;
    c.evidence.push_back("DatadogMetric " + h.datadogMetricId +
                         " spec.query: " + core::json::str(spec, "query"));
  } else {
    c.evidence.push_back("DatadogMetric " + h.datadogMetricId + ": " + object.error().describe());
  }
}

// One HPA's External metric: resolution, the status' view, the API's answer, the arithmetic.
Check checkHpaMetric(const Evidence& e, const HpaMetricEvidence& h) {
  const auto& text = h.selectorText;
  Check c{.name = "hpa",
          .subject = h.ns + "/" + h.hpaName + " " + h.name +
                     (text && !text->empty() ? "{" + *text + "}" : "")};
  if (!h.selector) {
    c.verdict = Verdict::kFail;
    c.problem = "bad-selector";
    c.summary = "its metric.selector is unusable: " + h.selector.error().message;
    c.fix = "fix the HPA's metric.selector";
    return c;
  }
  std::string canonical = h.selector->canonical();
  const auto* entry = e.status ? e.status->findMetric(h.ns, h.metricName, canonical) : nullptr;
  addStatusEvidence(c, entry, e.status.has_value());
  c.evidence.push_back(readLine(h, canonical));
  Finding finding = metricFinding(entry, h);
  // The value the HPA gets: the API's answer, else (when it is fine) what the status holds.
  std::optional<double> value = h.read.value;
  if (!value && entry && entry->sample && finding.verdict == Verdict::kOk) {
    value = entry->sample->valueNumber;
  }
  auto math = arithmetic(h, value);
  if (math) {
    c.evidence.push_back("HPA arithmetic: " + math->explanation);
  } else if (std::string type = h.target ? core::json::str(*h.target, "type") : ""; !type.empty()) {
    c.evidence.push_back(
        "target: " + type + " " +
        core::json::str(*h.target, type == "AverageValue" ? "averageValue" : "value"));
  }
  c.evidence.push_back("HPA status: currentReplicas " + std::to_string(h.currentReplicas) +
                       ", desiredReplicas " + std::to_string(h.desiredReplicas) +
                       (h.scalingActive.empty() ? "" : "; ScalingActive=False " + h.scalingActive));
  for (const auto& ev : finding.evidence) c.evidence.push_back(ev);
  const auto& read = h.read;
  if (finding.verdict != Verdict::kOk || (read.status != 200 && finding.problem.empty())) {
    judgeFailure(c, h, finding);
    return c;
  }
  if (read.status != 200) {
    c.verdict = Verdict::kFail;
    c.problem = read.status == 403 ? "forbidden" : "metric-error";
    c.summary =
        "the external metrics API answers " + std::to_string(read.status) + ": " + read.message;
    c.fix = read.status == 403 ? "the doctor's own user may not read external metrics; the "
                                 "rbac-hpa check covers the HPA controller"
                               : "see the answer above";
    return c;
  }
  c.summary = math ? math->shown + " → desired " + std::to_string(math->desired) +
                         " (HPA: " + std::to_string(h.desiredReplicas) + ")"
                   : "value " + (value ? core::formatQuantity(*value) : std::string("-"));
  if (!h.scalingActive.empty()) {
    c.verdict = Verdict::kWarn;
    c.problem =
        h.scalingActive.find("forbidden") != std::string::npos ? "wrong-rbac" : "hpa-not-scaling";
    c.summary += "; but the HPA reports " + h.scalingActive.substr(0, h.scalingActive.find(':'));
    c.fix = c.problem == "wrong-rbac"
                ? "see the rbac-hpa check"
                : "the metric answers now; the HPA retries every sync period (15 s by default), "
                  "so this clears if the cause was transient";
  }
  return c;
}

}  // namespace

std::vector<Check> checkHpas(const Evidence& e) {
  if (!e.hpas) {
    return {Check{.name = "hpa",
                  .verdict = Verdict::kWarn,
                  .summary = "cannot list HPAs: " + e.hpas.error().describe(),
                  .problem = "not-checked",
                  .fix = "the kubeconfig's user must be allowed to list horizontalpodautoscalers"}};
  }
  std::vector<Check> checks;
  for (const auto& h : e.hpaMetrics) checks.push_back(checkHpaMetric(e, h));
  if (checks.empty()) {
    checks.push_back(
        Check{.name = "hpa", .summary = "no HorizontalPodAutoscaler names an External metric"});
  }
  return checks;
}

}  // namespace xmetrics::doctor

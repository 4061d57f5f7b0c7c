// The HPA half of the gathering: every HPA's External metrics, read as the HPA reads them
// through kube-apiserver, and the probes a no-series answer calls for.

#include "core/json_fields.hpp"
#include "core/quantity.hpp"
#include "core/strings.hpp"
#include "doctor/checks.hpp"
#include "doctor/evidence.hpp"
#include "doctor/wording.hpp"
#include "kube/label_selector_text.hpp"

namespace xmetrics::doctor {
namespace {

using core::lowercase;
using core::oneLine;
using core::json::arrayAt;
using core::json::intAt;
using core::json::objectAt;
using core::json::str;
using detail::itemsOf;

std::string requirementText(const core::SelectorRequirement& r) {
  std::string values;
  for (const auto& v : r.values) values += (values.empty() ? "" : ",") + v;
  switch (r.op) {
    case core::SelectorOperator::kEquals:
      return r.key + "=" + values;
    case core::SelectorOperator::kNotEquals:
      return r.key + "!=" + values;
    case core::SelectorOperator::kIn:
      return r.key + " in (" + values + ")";
    case core::SelectorOperator::kNotIn:
      return r.key + " notin (" + values + ")";
    case core::SelectorOperator::kExists:
      return r.key;
    case core::SelectorOperator::kDoesNotExist:
      return "!" + r.key;
  }
  return r.key;
}

}  // namespace

MetricRead readExternalMetric(kube::KubeClient& kube, const std::string& ns,
                              const std::string& metric, const std::string& selector) {
  MetricRead r;
  auto answer = kube.get(detail::externalMetricPath(ns, metric, selector));
  if (!answer) {
    r.status = answer.error().status;
    r.message = oneLine(answer.error().message);
    if (!answer.error().reason.empty()) r.message = answer.error().reason + ": " + r.message;
    return r;
  }
  r.status = 200;
  if (const auto* items = answer->is_object() ? arrayAt(answer->as_object(), "items") : nullptr) {
    r.items = items->size();
    double sum = 0;
    for (const auto& i : *items) {
      if (!i.is_object()) continue;
      if (auto v = core::parseQuantity(str(i.as_object(), "value"))) sum += *v;
    }
    if (r.items > 0) r.value = sum;
  }
  if (r.items == 0) r.message = "an empty list (the HPA treats it as no metric)";
  return r;
}

namespace {

void readHpaMetric(kube::KubeClient& kube, const Evidence& e, HpaMetricEvidence& h) {
  std::string canonical = h.selector->canonical();
  const auto* entry = e.status ? e.status->findMetric(h.ns, h.metricName, canonical) : nullptr;
  h.read = readExternalMetric(kube, h.ns, h.metricName, canonical);
  auto finding = classifyHpaMetric(entry, h.read, h.metricName);
  // "No series": is the name wrong or a tag? The same metric with no selector, then each
  // requirement alone (at most eight).
  if (needsProbes(entry, finding)) {
    const auto& requirements = h.selector->requirements();
    h.whole = h.selector->empty() ? h.read : readExternalMetric(kube, h.ns, h.metricName, "");
    const auto& whole = *h.whole;
    if (whole.status == 200 && whole.value && requirements.size() > 1) {
      for (const auto& r : requirements) {
        if (h.probes.size() >= 8) break;
        auto one = readExternalMetric(kube, h.ns, h.metricName, requirementText(r));
        h.probes.push_back(
            {requirementText(r), one.status == 200 && one.value.has_value(), one.message});
      }
    } else if (whole.status == 200 && whole.value && requirements.size() == 1) {
      h.probes.push_back({requirementText(requirements[0]), false, h.read.message});
    }
  }
  // A missing or invalid DatadogMetric: its spec, as evidence.
  if (entry &&
      (finding.problem == "datadogmetric-invalid" || finding.problem == "datadogmetric-missing")) {
    const std::string& id = entry->datadogMetric;
    if (auto slash = id.find('/'); slash != std::string::npos) {
      h.datadogMetricId = id;
      h.datadogMetric = kube.get("/apis/datadoghq.com/v1alpha1/namespaces/" + id.substr(0, slash) +
                                 "/datadogmetrics/" + id.substr(slash + 1));
    }
  }
}

}  // namespace

void gatherHpas(kube::KubeClient& kube, Evidence& e) {
  e.hpas = kube.get("/apis/autoscaling/v2/horizontalpodautoscalers");
  if (!e.hpas) return;
  for (const auto& item : itemsOf(*e.hpas)) {
    if (!item.is_object()) continue;
    const auto& hpa = item.as_object();
    const auto* meta = objectAt(hpa, "metadata");
    const auto* spec = objectAt(hpa, "spec");
    const auto* hpaStatus = objectAt(hpa, "status");
    if (!meta || !spec || !arrayAt(*spec, "metrics")) continue;
    std::string scalingActive;
    if (const auto* conditions = arrayAt(hpaStatus, "conditions")) {
      for (const auto& cond : *conditions) {
        if (!cond.is_object() || str(cond.as_object(), "type") != "ScalingActive") continue;
        if (str(cond.as_object(), "status") != "True") {
          scalingActive = str(cond.as_object(), "reason") + ": " + str(cond.as_object(), "message");
        }
      }
    }
    for (const auto& m : *arrayAt(*spec, "metrics")) {
      if (!m.is_object() || str(m.as_object(), "type") != "External") continue;
      const auto* external = objectAt(m.as_object(), "external");
      const auto* metric = objectAt(external, "metric");
      const auto* target = objectAt(external, "target");
      if (!metric) continue;
      auto text = kube::labelSelectorText(objectAt(*metric, "selector"));
      HpaMetricEvidence h{
          .ns = str(*meta, "namespace"),
          .hpaName = str(*meta, "name"),
          .name = str(*metric, "name"),
          .metricName = lowercase(str(*metric, "name")),
          .selectorText = text,
          .selector = text ? core::LabelSelector::parse(*text)
                           : std::unexpected(core::SelectorError{0, text.error()}),
          .target = target ? std::optional(*target) : std::nullopt,
          .minReplicas = static_cast<int>(intAt(*spec, "minReplicas", 1)),
          .maxReplicas = static_cast<int>(intAt(*spec, "maxReplicas", 1)),
          .currentReplicas = hpaStatus ? static_cast<int>(intAt(*hpaStatus, "currentReplicas")) : 0,
          .desiredReplicas = hpaStatus ? static_cast<int>(intAt(*hpaStatus, "desiredReplicas")) : 0,
          .scalingActive = scalingActive};
      if (h.selector) readHpaMetric(kube, e, h);
      e.hpaMetrics.push_back(std::move(h));
    }
  }
}

}  // namespace xmetrics::doctor

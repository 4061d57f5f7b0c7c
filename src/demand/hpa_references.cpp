#include "demand/hpa_references.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"
#include "kube/label_selector_text.hpp"

namespace xmetrics::demand {
namespace {

using core::json::arrayAt;
using core::json::intAt;
using core::json::objectAt;
using core::json::str;

// The canonical form of an HPA metric's selector object; nullopt when it cannot be read.
std::optional<std::string> canonicalSelector(const boost::json::object* selector) {
  auto text = kube::labelSelectorText(selector);
  if (!text) return std::nullopt;
  auto parsed = core::LabelSelector::parse(*text);
  if (!parsed) return std::nullopt;
  return parsed->canonical();
}

// A quantity as the API server writes it (a string); a number only from a hand-written object.
std::string quantityText(const boost::json::object* o, std::string_view key) {
  if (!o) return "";
  const auto* v = o->if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  return v->is_number() ? boost::json::serialize(*v) : "";
}

}  // namespace

std::vector<catalog::Catalog::Reference> hpaReferences(const kube::ObjectMap& hpas,
                                                       std::vector<std::string>* problems) {
  std::vector<catalog::Catalog::Reference> out;
  for (const auto& [key, hpa] : hpas) {
    auto* spec = objectAt(hpa, "spec");
    auto* metrics = spec ? arrayAt(*spec, "metrics") : nullptr;
    if (!metrics) continue;
    for (const auto& m : *metrics) {
      if (!m.is_object() || str(m.as_object(), "type") != "External") continue;
      auto* external = objectAt(m.as_object(), "external");
      auto* metric = external ? objectAt(*external, "metric") : nullptr;
      if (!metric) continue;
      std::string name = str(*metric, "name");
      if (name.empty()) continue;
      auto text = kube::labelSelectorText(objectAt(*metric, "selector"));
      std::expected<core::LabelSelector, core::SelectorError> selector =
          text ? core::LabelSelector::parse(*text)
               : std::unexpected(core::SelectorError{0, text.error()});
      if (!selector) {
        if (problems) {
          problems->push_back("hpa:" + key + ": metric " + name + ": " + selector.error().message);
        }
        continue;
      }
      out.push_back({key.substr(0, key.find('/')), name, *selector, "hpa:" + key});
    }
  }
  return out;
}

std::vector<core::StatusReport::Hpa> hpaSummaries(const kube::ObjectMap& hpas) {
  std::vector<core::StatusReport::Hpa> out;
  for (const auto& [key, hpa] : hpas) {
    const auto* spec = objectAt(hpa, "spec");
    const auto* metrics = spec ? arrayAt(*spec, "metrics") : nullptr;
    if (!metrics) continue;
    const auto* status = objectAt(hpa, "status");
    const auto* target = objectAt(spec, "scaleTargetRef");
    core::StatusReport::Hpa h{.ns = key.substr(0, key.find('/')),
                              .name = key.substr(key.find('/') + 1),
                              .scaleTarget = str(target, "kind") + "/" + str(target, "name"),
                              .minReplicas = intAt(*spec, "minReplicas", 1),
                              .maxReplicas = intAt(*spec, "maxReplicas", 1),
                              .currentReplicas = status ? intAt(*status, "currentReplicas") : 0,
                              .desiredReplicas = status ? intAt(*status, "desiredReplicas") : 0};
    const auto* current = status ? arrayAt(*status, "currentMetrics") : nullptr;
    for (const auto& m : *metrics) {
      if (!m.is_object() || str(m.as_object(), "type") != "External") continue;
      const auto* external = objectAt(m.as_object(), "external");
      const auto* metric = objectAt(external, "metric");
      auto selector = canonicalSelector(objectAt(metric, "selector"));
      if (!metric || !selector) continue;
      const auto* goal = objectAt(external, "target");
      std::string type = str(goal, "type");
      core::StatusReport::Hpa::Metric entry{
          .name = str(metric, "name"),
          .selector = *selector,
          .targetType = type,
          .target = quantityText(goal, type == "AverageValue" ? "averageValue" : "value")};
      // What the HPA last read for it: status.currentMetrics in the order of spec.metrics, found
      // by name and selector.
      static const boost::json::array kNone;
      for (const auto& c : current ? *current : kNone) {
        if (!c.is_object() || str(c.as_object(), "type") != "External") continue;
        const auto* ce = objectAt(c.as_object(), "external");
        const auto* cm = objectAt(ce, "metric");
        if (str(cm, "name") != entry.name ||
            canonicalSelector(objectAt(cm, "selector")) != selector) {
          continue;
        }
        const auto* values = objectAt(ce, "current");
        entry.current = quantityText(values, type == "AverageValue" ? "averageValue" : "value");
      }
      h.metrics.push_back(std::move(entry));
    }
    if (!h.metrics.empty()) out.push_back(std::move(h));
  }
  return out;
}

}  // namespace xmetrics::demand

#include "demand/hpa_references.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"
#include "kube/label_selector_text.hpp"

namespace xmetrics::demand {
namespace {

using core::json::arrayAt;
using core::json::objectAt;
using core::json::str;

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

}  // namespace xmetrics::demand

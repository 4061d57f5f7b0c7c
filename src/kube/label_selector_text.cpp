#include "kube/label_selector_text.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"

namespace xmetrics::kube {
namespace {

using core::json::arrayAt;
using core::json::objectAt;
using core::json::str;

}  // namespace

std::expected<std::string, std::string> labelSelectorText(const boost::json::object* selector) {
  if (!selector) return std::string();
  std::string text;
  auto add = [&](const std::string& part) { text += (text.empty() ? "" : ",") + part; };
  if (auto* labels = objectAt(*selector, "matchLabels")) {
    for (const auto& [k, v] : *labels) {
      if (!v.is_string())
        return std::unexpected("matchLabels." + std::string(k) + " is not a string");
      add(std::string(k) + "=" + std::string(v.as_string()));
    }
  }
  if (auto* expressions = arrayAt(*selector, "matchExpressions")) {
    for (const auto& e : *expressions) {
      if (!e.is_object()) continue;
      const auto& expr = e.as_object();
      std::string key = str(expr, "key"), op = str(expr, "operator");
      std::string values;
      if (auto* vs = arrayAt(expr, "values")) {
        for (const auto& v : *vs) {
          if (v.is_string()) values += (values.empty() ? "" : ",") + std::string(v.as_string());
        }
      }
      if (op == "In") {
        add(key + " in (" + values + ")");
      } else if (op == "NotIn") {
        add(key + " notin (" + values + ")");
      } else if (op == "Exists") {
        add(key);
      } else if (op == "DoesNotExist") {
        add("!" + key);
      } else {
        return std::unexpected("matchExpressions operator \"" + op +
                               "\" is not one of In, NotIn, "
                               "Exists, DoesNotExist");
      }
    }
  }
  return text;
}

}  // namespace xmetrics::kube

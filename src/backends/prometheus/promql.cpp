#include "backends/prometheus/promql.hpp"

namespace xmetrics::backends::prometheus {
namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string regexAlternatives(const std::vector<std::string>& values) {
  std::string re;
  for (const auto& v : values) {
    if (!re.empty()) re += '|';
    for (char c : v) {
      if (std::string_view(".+*?()|[]{}^$\\").find(c) != std::string_view::npos) re += '\\';
      re += c;
    }
  }
  return re;
}

}  // namespace

std::string inlinePromql(std::string_view metric, const core::LabelSelector& selector,
                         std::string_view aggregation) {
  std::string name(metric);
  for (char& c : name) {
    if (c == '.' || c == '-') c = '_';
  }
  std::string matchers;
  for (const auto& r : selector.requirements()) {
    if (!matchers.empty()) matchers += ',';
    using Op = core::SelectorOperator;
    switch (r.op) {
      case Op::kEquals:
        matchers += r.key + "=" + quoted(r.values.at(0));
        break;
      case Op::kNotEquals:
        matchers += r.key + "!=" + quoted(r.values.at(0));
        break;
      case Op::kIn:
        matchers += r.key + "=~" + quoted(regexAlternatives(r.values));
        break;
      case Op::kNotIn:
        matchers += r.key + "!~" + quoted(regexAlternatives(r.values));
        break;
      case Op::kExists:
        matchers += r.key + "!=\"\"";
        break;
      case Op::kDoesNotExist:
        matchers += r.key + "=\"\"";
        break;
    }
  }
  std::string selectorText = name + (matchers.empty() ? "" : "{" + matchers + "}");
  if (aggregation.empty() || aggregation == "none") return selectorText;
  return std::string(aggregation) + "(" + selectorText + ")";
}

}  // namespace xmetrics::backends::prometheus

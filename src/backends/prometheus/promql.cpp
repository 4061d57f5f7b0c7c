#include "backends/prometheus/promql.hpp"

#include <array>

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

bool isNameStart(char c, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

// A PromQL metric name ([a-zA-Z_:][a-zA-Z0-9_:]*, colon true) or label name
// ([a-zA-Z_][a-zA-Z0-9_]*) at the front of `s`; its length, 0 when there is none.
std::size_t nameLength(std::string_view s, bool colon) {
  if (s.empty() || !isNameStart(s[0], colon)) return 0;
  std::size_t n = 1;
  while (n < s.size() && (isNameStart(s[n], colon) || (s[n] >= '0' && s[n] <= '9'))) ++n;
  return n;
}

// The string literal quoted() writes at the front of `s`, unescaped; `s` moves past it.
std::optional<std::string> unquoted(std::string_view& s) {
  if (s.empty() || s[0] != '"') return std::nullopt;
  std::string out;
  for (std::size_t i = 1; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"') {
      s.remove_prefix(i + 1);
      return out;
    }
    if (c == '\n') return std::nullopt;  // quoted() writes it as \n
    if (c == '\\') {
      if (++i == s.size()) return std::nullopt;
      if (s[i] == 'n') {
        out += '\n';
      } else if (s[i] == '"' || s[i] == '\\') {
        out += s[i];
      } else {
        return std::nullopt;  // an escape quoted() never writes
      }
      continue;
    }
    out += c;
  }
  return std::nullopt;
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

std::optional<InlineShape> parseInlinePromql(std::string_view promql) {
  static constexpr std::array<std::string_view, 5> kAggregations = {"sum", "avg", "min", "max",
                                                                    "count"};
  InlineShape shape;
  std::string_view s = promql;
  for (auto a : kAggregations) {
    if (s.starts_with(a) && s.substr(a.size()).starts_with('(')) {
      shape.aggregation = a;
      s.remove_prefix(a.size() + 1);
      break;
    }
  }
  if (shape.aggregation.empty()) return std::nullopt;
  std::size_t n = nameLength(s, true);
  if (n == 0) return std::nullopt;
  shape.metric = s.substr(0, n);
  s.remove_prefix(n);
  if (s.starts_with('{')) {
    s.remove_prefix(1);
    while (true) {
      std::size_t k = nameLength(s, false);
      if (k == 0 || s.substr(k, 1) != "=" || s.substr(k + 1, 1) != "\"") return std::nullopt;
      std::string label(s.substr(0, k));
      s.remove_prefix(k + 1);
      auto value = unquoted(s);
      if (!value) return std::nullopt;
      shape.matchers.emplace_back(std::move(label), std::move(*value));
      if (s.starts_with(',')) {
        s.remove_prefix(1);
        continue;
      }
      if (!s.starts_with('}')) return std::nullopt;
      s.remove_prefix(1);
      break;
    }
  }
  if (s != ")") return std::nullopt;
  return shape;
}

std::string groupedPromql(const GroupedShape& group) {
  std::string out = group.aggregation + " by (" + group.key + ")(" + group.metric + "{";
  for (const auto& [label, value] : group.common) out += label + "=" + quoted(value) + ",";
  out += group.key + "=~" + quoted(regexAlternatives(group.values)) + "})";
  return out;
}

}  // namespace xmetrics::backends::prometheus

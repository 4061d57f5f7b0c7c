#include "backends/prometheus/coalescing.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "backends/prometheus/promql.hpp"

namespace xmetrics::backends::prometheus {
namespace {

// The queries that could share one grouped query: same window, aggregation, metric, varying label
// and other matchers (sorted, so their order in the query does not matter).
struct Candidate {
  GroupedShape shape;                                        // values empty
  std::vector<std::pair<std::size_t, std::string>> members;  // (batch index, value), ascending
};

std::size_t distinctValues(const Candidate& c, const std::vector<bool>& assigned) {
  std::set<std::string_view> values;
  for (const auto& [i, v] : c.members) {
    if (!assigned[i]) values.insert(v);
  }
  return values.size();
}

}  // namespace

CoalescePlan planCoalescing(std::span<const BackendQuery> batch, const CoalesceLimits& limits) {
  std::map<std::string, Candidate> candidates;  // ordered: the plan does not depend on hashing
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto shape = parseInlinePromql(batch[i].query);
    if (!shape) continue;
    auto sorted = shape->matchers;
    std::sort(sorted.begin(), sorted.end());
    bool repeatedLabel = std::adjacent_find(sorted.begin(), sorted.end(), [](auto& a, auto& b) {
                           return a.first == b.first;
                         }) != sorted.end();
    if (repeatedLabel) continue;  // k="a",k="b": matches nothing, and no single value to split by
    for (std::size_t k = 0; k < sorted.size(); ++k) {
      const auto& [key, value] = sorted[k];
      if (value.empty() || key.starts_with("__")) continue;
      GroupedShape g{.aggregation = shape->aggregation, .metric = shape->metric, .key = key};
      for (std::size_t j = 0; j < sorted.size(); ++j) {
        if (j != k) g.common.push_back(sorted[j]);
      }
      // Unambiguous: the window is digits, and the rest is the grouped query's own text.
      std::string id = std::to_string(batch[i].window.count()) + " " + groupedPromql(g);
      auto& c = candidates[id];
      if (c.members.empty()) c.shape = std::move(g);
      c.members.emplace_back(i, value);
    }
  }

  CoalescePlan plan;
  std::vector<bool> assigned(batch.size(), false);
  while (true) {
    auto best = candidates.end();
    std::size_t bestValues = 1;
    for (auto it = candidates.begin(); it != candidates.end(); ++it) {
      std::size_t n = distinctValues(it->second, assigned);
      if (n > bestValues) best = it, bestValues = n;
    }
    if (best == candidates.end()) break;
    Candidate c = std::move(best->second);
    candidates.erase(best);

    // Distinct values in sorted order (the grouped query's text does not depend on the order of
    // the batch); parts of at most maxValues values and maxQueryBytes of text.
    std::map<std::string_view, std::vector<std::size_t>> membersOf;
    for (const auto& [i, v] : c.members) {
      if (!assigned[i]) membersOf[v].push_back(i);
    }
    GroupedShape shape = c.shape;
    auto close = [&] {
      if (shape.values.size() >= 2) {
        QueryGroup g{.promql = groupedPromql(shape), .key = shape.key};
        std::vector<std::pair<std::size_t, std::string>> members;
        for (const auto& v : shape.values) {
          for (std::size_t i : membersOf.at(v)) members.emplace_back(i, v);
        }
        std::sort(members.begin(), members.end());
        for (auto& [i, v] : members) {
          assigned[i] = true;
          g.members.push_back(i);
          g.values.push_back(std::move(v));
        }
        plan.groups.push_back(std::move(g));
      }
      shape.values.clear();  // a single value stays unassigned: another group or alone
    };
    for (const auto& [value, members] : membersOf) {
      std::string v(value);
      shape.values.push_back(v);
      bool over = shape.values.size() > limits.maxValues ||
                  groupedPromql(shape).size() > limits.maxQueryBytes;
      if (over && shape.values.size() > 1) {
        shape.values.pop_back();
        close();
        shape.values.push_back(v);
      }
    }
    close();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!assigned[i]) plan.alone.push_back(i);
  }
  return plan;
}

}  // namespace xmetrics::backends::prometheus

#include "backends/datadog/batch_planner.hpp"

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <map>

namespace xmetrics::backends::datadog {

std::string escapeQuery(std::string_view query) {
  return boost::urls::encode(query, boost::urls::unreserved_chars);
}

BatchPlan planBatches(std::span<const BackendQuery> queries, const BatchLimits& limits,
                      const std::vector<bool>& skip, std::span<const std::size_t> escapedChars) {
  constexpr std::size_t kSeparator = 3;  // "," escaped as %2C
  BatchPlan plan;
  // Open call per window, in first-seen order of windows so the plan is deterministic.
  std::map<std::chrono::seconds, std::pair<std::size_t, std::size_t>> open;  // -> (call, chars)
  for (std::size_t i = 0; i < queries.size(); ++i) {
    if (i < skip.size() && skip[i]) continue;
    std::size_t chars = escapedChars.size() == queries.size()
                            ? escapedChars[i]
                            : escapeQuery(queries[i].query).size();
    if (chars > limits.maxEscapedChars) {
      plan.tooLong.push_back(i);
      continue;
    }
    auto it = open.find(queries[i].window);
    if (it != open.end()) {
      auto& [callIndex, used] = it->second;
      auto& call = plan.calls[callIndex];
      if (call.queries.size() < limits.maxQueries &&
          used + kSeparator + chars <= limits.maxEscapedChars) {
        call.queries.push_back(i);
        used += kSeparator + chars;
        continue;
      }
    }
    plan.calls.push_back({queries[i].window, {i}});
    open[queries[i].window] = {plan.calls.size() - 1, chars};
  }
  return plan;
}

}  // namespace xmetrics::backends::datadog

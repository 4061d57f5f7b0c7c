#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.hpp"

namespace xmetrics::backends::prometheus {

// Issue 14: many HPAs ask for one metric with selectors that differ only in one label's value (one
// queue each). Inline queries of a batch that are exactly of the inline shape (parseInlinePromql)
// and share window, aggregation, metric and every matcher but one label's are answered by one
// grouped query (groupedPromql) whose vector answer is split back by that label. Only the members'
// own queries are compared; anything else (user-written PromQL of another form, a bare selector,
// regex or negated matchers) is left alone and fetched by its own query.
//
// The window does not reach Prometheus (an instant query at the refresh time, see fetch()); it is
// part of the group all the same, so coalescing never joins queries the poller keeps apart.

struct CoalesceLimits {
  std::size_t maxValues = 100;            // distinct values in one grouped query
  std::size_t maxQueryBytes = 16 * 1024;  // a grouped query's PromQL text (sent as a POST form)
};

struct QueryGroup {
  std::string promql;                // the grouped query
  std::string key;                   // the label its answer is split by
  std::vector<std::size_t> members;  // indices into the batch, ascending
  std::vector<std::string> values;   // parallel to members: the value of `key` each one wants
};

struct CoalescePlan {
  std::vector<QueryGroup> groups;  // each has at least two distinct values
  std::vector<std::size_t> alone;  // indices fetched by their own query, ascending
};

// Deterministic: the same batch gives the same plan. Of the ways to group a query (one per label
// it matches), the group with the most distinct values is formed first. A group over the limits is
// split (values in sorted order); a part left with a single value is fetched alone. Label values ""
// (a label's absence) and labels starting with "__" are never the one a group varies.
CoalescePlan planCoalescing(std::span<const BackendQuery> batch, const CoalesceLimits& limits = {});

}  // namespace xmetrics::backends::prometheus

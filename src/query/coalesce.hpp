#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::query {

// Coalescing: many HPAs ask for one metric with filters that differ only in one tag's value (one
// queue per service, one HPA per deployment). Such queries are answered by a single query grouped
// by that tag and restricted to the values wanted,
//
//   avg:q.depth{env:prod,queue:a}.rollup(30)     avg:q.depth{env:prod AND queue IN (a,b)}
//   avg:q.depth{env:prod,queue:b}.rollup(30)  ->     by {queue}.rollup(30)
//
// whose answer has one series per value, tagged `queue:a`, `queue:b`. A group's series selects
// exactly the series the member's own filter selects (the member's filter is `rest AND queue:a`,
// the group's filter restricted to tag `queue:a` is the same), and the space aggregator and rollup
// apply to that set alike, so each value and timestamp is the one the member's own query gives.
//
// Only queries that provably mean that are coalesced: the subset parseQuery accepts, no grouping
// of their own, a filter that is one literal `key:value` or an AND of them (no wildcard, negation,
// OR or IN, each key once), and values that can stand inside `IN (...)` unquoted. Everything else
// (arithmetic, functions, anything unparseable) is left alone and fetched as it is.

struct CoalesceInput {
  std::string_view query;
  int64_t partition = 0;  // queries of different partitions never share a group (e.g. the window)
};

struct CoalescedGroup {
  std::string query;                 // the grouped query, in Datadog syntax
  std::string key;                   // the tag the answer is split by, as the members wrote it
  std::vector<std::size_t> members;  // indices into the input
  // The value each member wants, lowercased (Datadog lowercases tags at intake): parallel to
  // members. Two members may want the same value (queries equal after normalisation).
  std::vector<std::string> values;
};

struct CoalescePlan {
  std::vector<CoalescedGroup> groups;
  std::vector<std::size_t> alone;  // indices fetched by their own query, in input order
};

struct CoalesceLimits {
  std::size_t maxValues = 100;   // distinct values in one grouped query
  std::size_t maxLength = 7000;  // a grouped query's length as measured by `length`
  std::function<std::size_t(std::string_view)> length;  // empty: bytes
};

// Groups what can be grouped. A group has at least two distinct values; a group over maxValues
// values or maxLength is split into several. Deterministic: the same input gives the same plan.
CoalescePlan coalesce(std::span<const CoalesceInput> inputs, const CoalesceLimits& limits = {});

// The canonical text of a query, so that spellings of one query are fetched once: conjuncts and
// alternatives sorted, IN lists sorted and deduplicated, spaces as printQuery puts them. Text
// outside the subset parseQuery accepts comes back as it is.
std::string normalisedQuery(std::string_view text);

// The value of `key` in a series' tag set (`key:value` entries), lowercased; empty when absent.
// A series tagged with two values of the key is listed in `values` for each.
std::vector<std::string> tagValues(std::span<const std::string> tagSet, std::string_view key);

}  // namespace xmetrics::query

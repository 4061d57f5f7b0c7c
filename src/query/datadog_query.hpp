#pragma once

// query/: the Datadog query language — parse, validate, print, selector -> query. Pure; may
// include core/ only.

#include <cstddef>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/label_selector.hpp"

namespace xmetrics::query {

// The Datadog metric query language, the subset a metrics adapter needs:
//   <space_agg>:<metric>{<filter>}[ by {<tag>,...}][.rollup(<time_agg>[,<seconds>])]
// Filters come in two forms that cannot be mixed in one query (datadog-protocols.md):
//   symbolic:   {*}  {k:v}  {k:v,k2:v2}  {!k:v}  {k:*}  {k:web-*}
//   functional: {env:prod AND region IN (eu,us) AND NOT tier:free OR (a:b)}
enum class Aggregator { kAvg, kSum, kMin, kMax };
enum class TimeAggregator { kAvg, kSum, kMin, kMax, kCount };

// A tag filter expression. A tag is `key:value` or a bare `key` (DogStatsD allows both).
struct TagFilter {
  enum class Kind {
    kAll,    // `*`: every series
    kMatch,  // key:value, value may hold `*` wildcards; `key:*` means the key is present
    kIn,     // key IN (v1, v2, ...)
    kNot,    // NOT child / !key:value
    kAnd,    // children all match
    kOr,     // any child matches
  };
  Kind kind = Kind::kAll;
  std::string key;                  // kMatch, kIn
  std::vector<std::string> values;  // kMatch: one value (pattern); kIn: the list
  std::vector<TagFilter> children;  // kNot: one; kAnd/kOr: two or more

  // True if a series with these tags (`k:v` or bare `k` strings) is selected. Matching ignores
  // ASCII case, as Datadog lowercases tags at intake; `*` in a pattern matches any run of
  // characters. A bare `k` filter selects the bare tag `k` only; `k:*` selects any `k:<value>` tag.
  bool matches(const std::vector<std::string>& tags) const;
  // The same for callers that hold views (the embedded store's interned tags): no copies.
  bool matches(std::span<const std::string_view> tags) const;
  bool operator==(const TagFilter&) const = default;
};

struct Rollup {
  TimeAggregator method = TimeAggregator::kAvg;
  std::optional<int> seconds;  // interval in seconds; absent = backend's default
  bool operator==(const Rollup&) const = default;
};

struct DatadogQuery {
  Aggregator aggregator = Aggregator::kAvg;
  std::string metric;
  TagFilter filter;                  // kAll for `{*}`
  std::vector<std::string> groupBy;  // ` by {host}`
  std::optional<Rollup> rollup;
  bool operator==(const DatadogQuery&) const = default;
};

struct QueryError {
  std::size_t position = 0;  // 0-based byte offset where parsing failed
  std::string message;       // names what was expected and what was found
};

// Parses one query. Anything outside the subset above (arithmetic, functions, percentiles, mixed
// filter forms) is an error naming the position, never a silently different query.
std::expected<DatadogQuery, QueryError> parseQuery(std::string_view text);

// Prints a query back in Datadog syntax. parseQuery(printQuery(q)) == q. Symbolic form is used when
// the filter is `*` or an AND of (possibly negated) key:value matches, functional form otherwise.
std::string printQuery(const DatadogQuery& query);

// A piece of a query quoted for an error message ('…'), control and non-ASCII bytes as \xNN:
// errors end up in HPA events and JSON status fields.
std::string quoteForMessage(std::string_view text);

std::string_view aggregatorName(Aggregator a);  // "avg", "sum", ...
std::optional<Aggregator> parseAggregator(std::string_view name);

// The inline translation, drop-in compatible with the Datadog Cluster Agent for equality selectors:
// `avg:<metric>{k1:v1,k2:v2}.rollup(30)` with requirements sorted by key, `{*}` when empty.
// Unlike the Cluster Agent every other operator is translated instead of dropped, switching the
// whole filter to the functional form: `!=` -> NOT k:v, `in` -> k IN (a,b), `notin` -> k NOT IN
// (a,b) (Datadog's spelling of NOT (k IN (a,b))), exists -> k:*, `!k` -> NOT k:*, joined by AND, in
// canonical selector order. `rollupSeconds` <= 0 leaves the `.rollup(...)` suffix out.
std::string inlineQuery(std::string_view metric, const core::LabelSelector& selector,
                        Aggregator aggregator, int rollupSeconds);

}  // namespace xmetrics::query

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/label_selector.hpp"

namespace xmetrics::backends::prometheus {

// The inline translation for Prometheus: `<aggregation>(<metric>{<matchers>})`, or the bare
// selector when aggregation is "none". Dots in the metric name become underscores (Datadog-style
// names are not valid PromQL). Each requirement becomes a matcher:
//   k=v -> k="v"   k!=v -> k!="v"   k in (a,b) -> k=~"a|b"   k notin (a,b) -> k!~"a|b"
//   k (exists) -> k!=""   !k -> k=""
// Values are escaped for the string literal and, in regex matchers, for RE2.
std::string inlinePromql(std::string_view metric, const core::LabelSelector& selector,
                         std::string_view aggregation);

// One equality matcher `label="value"`; the value unescaped.
using EqualityMatcher = std::pair<std::string, std::string>;

// A query exactly as inlinePromql writes it for a selector of equalities only:
// `<sum|avg|min|max|count>(<metric>)` or `<...>(<metric>{k1="v1",k2="v2"})`.
struct InlineShape {
  std::string aggregation;                // sum, avg, min, max or count
  std::string metric;                     // a valid PromQL metric name
  std::vector<EqualityMatcher> matchers;  // in the query's order; label names valid in PromQL

  bool operator==(const InlineShape&) const = default;
};

// Recognises that shape, byte for byte as inlinePromql prints it: no whitespace, no other matcher
// (`!=`, `=~`, `!~`), no other escape than \" \\ \n, valid metric and label names, nothing around
// it. nullopt for everything else (user-written PromQL of any other form). Round trip: for an
// equality-only selector whose key and name are valid PromQL names, parsing inlinePromql(m, s, a)
// gives back a, m (dots made underscores) and s's requirements in order.
std::optional<InlineShape> parseInlinePromql(std::string_view promql);

// The query answering several InlineShapes at once that differ only in the value of `key`:
//   <aggregation> by (<key>)(<metric>{<common>,<key>=~"<v1>|<v2>|..."})
// Each value is escaped for RE2 (Prometheus anchors the regex: ^(?:v1|v2)$) and for the literal.
// Its answer holds one series per value that has data, labelled <key>="<value>", each the sample
// the member's own `<aggregation>(<metric>{<common>,<key>="<value>"})` gives at the same time.
struct GroupedShape {
  std::string aggregation;
  std::string metric;
  std::vector<EqualityMatcher> common;  // every matcher but `key`'s
  std::string key;
  std::vector<std::string> values;
};
std::string groupedPromql(const GroupedShape& group);

}  // namespace xmetrics::backends::prometheus

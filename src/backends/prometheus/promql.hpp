#pragma once

#include <string>
#include <string_view>

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

}  // namespace xmetrics::backends::prometheus

// libFuzzer target: Datadog queries come from DatadogMetric objects any namespace owner can write,
// and from HPA metric names and selectors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "query/datadog_query.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The shape every parsed filter node must have, whatever the input was.
void checkFilter(const xmetrics::query::TagFilter& f) {
  using Kind = xmetrics::query::TagFilter::Kind;
  switch (f.kind) {
    case Kind::kAll:
      check(f.key.empty() && f.values.empty() && f.children.empty());
      break;
    case Kind::kMatch:
      check(!f.key.empty() && f.values.size() <= 1 && f.children.empty());
      break;
    case Kind::kIn:
      check(!f.key.empty() && !f.values.empty() && f.children.empty());
      break;
    case Kind::kNot:
      check(f.children.size() == 1);
      break;
    case Kind::kAnd:
    case Kind::kOr:
      check(f.children.size() >= 2);
      for (const auto& child : f.children) check(child.kind != f.kind);  // flattened
      break;
  }
  for (const auto& child : f.children) {
    check(child.kind != Kind::kAll);
    checkFilter(child);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xmetrics::query;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parseQuery(text);
  if (!parsed) {
    check(parsed.error().position <= text.size());
    check(!parsed.error().message.empty());
    // Messages reach HPA events and JSON status as is: printable ASCII only.
    for (char c : parsed.error().message) check(c >= 0x20 && c < 0x7f);
    return 0;
  }
  check(!parsed->metric.empty());
  checkFilter(parsed->filter);
  if (parsed->rollup && parsed->rollup->seconds) check(*parsed->rollup->seconds > 0);

  // The printed form is what users see and what the backends send: it must read back as the very
  // same query, and be a fixed point.
  const std::string printed = printQuery(*parsed);
  const auto reparsed = parseQuery(printed);
  check(reparsed.has_value());
  check(*reparsed == *parsed);
  check(printQuery(*reparsed) == printed);

  // Matching must terminate and agree between the two tag representations.
  const std::vector<std::string> tags = {"env:prod", "pod:web-1", "canary", "team:"};
  const std::vector<std::string_view> views(tags.begin(), tags.end());
  check(parsed->filter.matches(tags) ==
        parsed->filter.matches(std::span<const std::string_view>(views)));
  return 0;
}

// libFuzzer target: label selectors arrive from any API client in `?labelSelector=`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/label_selector.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// The shape every parsed requirement must have, whatever the input was.
void checkRequirement(const xmetrics::core::SelectorRequirement& requirement) {
  using xmetrics::core::SelectorOperator;
  check(!requirement.key.empty());
  check(std::ranges::is_sorted(requirement.values));
  check(std::ranges::adjacent_find(requirement.values) == requirement.values.end());
  switch (requirement.op) {
    case SelectorOperator::kEquals:
    case SelectorOperator::kNotEquals:
      check(requirement.values.size() == 1);
      break;
    case SelectorOperator::kIn:
    case SelectorOperator::kNotIn:
      check(!requirement.values.empty());
      break;
    case SelectorOperator::kExists:
    case SelectorOperator::kDoesNotExist:
      check(requirement.values.empty());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using xmetrics::core::LabelSelector;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = LabelSelector::parse(text);
  if (!parsed) {
    check(parsed.error().position <= text.size());
    check(!parsed.error().message.empty());
    return 0;
  }
  check(std::ranges::is_sorted(parsed->requirements(),
                               [](const auto& a, const auto& b) { return a.key < b.key; }));
  for (const auto& requirement : parsed->requirements()) checkRequirement(requirement);

  // The canonical form is the cache key: it must read back as the very same selector, and be a
  // fixed point.
  const std::string canonical = parsed->canonical();
  const auto reparsed = LabelSelector::parse(canonical);
  check(reparsed.has_value());
  check(*reparsed == *parsed);
  check(reparsed->canonical() == canonical);
  check(parsed->empty() == canonical.empty());
  return 0;
}

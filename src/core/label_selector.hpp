#pragma once

#include <cstddef>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/sample.hpp"

namespace xmetrics::core {

// Kubernetes label selector, the grammar and canonical form of
// k8s.io/apimachinery/pkg/labels (selector.go): `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
// `k notin (a,b)`, `k`, `!k`, joined by commas; whitespace is insignificant.
enum class SelectorOperator { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };

struct SelectorRequirement {
  std::string key;
  SelectorOperator op = SelectorOperator::kEquals;
  std::vector<std::string> values;  // sorted, de-duplicated; one for = and !=, none for exists

  bool operator==(const SelectorRequirement&) const = default;
};

struct SelectorError {
  std::size_t position = 0;  // 0-based byte offset into the selector text where parsing failed
  std::string message;       // e.g. "expected ')' after values of key \"env\""
};

class LabelSelector {
 public:
  LabelSelector() = default;  // the empty selector; matches everything

  // Parses the text form (as sent in `?labelSelector=` after URL decoding). Keys are validated as
  // qualified names, values as label values, like apimachinery does.
  static std::expected<LabelSelector, SelectorError> parse(std::string_view text);

  bool empty() const { return !requirements_ || requirements_->empty(); }
  bool matches(const Labels& labels) const;

  // Requirements sorted by key (then operator), values sorted: `a=b,c in (x,y),!d`. Two selectors
  // that select the same way print the same, so this is the cache key. `==` prints as `=`.
  std::string canonical() const;

  const std::vector<SelectorRequirement>& requirements() const;

  bool operator==(const LabelSelector& other) const {
    return requirements() == other.requirements();
  }

 private:
  // Kept sorted (see canonical()) and never changed once parsed, so copies share them: the
  // catalog's demand and entry, the HPA references and the poller's work all hold the same
  // selector, and each copy would otherwise allocate every key and value again (about 130 bytes
  // for `env=prod`, per copy, per metric). Null: the empty selector.
  std::shared_ptr<const std::vector<SelectorRequirement>> requirements_;
};

}  // namespace xmetrics::core

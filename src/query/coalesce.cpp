#include "query/coalesce.hpp"

#include <algorithm>
#include <map>
#include <optional>

#include "query/datadog_query.hpp"

namespace xmetrics::query {
namespace {

char lowerLetter(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lowerLetter(c);
  return out;
}

// Characters a tag key or value may hold to stand in `k IN (a,b)` without quoting and to mean the
// same thing there as in `{k:a}`: no wildcard, separator, bracket, quote or space.
bool plainTagText(std::string_view s) {
  if (s.empty()) return false;
  // Words of the functional form: `not IN (a)` would read as a negation.
  std::string word = lower(s);
  if (word == "and" || word == "or" || word == "not" || word == "in") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == '/';
  });
}

// A query that can join a group: its literal `key:value` conjuncts and everything else printed.
struct Candidate {
  std::size_t index = 0;
  DatadogQuery parsed;
  std::vector<TagFilter> terms;  // the literal key:value matches, sorted by key
  std::string base;              // the query with filter `*`: aggregator, metric, rollup
};

std::optional<Candidate> candidate(std::size_t index, std::string_view text) {
  auto parsed = parseQuery(text);
  if (!parsed || !parsed->groupBy.empty()) return std::nullopt;
  Candidate c{index, std::move(*parsed), {}, {}};
  const TagFilter& f = c.parsed.filter;
  if (f.kind == TagFilter::Kind::kMatch) {
    c.terms.push_back(f);
  } else if (f.kind == TagFilter::Kind::kAnd) {
    c.terms = f.children;
  } else {
    return std::nullopt;
  }
  for (const TagFilter& t : c.terms) {
    if (t.kind != TagFilter::Kind::kMatch || t.values.size() != 1) return std::nullopt;
    if (!plainTagText(t.key) || !plainTagText(t.values.front())) return std::nullopt;
  }
  std::sort(c.terms.begin(), c.terms.end(),
            [](const TagFilter& a, const TagFilter& b) { return lower(a.key) < lower(b.key); });
  for (std::size_t i = 1; i < c.terms.size(); ++i) {
    if (lower(c.terms[i].key) == lower(c.terms[i - 1].key)) return std::nullopt;
  }
  DatadogQuery base = c.parsed;
  base.filter = TagFilter{};
  c.base = printQuery(base);
  return c;
}

// What members of one group share: everything but the value of term `vary`.
std::string signature(const Candidate& c, std::size_t vary, int64_t partition) {
  std::string sig = std::to_string(partition);
  sig += '\x1f';
  sig += c.base;
  sig += '\x1f';
  sig += lower(c.terms[vary].key);
  for (std::size_t i = 0; i < c.terms.size(); ++i) {
    if (i == vary) continue;
    sig += '\x1f';
    sig += lower(c.terms[i].key);
    sig += ':';
    sig += lower(c.terms[i].values.front());
  }
  return sig;
}

std::string groupedQuery(const Candidate& first, std::size_t vary,
                         const std::vector<std::string>& values) {
  DatadogQuery q = first.parsed;
  TagFilter in{.kind = TagFilter::Kind::kIn, .key = first.terms[vary].key, .values = values};
  std::vector<TagFilter> conjuncts;
  for (std::size_t i = 0; i < first.terms.size(); ++i) {
    if (i != vary) conjuncts.push_back(first.terms[i]);
  }
  if (conjuncts.empty()) {
    q.filter = std::move(in);
  } else {
    conjuncts.push_back(std::move(in));
    q.filter = TagFilter{.kind = TagFilter::Kind::kAnd, .children = std::move(conjuncts)};
  }
  q.groupBy = {first.terms[vary].key};
  return printQuery(q);
}

}  // namespace

CoalescePlan coalesce(std::span<const CoalesceInput> inputs, const CoalesceLimits& limits) {
  auto length = [&](std::string_view s) { return limits.length ? limits.length(s) : s.size(); };
  std::vector<Candidate> candidates;
  std::vector<bool> grouped(inputs.size(), false);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (auto c = candidate(i, inputs[i].query)) candidates.push_back(std::move(*c));
  }

  // Each candidate could vary in any of its terms; it joins the signature most others share.
  std::map<std::string, std::size_t> counts;
  std::vector<std::vector<std::string>> signatures(candidates.size());
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    for (std::size_t t = 0; t < candidates[c].terms.size(); ++t) {
      signatures[c].push_back(signature(candidates[c], t, inputs[candidates[c].index].partition));
      ++counts[signatures[c].back()];
    }
  }
  struct Bucket {
    std::size_t vary = 0;
    std::vector<std::size_t> candidates;
  };
  std::map<std::string, Bucket> buckets;  // ordered: the plan does not depend on hashing
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    std::size_t best = 0;
    for (std::size_t t = 1; t < signatures[c].size(); ++t) {
      auto n = counts[signatures[c][t]], bestN = counts[signatures[c][best]];
      if (n > bestN || (n == bestN && signatures[c][t] < signatures[c][best])) best = t;
    }
    if (counts[signatures[c][best]] < 2) continue;
    auto& bucket = buckets[signatures[c][best]];
    bucket.vary = best;
    bucket.candidates.push_back(c);
  }

  CoalescePlan plan;
  for (auto& [sig, bucket] : buckets) {
    // Members by value; values sorted so that a group's text is stable across refreshes.
    std::map<std::string, std::vector<std::size_t>> byValue;
    for (auto c : bucket.candidates) {
      byValue[lower(candidates[c].terms[bucket.vary].values.front())].push_back(c);
    }
    if (byValue.size() < 2) continue;
    const Candidate& first = candidates[bucket.candidates.front()];
    std::size_t separator = length(",");
    auto flush = [&](std::vector<std::string>& values, std::vector<std::size_t>& members) {
      if (values.size() >= 2) {
        CoalescedGroup g;
        g.query = groupedQuery(first, bucket.vary, values);
        g.key = first.terms[bucket.vary].key;
        for (auto c : members) {
          g.members.push_back(candidates[c].index);
          g.values.push_back(lower(candidates[c].terms[bucket.vary].values.front()));
          grouped[candidates[c].index] = true;
        }
        plan.groups.push_back(std::move(g));
      }
      values.clear();
      members.clear();
    };
    std::vector<std::string> values;
    std::vector<std::size_t> members;
    std::size_t used = 0;
    for (auto& [value, cs] : byValue) {
      std::size_t cost = length(value);
      if (values.empty()) {
        used = length(groupedQuery(first, bucket.vary, {value}));
      } else if (values.size() >= limits.maxValues || used + separator + cost > limits.maxLength) {
        flush(values, members);
        used = length(groupedQuery(first, bucket.vary, {value}));
      } else {
        used += separator + cost;
      }
      if (used > limits.maxLength) continue;  // alone, it is too long even grouped: left as is
      values.push_back(value);
      members.insert(members.end(), cs.begin(), cs.end());
    }
    flush(values, members);
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!grouped[i]) plan.alone.push_back(i);
  }
  return plan;
}

namespace {

void sortFilter(TagFilter& f) {
  for (auto& child : f.children) sortFilter(child);
  if (f.kind == TagFilter::Kind::kIn) {
    std::sort(f.values.begin(), f.values.end());
    f.values.erase(std::unique(f.values.begin(), f.values.end()), f.values.end());
  }
  if (f.kind == TagFilter::Kind::kAnd || f.kind == TagFilter::Kind::kOr) {
    auto text = [](const TagFilter& t) {
      DatadogQuery q;
      q.filter = t;
      return printQuery(q);
    };
    std::vector<std::pair<std::string, TagFilter>> keyed;
    for (auto& child : f.children) keyed.emplace_back(text(child), std::move(child));
    std::sort(keyed.begin(), keyed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    f.children.clear();
    for (auto& [k, child] : keyed) f.children.push_back(std::move(child));
  }
}

}  // namespace

std::string normalisedQuery(std::string_view text) {
  auto parsed = parseQuery(text);
  if (!parsed) return std::string(text);
  sortFilter(parsed->filter);
  return printQuery(*parsed);
}

std::vector<std::string> tagValues(std::span<const std::string> tagSet, std::string_view key) {
  // Compared in place: a grouped answer of 10,000 series calls this 10,000 times a refresh.
  auto sameLetters = [](char a, char b) { return lowerLetter(a) == lowerLetter(b); };
  std::vector<std::string> out;
  for (const auto& tag : tagSet) {
    if (tag.size() <= key.size() || tag[key.size()] != ':') continue;
    if (!std::equal(key.begin(), key.end(), tag.begin(), sameLetters)) continue;
    out.push_back(lower(std::string_view(tag).substr(key.size() + 1)));
  }
  return out;
}

}  // namespace xmetrics::query

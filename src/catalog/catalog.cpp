#include "catalog/catalog.hpp"

#include <algorithm>

#include "store/value_store.hpp"

namespace xmetrics::catalog {

Catalog::Catalog(InlineQueryOptions options, std::chrono::seconds inactiveAfter,
                 std::size_t maxRequested)
    : options_(options), inactiveAfter_(inactiveAfter), maxRequested_(maxRequested) {}

CatalogEntryPtr Catalog::ensureInline(std::string_view metricName,
                                      const core::LabelSelector& selector,
                                      core::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= maxRequested_ + references_.size() &&
      !entries_.contains(store::metricKey(metricName, selector.canonical()))) {
    return nullptr;
  }
  auto entry = findOrCreateLocked(metricName, selector, now, nullptr);
  entry->touch(now);
  return entry;
}

CatalogEntryPtr Catalog::findOrCreateLocked(std::string_view metricName,
                                            const core::LabelSelector& selector,
                                            core::Clock::time_point now, bool* created) {
  std::string key = store::metricKey(metricName, selector.canonical());
  if (created) *created = false;
  if (auto it = entries_.find(key); it != entries_.end()) return it->second;
  if (created) *created = true;
  auto entry = std::make_shared<CatalogEntry>();
  entry->key = key;
  entry->metricName = key.substr(0, key.find('\x1f'));
  entry->selector = selector;
  std::optional<std::string> translated;
  if (options_.translate) translated = options_.translate(entry->metricName, selector);
  entry->query = translated ? std::move(*translated)
                            : query::inlineQuery(entry->metricName, selector, options_.aggregator,
                                                 options_.rollupSeconds);
  entry->resolution = "inline";
  entry->registeredAt = now;
  entries_.emplace(key, entry);
  return entry;
}

std::vector<CatalogEntryPtr> Catalog::setReferences(const std::vector<Reference>& references,
                                                    core::Clock::time_point now) {
  std::vector<CatalogEntryPtr> added;
  std::lock_guard lock(mutex_);
  std::unordered_map<std::string, std::vector<std::string>> next;
  for (const auto& r : references) {
    bool created = false;
    auto entry = findOrCreateLocked(r.metricName, r.selector, now, &created);
    // New to polling: just created, or known only as a direct request that has expired.
    bool polledBefore =
        references_.contains(entry->key) || now - entry->lastRequested() <= inactiveAfter_;
    if ((created || !polledBefore) && !next.contains(entry->key)) added.push_back(entry);
    next[entry->key].push_back(r.owner);
  }
  for (auto& [key, owners] : next) {
    std::ranges::sort(owners);
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  }
  references_ = std::move(next);
  return added;
}

std::vector<std::string> Catalog::referencesOf(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = references_.find(key);
  return it == references_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<CatalogEntryPtr> Catalog::wanted(core::Clock::time_point now) {
  std::vector<CatalogEntryPtr> out;
  std::lock_guard lock(mutex_);
  // A metric stays while an HPA names it, or while someone asked for it recently.
  std::erase_if(entries_, [&](const auto& kv) {
    return !references_.contains(kv.first) && now - kv.second->lastRequested() > inactiveAfter_;
  });
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry);
  return out;
}

std::size_t Catalog::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace xmetrics::catalog

#include "catalog/catalog.hpp"

#include "store/value_store.hpp"

namespace xmetrics::catalog {

Catalog::Catalog(InlineQueryOptions options, std::chrono::seconds inactiveAfter)
    : options_(options), inactiveAfter_(inactiveAfter) {}

CatalogEntryPtr Catalog::ensureInline(std::string_view metricName,
                                      const core::LabelSelector& selector,
                                      core::Clock::time_point now) {
  std::string key = store::metricKey(metricName, selector.canonical());
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second->touch(now);
    return it->second;
  }
  auto entry = std::make_shared<CatalogEntry>();
  entry->key = key;
  entry->metricName = key.substr(0, key.find('\x1f'));
  entry->selector = selector;
  entry->query =
      query::inlineQuery(entry->metricName, selector, options_.aggregator, options_.rollupSeconds);
  entry->resolution = "inline";
  entry->registeredAt = now;
  entry->touch(now);
  entries_.emplace(key, entry);
  return entry;
}

std::vector<CatalogEntryPtr> Catalog::wanted(core::Clock::time_point now) {
  std::vector<CatalogEntryPtr> out;
  std::lock_guard lock(mutex_);
  std::erase_if(entries_,
                [&](const auto& kv) { return now - kv.second->lastRequested() > inactiveAfter_; });
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry);
  return out;
}

std::size_t Catalog::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace xmetrics::catalog

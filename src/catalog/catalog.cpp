#include "catalog/catalog.hpp"

#include <algorithm>
#include <unordered_set>

#include "core/strings.hpp"
#include "query/query_validation.hpp"

namespace xmetrics::catalog {
namespace {

using core::lowercase;

const char* ruleText(Rule rule) {
  switch (rule) {
    case Rule::kReference:
      return "rule 1: datadogmetric@ reference";
    case Rule::kNamed:
      return "rule 2: named like the metric";
    case Rule::kExternalName:
      return "rule 3: externalMetricName and inline query";
    case Rule::kInline:
      return "rule 4: inline";
  }
  return "";
}

// The backends whose queries are Datadog syntax: the datadog backend joins them with ',' into one
// call, so a query that would split differently (query::validateForBatch) is never sent. PromQL
// (prometheus) is not checked. An empty name is the poller's default backend, datadog unless
// configured otherwise.
bool speaksDatadogSyntax(std::string_view backend) {
  return backend.empty() || backend == "datadog" || backend == "embedded";
}

// Marks an object whose query must not join a Datadog batch invalid: its status and every metric
// served through it say why, and the query is never sent. The reason comes first and names the
// object, so the condition message on its own says which object and what to fix.
void refuseUnbatchable(DatadogMetric& object, const std::string& defaultBackend) {
  if (object.query.empty() ||
      !speaksDatadogSyntax(object.backend.empty() ? defaultBackend : object.backend)) {
    return;
  }
  auto problem = query::validateForBatch(object.query);
  if (!problem) return;
  std::string reason = "DatadogMetric " + object.id() + ": spec.query is refused: " + *problem;
  object.invalidReason =
      object.invalidReason.empty() ? reason : reason + "; " + object.invalidReason;
}

}  // namespace

std::string CatalogEntry::resolution() const {
  if (rule == Rule::kInline) {
    std::string how = configured ? "configured" : "inline";
    return object.empty() ? how : how + ", autogen " + object;
  }
  return "datadogmetric " + object + " (" + ruleText(rule) + ")";
}

bool CatalogEntry::sameResolution(const CatalogEntry& other) const {
  return rule == other.rule && object == other.object && query == other.query &&
         backend == other.backend && configured == other.configured && window == other.window &&
         maxAge == other.maxAge && errorCode == other.errorCode && error == other.error;
}

Catalog::Catalog(CatalogOptions options) : options_(std::move(options)) {}

bool Catalog::backendRuns(const std::string& name) const {
  return name.empty() || name == options_.defaultBackend ||
         std::ranges::find(options_.backends, name) != options_.backends.end();
}

const ConfiguredMetric* Catalog::configuredFor(const std::string& ns,
                                               const std::string& metricName) const {
  const ConfiguredMetric* any = nullptr;
  for (const auto& c : options_.configured) {
    if (c.name != metricName) continue;
    if (c.ns == ns) return &c;  // a namespace's own entry wins over a catch-all one
    if (c.ns.empty() && !any) any = &c;
  }
  return any;
}

std::string Catalog::inlineQueryOf(const std::string& backend, const std::string& metricName,
                                   const core::LabelSelector& selector) const {
  const auto& o = options_.inlineQuery;
  std::optional<std::string> translated;
  if (o.translate) translated = o.translate(backend, metricName, selector);
  return translated ? std::move(*translated)
                    : query::inlineQuery(metricName, selector, o.aggregator, o.rollupSeconds);
}

void Catalog::fromObject(CatalogEntry& entry, Rule rule, const DatadogMetric& object) const {
  entry.rule = rule;
  entry.object = object.id();
  if (!object.invalidReason.empty()) {
    entry.errorCode = 422;
    // A refused query's reason names the object already (refuseUnbatchable).
    std::string named = "DatadogMetric " + object.id();
    entry.error = (object.invalidReason.starts_with(named + ": ")
                       ? object.invalidReason
                       : named + " is invalid: " + object.invalidReason) +
                  "; fix its spec (kubectl edit datadogmetric -n " + object.ns + " " + object.name +
                  ")";
    return;
  }
  entry.backend = object.backend.empty() ? options_.defaultBackend : object.backend;
  if (!backendRuns(entry.backend)) {
    entry.errorCode = 422;
    entry.error = "DatadogMetric " + object.id() + " asks for backend \"" + entry.backend +
                  "\" (annotation " + std::string(kBackendAnnotation) +
                  "), which is not running; enable it with --backends or fix the annotation";
    return;
  }
  entry.query = object.query;
  entry.maxAge = object.maxAge.value_or(options_.maxAge);
  entry.window = std::min(std::max(object.timeWindow.value_or(entry.maxAge), options_.bucketSize),
                          options_.maxWindow);
}

namespace {

// Heap bytes of a string's buffer, with malloc's 16-byte chunk header; none for a short string.
std::size_t heapBytes(const std::string& s) {
  return s.capacity() > 15 ? s.capacity() + 1 + 16 : 0;
}

std::size_t selectorBytes(const core::LabelSelector& selector) {
  if (selector.empty()) return 0;
  const auto& reqs = selector.requirements();
  // The block shared by its copies (the vector and its control block), then the vector's array.
  std::size_t n = 48 + reqs.capacity() * sizeof(core::SelectorRequirement) + 16;
  for (const auto& r : reqs) {
    n += heapBytes(r.key) + r.values.capacity() * sizeof(std::string) + 16;
    for (const auto& v : r.values) n += heapBytes(v);
  }
  return n;
}

}  // namespace

std::size_t Catalog::entryBytes(const CatalogEntry& e) {
  std::size_t text = heapBytes(e.key) + heapBytes(e.query) + heapBytes(e.error) +
                     heapBytes(e.object) + heapBytes(e.ns) + heapBytes(e.metricName) +
                     2 * heapBytes(e.requester);
  std::size_t selector = selectorBytes(e.selector);
  std::size_t canonical = e.key.size() - e.ns.size() - e.metricName.size();  // its share of the key
  // The entry and its Demand, sharing one parsed selector and one block of flags, and both maps'
  // copies of the key.
  std::size_t catalog =
      sizeof(CatalogEntry) + 48 + sizeof(Demand) + selector + text + 2 * (heapBytes(e.key) + 64);
  // The published value and its identity: its selector text, query, error (which quotes the
  // query), labels (one per equality requirement), the identity's key and the retry map's key (the
  // snapshot's map views the identity's).
  std::size_t labels = 0;
  for (const auto& r : e.selector.requirements()) {
    if (r.values.size() == 1) labels += 96 + heapBytes(r.key) + heapBytes(r.values[0]);
  }
  std::size_t value =
      700 + 3 * (canonical + 17) + 2 * (e.query.size() + 17) + labels + 2 * (heapBytes(e.key) + 64);
  return catalog + value;
}

CatalogEntryPtr Catalog::resolveLocked(const Demand& demand) const {
  auto entry = resolveRulesLocked(demand);
  entry->bytes = entryBytes(*entry);
  return entry;
}

std::shared_ptr<CatalogEntry> Catalog::resolveRulesLocked(const Demand& demand) const {
  auto entry = std::make_shared<CatalogEntry>();
  entry->key = core::metricKey(demand.ns, demand.metricName, demand.selector.canonical());
  entry->keyHash = core::hashKey(entry->key);
  entry->ns = demand.ns;
  entry->metricName = demand.metricName;
  entry->selector = demand.selector;
  entry->registeredAt = demand.registeredAt;
  entry->requester = demand.requester;
  entry->demand = demand.stamp;
  entry->served = demand.served;
  entry->attempted = demand.attempted;
  entry->maxAge = options_.maxAge;
  entry->window = std::min(std::max(options_.maxAge, options_.bucketSize), options_.maxWindow);
  entry->backend = options_.defaultBackend;
  const std::string& m = demand.metricName;

  // Rule 1.
  if (m.starts_with(kReferencePrefix)) {
    entry->rule = Rule::kReference;
    if (!options_.useDatadogMetrics) {
      entry->errorCode = 404;
      entry->error =
          "metric \"" + m +
          "\" names a DatadogMetric, but DatadogMetric support is off: start xmetrics with "
          "--use-datadogmetric-crd=true (DD_EXTERNAL_METRICS_PROVIDER_USE_DATADOGMETRIC_CRD)";
      return entry;
    }
    auto reference = parseReference(m);
    if (!reference) {
      entry->errorCode = 400;
      entry->error = reference.error() + "; fix the HPA's metric name";
      return entry;
    }
    std::string id = reference->ns + "/" + reference->name;
    auto it = objects_.find(id);
    if (it == objects_.end()) {
      entry->object = id;
      entry->errorCode = 404;
      entry->error = "DatadogMetric " + id + " not found: create a DatadogMetric named \"" +
                     reference->name + "\" in namespace \"" + reference->ns +
                     "\", or fix the HPA's metric name";
      return entry;
    }
    fromObject(*entry, Rule::kReference, it->second);
    return entry;
  }

  if (options_.useDatadogMetrics) {
    // Rule 2: what users mean when they name the HPA's metric after the object.
    if (isObjectName(m)) {
      if (auto it = objects_.find(demand.ns + "/" + m); it != objects_.end()) {
        fromObject(*entry, Rule::kNamed, it->second);
        return entry;
      }
    }
  }
  std::string inlineQuery = inlineQueryOf(options_.defaultBackend, m, demand.selector);
  if (options_.useDatadogMetrics) {
    // Rule 3.
    if (auto it = byExternalName_.find(m); it != byExternalName_.end()) {
      for (const DatadogMetric* object : it->second) {
        if (object->query == inlineQuery) {
          fromObject(*entry, Rule::kExternalName, *object);
          return entry;
        }
      }
    }
  }
  // Rule 4, as configured when the `metrics` setting names the metric.
  entry->rule = Rule::kInline;
  entry->query = std::move(inlineQuery);
  if (const ConfiguredMetric* c = configuredFor(demand.ns, m)) {
    entry->configured = true;
    if (!c->backend.empty()) entry->backend = c->backend;
    entry->query = c->query.empty() ? inlineQueryOf(entry->backend, m, demand.selector) : c->query;
    entry->maxAge = c->maxAge.value_or(options_.maxAge);
    entry->window = std::min(std::max(c->timeWindow.value_or(entry->maxAge), options_.bucketSize),
                             options_.maxWindow);
  }
  // Autogen objects mirror what the Cluster Agent would generate: inline Datadog queries only.
  if (options_.useDatadogMetrics && options_.autogen && !entry->configured) {
    auto name = autogenName(entry->query);
    auto existing = autogenByName_.find(name);
    // Only an object that asks the same query: one edited since (or hashed from another text)
    // would get this query's status.
    bool same =
        existing != autogenByName_.end() && objects_.at(existing->second).query == entry->query;
    entry->object = same ? existing->second : options_.autogenNamespace + "/" + name;
  }
  // Never sent: the query stays in the entry so status shows what was refused.
  if (speaksDatadogSyntax(entry->backend)) {
    if (auto problem = query::validateForBatch(entry->query)) {
      const ConfiguredMetric* c = entry->configured ? configuredFor(demand.ns, m) : nullptr;
      entry->errorCode = 422;
      if (c && !c->query.empty()) {
        entry->error = "the query the metrics setting gives metric \"" + m +
                       "\" is refused: " + *problem +
                       "; fix that entry of the config file (--config)";
      } else {
        entry->error = "the query \"" + entry->query + "\" made for metric \"" + m +
                       "\" is refused: " + *problem +
                       "; use the metric's Datadog name in the HPA's metric.name";
        if (options_.useDatadogMetrics && isObjectName(m)) {
          entry->error += ", or create a DatadogMetric named \"" + m + "\" in namespace \"" +
                          demand.ns + "\" to give it a query";
        }
      }
    }
  }
  return entry;
}

Catalog::Demand& Catalog::demandLocked(const std::string& key, std::string_view ns,
                                       std::string_view metricName,
                                       const core::LabelSelector& selector,
                                       core::Clock::time_point now) {
  auto it = demands_.find(key);
  if (it != demands_.end()) return it->second;
  return demands_.emplace(key, newDemand(std::string(ns), lowercase(metricName), selector, now))
      .first->second;
}

Catalog::Demand Catalog::newDemand(std::string ns, std::string metricName,
                                   core::LabelSelector selector, core::Clock::time_point now) {
  struct Marks {
    std::atomic<int64_t> stamp{0};
    std::atomic<bool> served{false};
    std::atomic<bool> attempted{false};
  };
  auto marks = std::make_shared<Marks>();
  Demand demand{std::move(ns), std::move(metricName), std::move(selector),
                core::DemandStamp(marks, &marks->stamp), now};
  demand.served = std::shared_ptr<std::atomic<bool>>(marks, &marks->served);
  demand.attempted = std::shared_ptr<std::atomic<bool>>(marks, &marks->attempted);
  return demand;
}

bool Catalog::heldLocked(const std::string& key) const {
  return references_.contains(key) || alwaysActive_.contains(key);
}

std::pair<std::size_t, std::size_t> Catalog::requestedUsageLocked() const {
  std::size_t count = 0, bytes = 0;
  for (const auto& [key, entry] : entries_) {
    if (heldLocked(key)) continue;
    ++count;
    bytes += entry->bytes;
  }
  return {count, bytes};
}

std::pair<std::size_t, std::size_t> Catalog::requestedUsage() const {
  std::lock_guard lock(mutex_);
  return requestedUsageLocked();
}

CatalogEntryPtr Catalog::ensure(std::string_view ns, std::string_view metricName,
                                const core::LabelSelector& selector, core::Clock::time_point now,
                                std::string* refused, std::string_view requester) {
  std::string key = core::metricKey(ns, metricName, selector.canonical());
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    it->second->touch(now);
    return it->second;
  }
  bool hadDemand = demands_.contains(key);
  auto& demand = demandLocked(key, ns, metricName, selector, now);
  if (demand.requester.empty()) demand.requester = requester;
  auto entry = resolveLocked(demand);
  auto refuse = [&](std::string why) -> CatalogEntryPtr {
    if (refused) *refused = std::move(why);
    if (!hadDemand) demands_.erase(key);
    return nullptr;
  };
  // The directly requested entry that was fetched, never had a value, and was asked for longest
  // ago, among those `mine` accepts (metrics an HPA names or always-active objects never).
  auto victimOf = [&](auto mine) {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (heldLocked(it->first) || it->second->everServed() || !it->second->everAttempted() ||
          !mine(*it->second)) {
        continue;
      }
      if (victim == entries_.end() ||
          it->second->lastRequested() < victim->second->lastRequested()) {
        victim = it;
      }
    }
    return victim;
  };
  auto evict = [&](std::unordered_map<std::string, CatalogEntryPtr>::iterator victim) {
    demands_.erase(victim->first);
    totalBytes_ -= victim->second->bytes;
    entries_.erase(victim);
    wanted_.reset();
    ++evicted_;
  };
  auto full = [&](std::size_t count, std::size_t bytes) {
    return count + 1 > options_.maxRequested || bytes + entry->bytes > options_.maxRequestedBytes;
  };
  // Every entry counted (HPA-named ones too) is an upper bound on the direct requests' usage:
  // far from the bounds a new name needs no scan of the catalog.
  if (!full(entries_.size(), totalBytes_)) {
    entry->touch(now);
    totalBytes_ += entry->bytes;
    entries_[key] = entry;
    wanted_.reset();
    return entry;
  }
  if (entry->bytes > options_.maxRequestedBytes) {
    return refuse("this metric alone would take " + std::to_string(entry->bytes >> 10) +
                  " KiB (--max-metrics-bytes " + std::to_string(options_.maxRequestedBytes >> 10) +
                  " KiB; long selectors cost the most)");
  }
  // Victims are chosen first and evicted only if the new entry then fits: a refusal evicts
  // nothing. Per user (below) and then overall.
  std::unordered_set<std::string> chosen;
  std::unordered_map<std::string, std::size_t> perUser;  // direct entries by requester
  auto [count, bytes] = requestedUsageLocked();
  auto choose = [&](auto mine) {
    auto victim =
        victimOf([&](const CatalogEntry& e) { return !chosen.contains(e.key) && mine(e); });
    if (victim == entries_.end()) return false;
    chosen.insert(victim->first);
    --count;
    bytes -= victim->second->bytes;
    if (auto it = perUser.find(victim->second->requester); it != perUser.end() && it->second > 0) {
      --it->second;
    }
    return true;
  };
  if (full(count, bytes) && options_.maxRequestedPerRequester > 0) {
    for (const auto& [k, e] : entries_) {
      if (!heldLocked(k)) ++perUser[e->requester];
    }
  }
  // When full, one caller's share comes first: a caller at its share makes room among its own,
  // and is refused once all of its own have had values, before it can touch anyone else's. Below
  // the bounds anyone may use all of them (one client can poll max-metrics metrics).
  if (full(count, bytes) && options_.maxRequestedPerRequester > 0 && !requester.empty()) {
    std::size_t own = perUser[std::string(requester)];
    if (own + 1 > options_.maxRequestedPerRequester) {
      if (!choose([&](const CatalogEntry& e) { return e.requester == requester; })) {
        return refuse("user \"" + std::string(requester) + "\" already has " + std::to_string(own) +
                      " directly requested metrics polled (--max-metrics-per-user " +
                      std::to_string(options_.maxRequestedPerRequester) + ")");
      }
    }
  }
  // Full (in entries or in bytes): never-served direct requests make room, oldest first, those
  // of users past their share before anyone's. Only when every direct request has had a value is
  // the new name refused.
  auto overShare = [&](const CatalogEntry& e) {
    auto it = perUser.find(e.requester);
    return !e.requester.empty() && it != perUser.end() &&
           it->second >= options_.maxRequestedPerRequester;
  };
  while (full(count, bytes)) {
    bool found = false;
    for (bool anyone : {false, true}) {
      if (found) break;
      found = choose([&](const CatalogEntry& e) { return anyone || overShare(e); });
    }
    if (!found) {
      return refuse(count + 1 > options_.maxRequested
                        ? std::to_string(count) +
                              " directly requested metrics are already polled (--max-metrics " +
                              std::to_string(options_.maxRequested) + ")"
                        : "the directly requested metrics already polled take " +
                              std::to_string(bytes >> 10) + " KiB and this one would take " +
                              std::to_string(entry->bytes >> 10) +
                              " KiB more (--max-metrics-bytes " +
                              std::to_string(options_.maxRequestedBytes >> 10) +
                              " KiB; long selectors cost the most)");
    }
  }
  for (const auto& k : chosen) evict(entries_.find(k));
  entry->touch(now);
  totalBytes_ += entry->bytes;
  entries_[key] = entry;
  wanted_.reset();
  return entry;
}

std::vector<CatalogEntryPtr> Catalog::recomputeLocked() {
  std::vector<CatalogEntryPtr> changed;
  for (const auto& [key, demand] : demands_) {
    auto next = resolveLocked(demand);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second->sameResolution(*next)) continue;
    if (it != entries_.end()) totalBytes_ -= it->second->bytes;
    totalBytes_ += next->bytes;
    entries_[key] = next;
    wanted_.reset();
    changed.push_back(std::move(next));
  }
  return changed;
}

void Catalog::subscribe(ChangeSink sink) {
  std::lock_guard lock(sinkMutex_);
  sink_ = std::move(sink);
}

std::vector<CatalogEntryPtr> Catalog::published(std::vector<CatalogEntryPtr> changed) {
  // Outside mutex_: the sink may call back into the catalog. Under sinkMutex_, so a subscriber
  // that unsubscribes (its destructor) never races a delivery in progress.
  std::lock_guard lock(sinkMutex_);
  if (sink_ && !changed.empty()) sink_(changed);
  return changed;
}

std::vector<CatalogEntryPtr> Catalog::setReferences(const std::vector<Reference>& references,
                                                    core::Clock::time_point now) {
  return published(applyReferences(references, now));
}

std::vector<CatalogEntryPtr> Catalog::setDatadogMetrics(std::vector<DatadogMetric> objects,
                                                        core::Clock::time_point now) {
  return published(applyDatadogMetrics(std::move(objects), now));
}

std::vector<CatalogEntryPtr> Catalog::setConfigured(std::vector<ConfiguredMetric> configured) {
  return published(applyConfigured(std::move(configured)));
}

std::vector<CatalogEntryPtr> Catalog::applyReferences(const std::vector<Reference>& references,
                                                      core::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::unordered_map<std::string, std::vector<std::string>> next;
  std::vector<CatalogEntryPtr> added;
  for (const auto& r : references) {
    std::string key = core::metricKey(r.ns, r.metricName, r.selector.canonical());
    auto& owners = next[key];
    owners.push_back(r.owner);
    if (owners.size() > 1) continue;
    auto& demand = demandLocked(key, r.ns, r.metricName, r.selector, now);
    auto it = entries_.find(key);
    // New to polling: never seen, or known only as a direct request that has expired.
    bool polledBefore =
        it != entries_.end() &&
        (heldLocked(key) || now - it->second->lastRequested() <= options_.inactiveAfter);
    if (it == entries_.end()) {
      auto entry = resolveLocked(demand);
      totalBytes_ += entry->bytes;
      entries_[key] = entry;
      wanted_.reset();
      added.push_back(std::move(entry));
    } else if (!polledBefore) {
      added.push_back(it->second);
    }
  }
  for (auto& [key, owners] : next) {
    std::ranges::sort(owners);
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  }
  references_ = std::move(next);
  return added;
}

std::vector<CatalogEntryPtr> Catalog::applyDatadogMetrics(std::vector<DatadogMetric> objects,
                                                          core::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  objects_.clear();
  byExternalName_.clear();
  autogenByName_.clear();
  for (auto& o : objects) {
    refuseUnbatchable(o, options_.defaultBackend);
    std::string id = o.id();
    objects_.insert_or_assign(std::move(id), std::move(o));
  }
  std::unordered_map<std::string, std::string> alwaysActive;
  for (const auto& [id, o] : objects_) {
    if (!o.autogen && !o.externalMetricName.empty()) {
      byExternalName_[o.externalMetricName].push_back(&o);
    }
    if (o.autogen) {
      // Ours first: of two copies of one query, the one in autogenNamespace serves.
      auto [it, added] = autogenByName_.emplace(o.name, id);
      if (!added && o.ns == options_.autogenNamespace) it->second = id;
    }
    if (o.alwaysActive) {
      // Polled under its reference name in its own namespace, as a request for it would be.
      std::string name = std::string(kReferencePrefix) + o.ns + ":" + o.name;
      std::string key = core::metricKey(o.ns, name, "");
      demandLocked(key, o.ns, name, core::LabelSelector(), now);  // resolved just below
      alwaysActive.emplace(key, id);
    }
  }
  alwaysActive_ = std::move(alwaysActive);
  return recomputeLocked();
}

std::vector<CatalogEntryPtr> Catalog::applyConfigured(std::vector<ConfiguredMetric> configured) {
  std::lock_guard lock(mutex_);
  options_.configured = std::move(configured);
  return recomputeLocked();
}

std::vector<std::string> Catalog::referencesOf(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = references_.find(key);
  return it == references_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<bool> Catalog::referenced(const std::vector<CatalogEntryPtr>& entries) const {
  std::vector<bool> out(entries.size(), false);
  std::lock_guard lock(mutex_);
  if (references_.empty()) return out;
  for (std::size_t i = 0; i < entries.size(); ++i) out[i] = references_.contains(entries[i]->key);
  return out;
}

std::shared_ptr<const std::vector<CatalogEntryPtr>> Catalog::wanted(core::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  // A metric stays while an HPA names it, while its object is always-active, or while someone
  // asked for it recently.
  std::erase_if(entries_, [&](const auto& kv) {
    bool drop = now - kv.second->lastRequested() > options_.inactiveAfter && !heldLocked(kv.first);
    if (drop) {
      demands_.erase(kv.first);
      totalBytes_ -= kv.second->bytes;
      wanted_.reset();
    }
    return drop;
  });
  // Demands whose entry went (never the case today, but keep the two maps one function). Every
  // entry has its demand, so there is such a demand exactly when demands outnumber entries: the
  // walk (a look-up per metric) is made only then.
  if (demands_.size() > entries_.size()) {
    std::erase_if(demands_, [&](const auto& kv) { return !entries_.contains(kv.first); });
  }
  // Shared until the entries change: a refresh of an unchanged catalog copies no entries.
  if (!wanted_) {
    auto out = std::make_shared<std::vector<CatalogEntryPtr>>();
    out->reserve(entries_.size());
    for (const auto& [key, entry] : entries_) out->push_back(entry);
    wanted_ = std::move(out);
  }
  return wanted_;
}

std::vector<CatalogEntryPtr> Catalog::entries() const {
  std::lock_guard lock(mutex_);
  std::vector<CatalogEntryPtr> out;
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry);
  return out;
}

std::vector<DatadogMetric> Catalog::datadogMetrics() const {
  std::lock_guard lock(mutex_);
  std::vector<DatadogMetric> out;
  out.reserve(objects_.size());
  for (const auto& [id, o] : objects_) out.push_back(o);
  return out;
}

std::map<std::string, std::vector<std::string>> Catalog::objectReferences() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [key, owners] : references_) {
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second->object.empty()) continue;
    auto& list = out[it->second->object];
    list.insert(list.end(), owners.begin(), owners.end());
  }
  for (auto& [id, owners] : out) {
    std::ranges::sort(owners);
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
  }
  return out;
}

std::vector<std::string> Catalog::describe() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> lines;
  for (const auto& [key, e] : entries_) {
    std::string line = e->ns + " " + e->metricName + "{" + e->selector.canonical() + "} -> " +
                       e->resolution() + " backend=" + e->backend + " query=" + e->query +
                       " window=" + std::to_string(e->window.count()) +
                       " maxAge=" + std::to_string(e->maxAge.count());
    if (e->errorCode) line += " error=" + std::to_string(e->errorCode) + ":" + e->error;
    if (auto it = references_.find(key); it != references_.end()) {
      line += " owners=";
      for (const auto& o : it->second) line += o + ";";
    }
    if (alwaysActive_.contains(key)) line += " always-active";
    lines.push_back(std::move(line));
  }
  std::ranges::sort(lines);
  return lines;
}

std::size_t Catalog::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace xmetrics::catalog

#include "poller/poller.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

#include "core/strings.hpp"
#include "core/thread_name.hpp"
#include "core/time_format.hpp"

namespace xmetrics::poller {
namespace {

// Clocks disagree by seconds, not minutes: a point stamped further ahead than this is an error.
constexpr std::chrono::seconds kMaxFutureSkew{60};

core::Labels equalityLabels(const core::LabelSelector& selector) {
  core::Labels labels;
  for (const auto& r : selector.requirements()) {
    if (r.op == core::SelectorOperator::kEquals && r.values.size() == 1)
      labels[r.key] = r.values[0];
  }
  return labels;
}

// Whether `identity` was made from `entry` (the same object, not an equal one).
bool sameSource(const store::MetricIdentity& identity, const catalog::CatalogEntryPtr& entry) {
  return !identity.source.owner_before(entry) && !entry.owner_before(identity.source);
}

// Whether `value` would render the body `old` has.
bool samePoint(const store::MetricValue& old, const store::MetricValue& value) {
  return old.body && old.sample && value.sample && old.sample->value == value.sample->value &&
         old.sample->time == value.sample->time &&
         (old.metric == value.metric || (old.metric->labels == value.metric->labels &&
                                         old.metric->metricName == value.metric->metricName));
}

}  // namespace

store::MetricIdentityPtr Poller::identityOf(const catalog::CatalogEntryPtr& entry) const {
  store::MetricIdentity identity;
  identity.ns = entry->ns;
  identity.metricName = entry->metricName;
  identity.selector = entry->selector.canonical();
  identity.query = entry->query;
  identity.backend =
      entry->backend.empty() ? std::string(backends_.front()->name()) : entry->backend;
  identity.resolution = entry->resolution();
  identity.object = entry->object;
  identity.maxAge = entry->maxAge;
  identity.grace = options_.queryValidityPeriod;
  identity.labels = equalityLabels(entry->selector);
  identity.demand = entry->demand;
  identity.source = entry;
  return store::shareIdentity(std::move(identity));
}

Poller::Poller(catalog::Catalog& catalog, std::vector<backends::Backend*> backends,
               store::ValueStore& store, PollerOptions options, ClockFn clock)
    : catalog_(catalog),
      backends_(std::move(backends)),
      store_(store),
      options_(options),
      clock_(std::move(clock)) {
  status_.lastTick = std::chrono::steady_clock::now();
  for (std::size_t b = 0; b < backends_.size(); ++b) {
    auto lane = std::make_unique<Lane>();
    lane->index = b;
    lane->firstFetchesOwnThread = backends_[b]->batchesItself();
    lane->status.backend = std::string(backends_[b]->name());
    lane->status.lastTick = status_.lastTick;
    lanes_.push_back(std::move(lane));
  }
  for (auto* backend : backends_) backend->onHealthChange([this] { publishStatus(); });
  publishStatus();
  // What the catalog re-resolves (a watch event, a config reload) is fetched ahead of the cycle.
  catalog_.subscribe([this](const std::vector<catalog::CatalogEntryPtr>& changed) {
    for (const auto& entry : changed) fetchNow(entry, [] {});
  });
}

Poller::~Poller() {
  catalog_.subscribe({});
  stop();
  for (auto* backend : backends_) backend->onHealthChange({});
}

std::size_t Poller::laneIndexOf(std::string_view backendName) const {
  for (std::size_t b = 0; b < backends_.size(); ++b) {
    if (backends_[b]->name() == backendName) return b;
  }
  return 0;
}

Poller::Lane& Poller::laneOf(const catalog::CatalogEntry& entry) {
  return *lanes_[entry.backend.empty() ? 0 : laneIndexOf(entry.backend)];
}

PollerStatus Poller::statusLocked() const {
  PollerStatus out = status_;
  out.loops.clear();
  bool first = true;
  for (const auto& lane : lanes_) {
    const auto& l = lane->status;
    out.loops.push_back(l);
    out.metrics = (first ? 0 : out.metrics) + l.metrics;
    out.queries = (first ? 0 : out.queries) + l.queries;
    out.cycles = first ? l.cycles : std::min(out.cycles, l.cycles);
    out.lastCycleStart = first ? l.lastCycleStart : std::min(out.lastCycleStart, l.lastCycleStart);
    out.lastCycleDuration =
        first ? l.lastCycleDuration : std::max(out.lastCycleDuration, l.lastCycleDuration);
    out.lastTick = first ? l.lastTick : std::min(out.lastTick, l.lastTick);
    if (l.fetchingSince) {
      out.fetchingSince =
          out.fetchingSince ? std::min(*out.fetchingSince, *l.fetchingSince) : *l.fetchingSince;
    }
    first = false;
  }
  return out;
}

void Poller::publishStatus() {
  std::lock_guard publishing(publishStatusMutex_);
  store::ServiceStatus next;
  {
    std::lock_guard lock(mutex_);
    next.poller = statusLocked();
  }
  next.backends.reserve(backends_.size());
  for (const auto* backend : backends_) {
    next.backends.push_back({std::string(backend->name()), backend->health()});
  }
  store_.publishStatus(std::move(next));
}

std::expected<std::string, std::string> Poller::fetchFirst(
    std::string_view ns, std::string_view metricName, const core::LabelSelector& selector,
    core::Clock::time_point now, std::string_view requester, std::function<void()> done) {
  std::string refused;
  auto entry = catalog_.ensure(ns, metricName, selector, now, &refused, requester);
  if (!entry) return std::unexpected(std::move(refused));
  std::string query = entry->query;
  fetchNow(std::move(entry), std::move(done));
  return query;
}

void Poller::want(std::string_view ns, std::string_view metricName,
                  const core::LabelSelector& selector, core::Clock::time_point now) {
  auto entry = catalog_.ensure(ns, metricName, selector, now);
  if (entry && !store_.snapshot()->find(entry->key)) fetchNow(entry, [] {});
}

void Poller::start() {
  for (auto& lane : lanes_) {
    // The first-fetch thread first: first fetches queued before start() wait for it.
    if (lane->firstFetchesOwnThread) {
      lane->firstFetchThread = std::thread([this, l = lane.get()] {
        core::nameThisThread("xm-first-fetch");
        runFirstFetches(*l);
      });
    }
    lane->thread = std::thread([this, l = lane.get()] {
      core::nameThisThread("xm-refresh");
      run(*l);
    });
  }
}

void Poller::runFirstFetches(Lane& lane) {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait(lock, [&] {
      return stopping_ ||
             (!lane.firstFetches.empty() && lane.activeFirstFetches < kMaxFirstFetches);
    });
    if (stopping_) break;
    auto urgent = std::move(lane.firstFetches);
    lane.firstFetches.clear();
    if (!leading()) {
      // Leadership moved since they were queued: the leader answers them, through the default
      // backend's loop.
      auto& first = lanes_.front()->urgent;
      for (auto& u : urgent) first.push_back(std::move(u));
      wake_.notify_all();
      continue;
    }
    ++lane.activeFirstFetches;
    // Detached: stop() waits for activeFirstFetches to reach 0 (the backends are cancelled first,
    // so a fetch waiting for its slot returns at once).
    std::thread([this, &lane, urgent = std::move(urgent)]() mutable {
      std::vector<catalog::CatalogEntryPtr> entries;
      entries.reserve(urgent.size());
      for (auto& [entry, done] : urgent) entries.push_back(entry);
      fetchAndPublish(lane, entries, false);
      for (auto& [entry, done] : urgent) done();
      urgent.clear();
      entries.clear();
      std::lock_guard finished(mutex_);
      --lane.activeFirstFetches;
      wake_.notify_all();
    }).detach();
  }
}

void Poller::stop() {
  std::vector<Urgent> abandoned;
  bool running = false;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // Pending first fetches are dropped, not answered: their waiters hold their own deadlines.
    for (auto& lane : lanes_) {
      abandoned.push_back(std::move(lane->urgent));
      lane->urgent.clear();
      abandoned.push_back(std::move(lane->firstFetches));
      lane->firstFetches.clear();
      running = running || lane->thread.joinable();
    }
  }
  // A paced refresh, or a backend that stopped answering, could otherwise hold us for minutes.
  if (running) {
    for (auto* backend : backends_) backend->cancel();
  }
  wake_.notify_all();
  for (auto& lane : lanes_) {
    if (lane->thread.joinable()) lane->thread.join();
    if (lane->firstFetchThread.joinable()) lane->firstFetchThread.join();
  }
  {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] {
      return std::all_of(lanes_.begin(), lanes_.end(),
                         [](const auto& l) { return l->activeFirstFetches == 0; });
    });
  }
}

void Poller::fetchNow(catalog::CatalogEntryPtr entry, std::function<void()> done) {
  {
    std::lock_guard lock(mutex_);
    // A follower's requests all go to the leader, through the default backend's loop.
    auto& lane = leading() ? laneOf(*entry) : *lanes_.front();
    bool ownThread = leading() && lane.firstFetchesOwnThread;
    (ownThread ? lane.firstFetches : lane.urgent).emplace_back(std::move(entry), std::move(done));
  }
  wake_.notify_all();
}

PollerStatus Poller::status() const {
  std::lock_guard lock(mutex_);
  return statusLocked();
}

void Poller::run(Lane& lane) {
  const bool followsLeader = lane.index == 0;
  auto nextRefresh = std::chrono::steady_clock::now();
  auto nextFollow = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    bool leader = leading();
    auto wakeAt = leader ? std::min(nextRefresh, nextRetry(lane)) : nextFollow;
    if (!leader && followsLeader && !followWaiting_.empty()) {
      // A first request waits for the leader's value: ask again soon.
      wakeAt = std::min(wakeAt, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    }
    // First-fetch threads schedule retries too (and notify): one due sooner wakes this loop.
    wake_.wait_until(lock, wakeAt, [&] {
      return stopping_ || !lane.urgent.empty() || (leader && nextRetry(lane) < wakeAt);
    });
    if (stopping_) break;
    lane.status.lastTick = std::chrono::steady_clock::now();
    auto urgent = std::move(lane.urgent);
    lane.urgent.clear();
    if (!leading()) {
      // Only the default backend's loop talks to the leader; the others hand it what they hold.
      if (!followsLeader) {
        auto& first = lanes_.front()->urgent;
        for (auto& u : urgent) first.push_back(std::move(u));
        bool handed = !urgent.empty();
        nextFollow = std::chrono::steady_clock::now() + options_.followPeriod;
        nextRefresh = std::chrono::steady_clock::now();
        if (handed) wake_.notify_all();
        continue;
      }
      status_.following = true;
      lock.unlock();
      publishStatus();
      followLeader(std::move(urgent));
      publishStatus();
      nextFollow = std::chrono::steady_clock::now() + options_.followPeriod;
      // Whenever this replica takes over, its first refresh starts at once: the values it holds
      // came from the old leader and must not wait a whole period to be refreshed.
      nextRefresh = std::chrono::steady_clock::now();
      lock.lock();
      continue;
    }
    if (followsLeader) {
      status_.following = false;
      // Requests that waited for the old leader are now ours to fetch, each by its backend's loop.
      for (auto& w : followWaiting_) {
        auto& to = laneOf(*w.entry);
        (&to == &lane ? urgent : to.urgent).emplace_back(std::move(w.entry), std::move(w.done));
      }
      // So are those handed to this loop while following (every request went to the leader
      // through it): each to its own backend's loop.
      bool handed = !followWaiting_.empty();
      std::erase_if(urgent, [&](auto& u) {
        auto& to = laneOf(*u.first);
        if (&to == &lane) return false;
        to.urgent.push_back(std::move(u));
        handed = true;
        return true;
      });
      if (handed) wake_.notify_all();
      followWaiting_.clear();
    }
    lock.unlock();
    publishStatus();
    if (!urgent.empty()) {
      std::vector<catalog::CatalogEntryPtr> entries;
      entries.reserve(urgent.size());
      for (auto& [entry, done] : urgent) entries.push_back(entry);
      fetchAndPublish(lane, entries, false);
      for (auto& [entry, done] : urgent) done();
    }
    if (auto due = dueRetries(lane, std::chrono::steady_clock::now()); !due.empty()) {
      fetchAndPublish(lane, due, false);
    }
    if (std::chrono::steady_clock::now() >= nextRefresh) {
      refresh(lane);
      // Fixed cadence from the schedule, not from when the cycle ended, so cycles do not drift.
      nextRefresh += options_.refreshPeriod;
      if (nextRefresh < std::chrono::steady_clock::now()) {
        nextRefresh = std::chrono::steady_clock::now() + options_.refreshPeriod;
      }
    }
    lock.lock();
  }
  // Requests still waiting for the leader are answered by their own deadlines.
  if (followsLeader) followWaiting_.clear();
}

void Poller::followLeader(
    std::vector<std::pair<catalog::CatalogEntryPtr, std::function<void()>>> urgent) {
  auto steadyNow = std::chrono::steady_clock::now();
  for (auto& [entry, done] : urgent) followWaiting_.push_back({entry, std::move(done), steadyNow});
  replication::ReplicateRequest request{.generation = leaderGeneration_};
  auto now = clock_();
  // Demand: what waits for a first value, and what was requested here since the last exchange (so
  // the leader keeps polling metrics only this replica is asked for).
  std::set<std::string> sent;
  auto add = [&](const catalog::CatalogEntry& e) {
    if (sent.insert(e.key).second) {
      request.demand.push_back({e.ns, e.metricName, e.selector.canonical()});
    }
  };
  for (const auto& w : followWaiting_) add(*w.entry);
  // Followers never refresh, so expire what nobody asked for here (as refreshAll does).
  for (const auto& e : *catalog_.wanted(now)) {
    if (e->lastRequested() > demandSentUpTo_) add(*e);
  }
  for (const auto& [key, mirrored] : mirrorDemand_) {
    const auto& [stamp, demand] = mirrored;
    auto last =
        core::Clock::time_point(core::Clock::duration(stamp->load(std::memory_order_relaxed)));
    if (last > demandSentUpTo_ && sent.insert(key).second) request.demand.push_back(demand);
  }
  auto result = options_.follow ? options_.follow(request)
                                : std::unexpected(std::string("no leader to follow"));
  if (result) {
    demandSentUpTo_ = now;
    leaderGeneration_ = result->generation;
    if (result->values) {
      publishReplica(std::move(*result->values));
      holdsLeaderValues_ = true;
    }
  }
  {
    std::lock_guard lock(mutex_);
    ++status_.followExchanges;
    if (result) {
      status_.followError.clear();
      // Readiness counts from the first exchange that brought values, not from any answer.
      if (holdsLeaderValues_) status_.lastFollow = now;
    } else {
      status_.followError = result.error();
    }
  }
  auto snapshot = store_.snapshot();
  std::erase_if(followWaiting_, [&](Waiting& w) {
    // The request's own deadline (first-fetch-timeout) answers it if the leader is slow; after 10 s
    // it is dropped here.
    bool answered = snapshot->find(w.entry->key) != nullptr ||
                    std::chrono::steady_clock::now() - w.since > std::chrono::seconds(10);
    if (answered) w.done();
    return answered;
  });
}

void Poller::publishReplica(std::vector<store::MetricValue> values) {
  std::lock_guard publishing(publishValuesMutex_);
  auto previous = store_.snapshot();
  std::unordered_map<std::string, catalog::CatalogEntryPtr> ours;
  for (const auto& e : catalog_.entries()) ours.emplace(e->key, e);
  auto map = std::make_shared<store::ValueMap>();
  map->reserve(values.size());
  std::set<std::string> seen;
  for (auto& v : values) {
    // The names are the leader's; the demand stamp they carry is this replica's.
    store::MetricIdentity identity = *v.metric;
    std::string key = identity.key;
    auto value = std::make_shared<store::MetricValue>(std::move(v));
    replication::Demand asked{identity.ns, identity.metricName, identity.selector};
    if (auto it = ours.find(key); it != ours.end()) {
      identity.demand = it->second->demand;
      it->second->markAttempted();
      // The leader's value counts as ours: a follower's max-metrics keeps what has values.
      if (value->sample) it->second->markServed();
      mirrorDemand_.erase(key);
    } else {
      auto& mirrored = mirrorDemand_[key];
      if (!mirrored.first) mirrored = {std::make_shared<std::atomic<int64_t>>(0), std::move(asked)};
      identity.demand = mirrored.first;
    }
    value->metric = store::shareIdentity(std::move(identity));
    seen.insert(key);
    auto old = previous->find(key);
    value->body = old && samePoint(*old, *value) ? old->body : store::renderValueList(*value);
    map->put(std::move(value));
  }
  // The leader dropped them: so do we.
  std::erase_if(mirrorDemand_, [&](const auto& kv) { return !seen.contains(kv.first); });
  store::ValueSnapshot next;
  next.base = std::move(map);
  next.publishedAt = clock_();
  store_.publish(std::move(next));
}

void Poller::noteOutcomes(Lane& lane, const std::vector<catalog::CatalogEntryPtr>& entries,
                          const std::vector<std::pair<std::size_t, bool>>& outcomes) {
  auto period = std::chrono::duration_cast<std::chrono::milliseconds>(options_.refreshPeriod);
  auto steadyNow = std::chrono::steady_clock::now();
  std::lock_guard lock(lane.retriesMutex);
  for (const auto& [i, hasValue] : outcomes) {
    const auto& entry = entries[i];
    if (hasValue) {
      if (!lane.retries.empty()) lane.retries.erase(entry->key);
      continue;
    }
    auto it = lane.retries.find(entry->key);
    auto delay =
        it == lane.retries.end() ? options_.firstRetry : std::min(it->second.delay * 2, period);
    lane.retries[entry->key] = {entry, steadyNow + delay, delay};
  }
}

std::vector<catalog::CatalogEntryPtr> Poller::dueRetries(
    Lane& lane, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(lane.retriesMutex);
  std::vector<catalog::CatalogEntryPtr> due;
  for (const auto& [key, retry] : lane.retries) {
    if (retry.due <= now) due.push_back(retry.entry);
  }
  return due;
}

std::chrono::steady_clock::time_point Poller::nextRetry(Lane& lane) {
  std::lock_guard lock(lane.retriesMutex);
  auto next = std::chrono::steady_clock::time_point::max();
  for (const auto& [key, retry] : lane.retries) next = std::min(next, retry.due);
  return next;
}

void Poller::refreshAll() {
  for (auto& lane : lanes_) refresh(*lane);
}

void Poller::refreshBackend(std::string_view backend) {
  for (auto& lane : lanes_) {
    if (backends_[lane->index]->name() == backend) refresh(*lane);
  }
}

void Poller::refresh(Lane& lane) {
  auto started = std::chrono::steady_clock::now();
  auto now = clock_();
  auto all = catalog_.wanted(now);
  // One backend: the catalog's list is this loop's as it is, not copied.
  std::vector<catalog::CatalogEntryPtr> mine;
  if (lanes_.size() > 1) {
    std::ranges::copy_if(*all, std::back_inserter(mine),
                         [&](const catalog::CatalogEntryPtr& e) { return &laneOf(*e) == &lane; });
  }
  const auto& wanted = lanes_.size() > 1 ? mine : *all;
  auto referenced = catalog_.referenced(wanted);
  fetchAndPublish(lane, wanted, true, &referenced);
  {
    std::lock_guard lock(mutex_);
    ++lane.status.cycles;
    lane.status.lastCycleStart = now;
    lane.status.lastCycleDuration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started);
    lane.status.metrics = wanted.size();
    lane.status.lastTick = std::chrono::steady_clock::now();
  }
  publishStatus();
}

void Poller::setFetching(Lane& lane, bool fetching) {
  {
    std::lock_guard lock(mutex_);
    if (fetching) {
      lane.status.fetchingSince = std::chrono::steady_clock::now();
    } else {
      lane.status.fetchingSince.reset();
      lane.status.lastTick = std::chrono::steady_clock::now();
    }
  }
  publishStatus();
}

void Poller::fetchAndPublish(Lane& lane, const std::vector<catalog::CatalogEntryPtr>& entries,
                             bool fullCycle, const std::vector<bool>* referenced) {
  // Read before the clock: a first fetch that stamps its value after this refresh's `now`
  // publishes after this too, so the walk below that keeps such values is never skipped.
  uint64_t firstFetchesBefore = lane.firstFetchPublications.load();
  auto now = clock_();
  // A full refresh looks every value up once, here: the same lookups serve the publication below
  // unless another loop or a first fetch published in between.
  // The pointers point into `held`'s maps, which it keeps.
  auto held = store_.snapshot();
  std::vector<const store::MetricValuePtr*> heldValues;
  if (fullCycle) {
    heldValues.reserve(entries.size());
    for (const auto& e : entries) heldValues.push_back(held->lookup(e->key, e->keyHash));
  }
  // What may wait when the backend cannot afford the whole refresh: a metric no HPA names that has
  // a value already. First fetches and retries are always urgent.
  auto urgent = [&](std::size_t i) {
    if (!fullCycle || !referenced || i >= referenced->size() || (*referenced)[i]) return true;
    return !heldValues[i] || !(*heldValues[i])->sample;
  };
  auto& backend = *backends_[lane.index];
  // Identical queries over the same window (two HPAs, two namespaces, two selectors that translate
  // alike) are fetched once. Entries that cannot resolve are not fetched at all. The index views
  // the entries' query text (they outlive this call); the same text over another window (rare)
  // is told apart by a second look-up on the window.
  std::vector<backends::BackendQuery> queries;
  std::vector<backends::BackendResult> results;
  static constexpr std::size_t kNotFetched = std::numeric_limits<std::size_t>::max();
  std::unordered_map<std::string_view, std::size_t> queryIndex;
  std::map<std::pair<std::string_view, int64_t>, std::size_t> otherWindows;
  queryIndex.reserve(entries.size());
  std::vector<std::size_t> entryQuery(entries.size(), kNotFetched);
  std::vector<std::string> unknownBackend(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& entry = *entries[i];
    if (entry.errorCode) continue;
    if (!entry.backend.empty() && entry.backend != backend.name()) {
      unknownBackend[i] = "backend \"" + entry.backend + "\" is not running (--backends)";
      continue;
    }
    auto [it, inserted] = queryIndex.try_emplace(entry.query, queries.size());
    std::size_t index = it->second;
    if (inserted) {
      queries.push_back({entry.query, entry.window, false});
    } else if (queries[index].window != entry.window) {
      auto [other, added] =
          otherWindows.try_emplace({entry.query, entry.window.count()}, queries.size());
      if (added) queries.push_back({entry.query, entry.window, false});
      index = other->second;
    }
    entryQuery[i] = index;
    if (urgent(i)) queries[index].urgent = true;
  }
  uint64_t calls = 0;
  results.reserve(queries.size());
  // A backend that batches itself gets the whole refresh at once, to pace and parallelise it.
  std::size_t chunk =
      backend.batchesItself() ? std::max<std::size_t>(1, queries.size()) : options_.batchSize;
  for (std::size_t start = 0; start < queries.size(); start += chunk) {
    std::size_t n = std::min(chunk, queries.size() - start);
    // Only the lane's own thread marks the loop as fetching (liveness allows a long fetch from
    // then): a first fetch on its own thread ending must not clear a paced refresh's mark.
    bool marks = fullCycle || !lane.firstFetchesOwnThread;
    if (marks) setFetching(lane, true);
    auto part = std::span(queries).subspan(start, n);
    auto batch = fullCycle ? backend.fetch(part, now) : backend.fetchFirst(part, now);
    if (marks) setFetching(lane, false);
    ++calls;
    if (batch.size() != n) {
      // A backend bug must not shift answers onto the wrong metrics.
      batch.assign(n, std::unexpected(std::string("backend ") + std::string(backend.name()) +
                                      " answered " + std::to_string(batch.size()) +
                                      " results for " + std::to_string(n) + " queries"));
    }
    for (auto& r : batch) results.push_back(std::move(r));
  }

  // The snapshot is shared by every loop: merge into the newest one, one writer at a time.
  std::lock_guard publishing(publishValuesMutex_);
  auto previous = store_.snapshot();
  bool heldIsCurrent = fullCycle && previous == held;
  store::ValueSnapshot next;
  store::ValueMap fresh;
  fresh.reserve(entries.size());
  // Outcomes are noted under one lock after the walk, not one lock per metric.
  std::vector<std::pair<std::size_t, bool>> outcomes;
  outcomes.reserve(entries.size());
  static const store::MetricValuePtr kNoValue;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& entry = *entries[i];
    const auto* found = heldIsCurrent ? heldValues[i] : previous->lookup(entry.key, entry.keyHash);
    const store::MetricValuePtr& old = found ? *found : kNoValue;
    if (old && old->lastFetch > now) {
      // A first fetch (of a re-resolved entry, say) answered while this fetch was under way: its
      // value is the newer one.
      fresh.put(old);
      continue;
    }
    if (entryQuery[i] != kNotFetched && backends::isDeferred(results[entryQuery[i]]) && old &&
        old->metric->query == entry.query) {
      // Left for a later refresh to stay within the budget: the value stays as it was and ages.
      fresh.put(old);
      continue;
    }
    // The identity (names, query, rules) is the old value's while the entry is the same object;
    // a point is kept across failed fetches only while it answers the same question.
    auto value = std::make_shared<store::MetricValue>();
    bool sameEntry = old && sameSource(*old->metric, entries[i]);
    value->metric = sameEntry ? old->metric : identityOf(entries[i]);
    bool sameQuestion = old && (sameEntry || old->metric->query == entry.query) && !entry.errorCode;
    if (sameQuestion) {
      value->sample = old->sample;
      value->lastSuccess = old->lastSuccess;
    }
    value->errorCode = entry.errorCode;
    value->lastFetch = now;
    if (entry.errorCode) {
      value->error = entry.error;
      outcomes.emplace_back(i, true);  // nothing to retry until the objects change
      fresh.put(std::move(value));
      continue;
    }
    if (!unknownBackend[i].empty()) {
      value->error = unknownBackend[i];
      if (sameQuestion) value->body = old->body;  // the same names, labels and point
      outcomes.emplace_back(i, value->sample.has_value());
      fresh.put(std::move(value));
      continue;
    }
    const auto& result = results[entryQuery[i]];
    if (result && std::isfinite(result->value) && result->time > now + kMaxFutureSkew) {
      // Served, it would look fresh until the clock reached it, whatever the backend did next.
      value->error =
          "the backend returned a point stamped " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::seconds>(result->time - now).count()) +
          "s in the future (" + core::rfc3339(result->time) + ") for " + entry.query +
          "; its clock or this host's is wrong (more than " +
          std::to_string(kMaxFutureSkew.count()) + "s apart), so it is not served";
    } else if (result && std::isfinite(result->value)) {
      value->sample = *result;
      value->error.clear();
      value->lastSuccess = now;
    } else {
      // A backend's error quotes what it answered: valid UTF-8 before it is stored and served.
      value->error = result ? "the backend returned a non-finite value (" +
                                  std::to_string(result->value) + ") for " + entry.query
                     : backends::isDeferred(result)
                         ? "not fetched yet: the backend's rate-limit budget deferred " +
                               entry.query + " to a later refresh"
                         : core::validUtf8(result.error());
    }
    // Many refreshes find the same point again: share its body instead of rendering it anew.
    value->body = old && samePoint(*old, *value) ? old->body : store::renderValueList(*value);
    entries[i]->markAttempted();
    if (value->sample) entries[i]->markServed();
    outcomes.emplace_back(i, value->sample.has_value());
    fresh.put(std::move(value));
  }
  noteOutcomes(lane, entries, outcomes);
  if (fullCycle) {
    {
      // Metrics no longer wanted stop being retried too.
      std::lock_guard lock(lane.retriesMutex);
      std::erase_if(lane.retries, [&](const auto& kv) { return !fresh.contains(kv.first); });
    }
    // Counted, so that the walk below (one look-up per value) is made only when it finds something.
    bool firstFetchesMeanwhile = lane.firstFetchPublications.load() != firstFetchesBefore;
    if (lanes_.size() > 1 || firstFetchesMeanwhile) {
      // This loop's full refresh replaces its own values only; the other backends' stay as their
      // loops last published them, and so do first fetches published while it ran.
      previous->forEach([&](std::string_view, const store::MetricValuePtr& value) {
        if ((lanes_.size() > 1 && laneIndexOf(value->metric->backend) != lane.index) ||
            (firstFetchesMeanwhile && value->lastFetch > now)) {
          fresh.putIfAbsent(value);
        }
      });
    }
    next.base = std::make_shared<const store::ValueMap>(std::move(fresh));
  } else if (previous->recent.size() + fresh.size() <= store::ValueSnapshot::kMaxRecent) {
    // A first fetch adds to what is there, copying only the small recent level.
    next.base = previous->base;
    next.recent = previous->recent;
    fresh.forEach([&](std::string_view, const store::MetricValuePtr& v) { next.recent.put(v); });
  } else {
    auto merged = std::make_shared<store::ValueMap>(*previous->base);
    auto into = [&](std::string_view, const store::MetricValuePtr& v) { merged->put(v); };
    previous->recent.forEach(into);
    fresh.forEach(into);
    next.base = std::move(merged);
  }
  next.publishedAt = now;
  store_.publish(std::move(next));
  if (!fullCycle) ++lane.firstFetchPublications;
  {
    std::lock_guard lock(mutex_);
    status_.backendCalls += calls;
    if (fullCycle) {
      lane.status.queries = queries.size();
    } else {
      status_.firstFetches += entries.size();
    }
  }
  publishStatus();
}

}  // namespace xmetrics::poller

#include "poller/poller.hpp"

#include <gtest/gtest.h>
#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Part of the sanitizers' public interface (sanitizer/allocator_interface.h, which GCC 12's
// packages do not ship).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

#include <cmath>
#include <future>
#include <thread>

#include "support/fake_backend.hpp"

namespace xmetrics::poller {
namespace {

using namespace std::chrono_literals;

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }

core::LabelSelector selector(std::string_view text) { return *core::LabelSelector::parse(text); }

struct PollerTest : ::testing::Test {
  testing::FakeBackend backend;
  store::ValueStore values;
  catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s}};
  core::Clock::time_point now = at(1'800'000'000);
  Poller poller{
      catalog, backend, values, {.refreshPeriod = 30s, .batchSize = 2}, [this] { return now; }};
};

TEST_F(PollerTest, PublishesEveryWantedMetricWithItsRenderedBody) {
  auto e = catalog.ensure("default", "requests", selector("app=web"), now);
  backend.set(e->query, core::Sample{2.5, now - 10s});
  poller.refreshAll();
  auto v = values.snapshot()->find(e->key);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->sample);
  EXPECT_EQ(v->sample->value, 2.5);
  EXPECT_EQ(v->metric->query, "avg:requests{app:web}.rollup(30)");
  ASSERT_TRUE(v->body);
  EXPECT_NE(v->body->find("\"2500m\""), std::string::npos);
  EXPECT_EQ(v->metric->labels, (core::Labels{{"app", "web"}}));
  EXPECT_EQ(poller.status().cycles, 1u);
}

TEST_F(PollerTest, IdenticalQueriesAreFetchedOnceAndBatched) {
  // "app=web" and "app==web" are one selector; three distinct queries in batches of two.
  catalog.ensure("default", "a", selector("app=web"), now);
  catalog.ensure("default", "a", selector("app==web"), now);
  catalog.ensure("default", "b", {}, now);
  catalog.ensure("default", "c", {}, now);
  poller.refreshAll();
  auto calls = backend.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].size() + calls[1].size(), 3u);
  EXPECT_EQ(poller.status().queries, 3u);
}

TEST_F(PollerTest, AFailedFetchKeepsTheLastGoodSampleAndRecordsTheError) {
  auto e = catalog.ensure("default", "requests", {}, now);
  backend.set(e->query, core::Sample{7, now});
  poller.refreshAll();
  backend.set(e->query, std::unexpected(std::string("backend timed out")));
  now += 30s;
  poller.refreshAll();
  auto v = values.snapshot()->find(e->key);
  ASSERT_TRUE(v->sample);
  EXPECT_EQ(v->sample->value, 7);
  EXPECT_EQ(v->error, "backend timed out");
  EXPECT_EQ(v->lastFetch, now);
}

TEST_F(PollerTest, NonFiniteValuesAreErrorsNotNumbers) {
  auto e = catalog.ensure("default", "requests", {}, now);
  backend.set(e->query, core::Sample{std::nan(""), now});
  poller.refreshAll();
  auto v = values.snapshot()->find(e->key);
  EXPECT_FALSE(v->sample);
  EXPECT_NE(v->error.find("non-finite"), std::string::npos);
}

TEST_F(PollerTest, APointStampedInTheFutureIsAnErrorNamingIt) {
  auto e = catalog.ensure("default", "requests", {}, now);
  backend.set(e->query, core::Sample{3, now + 30s});  // clocks a little apart: accepted
  poller.refreshAll();
  ASSERT_TRUE(values.snapshot()->find(e->key)->sample);
  backend.set(e->query, core::Sample{9, now + 3600s});  // an hour ahead: refused
  poller.refreshAll();
  auto v = values.snapshot()->find(e->key);
  ASSERT_TRUE(v->sample);
  EXPECT_EQ(v->sample->value, 3);  // the last good point is kept, the future one never served
  EXPECT_NE(v->error.find("stamped 3600s in the future"), std::string::npos) << v->error;
  EXPECT_NE(v->error.find(e->query), std::string::npos) << v->error;
}

TEST_F(PollerTest, AFuturePointGoesStaleOnceTheBackendStopsAnswering) {
  auto e = catalog.ensure("default", "requests", {}, now);
  backend.set(e->query, core::Sample{3, now + 50s});
  poller.refreshAll();
  backend.set(e->query, std::unexpected(std::string("HTTP 500")));
  now += 100s;
  poller.refreshAll();
  auto v = values.snapshot()->find(e->key);
  ASSERT_TRUE(v->sample);
  EXPECT_TRUE(store::isFresh(*v, now));  // fetched 100 s ago, max-age 120 s
  now += 30s;                            // the point's own stamp is still only 80 s old
  EXPECT_EQ(store::staleness(*v, now), 130s);
  EXPECT_FALSE(store::isFresh(*v, now));
}

TEST_F(PollerTest, MetricsNobodyAsksForStopBeingPolled) {
  auto e = catalog.ensure("default", "old", {}, now);
  poller.refreshAll();
  EXPECT_NE(values.snapshot()->find(e->key), nullptr);
  now += 601s;
  poller.refreshAll();
  EXPECT_EQ(values.snapshot()->find(e->key), nullptr);
  EXPECT_EQ(catalog.size(), 0u);
}

TEST_F(PollerTest, AServedValueStampsDemandSoItStaysPolled) {
  auto e = catalog.ensure("default", "hot", {}, now);
  poller.refreshAll();
  now += 500s;
  // What the request path does:
  core::stampDemand(values.snapshot()->find(e->key)->metric->demand, now);
  now += 200s;
  poller.refreshAll();
  EXPECT_NE(values.snapshot()->find(e->key), nullptr);
}

TEST_F(PollerTest, AMetricTheBackendDefersKeepsItsValueAndAges) {
  auto e = catalog.ensure("default", "m", {}, now);
  backend.set(e->query, core::Sample{5, now - 10s});
  poller.refreshAll();
  auto first = values.snapshot()->find(e->key);
  ASSERT_TRUE(first && first->sample);
  now += 30s;
  backend.set(e->query, backends::deferredResult());
  poller.refreshAll();
  auto kept = values.snapshot()->find(e->key);
  ASSERT_TRUE(kept && kept->sample);
  EXPECT_EQ(kept->sample->value, 5);
  EXPECT_TRUE(kept->error.empty()) << kept->error;
  EXPECT_EQ(kept->lastFetch, first->lastFetch);  // not fetched: its age goes on counting

  // A metric that has no value yet is urgent; should a backend defer it anyway, it says so.
  auto fresh = catalog.ensure("default", "fresh", {}, now);
  backend.set(fresh->query, backends::deferredResult());
  poller.refreshAll();
  auto shown = values.snapshot()->find(fresh->key);
  ASSERT_TRUE(shown);
  EXPECT_FALSE(shown->sample);
  EXPECT_NE(shown->error.find("deferred"), std::string::npos) << shown->error;
  EXPECT_EQ(shown->error.find('\x1e'), std::string::npos) << "the marker leaked";
}

TEST_F(PollerTest, FetchNowAnswersANewMetricAheadOfTheCycle) {
  poller.start();
  auto e = catalog.ensure("default", "fresh", {}, now);
  backend.set(e->query, core::Sample{1, now});
  std::promise<void> fetched;
  poller.fetchNow(e, [&] { fetched.set_value(); });
  ASSERT_EQ(fetched.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_NE(values.snapshot()->find(e->key), nullptr);
  poller.stop();
  EXPECT_EQ(poller.status().firstFetches, 1u);  // the one fetchNow; a refresh is not a first fetch
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

TEST_F(PollerTest, ManyFirstFetchesKeepEveryEarlierValue) {
  poller.start();
  std::vector<catalog::CatalogEntryPtr> entries;
  for (int i = 0; i < 1500; ++i) {  // past kMaxRecent, so the levels fold at least twice
    auto e = catalog.ensure("default", "m" + std::to_string(i), {}, now);
    backend.set(e->query, core::Sample{static_cast<double>(i), now});
    std::promise<void> fetched;
    poller.fetchNow(e, [&] { fetched.set_value(); });
    ASSERT_EQ(fetched.get_future().wait_for(10s), std::future_status::ready);
    entries.push_back(e);
  }
  poller.stop();
  auto snapshot = values.snapshot();
  EXPECT_EQ(snapshot->size(), 1500u);
  for (int i = 0; i < 1500; ++i) {
    ASSERT_NE(snapshot->find(entries[i]->key), nullptr) << i;
    EXPECT_EQ(snapshot->find(entries[i]->key)->sample->value, i);
  }
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

TEST(PollerRetry, AMetricWithoutAValueIsFetchedAgainLongBeforeTheNextRefresh) {
  testing::FakeBackend backend;
  store::ValueStore values;
  catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s}};
  Poller poller{catalog,
                backend,
                values,
                {.refreshPeriod = 3600s, .firstRetry = std::chrono::milliseconds(10)}};
  auto e = catalog.ensure("default", "late", {}, core::Clock::now());
  poller.start();  // the first cycle finds no data (e.g. right after a restart)
  for (int i = 0; i < 200 && !values.snapshot()->find(e->key); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(values.snapshot()->find(e->key), nullptr);
  EXPECT_FALSE(values.snapshot()->find(e->key)->sample);
  backend.set(e->query, core::Sample{5, core::Clock::now()});  // the data arrives
  for (int i = 0; i < 300 && !values.snapshot()->find(e->key)->sample; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  poller.stop();
  ASSERT_TRUE(values.snapshot()->find(e->key)->sample) << "not retried within 3 s";
  EXPECT_EQ(values.snapshot()->find(e->key)->sample->value, 5);
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

TEST_F(PollerTest, ABodyIsRenderedAgainOnlyWhenItsPointChanges) {
  auto e = catalog.ensure("default", "requests", {}, now);
  backend.set(e->query, core::Sample{1.5, now - 10s});
  poller.refreshAll();
  auto first = values.snapshot()->find(e->key)->body;
  ASSERT_TRUE(first);
  now += 30s;
  poller.refreshAll();  // the same point again: the same body, not a copy
  EXPECT_EQ(values.snapshot()->find(e->key)->body, first);
  backend.set(e->query, core::Sample{2, now - 10s});
  now += 30s;
  poller.refreshAll();
  auto changed = values.snapshot()->find(e->key)->body;
  ASSERT_TRUE(changed);
  EXPECT_NE(*changed, *first);
  EXPECT_NE(changed->find("\"value\":\"2\""), std::string::npos) << *changed;
}

// A refresh copies no names per metric: each value shares its metric's identity with the one
// before, until the catalog resolves the metric anew.
TEST_F(PollerTest, ValuesShareTheMetricsIdentityUntilTheCatalogEntryChanges) {
  catalog.setConfigured({{.name = "requests", .query = "avg:a{*}"}});
  auto e = catalog.ensure("default", "requests", {}, now);
  ASSERT_EQ(e->query, "avg:a{*}");
  backend.set("avg:a{*}", core::Sample{1, now - 10s});
  poller.refreshAll();
  auto first = values.snapshot()->find(e->key);
  ASSERT_TRUE(first && first->sample);
  now += 30s;
  backend.set("avg:a{*}", core::Sample{2, now - 10s});
  poller.refreshAll();
  auto second = values.snapshot()->find(e->key);
  ASSERT_TRUE(second && second->sample);
  EXPECT_EQ(second->sample->value, 2);
  EXPECT_EQ(second->metric, first->metric);
  EXPECT_EQ(second->metric->query, "avg:a{*}");

  // The setting now asks another question: a new identity, and the old point is not kept.
  catalog.setConfigured({{.name = "requests", .query = "avg:b{*}"}});
  now += 30s;
  poller.refreshAll();
  auto third = values.snapshot()->find(e->key);
  ASSERT_NE(third, nullptr);
  EXPECT_NE(third->metric, second->metric);
  EXPECT_EQ(third->metric->query, "avg:b{*}");
  EXPECT_EQ(third->metric->key, e->key);
  EXPECT_FALSE(third->sample) << "a point of avg:a{*} served for avg:b{*}";
  backend.set("avg:b{*}", core::Sample{3, now - 10s});
  now += 30s;
  poller.refreshAll();
  auto fourth = values.snapshot()->find(e->key);
  ASSERT_TRUE(fourth && fourth->sample);
  EXPECT_EQ(fourth->sample->value, 3);
  EXPECT_EQ(fourth->metric, third->metric);
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

TEST(PollerBackends, EachEntryIsAskedOfTheBackendItNamesAndAnUnknownOneIsAnError) {
  testing::FakeBackend embedded("embedded"), prometheus("prometheus");
  store::ValueStore values;
  catalog::Catalog catalog(
      {.defaultBackend = "embedded",
       .backends = {"embedded", "prometheus"},
       .configured = {{.name = "promq", .backend = "prometheus", .query = "sum(rate(x[1m]))"},
                      {.name = "ghost", .backend = "datadog"}}});
  auto now = core::Clock::now();
  Poller poller(catalog, std::vector<backends::Backend*>{&embedded, &prometheus}, values,
                {.refreshPeriod = 30s}, [&] { return now; });
  auto local = catalog.ensure("default", "local", {}, now);
  auto promq = catalog.ensure("default", "promq", {}, now);
  auto ghost = catalog.ensure("default", "ghost", {}, now);
  embedded.set(local->query, core::Sample{1, now});
  prometheus.set("sum(rate(x[1m]))", core::Sample{2, now});
  poller.refreshAll();
  auto snapshot = values.snapshot();
  EXPECT_EQ(snapshot->find(local->key)->sample->value, 1);
  EXPECT_EQ(snapshot->find(local->key)->metric->backend, "embedded");
  EXPECT_EQ(snapshot->find(promq->key)->sample->value, 2);
  EXPECT_EQ(snapshot->find(promq->key)->metric->backend, "prometheus");
  ASSERT_EQ(prometheus.calls().size(), 1u);
  EXPECT_EQ(prometheus.calls()[0], (std::vector<std::string>{"sum(rate(x[1m]))"}));
  for (const auto& call : embedded.calls()) {
    for (const auto& q : call) EXPECT_NE(q, "sum(rate(x[1m]))");
  }
  auto g = snapshot->find(ghost->key);
  EXPECT_FALSE(g->sample);
  EXPECT_NE(g->error.find("backend \"datadog\" is not running"), std::string::npos) << g->error;
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

// A follower asks no backend: it sends what it was asked for to the leader and serves the leader's
// values; when it becomes the leader it refreshes at once.
TEST(PollerFollower, MirrorsTheLeaderAndForwardsDemandThenTakesOver) {
  testing::FakeBackend backend;
  store::ValueStore values;
  catalog::Catalog catalog({});
  std::atomic<bool> leader{false};
  std::mutex mutex;
  std::vector<replication::ReplicateRequest> requests;
  auto now = core::Clock::now();
  Poller poller(catalog, backend, values,
                {.refreshPeriod = 3600s,
                 .isLeader = [&] { return leader.load(); },
                 .follow = [&](const replication::ReplicateRequest& r)
                     -> std::expected<replication::ReplicatedValues, std::string> {
                   std::lock_guard lock(mutex);
                   requests.push_back(r);
                   store::MetricIdentity identity;
                   identity.ns = "shop";
                   identity.metricName = "requests";
                   identity.query = "avg:requests{*}.rollup(30)";
                   store::MetricValue v;
                   v.metric = store::shareIdentity(std::move(identity));
                   v.sample = core::Sample{42, now};
                   return replication::ReplicatedValues{
                       .generation = 11, .values = std::vector<store::MetricValue>{v}};
                 },
                 .followPeriod = 50ms});
  auto entry = catalog.ensure("shop", "requests", {}, now);
  backend.set(entry->query, core::Sample{1, now});
  poller.start();
  std::promise<void> answered;
  poller.fetchNow(entry, [&] { answered.set_value(); });
  ASSERT_EQ(answered.get_future().wait_for(5s), std::future_status::ready);
  auto v = values.snapshot()->find(entry->key);
  ASSERT_TRUE(v && v->sample);
  EXPECT_EQ(v->sample->value, 42);  // the leader's value, not this replica's backend
  // A request served here stamps this replica's entry, so it stays wanted and its demand is sent.
  EXPECT_EQ(v->metric->demand, entry->demand);
  ASSERT_TRUE(v->body);
  EXPECT_NE(v->body->find("\"42\""), std::string::npos);
  EXPECT_TRUE(backend.calls().empty());
  {
    std::lock_guard lock(mutex);
    ASSERT_FALSE(requests.empty());
    ASSERT_FALSE(requests[0].demand.empty());
    EXPECT_EQ(requests[0].demand[0].ns, "shop");
    EXPECT_EQ(requests[0].demand[0].metricName, "requests");
    EXPECT_EQ(requests.back().generation, requests.size() > 1 ? 11u : 0u);
  }
  EXPECT_TRUE(poller.status().following);

  leader = true;
  for (int i = 0; i < 100 && poller.status().cycles == 0; ++i) std::this_thread::sleep_for(20ms);
  // The takeover refreshes at once, not a period later (3,600 s): exactly one cycle so far.
  EXPECT_EQ(poller.status().cycles, 1u);
  EXPECT_EQ(values.snapshot()->find(entry->key)->sample->value, 1);
  EXPECT_FALSE(backend.calls().empty());
  poller.stop();
}

// One-way flow: the catalog publishes what changed and the poller, its subscriber, fetches it; no
// wiring code forwards entries.
TEST_F(PollerTest, ACatalogChangeIsFetchedWithoutAnyoneForwardingIt) {
  backend.set("avg:queue.depth{app:web}.rollup(30)", core::Sample{4, now});
  poller.start();
  auto added = catalog.setReferences(
      {{"default", "queue.depth", selector("app=web"), "hpa:default/web"}}, now);
  ASSERT_EQ(added.size(), 1u);
  store::MetricValuePtr v;
  for (int i = 0; i < 200 && !v; ++i) {  // bounded: 2 s at most
    std::this_thread::sleep_for(10ms);
    v = values.snapshot()->find(added[0]->key);
  }
  poller.stop();
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->sample);
  EXPECT_EQ(v->sample->value, 4);
}

TEST_F(PollerTest, PublishesItsStatusAndEachBackendsHealthForTheRequestPath) {
  catalog.ensure("default", "requests", {}, now);
  EXPECT_EQ(values.status()->poller.cycles, 0u);
  poller.refreshAll();
  auto status = values.status();
  EXPECT_EQ(status->poller.cycles, 1u);
  EXPECT_EQ(status->poller.queries, 1u);
  ASSERT_EQ(status->backends.size(), 1u);
  EXPECT_EQ(status->backends[0].name, "fake");
}

// A backend that counts its calls and says so after each, as the Datadog backend does during a
// paced refresh that lasts the whole period.
class CountingBackend final : public backends::Backend {
 public:
  explicit CountingBackend(store::ValueStore& values) : values_(values) {}
  std::vector<backends::BackendResult> fetch(std::span<const backends::BackendQuery> batch,
                                             core::Clock::time_point) override {
    std::vector<backends::BackendResult> out;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      ++calls_;
      healthChanged();
      seenDuringFetch.push_back(values_.status()->backends.at(0).health.calls);
      out.push_back(std::unexpected(std::string("no data")));
    }
    return out;
  }
  std::string_view name() const override { return "counting"; }
  backends::BackendHealth health() const override { return {.calls = calls_}; }
  std::vector<uint64_t> seenDuringFetch;

 private:
  store::ValueStore& values_;
  uint64_t calls_ = 0;
};

TEST(PollerHealth, ABackendsHealthIsPublishedDuringAFetchNotOnlyAfterIt) {
  store::ValueStore values;
  catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30}}};
  CountingBackend backend(values);
  Poller poller{catalog, backend, values, {.refreshPeriod = 30s, .batchSize = 10}};
  auto now = at(1'800'000'000);
  catalog.ensure("default", "a", {}, now);
  catalog.ensure("default", "b", {}, now);
  poller.refreshAll();
  EXPECT_EQ(backend.seenDuringFetch, (std::vector<uint64_t>{1, 2}));
}

// Past the cap a new name is refused once every direct request has had a value; one that never
// had (an invented name) makes room instead (issue 13, item 5).
TEST_F(PollerTest, FirstFetchIsRefusedPastTheCapOnlyWhenEveryMetricHasHadAValue) {
  catalog::Catalog small{{.inlineQuery = {query::Aggregator::kAvg, 30}, .maxRequested = 1}};
  store::ValueStore smallValues;
  Poller capped{small, backend, smallValues, {.refreshPeriod = 30s}, [this] { return now; }};
  EXPECT_EQ(capped.fetchFirst("default", "invented", {}, now, "alice", [] {}),
            "avg:invented{*}.rollup(30)");
  capped.refreshAll();  // no data for it
  EXPECT_EQ(capped.fetchFirst("default", "a", {}, now, "alice", [] {}), "avg:a{*}.rollup(30)");
  EXPECT_EQ(small.size(), 1u);
  backend.set("avg:a{*}.rollup(30)", core::Sample{4, now});
  capped.refreshAll();  // a has a value now: it stays
  auto refused = capped.fetchFirst("default", "b", {}, now, "alice", [] {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), "1 directly requested metrics are already polled (--max-metrics 1)");
}

TEST_F(PollerTest, WantQueuesAFetchOnlyForWhatHasNoValueYet) {
  backend.set("avg:c{*}.rollup(30)", core::Sample{1, now});
  backend.set("avg:d{*}.rollup(30)", core::Sample{2, now});
  catalog.ensure("default", "c", {}, now);
  poller.refreshAll();  // c has a value now
  poller.want("default", "c", {}, now);
  poller.want("default", "d", {}, now);
  poller.start();
  auto key = core::metricKey("default", "d", "");
  for (int i = 0; i < 200 && !values.snapshot()->find(key); ++i) std::this_thread::sleep_for(10ms);
  poller.stop();
  auto calls = backend.calls();
  ASSERT_GE(calls.size(), 2u);
  // The queued fetch ran first and held d alone.
  EXPECT_EQ(calls[1], (std::vector<std::string>{"avg:d{*}.rollup(30)"}));
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

// Issue 13, item 2: with Prometheus stopped (connections open, no answer), the embedded metrics in
// the same process must keep refreshing and a new embedded metric must get its first value.
TEST(PollerBackends, AHungBackendCostsOnlyItsOwnMetrics) {
  testing::FakeBackend embedded("embedded"), prometheus("prometheus");
  store::ValueStore values;
  catalog::Catalog catalog(
      {.defaultBackend = "embedded",
       .backends = {"embedded", "prometheus"},
       .configured = {{.name = "promq", .backend = "prometheus", .query = "sum(rate(x[1m]))"}}});
  Poller poller(catalog, std::vector<backends::Backend*>{&embedded, &prometheus}, values,
                {.refreshPeriod = 1s});
  auto now = core::Clock::now();
  auto local = catalog.ensure("default", "local", {}, now);
  auto promq = catalog.ensure("default", "promq", {}, now);
  embedded.set(local->query, core::Sample{1, now});
  prometheus.set("sum(rate(x[1m]))", core::Sample{2, now});
  prometheus.hang(true);
  poller.start();
  for (int i = 0; i < 200 && !prometheus.inFetch(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(prometheus.inFetch());

  // The embedded backend's refresh goes on while Prometheus holds its call...
  auto refreshedBy = std::chrono::steady_clock::now() + 5s;
  embedded.set(local->query, core::Sample{7, core::Clock::now()});
  store::MetricValuePtr v;
  while (std::chrono::steady_clock::now() < refreshedBy) {
    v = values.snapshot()->find(local->key);
    if (v && v->sample && v->sample->value == 7) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(v && v->sample);
  EXPECT_EQ(v->sample->value, 7) << "the embedded metric was not refreshed while Prometheus hung";

  // ...and a new embedded metric's first fetch is answered at once.
  auto fresh = catalog.ensure("default", "fresh", {}, core::Clock::now());
  embedded.set(fresh->query, core::Sample{3, core::Clock::now()});
  std::promise<void> answered;
  auto asked = std::chrono::steady_clock::now();
  poller.fetchNow(fresh, [&] { answered.set_value(); });
  ASSERT_EQ(answered.get_future().wait_for(2s), std::future_status::ready)
      << "a first fetch waited behind the hung backend";
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 1s);
  ASSERT_TRUE(values.snapshot()->find(fresh->key)->sample);
  EXPECT_TRUE(prometheus.inFetch());
  EXPECT_FALSE(values.snapshot()->find(promq->key) && values.snapshot()->find(promq->key)->sample);

  // Stopping cancels the hung call instead of waiting for it.
  auto stopping = std::chrono::steady_clock::now();
  poller.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 1s);
}

// A paced backend's refresh can last most of the period: a new metric is not kept waiting for it,
// and the refresh, which began before the metric existed, does not drop its value when it ends.
TEST(PollerFirstFetch, ANewMetricIsAnsweredWhileAPacedRefreshIsUnderWay) {
  testing::FakeBackend dd("datadog");
  dd.batchItself(true);
  store::ValueStore values;
  catalog::Catalog catalog({.defaultBackend = "datadog", .backends = {"datadog"}});
  Poller poller(catalog, dd, values, {.refreshPeriod = 1s});
  auto old = catalog.ensure("default", "old", {}, core::Clock::now());
  dd.set(old->query, core::Sample{1, core::Clock::now()});
  dd.holdRefresh(true);
  poller.start();
  for (int i = 0; i < 300 && !dd.inFetch(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(dd.inFetch());

  auto fresh = catalog.ensure("default", "fresh", {}, core::Clock::now());
  dd.set(fresh->query, core::Sample{2, core::Clock::now()});
  std::promise<void> answered;
  poller.fetchNow(fresh, [&] { answered.set_value(); });
  ASSERT_EQ(answered.get_future().wait_for(2s), std::future_status::ready)
      << "the first fetch waited for the refresh";
  EXPECT_TRUE(dd.inFetch());  // the refresh still holds its call
  ASSERT_TRUE(values.snapshot()->find(fresh->key));

  auto cycles = poller.status().cycles;
  dd.holdRefresh(false);
  for (int i = 0; i < 300 && poller.status().cycles == cycles; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(poller.status().cycles, cycles);
  auto kept = values.snapshot()->find(fresh->key);
  ASSERT_TRUE(kept && kept->sample) << "the refresh dropped the first fetch's value";
  EXPECT_EQ(kept->sample->value, 2);
  ASSERT_TRUE(values.snapshot()->find(old->key)->sample);
  poller.stop();
}

// The hung backend's values stay as they were; the others' full refreshes never drop them.
TEST(PollerBackends, OneBackendsFullRefreshKeepsTheOthersValues) {
  testing::FakeBackend embedded("embedded"), prometheus("prometheus");
  store::ValueStore values;
  catalog::Catalog catalog(
      {.defaultBackend = "embedded",
       .backends = {"embedded", "prometheus"},
       .configured = {{.name = "promq", .backend = "prometheus", .query = "sum(rate(x[1m]))"}}});
  auto now = core::Clock::now();
  Poller poller(catalog, std::vector<backends::Backend*>{&embedded, &prometheus}, values,
                {.refreshPeriod = 30s}, [&] { return now; });
  auto local = catalog.ensure("default", "local", {}, now);
  auto promq = catalog.ensure("default", "promq", {}, now);
  embedded.set(local->query, core::Sample{1, now});
  prometheus.set("sum(rate(x[1m]))", core::Sample{2, now});
  poller.refreshAll();
  ASSERT_EQ(values.snapshot()->find(promq->key)->sample->value, 2);
  now += 30s;
  embedded.set(local->query, core::Sample{5, now});
  poller.refreshBackend("embedded");
  auto snapshot = values.snapshot();
  EXPECT_EQ(snapshot->find(local->key)->sample->value, 5);
  ASSERT_NE(snapshot->find(promq->key), nullptr)
      << "the embedded refresh dropped Prometheus' value";
  EXPECT_EQ(snapshot->find(promq->key)->sample->value, 2);
}

}  // namespace
}  // namespace xmetrics::poller

namespace xmetrics::poller {
namespace {

// Bytes the heap holds for the program. Under ASan or TSan (`make sanitize`) malloc is theirs,
// which mallinfo2 knows nothing of; its own count leaves out the chunk headers glibc adds.
double heapBytesInUse() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return static_cast<double>(__sanitizer_get_current_allocated_bytes());
#else
  return static_cast<double>(mallinfo2().uordblks);
#endif
}

// Issue 13, item 11: the catalog is bounded in bytes, so its count of what an entry costs must be
// honest. Checked against malloc's own count of what registering and publishing metrics
// allocated, for long selectors and for ordinary ones.
TEST(PollerMemory, TheCatalogsByteCountMatchesWhatMallocCounts) {
  for (auto [requirements, padding] : {std::pair{63, 50}, {10, 20}, {2, 3}, {1, 0}}) {
    testing::FakeBackend backend;  // answers errors that quote the query, as a backend does
    store::ValueStore values;
    catalog::Catalog catalog{{.inlineQuery = {query::Aggregator::kAvg, 30},
                              .maxRequested = 100'000,
                              .maxRequestedBytes = std::size_t{1} << 40}};
    Poller poller{catalog, backend, values, {.refreshPeriod = 30s}};
    auto now = core::Clock::now();
    constexpr int kMetrics = 500;
    std::vector<std::string> texts;
    for (int i = 0; i < kMetrics; ++i) {
      std::string text;
      for (int j = 0; j < requirements; ++j) {
        text += (j ? "," : "") + ("k" + std::to_string(j)) + "=v" + std::to_string(i) +
                std::string(padding, 'y');
      }
      texts.push_back(std::move(text));
    }
    double before = heapBytesInUse();
    for (int i = 0; i < kMetrics; ++i) {
      // As the request path does: the selector parsed from the request is what the catalog keeps
      // (copies share its requirements), so its bytes count.
      catalog.ensure("default", "m" + std::to_string(i), selector(texts[i]), now);
    }
    poller.refreshAll();  // on this thread: every allocation is in the main arena
    double allocated = heapBytesInUse() - before;
    double counted = static_cast<double>(catalog.requestedUsage().second);
    EXPECT_GT(counted / allocated, 0.85) << requirements << " requirements: counts too little";
    EXPECT_LT(counted / allocated, 1.25) << requirements << " requirements: counts too much";
  }
}

}  // namespace
}  // namespace xmetrics::poller

#include "catalog/catalog.hpp"

#include <gtest/gtest.h>

#include <set>

namespace xmetrics::catalog {
namespace {

using namespace std::chrono_literals;

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }

TEST(Catalog, EquivalentRequestsShareOneEntry) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s});
  auto a = c.ensure("default", "Requests", *core::LabelSelector::parse("b=2,a=1"), at(0));
  auto b = c.ensure("default", "requests", *core::LabelSelector::parse("a==1, b=2"), at(1));
  EXPECT_EQ(a, b);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(a->metricName, "requests");
  EXPECT_EQ(a->query, "avg:requests{a:1,b:2}.rollup(30)");
  EXPECT_EQ(a->resolution(), "inline");
}

TEST(Catalog, UsesTheConfiguredAggregatorAndRollup) {
  Catalog c({.inlineQuery = {query::Aggregator::kMax, 60}, .inactiveAfter = 600s});
  EXPECT_EQ(c.ensure("default", "m", {}, at(0))->query, "max:m{*}.rollup(60)");
}

// A flood of invented names fills max-metrics: each new name takes the place of the oldest-asked
// direct request that never had a value, so legitimate metrics keep getting in; metrics that had
// a value and metrics an HPA names are never dropped for it.
TEST(Catalog, AFullCatalogDropsTheOldestNeverServedDirectRequestForANewName) {
  Catalog c(
      {.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s, .maxRequested = 3});
  c.setReferences({{"shop", "hpa.metric", {}, "hpa:shop/web"}}, at(0));
  auto served = c.ensure("default", "served", {}, at(0));
  served->markServed();
  c.ensure("default", "junk1", {}, at(1));
  c.ensure("default", "junk2", {}, at(2));
  EXPECT_EQ(c.size(), 4u);  // 3 direct + the HPA's
  // Not fetched yet: nothing can make room.
  EXPECT_EQ(c.ensure("default", "early", {}, at(3)), nullptr);
  for (const auto& e : c.entries()) e->markAttempted();  // fetched, no data
  auto legit = c.ensure("default", "legit", {}, at(3));
  ASSERT_NE(legit, nullptr);
  EXPECT_EQ(c.size(), 4u);
  auto names = [&] {
    std::set<std::string> out;
    for (const auto& e : c.entries()) out.insert(e->metricName);
    return out;
  };
  EXPECT_EQ(names(), (std::set<std::string>{"hpa.metric", "served", "junk2", "legit"}));
  EXPECT_EQ(c.evicted(), 1u);
  legit->markServed();
  c.ensure("default", "junk3", {}, at(4))->markAttempted();  // takes junk2's place
  EXPECT_EQ(names(), (std::set<std::string>{"hpa.metric", "served", "legit", "junk3"}));
  // Every direct request has had a value: a new name is refused.
  for (const auto& e : c.entries()) e->markServed();
  EXPECT_EQ(c.ensure("default", "junk4", {}, at(5)), nullptr);
}

// Issue 13, item 11: bounded in bytes as well as entries. Metrics with 4 KB selectors fill the
// bytes long before the count; ordinary ones still get in by evicting never-served ones, and the
// refusal names the bound and the cost.
TEST(Catalog, TheDirectRequestsAreBoundedInBytes) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30},
             .inactiveAfter = 600s,
             .maxRequested = 10'000,
             .maxRequestedBytes = 1u << 20});
  auto huge = [](int i) {
    std::string text;
    for (int j = 0; j < 63; ++j) {
      text +=
          (j ? ",k" : "k") + std::to_string(j) + "=v" + std::to_string(i) + std::string(50, 'y');
    }
    return *core::LabelSelector::parse(text);
  };
  int admitted = 0;
  for (int i = 0; i < 100 && c.ensure("default", "flood", huge(i), at(i)); ++i) ++admitted;
  EXPECT_GT(admitted, 5);
  EXPECT_LT(admitted, 20);  // ~80 KB each under a 1 MiB bound
  EXPECT_LE(c.requestedUsage().second, std::size_t{1} << 20);
  std::string refused;
  EXPECT_EQ(c.ensure("default", "flood", huge(1000), at(200), &refused), nullptr);
  EXPECT_NE(refused.find("KiB more (--max-metrics-bytes 1024 KiB"), std::string::npos) << refused;
  // An ordinary metric still fits in what is left.
  auto plain = c.ensure("default", "requests", *core::LabelSelector::parse("app=web"), at(201));
  ASSERT_NE(plain, nullptr);
  EXPECT_LT(plain->bytes, 4096u);
  // The flood was fetched and never had a value: a new long one takes the place of one.
  for (const auto& e : c.entries()) e->markAttempted();
  plain->markServed();
  EXPECT_NE(c.ensure("default", "legit", huge(2000), at(202)), nullptr);
  EXPECT_EQ(c.evicted(), 1u);
  EXPECT_LE(c.requestedUsage().second, std::size_t{1} << 20);
}

// Issue 13, item 5: one caller's share. A user inventing names makes room among its own and is
// then refused, before it can take a slot another user's metric needs.
TEST(Catalog, OneUsersInventedNamesEvictOnlyItsOwn) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30},
             .inactiveAfter = 600s,
             .maxRequested = 10,
             .maxRequestedPerRequester = 4});
  auto bobs = c.ensure("default", "bobs.metric", {}, at(0), nullptr, "bob");
  ASSERT_NE(bobs, nullptr);
  bobs->markAttempted();  // fetched, no value yet: the oldest never-served entry of all
  for (int i = 0; i < 40; ++i) {
    auto e =
        c.ensure("default", "invented." + std::to_string(i), {}, at(1 + i), nullptr, "mallory");
    ASSERT_NE(e, nullptr) << i;  // below the bound anyone may fill it; then mallory's own go
    e->markAttempted();
  }
  auto mine = [&](const std::string& who) {
    int n = 0;
    for (const auto& e : c.entries()) n += e->requester == who;
    return n;
  };
  EXPECT_EQ(mine("mallory"), 9);
  EXPECT_EQ(mine("bob"), 1);  // never taken for mallory's names
  // Another user's new name takes one of mallory's (past the share), not bob's older one.
  ASSERT_NE(c.ensure("default", "carols.metric", {}, at(50), nullptr, "carol"), nullptr);
  EXPECT_EQ(mine("bob"), 1);
  EXPECT_EQ(mine("mallory"), 8);
  for (const auto& e : c.entries()) e->markServed();
  std::string refused;
  EXPECT_EQ(c.ensure("default", "one.more", {}, at(100), &refused, "mallory"), nullptr);
  EXPECT_EQ(refused,
            "user \"mallory\" already has 8 directly requested metrics polled "
            "(--max-metrics-per-user 4)");
}

TEST(Catalog, ForgetsMetricsNotRequestedForInactiveAfter) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s});
  c.ensure("default", "a", {}, at(0));
  c.ensure("default", "b", {}, at(0))->touch(at(500));
  EXPECT_EQ(c.wanted(at(600))->size(), 2u);
  auto left = *c.wanted(at(700));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]->metricName, "b");
}

// A refresh of an unchanged catalog copies no entries: the same list until an entry comes, goes or
// is resolved anew.
TEST(Catalog, WantedIsTheSameListUntilTheEntriesChange) {
  Catalog c({.inactiveAfter = 600s});
  c.ensure("default", "a", {}, at(0));
  auto first = c.wanted(at(10));
  EXPECT_EQ(c.wanted(at(20)), first);
  c.ensure("default", "a", {}, at(30));  // known already: nothing changes
  EXPECT_EQ(c.wanted(at(40)), first);
  c.ensure("default", "b", {}, at(50));
  auto second = c.wanted(at(60));
  EXPECT_NE(second, first);
  EXPECT_EQ(second->size(), 2u);
  EXPECT_EQ(first->size(), 1u);                           // a list handed out is never changed
  c.setConfigured({{.name = "b", .query = "avg:b{*}"}});  // b resolves anew
  auto third = c.wanted(at(70));
  EXPECT_NE(third, second);
  ASSERT_EQ(third->size(), 2u);
  for (const auto& e : *third) {
    if (e->metricName == "b") {
      EXPECT_EQ(e->query, "avg:b{*}");
    }
  }
  auto fourth = c.wanted(at(640));  // a expires (asked at 30), b stays (asked at 50)
  ASSERT_EQ(fourth->size(), 1u);
  EXPECT_EQ((*fourth)[0]->metricName, "b");
}

}  // namespace
}  // namespace xmetrics::catalog

namespace xmetrics::catalog {
namespace {

TEST(CatalogReferences, HpaReferencedMetricsNeverExpireAndNewOnesAreReported) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s});
  auto sel = *core::LabelSelector::parse("app=web");
  auto added =
      c.setReferences({{"a", "queue", sel, "hpa:a/one"}, {"a", "queue", sel, "hpa:b/two"}}, at(0));
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(c.referencesOf(added[0]->key), (std::vector<std::string>{"hpa:a/one", "hpa:b/two"}));
  EXPECT_EQ(c.wanted(at(10'000))->size(), 1u);  // referenced: kept although never requested
  // Same set again: nothing new to fetch.
  EXPECT_TRUE(c.setReferences({{"a", "queue", sel, "hpa:a/one"}}, at(10'001)).empty());
  // The last HPA goes away: the metric ages out like any direct request.
  c.setReferences({}, at(10'002));
  EXPECT_TRUE(c.referencesOf(added[0]->key).empty());
  EXPECT_TRUE(c.wanted(at(10'003))->empty());
}

// The catalog publishes what changed to its one subscriber (the poller) instead of handing it back
// to whoever called it to forward.
TEST(Catalog, PublishesChangedEntriesToItsSubscriber) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30}, .inactiveAfter = 600s});
  std::vector<std::string> heard;
  c.subscribe([&](const std::vector<CatalogEntryPtr>& changed) {
    for (const auto& e : changed) heard.push_back(e->query);
  });
  c.setReferences({{"default", "queue", {}, "hpa:default/web"}}, at(0));
  EXPECT_EQ(heard, (std::vector<std::string>{"avg:queue{*}.rollup(30)"}));
  // Nothing changed: nothing published.
  c.setReferences({{"default", "queue", {}, "hpa:default/web"}}, at(1));
  EXPECT_EQ(heard.size(), 1u);
  c.setConfigured({{.name = "queue", .query = "max:queue{*}"}});
  ASSERT_EQ(heard.size(), 2u);
  EXPECT_EQ(heard[1], "max:queue{*}");
  c.subscribe({});
  c.setConfigured({});
  EXPECT_EQ(heard.size(), 2u);
}

}  // namespace
}  // namespace xmetrics::catalog

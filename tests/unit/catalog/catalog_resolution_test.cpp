// The resolution rules (docs/datadogmetric.md) and the property that makes the Cluster Agent's
// "DatadogMetric not found" impossible: the catalog is a function of the objects that exist now.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "catalog/catalog.hpp"

namespace xmetrics::catalog {
namespace {

using namespace std::chrono_literals;

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }
core::LabelSelector selector(std::string_view text) { return *core::LabelSelector::parse(text); }

CatalogOptions crdMode(bool autogen = true) {
  return {.inlineQuery = {query::Aggregator::kAvg, 30},
          .inactiveAfter = 600s,
          .useDatadogMetrics = true,
          .autogen = autogen,
          .autogenNamespace = "xmetrics",
          .maxAge = 120s,
          .bucketSize = 300s};
}

DatadogMetric object(std::string ns, std::string name, std::string query,
                     std::string externalMetricName = "") {
  DatadogMetric m;
  m.ns = std::move(ns);
  m.name = std::move(name);
  m.query = std::move(query);
  m.externalMetricName = std::move(externalMetricName);
  m.autogen = m.name.starts_with(kAutogenPrefix) && !m.externalMetricName.empty();
  return m;
}

TEST(CatalogResolution, Rule1ReferenceResolvesToTheObjectWhateverTheRequestNamespace) {
  Catalog c(crdMode());
  auto dm = object("shop", "checkout", "max:checkout.latency{*}");
  dm.maxAge = 600s;
  dm.timeWindow = 900s;
  c.setDatadogMetrics({dm}, at(0));
  auto e = c.ensure("other", "datadogmetric@shop:checkout", {}, at(0));
  EXPECT_EQ(e->rule, Rule::kReference);
  EXPECT_EQ(e->object, "shop/checkout");
  EXPECT_EQ(e->query, "max:checkout.latency{*}");
  EXPECT_EQ(e->maxAge, 600s);
  EXPECT_EQ(e->window, 900s);
  EXPECT_EQ(e->resolution(), "datadogmetric shop/checkout (rule 1: datadogmetric@ reference)");
}

TEST(CatalogResolution, WindowRuleIsMaxOfTimeWindowOrMaxAgeAndBucketCapped) {
  Catalog c(crdMode());
  auto small = object("a", "small", "q1");
  small.maxAge = 60s;  // below the 300 s bucket
  auto huge = object("a", "huge", "q2");
  huge.timeWindow = std::chrono::seconds(200'000);  // above 86400
  c.setDatadogMetrics({small, huge}, at(0));
  EXPECT_EQ(c.ensure("a", "datadogmetric@a:small", {}, at(0))->window, 300s);
  EXPECT_EQ(c.ensure("a", "datadogmetric@a:huge", {}, at(0))->window, 86400s);
}

TEST(CatalogResolution, MissingAndInvalidObjectsAreErrorsNamingTheObjectAndTheFix) {
  Catalog c(crdMode());
  auto missing = c.ensure("x", "datadogmetric@shop:gone", {}, at(0));
  EXPECT_EQ(missing->errorCode, 404);
  EXPECT_NE(missing->error.find("shop/gone"), std::string::npos);
  EXPECT_NE(missing->error.find("create"), std::string::npos);
  EXPECT_EQ(missing->query, "");

  auto bad = c.ensure("x", "datadogmetric@shop:bad_name", {}, at(0));
  EXPECT_EQ(bad->errorCode, 400);

  auto invalid = object("shop", "broken", "");
  invalid.invalidReason = "spec.query is empty";
  c.setDatadogMetrics({invalid}, at(0));
  auto e = c.ensure("x", "datadogmetric@shop:broken", {}, at(0));
  EXPECT_EQ(e->errorCode, 422);
  EXPECT_NE(e->error.find("shop/broken is invalid: spec.query is empty"), std::string::npos);
}

TEST(CatalogResolution, ReferencesNeedCrdMode) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30}});
  auto e = c.ensure("x", "datadogmetric@shop:checkout", {}, at(0));
  EXPECT_EQ(e->errorCode, 404);
  EXPECT_NE(e->error.find("--use-datadogmetric-crd=true"), std::string::npos);
  // Without CRD mode an object-like name is just an inline metric, with no autogen object.
  auto plain = c.ensure("x", "proxy-dynamic-min-replicas", {}, at(0));
  EXPECT_EQ(plain->rule, Rule::kInline);
  EXPECT_EQ(plain->object, "");
}

TEST(CatalogResolution, Rule2ObjectNamedLikeTheMetricInTheRequestNamespace) {
  Catalog c(crdMode());
  c.setDatadogMetrics({object("shop", "proxy-dynamic-min-replicas", "max:proxy.min{*}")}, at(0));
  auto here = c.ensure("shop", "proxy-dynamic-min-replicas", {}, at(0));
  EXPECT_EQ(here->rule, Rule::kNamed);
  EXPECT_EQ(here->query, "max:proxy.min{*}");
  // Another namespace has no such object: inline, through an autogen object.
  auto there = c.ensure("blog", "proxy-dynamic-min-replicas", {}, at(0));
  EXPECT_EQ(there->rule, Rule::kInline);
  EXPECT_EQ(there->query, "avg:proxy-dynamic-min-replicas{*}.rollup(30)");
  EXPECT_EQ(there->object, "xmetrics/" + autogenName(there->query));
  EXPECT_NE(here->key, there->key);
}

// A Cluster Agent's autogen object (in its namespace, "datadog") for the same inline query is
// taken over, not duplicated in xmetrics' namespace; once xmetrics has its own copy, that one wins.
TEST(CatalogResolution, AnotherAgentsAutogenObjectIsTakenOverNotDuplicated) {
  Catalog c(crdMode());
  auto inlineQuery =
      std::string("avg:nginx.net.request_per_s{kube_container_name:nginx}.rollup(30)");
  auto name = autogenName(inlineQuery);
  c.setDatadogMetrics({object("datadog", name, inlineQuery, "nginx.net.request_per_s")}, at(0));
  auto e =
      c.ensure("shop", "nginx.net.request_per_s", selector("kube_container_name=nginx"), at(0));
  EXPECT_EQ(e->rule, Rule::kInline);
  EXPECT_EQ(e->query, inlineQuery);
  EXPECT_EQ(e->object, "datadog/" + name);
  c.setDatadogMetrics({object("datadog", name, inlineQuery, "nginx.net.request_per_s"),
                       object("xmetrics", name, inlineQuery, "nginx.net.request_per_s")},
                      at(1));
  e = c.ensure("shop", "nginx.net.request_per_s", selector("kube_container_name=nginx"), at(1));
  EXPECT_EQ(e->object, "xmetrics/" + name);
}

TEST(CatalogResolution, Rule3NeedsTheSameInlineQueryAndSkipsAutogenObjects) {
  Catalog c(crdMode());
  std::string inlineQuery = "avg:requests{app:web}.rollup(30)";
  c.setDatadogMetrics({object("any", "manual", inlineQuery, "requests"),
                       object("any", "other-query", "sum:requests{*}", "requests")},
                      at(0));
  auto e = c.ensure("shop", "Requests", selector("app=web"), at(0));
  EXPECT_EQ(e->rule, Rule::kExternalName);
  EXPECT_EQ(e->object, "any/manual");
  // A different selector is a different inline query: rule 4.
  EXPECT_EQ(c.ensure("shop", "requests", selector("app=api"), at(0))->rule, Rule::kInline);
}

TEST(CatalogResolution, AManualObjectTakesOverFromAutogenAtOnceAndDeletionHandsBack) {
  // The incident: the HPA came first, then the real object. No restart, no sticky mapping.
  Catalog c(crdMode());
  auto sel = core::LabelSelector();
  auto added =
      c.setReferences({{"shop", "proxy-dynamic-min-replicas", sel, "hpa:shop/proxy"}}, at(0));
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0]->rule, Rule::kInline);
  std::string autogenId = added[0]->object;
  c.setDatadogMetrics(
      {object("xmetrics", autogenId.substr(9), added[0]->query, "proxy-dynamic-min-replicas")},
      at(1));

  auto manual = object("shop", "proxy-dynamic-min-replicas", "max:proxy.min{*}");
  auto changed = c.setDatadogMetrics(
      {object("xmetrics", autogenId.substr(9), added[0]->query, "proxy-dynamic-min-replicas"),
       manual},
      at(2));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0]->key, added[0]->key);
  EXPECT_EQ(changed[0]->rule, Rule::kNamed);
  EXPECT_EQ(changed[0]->query, "max:proxy.min{*}");
  EXPECT_EQ(c.objectReferences()["shop/proxy-dynamic-min-replicas"],
            (std::vector<std::string>{"hpa:shop/proxy"}));
  EXPECT_FALSE(c.objectReferences().contains(autogenId));

  auto back = c.setDatadogMetrics({}, at(3));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0]->rule, Rule::kInline);
  EXPECT_EQ(back[0]->object, autogenId);
  // Same objects delivered again (a watch reconnect): nothing changes.
  EXPECT_TRUE(c.setDatadogMetrics({}, at(4)).empty());
}

TEST(CatalogResolution, AlwaysActiveObjectsArePolledWithoutAnHpa) {
  Catalog c(crdMode());
  auto dm = object("shop", "warm", "avg:w{*}");
  dm.alwaysActive = true;
  auto changed = c.setDatadogMetrics({dm}, at(0));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0]->object, "shop/warm");
  EXPECT_EQ(c.wanted(at(100'000))->size(), 1u);
  c.setDatadogMetrics({}, at(100'001));
  EXPECT_TRUE(c.wanted(at(100'002))->empty());
}

// --- Property: incremental == rebuilt from scratch -------------------------------------------

// A tiny universe so that random steps collide often: few namespaces, names and queries.
struct World {
  std::map<std::string, DatadogMetric> objects;                 // by id
  std::map<std::string, std::vector<Catalog::Reference>> hpas;  // by "ns/name"

  std::vector<DatadogMetric> objectList() const {
    std::vector<DatadogMetric> out;
    for (const auto& [id, o] : objects) out.push_back(o);
    return out;
  }
  std::vector<Catalog::Reference> references() const {
    std::vector<Catalog::Reference> out;
    for (const auto& [id, refs] : hpas) out.insert(out.end(), refs.begin(), refs.end());
    return out;
  }
};

class Steps {
 public:
  explicit Steps(uint32_t seed) : rng_(seed) {}

  std::string pick(const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng_)];
  }
  int roll(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  DatadogMetric randomObject() {
    static const std::vector<std::string> names = {"proxy-min", "requests", "dcaautogen-abc",
                                                   "queue"};
    static const std::vector<std::string> queries = {"avg:requests{*}.rollup(30)",
                                                     "avg:requests{app:web}.rollup(30)",
                                                     "max:proxy.min{*}", "sum:queue.depth{*}"};
    auto o = object(pick(kNamespaces), pick(names), pick(queries),
                    roll(2) ? pick({"requests", "queue", "proxy-min"}) : "");
    if (roll(4) == 0) o.maxAge = std::chrono::seconds(60 * (1 + roll(10)));
    if (roll(6) == 0) o.alwaysActive = true;
    if (roll(8) == 0) o.invalidReason = "spec.query: unknown template variable";
    return o;
  }

  Catalog::Reference randomReference(const std::string& hpaId) {
    static const std::vector<std::string> metrics = {"proxy-min",
                                                     "requests",
                                                     "queue",
                                                     "datadogmetric@shop:proxy-min",
                                                     "datadogmetric@blog:requests",
                                                     "datadogmetric@bad_ns:name",
                                                     "datadogmetric@Shop:Proxy-Min"};
    static const std::vector<std::string> selectors = {"", "app=web", "app in (web,api)"};
    return {hpaId.substr(0, hpaId.find('/')), pick(metrics), selector(pick(selectors)),
            "hpa:" + hpaId};
  }

  static inline const std::vector<std::string> kNamespaces = {"shop", "blog", "xmetrics"};

 private:
  std::mt19937 rng_;
};

std::vector<std::string> rebuilt(
    const World& world, const CatalogOptions& options,
    const std::vector<std::tuple<std::string, std::string, std::string>>& requests,
    core::Clock::time_point now) {
  Catalog fresh(options);
  fresh.setDatadogMetrics(world.objectList(), now);
  fresh.setReferences(world.references(), now);
  for (const auto& [ns, metric, sel] : requests) fresh.ensure(ns, metric, selector(sel), now);
  fresh.wanted(now);
  return fresh.describe();
}

TEST(CatalogProperty, IncrementalCatalogEqualsTheOneRebuiltFromTheSameObjects) {
  constexpr int kSequences = 300;
  constexpr int kStepsPerSequence = 40;
  for (uint32_t seed = 1; seed <= kSequences; ++seed) {
    Steps steps(seed);
    auto options = crdMode(seed % 3 != 0);
    Catalog incremental(options);
    World world;
    std::vector<std::tuple<std::string, std::string, std::string>> requests;
    auto now = at(1'000'000);
    for (int step = 0; step < kStepsPerSequence; ++step) {
      now += 1s;
      switch (steps.roll(7)) {
        case 0:
        case 1: {  // create or update an object (duplicates happen: same id, same spec)
          auto o = steps.randomObject();
          world.objects[o.id()] = o;
          incremental.setDatadogMetrics(world.objectList(), now);
          break;
        }
        case 2: {  // delete an object
          if (world.objects.empty()) break;
          auto it = world.objects.begin();
          std::advance(it, steps.roll(static_cast<int>(world.objects.size())));
          world.objects.erase(it);
          incremental.setDatadogMetrics(world.objectList(), now);
          break;
        }
        case 3: {  // create or update an HPA with one or two External metrics
          std::string id = steps.pick(Steps::kNamespaces) + "/hpa" + std::to_string(steps.roll(3));
          std::vector<Catalog::Reference> refs{steps.randomReference(id)};
          if (steps.roll(2)) refs.push_back(steps.randomReference(id));
          world.hpas[id] = refs;
          incremental.setReferences(world.references(), now);
          break;
        }
        case 4: {  // delete an HPA
          if (world.hpas.empty()) break;
          world.hpas.erase(world.hpas.begin());
          incremental.setReferences(world.references(), now);
          break;
        }
        case 5: {  // a watch reconnects: both lists delivered again, unchanged
          incremental.setDatadogMetrics(world.objectList(), now);
          incremental.setReferences(world.references(), now);
          break;
        }
        case 6: {  // a direct request (kubectl get --raw, or the HPA before the watch saw it)
          auto ref = steps.randomReference(steps.pick(Steps::kNamespaces) + "/x");
          std::string sel = ref.selector.canonical();
          requests.emplace_back(ref.ns, ref.metricName, sel);
          incremental.ensure(ref.ns, ref.metricName, ref.selector, now);
          break;
        }
      }
      incremental.wanted(now);
      ASSERT_EQ(incremental.describe(), rebuilt(world, options, requests, now))
          << "seed " << seed << " step " << step;
    }
  }
}

}  // namespace
}  // namespace xmetrics::catalog

namespace xmetrics::catalog {
namespace {

TEST(CatalogConfigured, TheMetricsSettingChoosesBackendAndQueryPerMetricAndNamespace) {
  CatalogOptions options{
      .inlineQuery = {query::Aggregator::kAvg, 30,
                      [](std::string_view backend, std::string_view m,
                         const core::LabelSelector&) -> std::optional<std::string> {
                        if (backend != "prometheus") return std::nullopt;
                        return "sum(" + std::string(m) + ")";
                      }},
      .useDatadogMetrics = true,
      .defaultBackend = "embedded",
      .backends = {"embedded", "prometheus"},
      .configured = {{.name = "emails",
                      .backend = "prometheus",
                      .query = "max(queue{q=\"e\"})",
                      .maxAge = std::chrono::seconds(600)},
                     {.name = "emails", .ns = "blog", .backend = "prometheus"}}};
  Catalog c(options);
  auto shop = c.ensure("shop", "Emails", {}, at(0));
  EXPECT_EQ(shop->backend, "prometheus");
  EXPECT_EQ(shop->query, "max(queue{q=\"e\"})");
  EXPECT_EQ(shop->maxAge, 600s);
  EXPECT_EQ(shop->window, 600s);
  EXPECT_EQ(shop->resolution(), "configured");  // no autogen object for a configured query
  auto blog = c.ensure("blog", "emails", {}, at(0));
  EXPECT_EQ(blog->query, "sum(emails)");  // the namespace's own entry, translated by its backend
  auto other = c.ensure("shop", "other", {}, at(0));
  EXPECT_EQ(other->backend, "embedded");
  EXPECT_EQ(other->query, "avg:other{*}.rollup(30)");
}

TEST(CatalogConfigured, ADatadogMetricChoosesItsBackendByAnnotation) {
  Catalog c({.useDatadogMetrics = true,
             .defaultBackend = "datadog",
             .backends = {"datadog", "prometheus"}});
  auto prom = object("shop", "promq", "sum(up)");
  prom.backend = "prometheus";
  auto bad = object("shop", "badq", "sum(up)");
  bad.backend = "graphite";
  c.setDatadogMetrics({prom, bad}, at(0));
  auto e = c.ensure("shop", "datadogmetric@shop:promq", {}, at(0));
  EXPECT_EQ(e->backend, "prometheus");
  EXPECT_EQ(e->query, "sum(up)");
  auto b = c.ensure("shop", "datadogmetric@shop:badq", {}, at(0));
  EXPECT_EQ(b->errorCode, 422);
  EXPECT_NE(b->error.find("\"graphite\""), std::string::npos);
  EXPECT_NE(b->error.find("xmetrics.io/backend"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::catalog

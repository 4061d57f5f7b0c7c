// A query in Datadog syntax that would break a shared batch (query::validateForBatch) resolves to
// an error naming who wrote it and the fix, and never to something the poller sends.
#include <gtest/gtest.h>

#include <string>

#include "catalog/catalog.hpp"

namespace xmetrics::catalog {
namespace {

using namespace std::chrono_literals;

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

DatadogMetric object(std::string ns, std::string name, std::string query) {
  DatadogMetric m;
  m.ns = std::move(ns);
  m.name = std::move(name);
  m.query = std::move(query);
  return m;
}

CatalogOptions crdMode(std::string defaultBackend = "datadog") {
  return {.inlineQuery = {query::Aggregator::kAvg, 30},
          .useDatadogMetrics = true,
          .autogenNamespace = "xmetrics",
          .defaultBackend = defaultBackend,
          .backends = {defaultBackend, "prometheus"}};
}

TEST(CatalogQueryValidation, ADatadogMetricWithTwoQueriesIsInvalidNamingItselfAndTheFix) {
  Catalog c(crdMode());
  c.setDatadogMetrics(
      {object("shop", "two", "avg:a{*},avg:b{*}"), object("shop", "good", "avg:a{*}")}, at(0));
  auto e = c.ensure("shop", "datadogmetric@shop:two", {}, at(0));
  EXPECT_EQ(e->errorCode, 422);
  EXPECT_EQ(e->query, "");
  EXPECT_TRUE(
      e->error.starts_with("DatadogMetric shop/two: spec.query is refused: several "
                           "top-level queries in one"))
      << e->error;
  EXPECT_TRUE(has(e->error, "keep one query")) << e->error;
  EXPECT_TRUE(has(e->error, "fix its spec (kubectl edit datadogmetric -n shop two)")) << e->error;
  EXPECT_FALSE(has(e->error, "is invalid")) << e->error;  // the object is named once
  // The reason is the object's own, so its status says the same.
  for (const auto& o : c.datadogMetrics()) {
    if (o.name == "two") {
      EXPECT_TRUE(o.invalidReason.starts_with("DatadogMetric shop/two: spec.query is refused"));
    } else {
      EXPECT_EQ(o.invalidReason, "");
    }
  }
  // The neighbour resolves as before.
  auto good = c.ensure("shop", "datadogmetric@shop:good", {}, at(0));
  EXPECT_EQ(good->errorCode, 0);
  EXPECT_EQ(good->query, "avg:a{*}");
}

TEST(CatalogQueryValidation, EveryRefusedShapeIsAnInvalidObject) {
  Catalog c(crdMode("embedded"));
  c.setDatadogMetrics(
      {object("a", "comma", "avg:a{*},avg:b{*}"), object("a", "brace", "avg:a{*"),
       object("a", "quote", "avg:a{t:\"x}"), object("a", "name", "avg:bad-name{*}")},
      at(0));
  for (auto [name, says] :
       {std::pair{"comma", "several top-level queries"}, std::pair{"brace", "unbalanced brackets"},
        std::pair{"quote", "unterminated quote"},
        std::pair{"name", "invalid metric name 'bad-name'"}}) {
    auto e = c.ensure("a", std::string("datadogmetric@a:") + name, {}, at(0));
    EXPECT_EQ(e->errorCode, 422) << name;
    EXPECT_TRUE(has(e->error, std::string("DatadogMetric a/") + name + ": spec.query is refused"))
        << e->error;
    EXPECT_TRUE(has(e->error, says)) << e->error;
  }
}

TEST(CatalogQueryValidation, OtherProblemsOfTheObjectAreKeptAfterTheRefusal) {
  Catalog c(crdMode());
  auto dm = object("shop", "both", "avg:a{*},avg:b{*}");
  dm.invalidReason = "spec.maxAge: not a duration";
  c.setDatadogMetrics({dm}, at(0));
  auto e = c.ensure("shop", "datadogmetric@shop:both", {}, at(0));
  EXPECT_EQ(e->errorCode, 422);
  EXPECT_TRUE(e->error.starts_with("DatadogMetric shop/both: spec.query is refused")) << e->error;
  EXPECT_TRUE(has(e->error, "; spec.maxAge: not a duration")) << e->error;
}

TEST(CatalogQueryValidation, PromQLIsNotHeldToDatadogSyntax) {
  // A recording rule's name holds ':', which no Datadog metric name may.
  Catalog c(crdMode());
  auto prom = object("shop", "rule", "sum(job:request_rate:sum{env=\"prod\"})");
  prom.backend = "prometheus";
  c.setDatadogMetrics({prom}, at(0));
  auto e = c.ensure("shop", "datadogmetric@shop:rule", {}, at(0));
  EXPECT_EQ(e->errorCode, 0) << e->error;
  EXPECT_EQ(e->query, "sum(job:request_rate:sum{env=\"prod\"})");
  EXPECT_EQ(c.datadogMetrics()[0].invalidReason, "");

  Catalog promDefault(crdMode("prometheus"));
  promDefault.setDatadogMetrics({object("shop", "rule", "sum(job:request_rate:sum)")}, at(0));
  EXPECT_EQ(promDefault.ensure("shop", "datadogmetric@shop:rule", {}, at(0))->errorCode, 0);
}

TEST(CatalogQueryValidation, AMetricsSettingEntryWithTwoQueriesIsRefusedNamingTheSetting) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30},
             .defaultBackend = "datadog",
             .backends = {"datadog", "prometheus"},
             .configured = {
                 {.name = "two", .query = "avg:a{*},avg:b{*}"},
                 {.name = "rule", .backend = "prometheus", .query = "sum(job:request_rate:sum)"},
                 {.name = "fine", .query = "sum:a{*}/sum:b{*}"}}});
  auto e = c.ensure("shop", "two", {}, at(0));
  EXPECT_EQ(e->errorCode, 422);
  EXPECT_TRUE(has(e->error,
                  "the query the metrics setting gives metric \"two\" is refused: "
                  "several top-level queries"))
      << e->error;
  EXPECT_TRUE(has(e->error, "fix that entry of the config file (--config)")) << e->error;
  EXPECT_EQ(c.ensure("shop", "rule", {}, at(0))->errorCode, 0);
  auto fine = c.ensure("shop", "fine", {}, at(0));
  EXPECT_EQ(fine->errorCode, 0) << fine->error;
  EXPECT_EQ(fine->query, "sum:a{*}/sum:b{*}");

  // A reload that fixes the entry re-resolves it.
  auto changed = c.setConfigured({{.name = "two", .query = "avg:a{*}"}});
  ASSERT_FALSE(changed.empty());
  EXPECT_EQ(c.ensure("shop", "two", {}, at(0))->errorCode, 0);
}

TEST(CatalogQueryValidation, AnInlineQueryWithAMetricNameDatadogRefusesIsNeverSent) {
  Catalog c(crdMode());
  auto e = c.ensure("shop", "proxy-dynamic-min-replicas", {}, at(0));
  EXPECT_EQ(e->errorCode, 422);
  EXPECT_EQ(e->rule, Rule::kInline);
  EXPECT_EQ(e->query, "avg:proxy-dynamic-min-replicas{*}.rollup(30)");  // shown, not sent
  EXPECT_TRUE(has(e->error, "invalid metric name 'proxy-dynamic-min-replicas'")) << e->error;
  EXPECT_TRUE(has(e->error, "use the metric's Datadog name in the HPA's metric.name")) << e->error;
  // In CRD mode an object named like the metric would serve it (rule 2).
  EXPECT_TRUE(has(e->error,
                  "create a DatadogMetric named \"proxy-dynamic-min-replicas\" in "
                  "namespace \"shop\""))
      << e->error;
  // ... and once it exists, it does.
  c.setDatadogMetrics({object("shop", "proxy-dynamic-min-replicas", "max:proxy.min{*}")}, at(1));
  auto named = c.ensure("shop", "proxy-dynamic-min-replicas", {}, at(1));
  EXPECT_EQ(named->errorCode, 0) << named->error;
  EXPECT_EQ(named->query, "max:proxy.min{*}");
}

TEST(CatalogQueryValidation, InlineQueriesOfABackendWithItsOwnLanguageAreNotChecked) {
  Catalog c({.inlineQuery = {query::Aggregator::kAvg, 30,
                             [](std::string_view, std::string_view m,
                                const core::LabelSelector&) -> std::optional<std::string> {
                               return "sum(" + std::string(m) + ")";
                             }},
             .defaultBackend = "prometheus",
             .backends = {"prometheus"}});
  auto e = c.ensure("shop", "job:rate:sum", {}, at(0));
  EXPECT_EQ(e->errorCode, 0) << e->error;
  EXPECT_EQ(e->query, "sum(job:rate:sum)");
}

}  // namespace
}  // namespace xmetrics::catalog

#include "demand/hpa_references.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace xmetrics::demand {
namespace {

kube::ObjectMap hpas(std::string_view json) {
  kube::ObjectMap out;
  auto parsed = boost::json::parse(json);
  for (const auto& item : parsed.as_array()) {
    out[kube::objectKey(item.as_object())] = item.as_object();
  }
  return out;
}

TEST(HpaReferences, EveryExternalMetricWithItsSelectorAndOwner) {
  auto refs = hpaReferences(hpas(R"([
    {"metadata":{"namespace":"shop","name":"web"},
     "spec":{"metrics":[
       {"type":"Resource","resource":{"name":"cpu"}},
       {"type":"External","external":{"metric":{"name":"queue.depth",
          "selector":{"matchLabels":{"queue":"orders"},
                      "matchExpressions":[{"key":"env","operator":"In","values":["prod","staging"]},
                                          {"key":"canary","operator":"DoesNotExist"}]}},
          "target":{"type":"Value","value":"10"}}},
       {"type":"External","external":{"metric":{"name":"requests"},
          "target":{"type":"AverageValue","averageValue":"5"}}}]}}
  ])"));
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].metricName, "queue.depth");
  EXPECT_EQ(refs[0].selector.canonical(), "!canary,env in (prod,staging),queue=orders");
  EXPECT_EQ(refs[0].owner, "hpa:shop/web");
  EXPECT_EQ(refs[1].metricName, "requests");
  EXPECT_TRUE(refs[1].selector.empty());
}

TEST(HpaReferences, AnUnreadableSelectorIsReportedAndSkipped) {
  std::vector<std::string> problems;
  auto refs = hpaReferences(hpas(R"([
    {"metadata":{"namespace":"a","name":"b"},
     "spec":{"metrics":[{"type":"External","external":{"metric":{"name":"m",
        "selector":{"matchExpressions":[{"key":"x","operator":"Gt","values":["1"]}]}}}}]}}
  ])"),
                            &problems);
  EXPECT_TRUE(refs.empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("hpa:a/b"), std::string::npos);
  EXPECT_NE(problems[0].find("Gt"), std::string::npos);
}

TEST(HpaSummaries, TargetsReplicasAndWhatTheHpaLastRead) {
  auto summaries = hpaSummaries(hpas(R"([
    {"metadata":{"namespace":"shop","name":"web"},
     "spec":{"scaleTargetRef":{"kind":"Deployment","name":"web"},"minReplicas":2,"maxReplicas":9,
       "metrics":[
         {"type":"Resource","resource":{"name":"cpu"}},
         {"type":"External","external":{"metric":{"name":"requests",
            "selector":{"matchLabels":{"app":"web","env":"prod"}}},
            "target":{"type":"AverageValue","averageValue":"9"}}},
         {"type":"External","external":{"metric":{"name":"queue"},
            "target":{"type":"Value","value":"40"}}}]},
     "status":{"currentReplicas":3,"desiredReplicas":4,"currentMetrics":[
       {"type":"External","external":{"metric":{"name":"requests",
          "selector":{"matchLabels":{"env":"prod","app":"web"}}},
          "current":{"averageValue":"824"}}}]}},
    {"metadata":{"namespace":"shop","name":"cpu-only"},
     "spec":{"maxReplicas":3,"metrics":[{"type":"Resource","resource":{"name":"cpu"}}]}}
  ])"));
  ASSERT_EQ(summaries.size(), 1U);  // an HPA without External metrics is not listed
  const auto& h = summaries[0];
  EXPECT_EQ(h.ns, "shop");
  EXPECT_EQ(h.name, "web");
  EXPECT_EQ(h.scaleTarget, "Deployment/web");
  EXPECT_EQ(h.minReplicas, 2);
  EXPECT_EQ(h.maxReplicas, 9);
  EXPECT_EQ(h.currentReplicas, 3);
  EXPECT_EQ(h.desiredReplicas, 4);
  ASSERT_EQ(h.metrics.size(), 2U);
  EXPECT_EQ(h.metrics[0].name, "requests");
  EXPECT_EQ(h.metrics[0].selector, "app=web,env=prod");  // canonical, as the metric's entry
  EXPECT_EQ(h.metrics[0].targetType, "AverageValue");
  EXPECT_EQ(h.metrics[0].target, "9");
  EXPECT_EQ(h.metrics[0].current, "824");  // matched by name and selector, in any label order
  EXPECT_EQ(h.metrics[1].name, "queue");
  EXPECT_EQ(h.metrics[1].target, "40");
  EXPECT_EQ(h.metrics[1].current, "");  // not read yet
}

}  // namespace
}  // namespace xmetrics::demand

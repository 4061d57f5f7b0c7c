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

}  // namespace
}  // namespace xmetrics::demand

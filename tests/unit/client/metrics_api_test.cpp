#include "client/metrics_api.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/time_format.hpp"

namespace xmetrics::client {
namespace {

// The request targets k8s.io/metrics' clients send (external_metrics/client.go,
// custom_metrics/client.go): namespaced objects under namespaces/{ns}/{resource}/{name}, a
// namespace's own metrics under namespaces/{name}/metrics/{metric}, root-scoped objects without a
// namespace; labelSelector and metricSelector as query parameters.
TEST(MetricsTarget, ExternalMetricWithItsLabelsEscaped) {
  auto t = metricsTarget(
      {.ns = "shop", .metric = "queue.depth", .labelSelector = "app=web,env in (a,b)"});
  ASSERT_TRUE(t) << t.error();
  EXPECT_EQ(*t,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue.depth"
            "?labelSelector=app%3Dweb%2Cenv%20in%20%28a%2Cb%29");
  auto bare = metricsTarget({.ns = "default", .metric = "datadogmetric@shop:orders"});
  ASSERT_TRUE(bare) << bare.error();
  EXPECT_EQ(
      *bare,
      "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/datadogmetric%40shop%3Aorders");
}

TEST(MetricsTarget, CustomMetricsOfPodsNamedObjectsNamespacesAndNodes) {
  auto pods = metricsTarget(
      {.ns = "shop", .metric = "rps", .labelSelector = "app=web", .object = "pods/*"});
  ASSERT_TRUE(pods) << pods.error();
  EXPECT_EQ(
      *pods,
      "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/rps?labelSelector=app%3Dweb");

  auto deployment = metricsTarget({.ns = "shop",
                                   .metric = "rps",
                                   .metricSelector = "verb=GET",
                                   .object = "deploy/web",
                                   .apiVersion = "v1beta1"});
  ASSERT_TRUE(deployment) << deployment.error();
  EXPECT_EQ(*deployment,
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/deployments.apps/web/rps"
            "?metricSelector=verb%3DGET");

  auto ingress = metricsTarget({.ns = "shop", .metric = "hits", .object = "ingress/front"});
  ASSERT_TRUE(ingress);
  EXPECT_EQ(
      *ingress,
      "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/ingresses.networking.k8s.io/front/hits");

  auto ns = metricsTarget({.ns = "ignored", .metric = "queue", .object = "namespace/prod"});
  ASSERT_TRUE(ns);
  EXPECT_EQ(*ns, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/metrics/queue");

  auto node = metricsTarget({.metric = "load", .object = "no/node-1"});
  ASSERT_TRUE(node);
  EXPECT_EQ(*node, "/apis/custom.metrics.k8s.io/v1beta2/nodes/node-1/load");

  // A resource kubectl has no short name for here goes as written (plural.group).
  auto other = metricsTarget({.ns = "a", .metric = "m", .object = "widgets.example.com/w1"});
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/widgets.example.com/w1/m");
}

TEST(MetricsTarget, QuestionsThatCannotBeAskedSayHowToAskThem) {
  auto noSlash = metricsTarget({.metric = "rps", .object = "pods"});
  ASSERT_FALSE(noSlash);
  EXPECT_NE(noSlash.error().find("RESOURCE/NAME"), std::string::npos) << noSlash.error();

  auto slashInName = metricsTarget({.metric = "a/b"});
  ASSERT_FALSE(slashInName);
  EXPECT_NE(slashInName.error().find("\"a/b\""), std::string::npos) << slashInName.error();

  auto empty = metricsTarget({.metric = ""});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().find("metric name is empty"), std::string::npos);

  auto dotdot = metricsTarget({.ns = "..", .metric = "m"});
  ASSERT_FALSE(dotdot);

  auto metricSelectorOnExternal = metricsTarget({.metric = "m", .metricSelector = "a=b"});
  ASSERT_FALSE(metricSelectorOnExternal);
  EXPECT_NE(metricSelectorOnExternal.error().find("--custom"), std::string::npos);

  auto labelsOnNamedObject =
      metricsTarget({.metric = "m", .labelSelector = "a=b", .object = "deployment/web"});
  ASSERT_FALSE(labelsOnNamedObject);
  EXPECT_NE(labelsOnNamedObject.error().find("--metric-selector"), std::string::npos);

  auto everyNode = metricsTarget({.metric = "m", .object = "nodes/*"});
  ASSERT_FALSE(everyNode);

  auto externalV2 = metricsTarget({.metric = "m", .apiVersion = "v1beta2"});
  ASSERT_FALSE(externalV2);
  EXPECT_NE(externalV2.error().find("only v1beta1"), std::string::npos);
}

const auto kNow = *core::parseRfc3339("2026-12-07T12:00:30Z");

TEST(ParseMetricValueList, ExternalItemsWithLabelsValueAndAge) {
  auto body = boost::json::parse(R"({"kind":"ExternalMetricValueList",
      "apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},
      "items":[{"metricName":"queue.depth","metricLabels":{"app":"web","env":"prod"},
                "timestamp":"2026-12-07T12:00:00Z","value":"1500m"}]})");
  auto rows = parseMetricValueList(body, kNow);
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 1U);
  const auto& r = rows->front();
  EXPECT_EQ(r.metric, "queue.depth");
  EXPECT_EQ(r.labels, "app=web,env=prod");
  EXPECT_EQ(r.value, "1500m");
  ASSERT_TRUE(r.number);
  EXPECT_DOUBLE_EQ(*r.number, 1.5);
  ASSERT_TRUE(r.ageSeconds);
  EXPECT_EQ(*r.ageSeconds, 30);
  EXPECT_TRUE(r.object.empty());
  EXPECT_FALSE(r.windowSeconds);
}

TEST(ParseMetricValueList, CustomV1beta2AndV1beta1Items) {
  auto v2 = boost::json::parse(R"({"kind":"MetricValueList",
      "apiVersion":"custom.metrics.k8s.io/v1beta2","metadata":{},
      "items":[{"describedObject":{"kind":"Pod","namespace":"shop","name":"web-1","apiVersion":"/v1"},
                "metric":{"name":"rps","selector":{"matchLabels":{"verb":"GET"},
                  "matchExpressions":[{"key":"code","operator":"NotIn","values":["500","503"]},
                                      {"key":"canary","operator":"DoesNotExist"}]}},
                "timestamp":"2026-12-07T12:00:20Z","windowSeconds":60,"value":"2k"}]})");
  auto rows = parseMetricValueList(v2, kNow);
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ(rows->front().object, "Pod/shop/web-1");
  EXPECT_EQ(rows->front().metric, "rps");
  EXPECT_EQ(rows->front().labels, "verb=GET,code notin (500,503),!canary");
  EXPECT_DOUBLE_EQ(*rows->front().number, 2000);
  EXPECT_EQ(*rows->front().windowSeconds, 60);
  EXPECT_EQ(*rows->front().ageSeconds, 10);

  auto v1 = boost::json::parse(R"({"kind":"MetricValueList",
      "apiVersion":"custom.metrics.k8s.io/v1beta1","metadata":{},
      "items":[{"describedObject":{"kind":"Namespace","name":"prod","apiVersion":"/v1"},
                "metricName":"queue","timestamp":"2026-12-07T12:00:30Z","value":"7"}]})");
  rows = parseMetricValueList(v1, kNow);
  ASSERT_TRUE(rows) << rows.error();
  EXPECT_EQ(rows->front().object, "Namespace/prod");
  EXPECT_EQ(rows->front().metric, "queue");
  EXPECT_EQ(rows->front().labels, "");
  EXPECT_EQ(*rows->front().ageSeconds, 0);
}

TEST(ParseMetricValueList, WhatIsNotAListSaysWhatItIs) {
  auto status = boost::json::parse(R"({"kind":"Status","status":"Failure"})");
  auto rows = parseMetricValueList(status, kNow);
  ASSERT_FALSE(rows);
  EXPECT_NE(rows.error().find("Status"), std::string::npos) << rows.error();
  EXPECT_FALSE(parseMetricValueList(boost::json::parse("[1]"), kNow));
  EXPECT_FALSE(parseMetricValueList(boost::json::parse(R"({"kind":"MetricValueList"})"), kNow));
  auto noValue = parseMetricValueList(
      boost::json::parse(R"({"kind":"ExternalMetricValueList","items":[{"metricName":"m"}]})"),
      kNow);
  ASSERT_FALSE(noValue);
  EXPECT_NE(noValue.error().find("no value"), std::string::npos);
  // A timestamp that is not RFC 3339 leaves the age unknown instead of inventing one.
  auto badTime = parseMetricValueList(boost::json::parse(R"({"kind":"ExternalMetricValueList",
          "items":[{"metricName":"m","value":"1","timestamp":"yesterday"}]})"),
                                      kNow);
  ASSERT_TRUE(badTime);
  EXPECT_FALSE(badTime->front().ageSeconds);
}

TEST(DescribeFailure, StatusReasonAndMessageElseTheBodysStart) {
  EXPECT_EQ(describeFailure(404, R"({"kind":"Status","status":"Failure","reason":"NotFound",
      "message":"no data for\nm","code":404})"),
            "404 NotFound: no data for m");
  EXPECT_EQ(describeFailure(503, "service unavailable\n"), "503: service unavailable");
  EXPECT_EQ(describeFailure(502, ""), "502 with an empty body");
}

}  // namespace
}  // namespace xmetrics::client

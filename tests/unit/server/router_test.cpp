#include "server/router.hpp"

#include <gtest/gtest.h>

namespace xmetrics::server {
namespace {

RouteMatch routeOf(std::string_view path) {
  std::vector<std::string_view> segments;
  auto rest = path.substr(1);
  while (true) {
    auto slash = rest.find('/');
    segments.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return route(path, segments);
}

TEST(Route, ExternalMetricCarriesNamespaceAndMetric) {
  auto m = routeOf("/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue.depth");
  EXPECT_EQ(m.route, Route::kExternalMetric);
  EXPECT_EQ(m.ns, "shop");
  EXPECT_EQ(m.metric, "queue.depth");
}

TEST(Route, EveryFixedPathHasItsOwnRoute) {
  EXPECT_EQ(routeOf("/readyz").route, Route::kHealth);
  EXPECT_EQ(routeOf("/metrics").route, Route::kMetrics);
  EXPECT_EQ(routeOf("/xmetrics/v1/status").route, Route::kStatus);
  EXPECT_EQ(routeOf("/xmetrics/v1/config").route, Route::kConfig);
  EXPECT_EQ(routeOf("/xmetrics/v1/logs").route, Route::kLogs);
  EXPECT_EQ(routeOf("/xmetrics/v1/replicate").route, Route::kReplicate);
  EXPECT_EQ(routeOf("/openapi/v2").route, Route::kOpenapiV2);
  EXPECT_EQ(routeOf("/openapi/v3").route, Route::kOpenapiV3);
  EXPECT_EQ(routeOf("/openapi/v3/apis/x").route, Route::kOpenapiOther);
  EXPECT_EQ(routeOf("/apis").route, Route::kDiscovery);
  EXPECT_EQ(routeOf("/apis/external.metrics.k8s.io/v1beta1").route, Route::kDiscovery);
  EXPECT_EQ(routeOf("/apis/external.metrics.k8s.io/v1beta1/namespaces/shop").route,
            Route::kUnknownInGroup);
  EXPECT_EQ(routeOf("/apis/custom.metrics.k8s.io/v1beta2").route, Route::kNotFound);
}

// The request counter's classes come from the same table: every route maps to one class.
TEST(Route, PathClassIsDerivedFromTheRoute) {
  const auto& classes = requestPathClasses();
  EXPECT_EQ(classes.at(requestPathClass(Route::kExternalMetric)), "external_metric");
  EXPECT_EQ(classes.at(requestPathClass(Route::kConfig)), "status");
  EXPECT_EQ(classes.at(requestPathClass(Route::kOpenapiRoot)), "openapi");
  EXPECT_EQ(classes.at(requestPathClass(Route::kUnknownInGroup)), "other");
  EXPECT_EQ(classes.at(requestPathClass("/xmetrics/v1/config?x=1")), "status");
}

TEST(ParseRequestTarget, DecodesThePathItsSegmentsAndTheLabelSelector) {
  auto target = parseRequestTarget(
      "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue%2Edepth/"
      "?labelSelector=env%3Dprod%2Cteam+in+%28a%29&watch=0");
  ASSERT_TRUE(target) << target.error();
  EXPECT_EQ(target->path, "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue.depth");
  EXPECT_EQ(target->parts, (std::vector<std::string>{"apis", "external.metrics.k8s.io", "v1beta1",
                                                     "namespaces", "shop", "queue.depth", ""}));
  EXPECT_EQ(target->selector, "env=prod,team in (a)");
  EXPECT_EQ(parseRequestTarget("/")->path, "/");
  // Found by fuzz_request_target: only one slash was stripped, so "///" kept a trailing one.
  EXPECT_EQ(parseRequestTarget("///")->path, "/");
  EXPECT_EQ(parseRequestTarget("/healthz//")->path, "/healthz");
  EXPECT_EQ(parseRequestTarget("/apis?x=1")->selector, "");
}

TEST(ParseRequestTarget, AMalformedTargetSaysSo) {
  for (std::string_view bad : {"", "apis", "/apis/%zz", "/a b", "http://host/apis"}) {
    auto target = parseRequestTarget(bad);
    ASSERT_FALSE(target) << bad;
    EXPECT_TRUE(target.error().starts_with("malformed request target: ")) << target.error();
  }
}

}  // namespace
}  // namespace xmetrics::server

#include "crd/datadog_metric_status.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/time_format.hpp"

namespace xmetrics::crd {
namespace {

using namespace std::chrono_literals;

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }

const boost::json::object& condition(const boost::json::object& status, std::string_view type) {
  for (const auto& c : status.at("conditions").as_array()) {
    if (c.as_object().at("type").as_string() == type) return c.as_object();
  }
  static const boost::json::object none;
  ADD_FAILURE() << "no condition " << type;
  return none;
}

std::string text(const boost::json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? std::string(v->as_string()) : "";
}

store::MetricValuePtr value(double v, core::Clock::time_point pointTime, std::string error = "") {
  auto m = std::make_shared<store::MetricValue>();
  m->sample = core::Sample{v, pointTime};
  m->error = std::move(error);
  store::MetricIdentity identity;
  identity.maxAge = 120s;
  m->metric = store::shareIdentity(std::move(identity));
  return m;
}

catalog::DatadogMetric object() {
  catalog::DatadogMetric m;
  m.ns = "shop";
  m.name = "checkout";
  m.query = "avg:q{*}";
  return m;
}

TEST(DatadogMetricStatus, AFreshValueIsValidActiveAndUpdatedAtItsPointTime) {
  auto dm = object();
  auto status = desiredStatus({.object = &dm,
                               .references = {"hpa:shop/a", "hpa:shop/b"},
                               .active = true,
                               .value = value(2472, at(1'000'000)),
                               .now = at(1'000'030)});
  EXPECT_EQ(text(status, "currentValue"), "2472");
  EXPECT_EQ(text(status, "autoscalerReferences"), "hpa:shop/a, hpa:shop/b");
  EXPECT_EQ(text(condition(status, "Active"), "status"), "True");
  EXPECT_EQ(text(condition(status, "Valid"), "status"), "True");
  EXPECT_EQ(text(condition(status, "Updated"), "status"), "True");
  EXPECT_EQ(text(condition(status, "Updated"), "lastUpdateTime"), core::rfc3339(at(1'000'000)));
  EXPECT_EQ(text(condition(status, "Error"), "status"), "False");
  EXPECT_EQ(text(condition(status, "Active"), "lastTransitionTime"), core::rfc3339(at(1'000'030)));
}

TEST(DatadogMetricStatus, ErrorsAndStaleValuesAreInvalidWithTheReason) {
  auto dm = object();
  auto failing = desiredStatus({.object = &dm,
                                .active = true,
                                .value = value(1, at(100), "no serie was found for this query"),
                                .now = at(110)});
  EXPECT_EQ(text(condition(failing, "Valid"), "status"), "False");
  const auto& error = condition(failing, "Error");
  EXPECT_EQ(text(error, "status"), "True");
  EXPECT_EQ(text(error, "reason"), "Unable to fetch data from Datadog");
  EXPECT_EQ(text(error, "message"), "no serie was found for this query");

  auto stale =
      desiredStatus({.object = &dm, .active = true, .value = value(1, at(0)), .now = at(500)});
  EXPECT_EQ(text(condition(stale, "Valid"), "status"), "False");
  EXPECT_NE(text(condition(stale, "Error"), "message").find("outdated result"), std::string::npos);

  auto invalid = object();
  invalid.invalidReason = "spec.query: %%env_X%% cannot be resolved";
  auto bad = desiredStatus({.object = &invalid, .now = at(0)});
  EXPECT_EQ(text(condition(bad, "Error"), "message"), invalid.invalidReason);
  EXPECT_EQ(text(bad, "currentValue"), "0");
}

TEST(DatadogMetricStatus, TransitionTimesMoveOnlyOnFlips) {
  auto dm = object();
  auto first =
      desiredStatus({.object = &dm, .active = true, .value = value(5, at(100)), .now = at(110)});
  auto second = desiredStatus({.object = &dm,
                               .current = &first,
                               .active = true,
                               .value = value(6, at(130)),
                               .now = at(140)});
  EXPECT_EQ(text(condition(second, "Valid"), "lastTransitionTime"), core::rfc3339(at(110)));
  EXPECT_EQ(text(condition(second, "Active"), "lastTransitionTime"), core::rfc3339(at(110)));
  auto inactive = desiredStatus({.object = &dm,
                                 .current = &second,
                                 .active = false,
                                 .value = value(6, at(130)),
                                 .now = at(150)});
  EXPECT_EQ(text(condition(inactive, "Active"), "status"), "False");
  EXPECT_EQ(text(condition(inactive, "Active"), "lastTransitionTime"), core::rfc3339(at(150)));
  EXPECT_EQ(text(condition(inactive, "Valid"), "lastTransitionTime"), core::rfc3339(at(110)));
}

TEST(DatadogMetricStatus, OnlyTheDataPointMovingIsAFreshnessChange) {
  auto dm = object();
  auto a =
      desiredStatus({.object = &dm, .active = true, .value = value(5, at(100)), .now = at(110)});
  auto b = desiredStatus(
      {.object = &dm, .current = &a, .active = true, .value = value(5, at(130)), .now = at(140)});
  auto c = desiredStatus(
      {.object = &dm, .current = &b, .active = true, .value = value(9, at(160)), .now = at(170)});
  EXPECT_EQ(compareStatus(&a, a), StatusChange::kNone);
  EXPECT_EQ(compareStatus(&a, b), StatusChange::kFreshness);
  EXPECT_EQ(compareStatus(&b, c), StatusChange::kSignificant);
  EXPECT_EQ(compareStatus(nullptr, a), StatusChange::kSignificant);
}

TEST(DatadogMetricStatus, CurrentValueIsPlainDecimal) {
  EXPECT_EQ(plainDecimal(2472), "2472");
  EXPECT_EQ(plainDecimal(0.25), "0.25");
  EXPECT_EQ(plainDecimal(-3.5), "-3.5");
  EXPECT_EQ(plainDecimal(1e20), "100000000000000000000");
  EXPECT_EQ(plainDecimal(-0.0), "0");
}

}  // namespace
}  // namespace xmetrics::crd

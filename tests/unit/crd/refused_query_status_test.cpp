// A DatadogMetric whose query the catalog refuses for a Datadog batch says so in its own status,
// whether or not anything has requested it yet.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "catalog/catalog.hpp"
#include "crd/datadog_metric_status.hpp"

namespace xmetrics::crd {
namespace {

core::Clock::time_point at(int64_t s) { return core::Clock::time_point(std::chrono::seconds(s)); }

std::string conditionField(const boost::json::object& status, std::string_view type,
                           std::string_view field) {
  for (const auto& c : status.at("conditions").as_array()) {
    const auto& o = c.as_object();
    if (o.at("type").as_string() != type) continue;
    auto* v = o.if_contains(field);
    return v ? std::string(v->as_string()) : "";
  }
  ADD_FAILURE() << "no condition " << type;
  return "";
}

TEST(RefusedQueryStatus, ValidIsFalseAndErrorIsTrueWithAMessageNamingTheObject) {
  catalog::Catalog c({.useDatadogMetrics = true, .defaultBackend = "datadog"});
  catalog::DatadogMetric dm;
  dm.ns = "shop";
  dm.name = "two";
  dm.query = "avg:a{*},avg:b{*}";
  c.setDatadogMetrics({dm}, at(0));
  auto objects = c.datadogMetrics();
  ASSERT_EQ(objects.size(), 1u);
  auto status = desiredStatus({.object = &objects[0], .now = at(10)});
  EXPECT_EQ(conditionField(status, "Valid", "status"), "False");
  EXPECT_EQ(conditionField(status, "Error", "status"), "True");
  auto message = conditionField(status, "Error", "message");
  EXPECT_TRUE(
      message.starts_with("DatadogMetric shop/two: spec.query is refused: several "
                          "top-level queries in one"))
      << message;
  EXPECT_EQ(conditionField(status, "Valid", "message"), message);
}

}  // namespace
}  // namespace xmetrics::crd

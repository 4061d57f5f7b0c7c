#include "core/metric_key.hpp"

#include <gtest/gtest.h>

namespace xmetrics::core {
namespace {

TEST(MetricKey, IsCaseInsensitiveOnTheNameOnly) {
  EXPECT_EQ(metricKey("ns", "Shop.Visits", "env=Prod"), metricKey("ns", "shop.visits", "env=Prod"));
  EXPECT_NE(metricKey("ns", "shop.visits", "env=Prod"), metricKey("ns", "shop.visits", "env=prod"));
  EXPECT_NE(metricKey("ns", "a", "b=c"), metricKey("ns",
                                                   "a\x1f"
                                                   "b",
                                                   "=c"));
}

}  // namespace
}  // namespace xmetrics::core

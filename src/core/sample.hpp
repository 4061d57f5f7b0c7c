#pragma once

// core/: the model every folder shares (Sample, Labels, LabelSelector, Quantity, MetricKey and
// DemandStamp, BackendHealth), json_fields and strings. No I/O; includes nothing of xmetrics'.

#include <chrono>
#include <map>
#include <string>

namespace xmetrics::core {

using Clock = std::chrono::system_clock;

// One observed value of a metric, as a backend reports it.
struct Sample {
  double value = 0;        // in the metric's own unit (a DogStatsD count is per second)
  Clock::time_point time;  // when the data point was taken, not when it was fetched
  std::string unit;  // what `value` counts, e.g. "per second"; empty when the backend can't tell
};

// Label set of a metric item (`metricLabels` on the wire). Ordered, so rendering is stable.
using Labels = std::map<std::string, std::string, std::less<>>;

}  // namespace xmetrics::core

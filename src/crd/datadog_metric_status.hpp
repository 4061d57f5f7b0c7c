#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "catalog/datadog_metric.hpp"
#include "core/sample.hpp"
#include "store/value_store.hpp"

namespace xmetrics::crd {

// What the status of one DatadogMetric is computed from.
struct StatusInputs {
  const catalog::DatadogMetric* object = nullptr;
  // The status as the object has it now (for transition times); may be null.
  const boost::json::object* current = nullptr;
  std::vector<std::string> references;  // "hpa:ns/name", sorted
  bool active = false;
  // The freshest value served through the object; null when none was fetched.
  store::MetricValuePtr value;
  core::Clock::time_point now;
};

// The `.status` the Cluster Agent would write: currentValue (plain decimal), autoscalerReferences
// ("hpa:ns/a, hpa:ns/b"), conditions Active, Valid, Updated (lastUpdateTime = the data point's
// time), Error (reason "Unable to fetch data from Datadog", message = the error). A condition's
// lastTransitionTime moves only when its status flips. Pure, so it is tested without a cluster.
boost::json::object desiredStatus(const StatusInputs& inputs);

// How two statuses differ. kFreshness: only the data point's time moved (same value, same
// conditions); such writes are spread out, flips are written at once.
enum class StatusChange { kNone, kFreshness, kSignificant };
StatusChange compareStatus(const boost::json::object* current, const boost::json::object& desired);

// A value as the Cluster Agent writes currentValue: plain decimal, no exponent ("2472", "0.25").
std::string plainDecimal(double value);

}  // namespace xmetrics::crd

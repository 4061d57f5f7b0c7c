#include "store/value_store.hpp"

#include <boost/json.hpp>
#include <cmath>

#include "core/quantity.hpp"
#include "core/time_format.hpp"

namespace xmetrics::store {

std::string renderValueList(const MetricValue& value) {
  if (!value.sample) return {};
  boost::json::object labels;
  for (const auto& [k, v] : value.labels) labels[k] = v;
  boost::json::object item{
      {"metricName", value.metricName},
      {"metricLabels", labels},
      {"timestamp", core::rfc3339(value.sample->time)},
      {"value", core::formatQuantity(value.sample->value)},
  };
  boost::json::object list{
      {"kind", "ExternalMetricValueList"},
      {"apiVersion", "external.metrics.k8s.io/v1beta1"},
      {"metadata", boost::json::object{}},
      {"items", boost::json::array{std::move(item)}},
  };
  return boost::json::serialize(list);
}

std::size_t ValueSnapshot::size() const {
  std::size_t n = base->size();
  for (const auto& [key, value] : recent) n += base->contains(key) ? 0 : 1;
  return n;
}

ValueStore::ValueStore()
    : current_(std::make_shared<const ValueSnapshot>()),
      status_(std::make_shared<const ServiceStatus>()) {}

void ValueStore::publishStatus(ServiceStatus next) {
  status_.store(std::make_shared<const ServiceStatus>(std::move(next)), std::memory_order_release);
}

void ValueStore::publish(ValueSnapshot&& next) {
  auto previous = snapshot();
  next.generation = previous->generation + 1;
  current_.store(std::make_shared<const ValueSnapshot>(std::move(next)), std::memory_order_release);
}

}  // namespace xmetrics::store

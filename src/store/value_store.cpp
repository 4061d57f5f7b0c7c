#include "store/value_store.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <string_view>

#include "core/quantity.hpp"
#include "core/time_format.hpp"

namespace xmetrics::store {

namespace {

// A JSON string as boost::json::serialize writes it. Names and label values need no escaping
// almost always, so those are copied as they are.
void appendJsonString(std::string& out, std::string_view text) {
  bool plain = std::none_of(text.begin(), text.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
  if (!plain) {
    out += boost::json::serialize(boost::json::value(boost::json::string_view(text)));
    return;
  }
  out += '"';
  out += text;
  out += '"';
}

}  // namespace

std::string renderValueList(const MetricValue& value) {
  if (!value.sample) return {};
  // Written directly rather than through a boost::json tree (a refresh renders one per metric
  // whose point moved); the bytes are those serialize() gives for the same object, which
  // value_store_test checks.
  std::string out;
  out.reserve(192 + value.metricName.size());
  out += R"({"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",)"
         R"("metadata":{},"items":[{"metricName":)";
  appendJsonString(out, value.metricName);
  out += R"(,"metricLabels":{)";
  bool first = true;
  for (const auto& [k, v] : value.labels) {
    if (!first) out += ',';
    first = false;
    appendJsonString(out, k);
    out += ':';
    appendJsonString(out, v);
  }
  out += R"(},"timestamp":)";
  appendJsonString(out, core::rfc3339(value.sample->time));
  out += R"(,"value":)";
  appendJsonString(out, core::formatQuantity(value.sample->value));
  out += "}]}";
  return out;
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

#include "store/value_store.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <string_view>

#include "core/quantity.hpp"
#include "core/time_format.hpp"

namespace xmetrics::store {

namespace {

// Whether boost::json::serialize writes `text` as it is, between quotes.
bool isPlainJson(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

// A JSON string as boost::json::serialize writes it. Names and label values need no escaping
// almost always, so those are copied as they are; `plain` says they are known to need none.
void appendJsonString(std::string& out, std::string_view text, bool plain = false) {
  if (!plain && !isPlainJson(text)) {
    out += boost::json::serialize(boost::json::value(boost::json::string_view(text)));
    return;
  }
  out += '"';
  out += text;
  out += '"';
}

}  // namespace

std::shared_ptr<const std::string> renderValueList(const MetricValue& value) {
  if (!value.sample) return nullptr;
  // Written directly rather than through a boost::json tree (a refresh renders one per metric
  // whose point moved), into one allocation; the bytes are those serialize() gives for the same
  // object, which value_store_test checks.
  const MetricIdentity& metric = *value.metric;
  auto body = std::make_shared<std::string>();
  std::string& out = *body;
  std::size_t labelBytes = 0;
  for (const auto& [k, v] : metric.labels) labelBytes += k.size() + v.size() + 6;
  out.reserve(200 + metric.metricName.size() + labelBytes);
  out += R"({"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1",)"
         R"("metadata":{},"items":[{"metricName":)";
  appendJsonString(out, metric.metricName, metric.plainJson);
  out += R"(,"metricLabels":{)";
  bool first = true;
  for (const auto& [k, v] : metric.labels) {
    if (!first) out += ',';
    first = false;
    appendJsonString(out, k, metric.plainJson);
    out += ':';
    appendJsonString(out, v, metric.plainJson);
  }
  out += R"(},"timestamp":")";
  core::appendRfc3339(out, value.sample->time);  // never needs escaping
  out += R"(","value":)";
  appendJsonString(out, core::formatQuantity(value.sample->value), true);  // digits, . e m k ...
  out += "}]}";
  return body;
}

MetricIdentityPtr shareIdentity(MetricIdentity identity) {
  identity.key = core::metricKey(identity.ns, identity.metricName, identity.selector);
  identity.keyHash = ValueMap::hashOf(identity.key);
  identity.plainJson =
      isPlainJson(identity.metricName) && std::ranges::all_of(identity.labels, [](const auto& kv) {
        return isPlainJson(kv.first) && isPlainJson(kv.second);
      });
  return std::make_shared<const MetricIdentity>(std::move(identity));
}

const MetricIdentityPtr& MetricValue::emptyIdentity() {
  static const MetricIdentityPtr empty = shareIdentity({});
  return empty;
}

void ValueMap::put(MetricValuePtr value) {
  Key key = keyOf(*value);
  auto [it, inserted] = map_.try_emplace(key, value);
  if (!inserted) {
    // The key views the old value's string: view the new one's, which is equal.
    auto node = map_.extract(it);
    node.key() = key;
    node.mapped() = std::move(value);
    map_.insert(std::move(node));
  }
}

bool ValueMap::putIfAbsent(const MetricValuePtr& value) {
  return map_.try_emplace(keyOf(*value), value).second;
}

std::size_t ValueSnapshot::size() const {
  std::size_t n = base->size();
  recent.forEach(
      [&](std::string_view key, const MetricValuePtr&) { n += base->contains(key) ? 0 : 1; });
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

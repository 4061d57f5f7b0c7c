#include "crd/datadog_metric_status.hpp"

#include <boost/json.hpp>
#include <cmath>
#include <cstdio>

#include "core/time_format.hpp"

namespace xmetrics::crd {
namespace {

const boost::json::object* conditionOf(const boost::json::object* status, std::string_view type) {
  if (!status) return nullptr;
  auto* conditions = status->if_contains("conditions");
  if (!conditions || !conditions->is_array()) return nullptr;
  for (const auto& c : conditions->as_array()) {
    if (!c.is_object()) continue;
    auto* t = c.as_object().if_contains("type");
    if (t && t->is_string() && t->as_string() == type) return &c.as_object();
  }
  return nullptr;
}

std::string stringAt(const boost::json::object* o, std::string_view key) {
  if (!o) return {};
  auto* v = o->if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::string plainDecimal(double value) {
  if (!std::isfinite(value)) return "0";
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, "%.6f", value);
  std::string text = buffer;
  if (auto dot = text.find('.'); dot != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  if (text == "-0") text = "0";
  return text;
}

boost::json::object desiredStatus(const StatusInputs& in) {
  const auto& value = in.value;
  std::string now = core::rfc3339(in.now);
  bool hasSample = value && value->sample;
  std::string error = value ? value->error : std::string();
  if (in.object && !in.object->invalidReason.empty()) error = in.object->invalidReason;
  bool fresh = hasSample && error.empty() && store::isFresh(*value, in.now);
  if (hasSample && error.empty() && !fresh) {
    error = "outdated result: the newest data point (" + core::rfc3339(value->sample->time) +
            ") is older than maxAge " + std::to_string(value->metric->maxAge.count()) + "s";
  }

  boost::json::array conditions;
  auto condition = [&](std::string_view type, bool status, std::string reason, std::string message,
                       std::string lastUpdate) {
    const auto* previous = conditionOf(in.current, type);
    std::string statusText = status ? "True" : "False";
    std::string transition = stringAt(previous, "lastTransitionTime");
    if (!previous || stringAt(previous, "status") != statusText || transition.empty()) {
      transition = now;
    }
    boost::json::object c{{"type", type},
                          {"status", statusText},
                          {"lastTransitionTime", transition},
                          {"lastUpdateTime", lastUpdate.empty() ? transition : lastUpdate}};
    if (!reason.empty()) c["reason"] = reason;
    if (!message.empty()) c["message"] = message;
    conditions.push_back(std::move(c));
  };
  condition("Active", in.active, "", "", "");
  condition("Valid", fresh, "", fresh ? "" : error, "");
  // Updated carries the data point's time, so `kubectl get datadogmetric` shows how old it is.
  std::string pointTime = hasSample
                              ? core::rfc3339(value->sample->time)
                              : stringAt(conditionOf(in.current, "Updated"), "lastUpdateTime");
  condition("Updated", hasSample, "", "", pointTime);
  condition("Error", !error.empty(), error.empty() ? "" : "Unable to fetch data from Datadog",
            error, "");

  boost::json::object status;
  std::string references;
  for (const auto& r : in.references) references += (references.empty() ? "" : ", ") + r;
  status["autoscalerReferences"] = references;
  if (hasSample) {
    status["currentValue"] = plainDecimal(value->sample->value);
  } else if (in.current) {
    // Keep the last value shown rather than pretending it was zero; Valid says it is not current.
    if (auto v = stringAt(in.current, "currentValue"); !v.empty()) status["currentValue"] = v;
  }
  if (!status.contains("currentValue")) status["currentValue"] = "0";
  status["conditions"] = std::move(conditions);
  return status;
}

StatusChange compareStatus(const boost::json::object* current, const boost::json::object& desired) {
  if (!current) return StatusChange::kSignificant;
  if (*current == desired) return StatusChange::kNone;
  // Equal once the Updated condition's time is set aside: only freshness moved.
  auto withoutPointTime = [](boost::json::object status) {
    if (auto* conditions = status.if_contains("conditions"); conditions && conditions->is_array()) {
      for (auto& c : conditions->as_array()) {
        if (c.is_object() && stringAt(&c.as_object(), "type") == "Updated") {
          c.as_object().erase("lastUpdateTime");
        }
      }
    }
    return status;
  };
  return withoutPointTime(*current) == withoutPointTime(desired) ? StatusChange::kFreshness
                                                                 : StatusChange::kSignificant;
}

}  // namespace xmetrics::crd

#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

// Typed reads of a JSON object's fields, as every reader of Kubernetes objects, backend answers and
// xmetrics' own status report needs them: a missing field or one of another type reads as absent
// (empty string, nullptr, the fallback) — never an exception from the request path.
namespace xmetrics::core::json {

inline std::string str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}
inline std::string str(const boost::json::object* o, std::string_view key) {
  return o ? str(*o, key) : std::string();
}

inline const boost::json::object* objectAt(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}
inline const boost::json::object* objectAt(const boost::json::object* o, std::string_view key) {
  return o ? objectAt(*o, key) : nullptr;
}

inline const boost::json::array* arrayAt(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_array() ? &v->as_array() : nullptr;
}
inline const boost::json::array* arrayAt(const boost::json::object* o, std::string_view key) {
  return o ? arrayAt(*o, key) : nullptr;
}

// A number of any JSON kind (int, uint, double) as int64; `fallback` when absent or not a number.
inline int64_t intAt(const boost::json::object& o, std::string_view key, int64_t fallback = 0) {
  const auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return fallback;
  boost::system::error_code ec;
  auto n = v->to_number<int64_t>(ec);
  return ec ? fallback : n;
}

inline bool boolAt(const boost::json::object& o, std::string_view key, bool fallback = false) {
  const auto* v = o.if_contains(key);
  return v && v->is_bool() ? v->as_bool() : fallback;
}

}  // namespace xmetrics::core::json

#pragma once

#include <boost/json.hpp>
#include <boost/url.hpp>
#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "doctor/evidence.hpp"

// Small helpers the checks and the gatherer share: how numbers, paths and errors read. Internal to
// doctor/.
namespace xmetrics::doctor::detail {

inline bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Shortest decimal that round-trips: 824, 91.56, 0.25.
inline std::string decimal(double v) { return core::shortestDecimal(v); }

// A ratio for people: 91.56 rather than 91.55555555555556.
inline std::string rounded(double v) { return decimal(std::round(v * 100) / 100); }

inline bool isInvalidKeys(std::string_view e) {
  return contains(e, "403 Forbidden") || contains(e, "401 Unauthorized") ||
         contains(e, "check the API and application keys");
}

inline bool isRateLimited(std::string_view e) {
  return contains(e, "429") || contains(e, "rate limited") || contains(e, "rate limit") ||
         contains(e, "Rate limit");
}

inline const std::string kKeysFix =
    "give xmetrics a valid Datadog API key and application key for this site (DD_API_KEY / "
    "DD_APP_KEY, or --datadog-api-key-file / --datadog-app-key-file, which are re-read when the "
    "Secret changes); check DD_SITE matches the organisation's site";
inline const std::string kRateFix =
    "fewer distinct queries per refresh (HPAs that ask the same query share one), a longer "
    "--refresh-period, or a higher query rate limit from Datadog; every client using the same API "
    "key spends the same budget";

// A list's items; empty when the answer has none.
inline const boost::json::array& itemsOf(const boost::json::value& list) {
  static const boost::json::array kNone;
  const auto* items = list.is_object() ? core::json::arrayAt(list.as_object(), "items") : nullptr;
  return items ? *items : kNone;
}

inline std::string encodeQueryValue(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

inline std::string externalMetricPath(const std::string& ns, const std::string& metric,
                                      const std::string& selector) {
  std::string p = std::string(kExternalPrefix) + "/namespaces/" + ns + "/" + metric;
  if (!selector.empty()) p += "?labelSelector=" + encodeQueryValue(selector);
  return p;
}

// A Service's selector as label-selector text: "app=xmetrics,tier=api".
inline std::string selectorText(const boost::json::object* spec) {
  std::string selector;
  if (const auto* sel = core::json::objectAt(spec, "selector")) {
    for (const auto& [k, v] : *sel) {
      selector += (selector.empty() ? "" : ",") + std::string(k) + "=" +
                  (v.is_string() ? std::string(v.as_string()) : "");
    }
  }
  return selector;
}

}  // namespace xmetrics::doctor::detail

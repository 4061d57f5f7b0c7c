// Redaction for everything the flare collects from the cluster: an archive that is attached to
// a support ticket must carry no credential.

#include <boost/json.hpp>
#include <regex>

#include "flare/flare.hpp"

namespace xmetrics::flare {
namespace {

// Endpoint lists carry per-endpoint keys; proxy URLs carry user:password.
bool looksSecret(std::string_view name) {
  static const std::regex pattern("(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|ENDPOINTS|PROXY)",
                                  std::regex::icase);
  return std::regex_search(name.begin(), name.end(), pattern);
}

// A container argument like --datadog-api-key=…, and user:password@ in any URL.
std::string redactText(const std::string& text) {
  static const std::regex flag(
      "^(--?[A-Za-z0-9-]*(key|token|secret|password|credential|endpoints|proxy)[A-Za-z0-9-]*=).+$",
      std::regex::icase);
  static const std::regex userinfo("(://)[^/@\\s]+@");
  std::string out = std::regex_replace(text, flag, "$1<redacted>");
  return std::regex_replace(out, userinfo, "$1<redacted>@");
}

void redactInPlace(boost::json::value& v) {
  if (v.is_string()) {
    v = redactText(std::string(v.as_string()));
    return;
  }
  if (v.is_array()) {
    for (auto& item : v.as_array()) redactInPlace(item);
    return;
  }
  if (!v.is_object()) return;
  auto& o = v.as_object();
  // Bulky, and last-applied-configuration repeats every env value verbatim.
  if (auto* meta = o.if_contains("metadata"); meta && meta->is_object()) {
    meta->as_object().erase("managedFields");
    if (auto* ann = meta->as_object().if_contains("annotations"); ann && ann->is_object()) {
      ann->as_object().erase("kubectl.kubernetes.io/last-applied-configuration");
    }
  }
  // Container env: {name, value} pairs whose name says credential.
  if (auto* name = o.if_contains("name");
      name && name->is_string() && o.contains("value") && looksSecret(name->as_string())) {
    o["value"] = "<redacted>";
  }
  // A Secret's payload never travels, whatever it is called.
  if (auto* kind = o.if_contains("kind");
      kind && kind->is_string() && kind->as_string() == "Secret") {
    o.erase("data");
    o.erase("stringData");
  }
  for (auto& [key, child] : o) redactInPlace(child);
}

}  // namespace

std::string redactForFlare(std::string_view json) {
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec) return "<not JSON; left out>";
  redactInPlace(v);
  return boost::json::serialize(v);
}

}  // namespace xmetrics::flare

#include "catalog/datadog_metric.hpp"

#include <openssl/evp.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <regex>

#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"

namespace xmetrics::catalog {
namespace {

using core::lowercase;
using core::json::objectAt;
using core::json::str;

}  // namespace

std::expected<std::string, std::string> resolveTemplateVariables(std::string_view query,
                                                                 const TemplateContext& context) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    auto open = query.find("%%", pos);
    if (open == std::string_view::npos) break;
    auto close = query.find("%%", open + 2);
    if (close == std::string_view::npos) {
      return std::unexpected("unterminated template variable at position " + std::to_string(open) +
                             " (variables look like %%env_NAME%%)");
    }
    out.append(query.substr(pos, open - pos));
    std::string variable(query.substr(open + 2, close - open - 2));
    if (variable == "tag_kube_cluster_name") {
      if (context.clusterName.empty()) {
        return std::unexpected(
            "%%tag_kube_cluster_name%% cannot be resolved: the cluster name is unknown (set "
            "--cluster-name or DD_CLUSTER_NAME)");
      }
      out += context.clusterName;
    } else if (variable.starts_with("env_") && variable.size() > 4) {
      std::string name = variable.substr(4);
      // Whoever may create a DatadogMetric must not read xmetrics' credentials through it: the
      // resolved query shows in status, logs, HPA conditions and the object's own status.
      std::string upper;
      for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      for (const char* word :
           {"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "ENDPOINTS", "PROXY"}) {
        if (upper.find(word) != std::string::npos) {
          return std::unexpected("%%" + variable + "%% is refused: " + name +
                                 " looks like a credential, and a query's text is shown in "
                                 "status and errors; use a variable holding a plain tag value");
        }
      }
      std::optional<std::string> value;
      if (context.env) {
        value = context.env(name);
      } else if (const char* v = std::getenv(name.c_str())) {
        value = v;
      }
      if (!value) {
        return std::unexpected("%%" + variable + "%% cannot be resolved: environment variable " +
                               name + " is not set in xmetrics' environment");
      }
      out += *value;
    } else {
      return std::unexpected("unknown template variable %%" + variable +
                             "%% (supported: %%tag_kube_cluster_name%%, %%env_<VARIABLE>%%)");
    }
    pos = close + 2;
  }
  out.append(query.substr(pos));
  return out;
}

DatadogMetric parseDatadogMetric(const boost::json::object& object,
                                 const TemplateContext& context) {
  DatadogMetric m;
  std::vector<std::string> problems;
  if (auto* meta = objectAt(object, "metadata")) {
    m.ns = str(*meta, "namespace");
    m.name = str(*meta, "name");
    if (auto* annotations = objectAt(*meta, "annotations")) {
      m.alwaysActive = lowercase(str(*annotations, kAlwaysActiveAnnotation)) == "true";
      m.backend = lowercase(str(*annotations, kBackendAnnotation));
    }
  }
  const boost::json::object empty;
  const auto* spec = objectAt(object, "spec");
  if (!spec) spec = &empty;
  m.externalMetricName = lowercase(str(*spec, "externalMetricName"));
  m.autogen = m.name.starts_with(kAutogenPrefix) && !m.externalMetricName.empty();
  auto duration = [&](std::string_view field) -> std::optional<std::chrono::seconds> {
    std::string text = str(*spec, field);
    if (text.empty()) return std::nullopt;
    auto parsed = core::parseDuration(text);
    if (!parsed) {
      problems.push_back("spec." + std::string(field) + ": " + parsed.error());
      return std::nullopt;
    }
    return *parsed;
  };
  m.maxAge = duration("maxAge");
  m.timeWindow = duration("timeWindow");
  std::string raw = str(*spec, "query");
  if (raw.empty()) {
    problems.push_back("spec.query is empty");
  } else if (auto resolved = resolveTemplateVariables(raw, context)) {
    m.query = std::move(*resolved);
  } else {
    problems.push_back("spec.query: " + resolved.error());
  }
  for (const auto& p : problems) m.invalidReason += (m.invalidReason.empty() ? "" : "; ") + p;
  return m;
}

std::expected<ObjectReference, std::string> parseReference(std::string_view metricName) {
  // The Cluster Agent's pattern, so names it rejects are rejected here too.
  static const std::regex pattern(
      "^datadogmetric@([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9]*[a-z0-9])?)$");
  std::match_results<std::string_view::const_iterator> match;
  if (!std::regex_match(metricName.begin(), metricName.end(), match, pattern)) {
    return std::unexpected(
        "\"" + std::string(metricName) +
        "\" is not a valid DatadogMetric reference: use datadogmetric@<namespace>:<name> with "
        "lowercase letters, digits and '-'");
  }
  return ObjectReference{match[1].str(), match[3].str()};
}

std::string autogenName(std::string_view query) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(query.data(), query.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name(kAutogenPrefix);
  for (int i = 0; i < 19; ++i) {
    name += kHex[digest[i] >> 4];
    name += kHex[digest[i] & 0xf];
  }
  return name;
}

bool isObjectName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace xmetrics::catalog

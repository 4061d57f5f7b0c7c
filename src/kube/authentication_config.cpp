#include "kube/authentication_config.hpp"

#include <boost/json.hpp>

namespace xmetrics::kube {
namespace {

std::expected<std::vector<std::string>, std::string> stringList(const boost::json::object& data,
                                                                std::string_view key) {
  auto* v = data.if_contains(key);
  if (!v || !v->is_string() || v->as_string().empty()) return std::vector<std::string>{};
  boost::system::error_code ec;
  auto parsed = boost::json::parse(v->as_string(), ec);
  if (ec || !parsed.is_array()) {
    return std::unexpected(std::string(key) + " is not a JSON array of strings");
  }
  std::vector<std::string> out;
  for (const auto& s : parsed.as_array()) {
    if (s.is_string()) out.emplace_back(s.as_string());
  }
  return out;
}

}  // namespace

std::expected<auth::AuthenticationConfig, std::string> authenticationConfigFrom(
    const boost::json::object& configMap, auth::AuthenticationConfig base,
    const std::string& extraClientCaPem) {
  const std::string where = "kube-system/extension-apiserver-authentication ";
  auto* d = configMap.if_contains("data");
  if (!d || !d->is_object()) return std::unexpected(where + "has no data");
  const auto& data = d->as_object();
  if (!extraClientCaPem.empty()) {
    auto pool = auth::CertificatePool::fromPem(extraClientCaPem, "xmetrics' CA (ca.crt)");
    if (!pool) return std::unexpected(pool.error());
    base.replicaCa = *pool;
  }
  if (auto* ca = data.if_contains("client-ca-file");
      ca && ca->is_string() && !ca->as_string().empty()) {
    auto pool =
        auth::CertificatePool::fromPem(std::string(ca->as_string()), where + "client-ca-file");
    if (!pool) return std::unexpected(pool.error());
    base.clientCa = *pool;
  }
  if (auto* ca = data.if_contains("requestheader-client-ca-file");
      ca && ca->is_string() && !ca->as_string().empty()) {
    auto pool = auth::CertificatePool::fromPem(std::string(ca->as_string()),
                                               where + "requestheader-client-ca-file");
    if (!pool) return std::unexpected(pool.error());
    auth::RequestHeaderConfig rh;
    rh.ca = *pool;
    auto names = stringList(data, "requestheader-allowed-names");
    auto users = stringList(data, "requestheader-username-headers");
    auto groups = stringList(data, "requestheader-group-headers");
    auto extra = stringList(data, "requestheader-extra-headers-prefix");
    for (const auto* list : {&names, &users, &groups, &extra}) {
      if (!*list) return std::unexpected(where + list->error());
    }
    rh.allowedNames = *names;
    if (!users->empty()) rh.usernameHeaders = *users;
    if (!groups->empty()) rh.groupHeaders = *groups;
    if (!extra->empty()) rh.extraHeaderPrefixes = *extra;
    base.requestHeader = std::move(rh);
  }
  return base;
}

}  // namespace xmetrics::kube

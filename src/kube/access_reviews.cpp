#include "kube/access_reviews.hpp"

#include <boost/json.hpp>

#include "core/json_fields.hpp"

namespace xmetrics::kube {
namespace {

using core::json::str;

}  // namespace

std::expected<std::optional<auth::UserInfo>, std::string> KubeTokenReviewer::review(
    const std::string& token) {
  boost::json::object body{{"apiVersion", "authentication.k8s.io/v1"},
                           {"kind", "TokenReview"},
                           {"spec", boost::json::object{{"token", token}}}};
  auto result = client_.post("/apis/authentication.k8s.io/v1/tokenreviews", body);
  // The error is kube-apiserver's Status, which never echoes the token.
  if (!result) return std::unexpected("TokenReview: " + result.error().describe());
  const auto* status = result->as_object().if_contains("status");
  if (!status || !status->is_object()) return std::optional<auth::UserInfo>();
  const auto& s = status->as_object();
  auto* authenticated = s.if_contains("authenticated");
  if (!authenticated || !authenticated->is_bool() || !authenticated->as_bool()) {
    return std::optional<auth::UserInfo>();
  }
  auth::UserInfo user;
  if (auto* u = s.if_contains("user"); u && u->is_object()) {
    const auto& uo = u->as_object();
    user.name = str(uo, "username");
    user.uid = str(uo, "uid");
    if (auto* groups = uo.if_contains("groups"); groups && groups->is_array()) {
      for (const auto& g : groups->as_array()) {
        if (g.is_string()) user.groups.emplace_back(g.as_string());
      }
    }
    if (auto* extra = uo.if_contains("extra"); extra && extra->is_object()) {
      for (const auto& [k, values] : extra->as_object()) {
        if (!values.is_array()) continue;
        for (const auto& v : values.as_array()) {
          if (v.is_string()) user.extra[std::string(k)].emplace_back(v.as_string());
        }
      }
    }
  }
  return std::optional<auth::UserInfo>(std::move(user));
}

std::expected<auth::AccessDecision, std::string> KubeAccessReviewer::review(
    const auth::UserInfo& user, const auth::AccessRequest& request) {
  boost::json::object spec{{"user", user.name}, {"uid", user.uid}};
  boost::json::array groups;
  for (const auto& g : user.groups) groups.emplace_back(g);
  spec["groups"] = std::move(groups);
  boost::json::object extra;
  for (const auto& [k, values] : user.extra) {
    boost::json::array a;
    for (const auto& v : values) a.emplace_back(v);
    extra[k] = std::move(a);
  }
  spec["extra"] = std::move(extra);
  if (request.resourceRequest) {
    boost::json::object attributes{{"namespace", request.namespace_},
                                   {"verb", request.verb},
                                   {"group", request.group},
                                   {"version", request.version},
                                   {"resource", request.resource}};
    if (!request.subresource.empty()) attributes["subresource"] = request.subresource;
    if (!request.name.empty()) attributes["name"] = request.name;
    spec["resourceAttributes"] = std::move(attributes);
  } else {
    spec["nonResourceAttributes"] =
        boost::json::object{{"path", request.path}, {"verb", request.verb}};
  }
  boost::json::object body{{"apiVersion", "authorization.k8s.io/v1"},
                           {"kind", "SubjectAccessReview"},
                           {"spec", std::move(spec)}};
  auto result = client_.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body);
  if (!result) return std::unexpected("SubjectAccessReview: " + result.error().describe());
  const auto* status = result->as_object().if_contains("status");
  if (!status || !status->is_object())
    return auth::AccessDecision{false, "no status in the review"};
  const auto& s = status->as_object();
  auto* allowed = s.if_contains("allowed");
  auth::AccessDecision decision{allowed && allowed->is_bool() && allowed->as_bool(),
                                str(s, "reason")};
  if (auto* denied = s.if_contains("denied"); denied && denied->is_bool() && denied->as_bool()) {
    decision.allowed = false;
  }
  if (!decision.allowed && decision.reason.empty()) decision.reason = "no RBAC rule allows it";
  return decision;
}

}  // namespace xmetrics::kube

#include "auth/authorizer.hpp"

namespace xmetrics::auth {

std::string AccessRequest::describe() const {
  if (!resourceRequest) return verb + " " + path;
  std::string s = verb + " " + (group.empty() ? resource : group + "/" + resource);
  if (!subresource.empty()) s += "/" + subresource;
  if (!name.empty()) s += " \"" + name + "\"";
  if (!namespace_.empty()) s += " in namespace " + namespace_;
  return s;
}

Authorizer::Authorizer(AccessReviewer* reviewer, std::chrono::seconds cacheTtl)
    : reviewer_(reviewer), cacheTtl_(cacheTtl) {}

std::string Authorizer::cacheKey(const UserInfo& user, const AccessRequest& r) {
  std::string key = user.name + '\x1f' + user.uid + '\x1f';
  for (const auto& g : user.groups) key += g + ',';
  key += '\x1f';
  for (const auto& [k, values] : user.extra) {
    key += k + '=';
    for (const auto& v : values) key += v + ',';
  }
  key += '\x1f' + std::string(r.resourceRequest ? "r" : "n") + r.verb + '\x1f' + r.namespace_ +
         '\x1f' + r.group + '\x1f' + r.version + '\x1f' + r.resource + '\x1f' + r.subresource +
         '\x1f' + r.name + '\x1f' + r.path;
  return key;
}

std::optional<AccessDecision> Authorizer::decideLocally(const UserInfo& user,
                                                        const AccessRequest& request) const {
  if (user.inGroup("system:masters")) return AccessDecision{true, "system:masters"};
  if (!reviewer_) return AccessDecision{true, "standalone: every authenticated caller is allowed"};
  std::lock_guard lock(mutex_);
  auto it = cache_.find(cacheKey(user, request));
  if (it != cache_.end() && it->second.expires > std::chrono::steady_clock::now()) {
    return it->second.decision;
  }
  return std::nullopt;
}

AccessDecision Authorizer::review(const UserInfo& user, const AccessRequest& request) {
  if (auto local = decideLocally(user, request)) return *local;
  auto result = reviewer_->review(user, request);
  if (!result) {
    // Not cached: the next request asks again.
    return AccessDecision{false,
                          "cannot check access (SubjectAccessReview failed): " + result.error()};
  }
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (cache_.size() > 10'000) {
    std::erase_if(cache_, [&](const auto& kv) { return kv.second.expires <= now; });
    if (cache_.size() > 10'000) cache_.clear();
  }
  cache_[cacheKey(user, request)] = {now + cacheTtl_, *result};
  return *result;
}

}  // namespace xmetrics::auth

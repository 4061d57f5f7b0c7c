#pragma once

#include "auth/authenticator.hpp"
#include "auth/authorizer.hpp"
#include "kube/kube_client.hpp"

namespace xmetrics::kube {

// TokenReview (authentication.k8s.io/v1): who does a bearer token belong to.
class KubeTokenReviewer final : public auth::TokenReviewer {
 public:
  explicit KubeTokenReviewer(KubeClient& client) : client_(client) {}
  // auth::TokenReviewer
  std::expected<std::optional<auth::UserInfo>, std::string> review(
      const std::string& token) override;

 private:
  KubeClient& client_;
};

// SubjectAccessReview (authorization.k8s.io/v1): may this user do this.
class KubeAccessReviewer final : public auth::AccessReviewer {
 public:
  explicit KubeAccessReviewer(KubeClient& client) : client_(client) {}
  // auth::AccessReviewer
  std::expected<auth::AccessDecision, std::string> review(
      const auth::UserInfo& user, const auth::AccessRequest& request) override;

 private:
  KubeClient& client_;
};

}  // namespace xmetrics::kube

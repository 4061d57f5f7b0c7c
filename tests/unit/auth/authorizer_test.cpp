#include "auth/authorizer.hpp"

#include <gtest/gtest.h>

namespace xmetrics::auth {
namespace {

class FakeAccessReviewer final : public AccessReviewer {
 public:
  int calls = 0;
  bool fail = false;
  std::expected<AccessDecision, std::string> review(const UserInfo& user,
                                                    const AccessRequest& r) override {
    ++calls;
    if (fail) return std::unexpected(std::string("apiserver unreachable"));
    bool allowed = user.name == "system:serviceaccount:kube-system:horizontal-pod-autoscaler" &&
                   r.group == "external.metrics.k8s.io";
    return AccessDecision{allowed, allowed ? "RBAC: allowed" : "no RBAC rule"};
  }
};

AccessRequest metricRequest() {
  return {true, "list", "default", "external.metrics.k8s.io", "v1beta1", "queue_len", ""};
}

TEST(Authorizer, SystemMastersIsAlwaysAllowedWithoutAsking) {
  FakeAccessReviewer reviewer;
  Authorizer a(&reviewer);
  auto d = a.decideLocally(UserInfo{"admin", "", {"system:masters"}, {}, ""}, metricRequest());
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->allowed);
  EXPECT_EQ(reviewer.calls, 0);
}

TEST(Authorizer, TheHpaControllerIsAllowedAndOthersAreNotAndBothAreCached) {
  FakeAccessReviewer reviewer;
  Authorizer a(&reviewer);
  UserInfo hpa{"system:serviceaccount:kube-system:horizontal-pod-autoscaler", "", {}, {}, ""};
  UserInfo nobody{"nobody", "", {"system:authenticated"}, {}, ""};
  EXPECT_FALSE(a.decideLocally(hpa, metricRequest()));
  EXPECT_TRUE(a.review(hpa, metricRequest()).allowed);
  EXPECT_FALSE(a.review(nobody, metricRequest()).allowed);
  EXPECT_TRUE(a.decideLocally(hpa, metricRequest())->allowed);
  EXPECT_FALSE(a.decideLocally(nobody, metricRequest())->allowed);
  EXPECT_EQ(reviewer.calls, 2);
}

TEST(Authorizer, AFailedReviewDeniesAndIsNotCached) {
  FakeAccessReviewer reviewer;
  reviewer.fail = true;
  Authorizer a(&reviewer);
  UserInfo hpa{"system:serviceaccount:kube-system:horizontal-pod-autoscaler", "", {}, {}, ""};
  auto d = a.review(hpa, metricRequest());
  EXPECT_FALSE(d.allowed);
  EXPECT_NE(d.reason.find("apiserver unreachable"), std::string::npos);
  reviewer.fail = false;
  EXPECT_TRUE(a.review(hpa, metricRequest()).allowed);
}

TEST(Authorizer, StandaloneAllowsEveryAuthenticatedCaller) {
  Authorizer a;
  EXPECT_TRUE(a.decideLocally(UserInfo{"alice", "", {}, {}, ""}, metricRequest())->allowed);
}

TEST(AccessRequest, DescribesItselfForTheForbiddenMessage) {
  EXPECT_EQ(metricRequest().describe(),
            "list external.metrics.k8s.io/queue_len in namespace default");
}

}  // namespace
}  // namespace xmetrics::auth

// RBAC, from SubjectAccessReviews gathered beforehand: may the HPA controller read external
// metrics, and does xmetrics' own service account hold every permission xmetrics uses.

#include "doctor/checks.hpp"

namespace xmetrics::doctor {
namespace {

constexpr std::string_view kRbacManifest = "deploy/manifests/10-rbac.yaml";

const std::string kReviewFix =
    "the kubeconfig's user must be allowed to create subjectaccessreviews";

}  // namespace

auth::UserInfo serviceAccountUser(const std::string& ns, const std::string& name) {
  return {
      .name = "system:serviceaccount:" + ns + ":" + name,
      .groups = {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}};
}

std::vector<auth::AccessRequest> hpaNeeds() {
  std::vector<auth::AccessRequest> needs;
  for (std::string verb : {"get", "list"}) {
    needs.push_back({.resourceRequest = true,
                     .verb = verb,
                     .group = "external.metrics.k8s.io",
                     .version = "v1beta1",
                     .resource = "*"});
  }
  return needs;
}

std::vector<Need> xmetricsNeeds(const Evidence& e) {
  std::vector<Need> needs = {
      {{.verb = "create",
        .group = "authentication.k8s.io",
        .version = "v1",
        .resource = "tokenreviews"},
       "bearer tokens (system:auth-delegator)"},
      {{.verb = "create",
        .group = "authorization.k8s.io",
        .version = "v1",
        .resource = "subjectaccessreviews"},
       "authorization of every request (system:auth-delegator)"},
  };
  for (std::string verb : {"get", "list", "watch"}) {
    needs.push_back({{.verb = verb,
                      .namespace_ = "kube-system",
                      .version = "v1",
                      .resource = "configmaps",
                      .name = "extension-apiserver-authentication"},
                     "the cluster's CAs (extension-apiserver-authentication-reader)"});
  }
  for (std::string verb : {"list", "watch"}) {
    needs.push_back({{.verb = verb,
                      .group = "autoscaling",
                      .version = "v2",
                      .resource = "horizontalpodautoscalers"},
                     "the HPA watch (xmetrics:hpa-reader)"});
  }
  if (e.status && e.status->crdMode()) {
    for (std::string verb : {"list", "watch", "create", "delete"}) {
      needs.push_back({{.verb = verb,
                        .group = "datadoghq.com",
                        .version = "v1alpha1",
                        .resource = "datadogmetrics"},
                       "DatadogMetric objects (xmetrics:datadogmetrics)"});
    }
    needs.push_back({{.verb = "patch",
                      .group = "datadoghq.com",
                      .version = "v1alpha1",
                      .resource = "datadogmetrics",
                      .subresource = "status"},
                     "DatadogMetric status (xmetrics:datadogmetrics)"});
  }
  if (e.status && e.status->leader && e.status->leader->enabled) {
    for (std::string verb : {"get", "create", "update"}) {
      needs.push_back({{.verb = verb,
                        .namespace_ = leaseOf(e.status, e.options.ns).first,
                        .group = "coordination.k8s.io",
                        .version = "v1",
                        .resource = "leases"},
                       "leader election"});
    }
  }
  // Resource requests all; describe() words them so.
  for (auto& need : needs) need.request.resourceRequest = true;
  return needs;
}

Check checkHpaRbac(const Evidence& e) {
  Check c{.name = "rbac-hpa"};
  auto needs = hpaNeeds();
  std::vector<std::string> denied;
  for (std::size_t i = 0; i < e.hpaReviews.size() && i < needs.size(); ++i) {
    const auto& d = e.hpaReviews[i];
    if (!d) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "cannot ask the cluster: " + d.error();
      c.fix = kReviewFix;
      return c;
    }
    const auto& verb = needs[i].verb;
    c.evidence.push_back(std::string(kHpaUser) + " " + verb +
                         " external.metrics.k8s.io/*: " + (d->allowed ? "allowed" : "denied") +
                         (d->reason.empty() ? "" : " (" + d->reason + ")"));
    if (!d->allowed) denied.push_back(verb);
  }
  if (denied.empty()) {
    c.summary = "the HPA controller may get and list external metrics";
    return c;
  }
  std::string list;
  for (const auto& d : denied) list += (list.empty() ? "" : ", ") + d;
  c.verdict = Verdict::kFail;
  c.problem = "wrong-rbac";
  c.summary = "wrong RBAC: the HPA controller (" + std::string(kHpaUser) + ") may not " + list +
              " external.metrics.k8s.io";
  c.fix = "kubectl apply -f " + std::string(kRbacManifest) +
          " (ClusterRole xmetrics:external-metrics-reader bound to kube-system/"
          "horizontal-pod-autoscaler), or: kubectl create clusterrolebinding "
          "xmetrics:external-metrics-reader --clusterrole=xmetrics:external-metrics-reader "
          "--serviceaccount=kube-system:horizontal-pod-autoscaler";
  return c;
}

Check checkXmetricsRbac(const Evidence& e) {
  Check c{.name = "rbac-xmetrics"};
  if (e.identityName.empty()) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: cannot tell which service account xmetrics runs as";
    c.fix = "give --service-account <namespace>/<name>";
    return c;
  }
  auth::UserInfo user = serviceAccountUser(e.identityNs, e.identityName);
  c.evidence.push_back("identity " + user.name + " (" + e.identitySource + ")");
  const auto& needs = e.xmetricsNeeds;
  std::vector<std::string> denied;
  for (std::size_t i = 0; i < e.xmetricsReviews.size() && i < needs.size(); ++i) {
    const auto& d = e.xmetricsReviews[i];
    const auto& need = needs[i];
    if (!d) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "cannot ask the cluster: " + d.error();
      c.fix = kReviewFix;
      return c;
    }
    if (!d->allowed) {
      denied.push_back(need.request.describe() + " — " + need.why);
      c.evidence.push_back("denied: " + need.request.describe() + " (" + need.why + ")");
    }
  }
  if (denied.empty()) {
    c.summary = user.name + " has every permission xmetrics uses (" + std::to_string(needs.size()) +
                " checked)";
    return c;
  }
  c.verdict = Verdict::kFail;
  c.problem = "wrong-rbac";
  c.summary = "wrong RBAC: " + user.name + " lacks " + std::to_string(denied.size()) + " of " +
              std::to_string(needs.size()) + " permissions xmetrics uses";
  c.fix = "kubectl apply -f " + std::string(kRbacManifest) +
          " (its bindings name the service "
          "account xmetrics/xmetrics; adjust them if xmetrics runs as " +
          user.name + ")";
  return c;
}

}  // namespace xmetrics::doctor

#pragma once

#include <chrono>
#include <expected>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "auth/identity.hpp"

namespace xmetrics::auth {

// The attributes of a request, as kube-apiserver's RequestInfo derives them. External metrics:
// verb "list" (a collection GET), group external.metrics.k8s.io, resource = the metric, namespace.
// Everything else (discovery, status, /metrics) is a non-resource request on its path.
struct AccessRequest {
  bool resourceRequest = false;
  std::string verb = "get";
  std::string namespace_;
  std::string group;
  std::string version;
  std::string resource;
  std::string subresource;  // e.g. "status"; xmetrics' own requests have none
  std::string name;         // one object (`doctor` asks about one ConfigMap); empty: any
  std::string path;         // non-resource requests

  std::string describe() const;  // "list external.metrics.k8s.io/queue_len in namespace default"
};

struct AccessDecision {
  bool allowed = false;
  std::string reason;
};

// Asks the cluster (SubjectAccessReview). Implemented in kube/.
class AccessReviewer {
 public:
  virtual ~AccessReviewer() = default;
  virtual std::expected<AccessDecision, std::string> review(const UserInfo& user,
                                                            const AccessRequest& request) = 0;
};

// Allow/deny with a ~10 s cache of both outcomes; `system:masters` is always allowed; without a
// reviewer (standalone) every authenticated caller is allowed. Thread-safe.
class Authorizer {
 public:
  explicit Authorizer(AccessReviewer* reviewer = nullptr,
                      std::chrono::seconds cacheTtl = std::chrono::seconds(10));

  // A decision that needs no network, or nullopt when the cluster must be asked.
  std::optional<AccessDecision> decideLocally(const UserInfo& user,
                                              const AccessRequest& request) const;
  // Blocks on the network on a cache miss: call off the request threads. A failed review denies.
  AccessDecision review(const UserInfo& user, const AccessRequest& request);

 private:
  static std::string cacheKey(const UserInfo& user, const AccessRequest& request);

  AccessReviewer* reviewer_;
  std::chrono::seconds cacheTtl_;
  mutable std::mutex mutex_;
  struct Cached {
    std::chrono::steady_clock::time_point expires;
    AccessDecision decision;
  };
  std::unordered_map<std::string, Cached> cache_;
};

}  // namespace xmetrics::auth

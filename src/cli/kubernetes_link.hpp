#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>

#include "auth/authenticator.hpp"
#include "catalog/catalog.hpp"
#include "config/serve_options.hpp"
#include "kube/access_reviews.hpp"
#include "kube/informer.hpp"
#include "kube/kube_client.hpp"
#include "poller/poller.hpp"

namespace xmetrics::cli {

// Which cluster to talk to: --kubeconfig, else the pod's service account, else none (standalone).
std::expected<std::optional<kube::KubeConfig>, std::string> clusterConfig(
    const config::ServeOptions& options);

// Everything xmetrics does with a cluster: delegated authentication and authorization, the
// authentication ConfigMap (the CAs rotate) and the HPA watch that tells the catalog what to poll.
class KubernetesLink {
 public:
  explicit KubernetesLink(kube::KubeConfig config);
  ~KubernetesLink();

  auth::TokenReviewer& tokenReviewer() { return tokenReviewer_; }
  auth::AccessReviewer& accessReviewer() { return accessReviewer_; }

  // Starts both watches. `base` is the authentication config without the cluster's part (static
  // tokens, the local CA as `localCaPem`).
  void start(auth::Authenticator& authenticator, auth::AuthenticationConfig base,
             std::string localCaPem, catalog::Catalog& catalog, poller::Poller& poller);
  void stop();

  // Empty once the authentication settings and the HPAs were read; else what is missing.
  std::string notReadyReason() const;
  boost::json::object status() const;

 private:
  kube::KubeClient client_;
  kube::KubeTokenReviewer tokenReviewer_{client_};
  kube::KubeAccessReviewer accessReviewer_{client_};
  std::unique_ptr<kube::Informer> authentication_;
  std::unique_ptr<kube::Informer> hpas_;
  std::atomic<bool> authenticationLoaded_{false};
};

}  // namespace xmetrics::cli

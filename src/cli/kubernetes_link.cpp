#include "cli/kubernetes_link.hpp"

#include <spdlog/spdlog.h>

#include "kube/authentication_config.hpp"
#include "kube/hpa_references.hpp"

namespace xmetrics::cli {

std::expected<std::optional<kube::KubeConfig>, std::string> clusterConfig(
    const config::ServeOptions& options) {
  if (!options.kubeconfig.empty()) {
    auto c = kube::loadKubeconfig(options.kubeconfig);
    if (!c) return std::unexpected(c.error());
    return std::optional(*c);
  }
  if (kube::runningInCluster()) {
    auto c = kube::inClusterConfig();
    if (!c) return std::unexpected(c.error());
    return std::optional(*c);
  }
  return std::optional<kube::KubeConfig>();
}

KubernetesLink::KubernetesLink(kube::KubeConfig config) : client_(std::move(config)) {}

KubernetesLink::~KubernetesLink() { stop(); }

void KubernetesLink::start(auth::Authenticator& authenticator, auth::AuthenticationConfig base,
                           std::string localCaPem, catalog::Catalog& catalog,
                           poller::Poller& poller) {
  authentication_ = std::make_unique<kube::Informer>(
      client_, "/api/v1/namespaces/kube-system/configmaps",
      "metadata.name=extension-apiserver-authentication",
      [this, &authenticator, base, localCaPem](const kube::ObjectMap& objects) {
        auto it = objects.find("kube-system/extension-apiserver-authentication");
        if (it == objects.end()) {
          spdlog::warn(
              "component=kube event=no_authentication_configmap hint=\"kube-apiserver "
              "publishes kube-system/extension-apiserver-authentication; check RBAC "
              "(extension-apiserver-authentication-reader)\"");
          return;
        }
        auto config = kube::authenticationConfigFrom(it->second, base, localCaPem);
        if (!config) {
          spdlog::error("component=kube event=bad_authentication_configmap error=\"{}\"",
                        config.error());
          return;
        }
        authenticator.update(std::move(*config));
        if (!authenticationLoaded_.exchange(true)) {
          spdlog::info("component=kube event=authentication_loaded front_proxy={}",
                       it->second.contains("data") ? "yes" : "no");
        }
      },
      "authentication");
  hpas_ = std::make_unique<kube::Informer>(
      client_, "/apis/autoscaling/v2/horizontalpodautoscalers", "",
      [&catalog, &poller](const kube::ObjectMap& objects) {
        std::vector<std::string> problems;
        auto references = kube::hpaReferences(objects, &problems);
        for (const auto& p : problems) spdlog::warn("component=kube event=bad_hpa_metric {}", p);
        auto added = catalog.setReferences(references, core::Clock::now());
        // Fetch what HPAs newly name right away, so their first request finds a warm value.
        for (const auto& entry : added) {
          spdlog::info(
              "component=kube event=hpa_metric_added metric={} selector=\"{}\" query=\"{}\"",
              entry->metricName, entry->selector.canonical(), entry->query);
          poller.fetchNow(entry, [] {});
        }
      },
      "hpas");
  authentication_->start();
  hpas_->start();
}

void KubernetesLink::stop() {
  // Both watches wind down together: each notices within about a second (libcurl's progress tick).
  if (hpas_) hpas_->requestStop();
  if (authentication_) authentication_->requestStop();
  if (hpas_) hpas_->stop();
  if (authentication_) authentication_->stop();
}

std::string KubernetesLink::notReadyReason() const {
  if (!authenticationLoaded_) {
    return "the cluster's authentication settings (kube-system/extension-apiserver-authentication) "
           "have not been read yet";
  }
  if (hpas_ && !hpas_->stats().synced)
    return "the HorizontalPodAutoscalers have not been listed yet";
  return "";
}

boost::json::object KubernetesLink::status() const {
  auto describe = [](const kube::Informer* informer) {
    boost::json::object o;
    if (!informer) return o;
    auto s = informer->stats();
    o["synced"] = s.synced;
    o["objects"] = s.objects;
    o["lists"] = s.lists;
    o["watchRestarts"] = s.watchRestarts;
    o["events"] = s.events;
    o["lastError"] = s.lastError;
    return o;
  };
  return {{"server", client_.config().server},
          {"authenticationLoaded", authenticationLoaded_.load()},
          {"hpaWatch", describe(hpas_.get())},
          {"authenticationWatch", describe(authentication_.get())}};
}

}  // namespace xmetrics::cli

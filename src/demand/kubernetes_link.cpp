#include "demand/kubernetes_link.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "catalog/datadog_metric.hpp"
#include "core/json_fields.hpp"
#include "core/thread_name.hpp"
#include "core/time_format.hpp"
#include "demand/hpa_references.hpp"
#include "kube/authentication_config.hpp"

namespace xmetrics::demand {

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

std::string ownNamespace(const config::ServeOptions& options,
                         const std::optional<kube::KubeConfig>& cluster) {
  if (!options.ns.empty()) return options.ns;
  if (cluster && kube::runningInCluster() && options.kubeconfig.empty() &&
      !cluster->namespace_.empty()) {
    return cluster->namespace_;
  }
  return "xmetrics";
}

KubernetesLink::KubernetesLink(kube::KubeConfig config)
    : client_(config), reviewClient_(std::move(config), 200, 400) {}

KubernetesLink::~KubernetesLink() { stop(); }

void KubernetesLink::start(auth::Authenticator& authenticator, auth::AuthenticationConfig base,
                           std::string localCaPem, catalog::Catalog& catalog,
                           poller::Poller& poller, store::ValueStore& values,
                           const config::ServeOptions& options) {
  {
    std::lock_guard lock(authenticationMutex_);
    authenticator_ = &authenticator;
    authenticationBase_ = std::move(base);
    localCaPem_ = std::move(localCaPem);
  }
  authentication_ = std::make_unique<kube::Informer>(
      client_, "/api/v1/namespaces/kube-system/configmaps",
      "metadata.name=extension-apiserver-authentication",
      [this](const kube::ObjectMap& objects) {
        auto it = objects.find("kube-system/extension-apiserver-authentication");
        if (it == objects.end()) {
          spdlog::warn(
              "component=kube event=no_authentication_configmap hint=\"kube-apiserver "
              "publishes kube-system/extension-apiserver-authentication; check RBAC "
              "(extension-apiserver-authentication-reader)\"");
          return;
        }
        std::lock_guard lock(authenticationMutex_);
        authenticationConfigMap_ = it->second;
        if (!applyAuthenticationLocked()) return;
        if (!authenticationLoaded_.exchange(true)) {
          spdlog::info("component=kube event=authentication_loaded front_proxy={}",
                       it->second.contains("data") ? "yes" : "no");
        }
      },
      "authentication");
  hpas_ = std::make_unique<kube::Informer>(
      client_, "/apis/autoscaling/v2/horizontalpodautoscalers", "",
      [this, &catalog](const kube::ObjectMap& objects) {
        {
          auto summaries = hpaSummaries(objects);
          std::lock_guard lock(hpaMutex_);
          hpaSummaries_ = std::move(summaries);
        }
        std::vector<std::string> problems;
        auto references = hpaReferences(objects, &problems);
        for (const auto& p : problems) spdlog::warn("component=kube event=bad_hpa_metric {}", p);
        auto added = catalog.setReferences(references, core::Clock::now());
        // The poller hears of these from the catalog and fetches them at once, so the HPAs'
        // first requests find warm values.
        for (const auto& entry : added) {
          spdlog::info(
              "component=kube event=hpa_metric_added metric={} selector=\"{}\" query=\"{}\"",
              entry->metricName, entry->selector.canonical(), entry->query);
        }
      },
      "hpas");
  if (options.useDatadogMetricCrd) {
    catalog::TemplateContext context{.clusterName = options.clusterName};
    datadogMetrics_ = std::make_unique<kube::Informer>(
        client_, "/apis/datadoghq.com/v1alpha1/datadogmetrics", "",
        [this, &catalog, context](const kube::ObjectMap& objects) {
          std::vector<catalog::DatadogMetric> parsed;
          parsed.reserve(objects.size());
          for (const auto& [key, object] : objects) {
            parsed.push_back(catalog::parseDatadogMetric(object, context));
          }
          datadogMetricObjects_.store(std::make_shared<const kube::ObjectMap>(objects));
          // A new, changed or deleted object re-resolves every metric at once; what resolves
          // differently the poller fetches now (it hears of it from the catalog).
          for (const auto& entry :
               catalog.setDatadogMetrics(std::move(parsed), core::Clock::now())) {
            spdlog::info(
                "component=crd event=resolution_changed namespace={} metric={} selector=\"{}\" "
                "resolution=\"{}\" query=\"{}\"",
                entry->ns, entry->metricName, entry->selector.canonical(), entry->resolution(),
                entry->query);
          }
        },
        "datadogmetrics");
    controller_ = std::make_unique<crd::DatadogMetricController>(
        client_, catalog, values, [this] { return datadogMetricObjects_.load(); },
        crd::ControllerOptions{
            .autogenExpiry = options.autogenExpiry,
            .isLeader = [this] { return isLeader(); },
            .ready = [this,
                      &poller] { return notReadyReason().empty() && poller.status().cycles > 0; }});
  }
  authentication_->start();
  hpas_->start();
  apiServiceThread_ = std::thread([this] { checkApiService(); });
  if (datadogMetrics_) datadogMetrics_->start();
  if (controller_) controller_->start();
}

void KubernetesLink::startLeaderElection(const config::ServeOptions& options, std::string peerUrl) {
  if (!options.leaderElection || elector_) return;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  // Unique even for two processes on one host (tests): a restarted replica is a new candidate.
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", random());
  peerUrl_ = peerUrl;
  elector_ = std::make_unique<kube::LeaderElector>(
      client_, kube::LeaderElectionOptions{
                   .ns = ownNamespace(options, client_.config()),
                   .leaseName = options.leaderLeaseName,
                   .identity = (options.podName.empty() ? std::string(host) : options.podName) +
                               "_" + suffix,
                   .leaseDuration = options.leaderLeaseDuration,
                   .renewDeadline = options.leaderRenewDeadline,
                   .retryPeriod = options.leaderRetryPeriod,
                   .peerUrl = std::move(peerUrl)});
  elector_->start();
  electorRunning_.store(elector_.get(), std::memory_order_release);
}

std::string KubernetesLink::leaderPeerUrl() const {
  const auto* elector = electorRunning_.load(std::memory_order_acquire);
  if (!elector) return electionExpected_ ? "" : peerUrl_;
  auto s = elector->status();
  // Our own name on a Lease we no longer hold (a lapsed renewal) is nobody to follow.
  if (s.holder.empty() || (s.holder == elector->options().identity && !s.isLeader)) return "";
  return s.peerUrl;
}

boost::json::object KubernetesLink::leaderStatus() const {
  const auto* elector = electorRunning_.load(std::memory_order_acquire);
  if (!elector) {
    return {{"enabled", electionExpected_.load()}, {"isLeader", isLeader()}};
  }
  auto s = elector->status();
  const auto& o = elector->options();
  return {{"enabled", true},
          {"isLeader", s.isLeader},
          {"identity", o.identity},
          {"holder", s.holder},
          {"peerUrl", s.peerUrl},
          {"lease", o.ns + "/" + o.leaseName},
          {"leaseDurationSeconds", o.leaseDuration.count()},
          {"takeovers", s.transitions},
          {"lastError", s.lastError}};
}

bool KubernetesLink::applyAuthenticationLocked() {
  if (!authenticator_) return false;
  if (!authenticationConfigMap_) {
    // No cluster settings yet (or no RBAC to read them): still, a rotated local CA applies.
    auto base = authenticationBase_;
    auto pool = auth::CertificatePool::fromPem(localCaPem_, "xmetrics' CA (ca.crt)");
    if (!pool) {
      spdlog::error("component=kube event=bad_local_ca error=\"{}\"", pool.error());
      return false;
    }
    base.replicaCa = *pool;
    authenticator_->update(std::move(base));
    return false;
  }
  auto config =
      kube::authenticationConfigFrom(*authenticationConfigMap_, authenticationBase_, localCaPem_);
  if (!config) {
    spdlog::error("component=kube event=bad_authentication_configmap error=\"{}\"", config.error());
    return false;
  }
  authenticator_->update(std::move(*config));
  return true;
}

void KubernetesLink::setLocalCa(std::string pem) {
  std::lock_guard lock(authenticationMutex_);
  localCaPem_ = std::move(pem);
  applyAuthenticationLocked();
}

void KubernetesLink::stop() {
  // Released first, so another replica takes over while this one winds down.
  if (elector_) elector_->stop();
  if (controller_) controller_->stop();
  if (hpas_) hpas_->requestStop();
  if (authentication_) authentication_->requestStop();
  {
    std::lock_guard lock(apiServiceMutex_);
    apiServiceStop_ = true;
  }
  apiServiceWake_.notify_all();
  if (datadogMetrics_) datadogMetrics_->requestStop();
  // The watches end now rather than at libcurl's next progress tick, up to a second later; nothing
  // needs kube-apiserver any more (the Lease is released, the reviews ended with the API handler).
  client_.cancel();
  reviewClient_.cancel();
  if (hpas_) hpas_->stop();
  if (authentication_) authentication_->stop();
  if (datadogMetrics_) datadogMetrics_->stop();
  if (apiServiceThread_.joinable()) apiServiceThread_.join();
}

void KubernetesLink::checkApiService() {
  core::nameThisThread("xm-apiservice");
  // The name the aggregator serves this API under (deploy/manifests/40-apiservice.yaml); the RBAC
  // grants get on it (xmetrics:self-check, and the caBundle injector's role).
  constexpr std::string_view kName = "v1beta1.external.metrics.k8s.io";
  std::unique_lock lock(apiServiceMutex_);
  while (!apiServiceStop_) {
    lock.unlock();
    core::StatusReport::Kubernetes::ApiService read{.name = std::string(kName),
                                                    .checked = core::rfc3339(core::Clock::now())};
    auto got = client_.get("/apis/apiregistration.k8s.io/v1/apiservices/" + std::string(kName));
    bool forbidden = false;
    if (!got) {
      read.error = got.error().describe();
      forbidden = got.error().status == 403;
    } else if (const auto* conditions =
                   got->is_object()
                       ? core::json::arrayAt(core::json::objectAt(got->as_object(), "status"),
                                             "conditions")
                       : nullptr) {
      for (const auto& c : *conditions) {
        if (!c.is_object() || core::json::str(c.as_object(), "type") != "Available") continue;
        read.available = core::json::str(c.as_object(), "status");
        read.reason = core::json::str(c.as_object(), "reason");
        read.message = core::json::str(c.as_object(), "message");
      }
    }
    // Until the aggregator calls it Available (xmetrics starts before its APIService is
    // registered, or it is failing), sooner: the page should not show an old "missing" for 30 s.
    // Not Available yet, or not registered yet (404: xmetrics starts before its APIService is
    // created), soon again; Available, or forbidden (no grant to read it), at the full period.
    auto next = read.available == "True" || forbidden ? kApiServiceCheck : kApiServiceRecheck;
    lock.lock();
    apiService_ = std::move(read);
    apiServiceWake_.wait_for(lock, next, [this] { return apiServiceStop_; });
  }
}

std::string KubernetesLink::notReadyReason() const {
  if (!authenticationLoaded_) {
    return "the cluster's authentication settings (kube-system/extension-apiserver-authentication) "
           "have not been read yet";
  }
  if (hpas_ && !hpas_->stats().synced)
    return "the HorizontalPodAutoscalers have not been listed yet";
  if (datadogMetrics_ && !datadogMetrics_->stats().synced) {
    return "the DatadogMetrics have not been listed yet (is the datadogmetrics.datadoghq.com CRD "
           "installed, and may xmetrics list them?)";
  }
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
  auto controllerStatus = [this]() {
    boost::json::object o;
    if (!controller_) return o;
    auto s = controller_->stats();
    o["statusWrites"] = s.statusWrites;
    o["statusWriteErrors"] = s.statusWriteErrors;
    o["autogenCreated"] = s.created;
    o["autogenDeleted"] = s.deleted;
    o["lastError"] = s.lastError;
    return o;
  };
  return {{"server", client_.config().server},
          {"authenticationLoaded", authenticationLoaded_.load()},
          {"hpaWatch", describe(hpas_.get())},
          {"authenticationWatch", describe(authentication_.get())},
          {"datadogMetricWatch", describe(datadogMetrics_.get())},
          {"datadogMetricController", controllerStatus()},
          {"apiService", core::apiServiceJson(apiService())}};
}

void KubernetesLink::writeMetrics(telemetry::ExpositionWriter& out) const {
  using telemetry::MetricType;
  auto& restarts = out.family("xmetrics_watch_restarts_total", MetricType::kCounter,
                              "Watches of the cluster re-opened (timeouts, drops, errors), by "
                              "watched resource.");
  auto& events = out.family("xmetrics_watch_events_total", MetricType::kCounter,
                            "Watch events received from the cluster, by watched resource.");
  const std::pair<std::string_view, const kube::Informer*> informers[] = {
      {"configmaps", authentication_.get()},
      {"horizontalpodautoscalers", hpas_.get()},
      {"datadogmetrics", datadogMetrics_.get()}};
  for (const auto& [resource, informer] : informers) {
    if (!informer) continue;
    auto s = informer->stats();
    restarts.sample({{"resource", resource}}, s.watchRestarts);
    events.sample({{"resource", resource}}, s.events);
  }
  if (!controller_) return;
  auto s = controller_->stats();
  out.family("xmetrics_datadogmetric_status_writes_total", MetricType::kCounter,
             "DatadogMetric status updates written (CRD mode).")
      .sample({}, s.statusWrites);
  out.family("xmetrics_datadogmetric_status_write_errors_total", MetricType::kCounter,
             "DatadogMetric status updates the cluster refused or that failed (CRD mode).")
      .sample({}, s.statusWriteErrors);
  out.family("xmetrics_datadogmetric_autogen_created_total", MetricType::kCounter,
             "dcaautogen-* DatadogMetrics created for HPAs' inline metrics (CRD mode).")
      .sample({}, s.created);
  out.family("xmetrics_datadogmetric_autogen_deleted_total", MetricType::kCounter,
             "dcaautogen-* DatadogMetrics deleted after autogen-expiry without an HPA naming them "
             "(CRD mode).")
      .sample({}, s.deleted);
}

}  // namespace xmetrics::demand

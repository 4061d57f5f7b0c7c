// The walk's I/O: every kube-apiserver call and every call to xmetrics doctor makes, in the order
// the checks report, into one Evidence. Where what to read next depends on what was read (the
// Service after the APIService, probes after a no-series answer), the pure functions of checks.hpp
// decide, so the gatherer and the verdicts cannot disagree.

#include <boost/json.hpp>

#include "client/xmetrics_client.hpp"
#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "doctor/checks.hpp"
#include "doctor/evidence.hpp"
#include "doctor/wording.hpp"
#include "kube/access_reviews.hpp"

namespace xmetrics::doctor {
namespace {

using core::json::arrayAt;
using core::json::intAt;
using core::json::objectAt;
using core::json::str;
using detail::encodeQueryValue;
using detail::itemsOf;

class Gatherer {
 public:
  Gatherer(const Options& options, const kube::KubeConfig& cluster)
      : cluster_(cluster), kube_(cluster), reviewer_(kube_) {
    e_.options = options;
  }

  Evidence run() {
    readApiService();
    readService();
    reachXmetrics();
    e_.discovery = kube_.get(kExternalPrefix);
    for (const auto& request : hpaNeeds()) {
      if (!review(e_.hpaReviews, serviceAccountUser("kube-system", "horizontal-pod-autoscaler"),
                  request)) {
        break;
      }
    }
    readXmetricsRbac();
    std::tie(e_.leaseNs, e_.leaseName) = leaseOf(e_.status, e_.options.ns);
    e_.lease = kube_.get("/apis/coordination.k8s.io/v1/namespaces/" + e_.leaseNs + "/leases/" +
                         e_.leaseName);
    gatherHpas(kube_, e_);
    if (e_.status && e_.status->crdMode()) {
      e_.datadogMetrics = kube_.get("/apis/datadoghq.com/v1alpha1/datadogmetrics");
    }
    e_.datadogMetricCrd = kube_.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/datadogmetrics.datadoghq.com");
    // The datadog chart labels its Deployment app.kubernetes.io/component=cluster-agent.
    e_.clusterAgents = kube_.get(
        "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io%2Fcomponent%3Dcluster-agent");
    e_.now = core::Clock::now();
    return std::move(e_);
  }

 private:
  // False when the cluster could not answer: the check reports that, and asks nothing more.
  bool review(Reviews& into, const auth::UserInfo& user, auth::AccessRequest request) {
    request.resourceRequest = true;
    into.push_back(reviewer_.review(user, request));
    return into.back().has_value();
  }

  void readApiService() {
    const auto& options = e_.options;
    e_.apiService =
        kube_.get("/apis/apiregistration.k8s.io/v1/apiservices/" + std::string(kApiServiceName));
    e_.serviceNs =
        options.service.empty() ? options.ns : options.service.substr(0, options.service.find('/'));
    e_.serviceName = options.service.empty()
                         ? "xmetrics"
                         : options.service.substr(options.service.find('/') + 1);
    if (!e_.apiService || !e_.apiService->is_object()) return;
    const auto& api = e_.apiService->as_object();
    const auto* spec = objectAt(api, "spec");
    if (const auto* service = objectAt(spec, "service")) {
      e_.hasServiceRef = true;
      e_.serviceNs = str(*service, "namespace");
      e_.serviceName = str(*service, "name");
      e_.servicePort = static_cast<int>(intAt(*service, "port", 443));
    }
    if (spec) {
      // kube-apiserver validates the field as base64 ([]byte); anything else reads as no bundle.
      e_.caBundle = core::decodeBase64(str(*spec, "caBundle")).value_or("");
      e_.insecureSkipTlsVerify = core::json::boolAt(*spec, "insecureSkipTLSVerify");
    }
    if (const auto* conditions = arrayAt(objectAt(api, "status"), "conditions")) {
      for (const auto& cond : *conditions) {
        if (!cond.is_object() || str(cond.as_object(), "type") != "Available") continue;
        e_.apiServiceAvailable = str(cond.as_object(), "status") == "True";
        e_.availableReason = str(cond.as_object(), "reason");
        e_.availableMessage = str(cond.as_object(), "message");
      }
    }
  }

  void readService() {
    if (!e_.apiService || e_.serviceName.empty()) return;
    e_.service = kube_.get("/api/v1/namespaces/" + e_.serviceNs + "/services/" + e_.serviceName);
    if (!*e_.service) return;
    const auto* spec =
        (*e_.service)->is_object() ? objectAt((*e_.service)->as_object(), "spec") : nullptr;
    if (str(spec, "type") == "ExternalName") return;
    e_.endpointSlices = kube_.get("/apis/discovery.k8s.io/v1/namespaces/" + e_.serviceNs +
                                  "/endpointslices?labelSelector=" +
                                  encodeQueryValue("kubernetes.io/service-name=" + e_.serviceName));
  }

  void reachXmetrics() {
    if (!findAddress()) return;
    readStatus();
  }

 public:
  // Where xmetrics answers and how to ask it, for `xmetrics status` and flare through a cluster:
  // the same path the walk takes, without the walk.
  std::expected<client::Endpoint, std::string> locate() {
    readApiService();
    if (!e_.apiService) {
      return std::unexpected("cannot read the APIService " + std::string(kApiServiceName) + ": " +
                             e_.apiService.error().message);
    }
    if (!e_.hasServiceRef) {
      return std::unexpected("the APIService " + std::string(kApiServiceName) +
                             " names no Service: give --server (e.g. a kubectl port-forward)");
    }
    readService();
    if (!findAddress()) {
      return std::unexpected("xmetrics does not answer where the APIService points (" +
                             e_.reachError + "); run `xmetrics doctor`, or give --server");
    }
    return endpointForXmetrics();
  }

 private:
  // The first candidate that completes a TLS handshake (sending nothing), into e_.address.
  bool findAddress() {
    const auto& options = e_.options;
    // --server is the user's word for where xmetrics is (a port-forward); else where the
    // aggregator would dial it.
    e_.candidates =
        options.server.empty() ? serviceCandidates(e_) : std::vector<std::string>{options.server};
    for (const auto& candidate : e_.candidates) {
      auto chain = client::fetchServingChain(candidate, serviceHost(), std::chrono::seconds(3));
      if (chain) {
        e_.address = candidate;
        e_.chain = *chain;
        break;
      }
      e_.reachError += (e_.reachError.empty() ? "" : "; ") + chain.error();
    }
    if (e_.address.empty() && e_.candidates.empty())
      e_.reachError = "no address to try: give --server";
    return !e_.address.empty();
  }

  // The name the aggregator verifies xmetrics' certificate against.
  std::string serviceHost() const { return e_.serviceName + "." + e_.serviceNs + ".svc"; }

  // xmetrics at e_.address with the credentials the user has: a client certificate or token of
  // the cluster (xmetrics authenticates both in cluster mode), or xmetrics' own kubeconfig; its
  // certificate verified as the aggregator does (the APIService's caBundle, the Service's name).
  std::expected<client::Endpoint, std::string> endpointForXmetrics() const {
    const auto& options = e_.options;
    client::Endpoint endpoint;
    if (!options.xmetricsKubeconfig.empty()) {
      auto loaded = client::loadKubeconfig(options.xmetricsKubeconfig);
      if (!loaded) return std::unexpected(loaded.error());
      endpoint = *loaded;
      if (!options.server.empty()) endpoint.server = options.server;
    } else {
      auto loaded = client::endpointFromKubeConfig(cluster_);
      if (!loaded) return std::unexpected(loaded.error());
      endpoint = *loaded;
      endpoint.server = e_.address;
      endpoint.caPem = e_.caBundle;
      endpoint.verifyName = serviceHost();
      endpoint.insecureSkipVerify = e_.insecureSkipTlsVerify && e_.caBundle.empty();
    }
    if (!options.token.empty()) endpoint.token = options.token;
    return endpoint;
  }

  // The status report, with the credentials the user has: a client certificate or token of the
  // cluster (xmetrics authenticates both in cluster mode), or xmetrics' own kubeconfig.
  void readStatus() {
    if (e_.options.status) {
      e_.status = *e_.options.status;
      readReadyz(endpointForXmetrics().value_or(client::Endpoint{.server = e_.address}));
      return;
    }
    auto located = endpointForXmetrics();
    if (!located) {
      e_.statusError = located.error();
      return;
    }
    const client::Endpoint& endpoint = *located;
    auto reply = client::xmetricsGet(endpoint, "/xmetrics/v1/status");
    if (!reply && endpoint.token.empty() && !endpoint.certPem.empty() &&
        !endpoint.insecureSkipVerify) {
      // The certificate check reports the mismatch; a client certificate reveals no secret to an
      // unverified server, so the rest of the walk can still use the report.
      auto insecure = endpoint;
      insecure.insecureSkipVerify = true;
      reply = client::xmetricsGet(insecure, "/xmetrics/v1/status");
      if (reply)
        e_.statusNote = "read without verifying xmetrics' certificate (see the certificate check)";
    }
    if (!reply) {
      e_.statusError = reply.error();
      return;
    }
    if (reply->status != 200) {
      e_.statusError = endpoint.server + "/xmetrics/v1/status answered " +
                       std::to_string(reply->status) + ": " + client::replyMessage(*reply);
      return;
    }
    boost::system::error_code ec;
    auto parsed = boost::json::parse(reply->body, ec);
    auto report = ec ? std::unexpected(std::string("not JSON")) : core::parseStatusReport(parsed);
    if (!report) {
      e_.statusError = endpoint.server + "/xmetrics/v1/status is not JSON: is this xmetrics?";
      return;
    }
    e_.status = std::move(*report);
    readReadyz(endpoint);
  }

  // /readyz is open: no credential goes with it.
  void readReadyz(const client::Endpoint& endpoint) {
    auto readyEndpoint = endpoint;
    readyEndpoint.token.clear();
    readyEndpoint.certPem.clear();
    readyEndpoint.insecureSkipVerify = readyEndpoint.insecureSkipVerify || !e_.statusNote.empty();
    auto readyz = client::xmetricsGet(readyEndpoint, "/readyz");
    if (readyz) {
      e_.ready = readyz->status == 200;
      e_.readyz = client::replyMessage(*readyz);
    } else {
      e_.readyz = readyz.error();
    }
  }

  // Who xmetrics runs as: the flag, else the pods behind its Service, else the Deployment named
  // like the Service, else the service account the manifests create.
  void findXmetricsIdentity() {
    const auto& options = e_.options;
    std::string& ns = e_.identityNs;
    std::string& name = e_.identityName;
    std::string& source = e_.identitySource;
    if (!options.serviceAccount.empty()) {
      std::string sa = options.serviceAccount;
      if (sa.starts_with("system:serviceaccount:")) sa = sa.substr(22);
      auto sep = sa.find_first_of("/:");
      ns = sep == std::string::npos ? options.ns : sa.substr(0, sep);
      name = sep == std::string::npos ? sa : sa.substr(sep + 1);
      source = "--service-account";
    }
    const auto* service = e_.service && *e_.service && (*e_.service)->is_object()
                              ? &(*e_.service)->as_object()
                              : nullptr;
    std::string selector = detail::selectorText(objectAt(service, "spec"));
    if (name.empty() && !selector.empty()) {
      auto pods = kube_.get("/api/v1/namespaces/" + e_.serviceNs +
                            "/pods?labelSelector=" + encodeQueryValue(selector));
      if (pods) {
        for (const auto& p : itemsOf(*pods)) {
          const auto* spec = p.is_object() ? objectAt(p.as_object(), "spec") : nullptr;
          if (!spec) continue;
          ns = e_.serviceNs;
          name = str(*spec, "serviceAccountName");
          if (name.empty()) name = "default";
          source = "pods of Service " + e_.serviceNs + "/" + e_.serviceName;
          break;
        }
      }
    }
    if (name.empty() && !e_.serviceName.empty()) {
      auto deployment =
          kube_.get("/apis/apps/v1/namespaces/" + e_.serviceNs + "/deployments/" + e_.serviceName);
      if (deployment && deployment->is_object()) {
        const auto* spec = objectAt(deployment->as_object(), "spec");
        const auto* podSpec = objectAt(objectAt(spec, "template"), "spec");
        ns = e_.serviceNs;
        name = str(podSpec, "serviceAccountName");
        if (name.empty()) name = "default";
        source = "Deployment " + e_.serviceNs + "/" + e_.serviceName;
      }
    }
    if (name.empty() &&
        kube_.get("/api/v1/namespaces/" + options.ns + "/serviceaccounts/xmetrics")) {
      ns = options.ns;
      name = "xmetrics";
      source =
          "assumed: the ServiceAccount of the manifests (no pod or Deployment found; give "
          "--service-account)";
    }
  }

  void readXmetricsRbac() {
    findXmetricsIdentity();
    if (e_.identityName.empty()) return;
    e_.xmetricsNeeds = xmetricsNeeds(e_);
    auto user = serviceAccountUser(e_.identityNs, e_.identityName);
    for (const auto& need : e_.xmetricsNeeds) {
      if (!review(e_.xmetricsReviews, user, need.request)) break;
    }
  }

  const kube::KubeConfig& cluster_;
  kube::KubeClient kube_;
  kube::KubeAccessReviewer reviewer_;
  Evidence e_;
};

}  // namespace

Evidence gatherEvidence(const Options& options, const kube::KubeConfig& cluster) {
  return Gatherer(options, cluster).run();
}

std::expected<client::Endpoint, std::string> locateXmetrics(const Options& options,
                                                            const kube::KubeConfig& cluster) {
  return Gatherer(options, cluster).locate();
}

}  // namespace xmetrics::doctor

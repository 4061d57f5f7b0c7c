// `xmetrics doctor`: gathers the evidence for every link between an HPA and a backend value and
// hands it to the classifiers in doctor.cpp. Each call is bounded (kube client and xmetrics client
// timeouts), and a link that cannot be checked says so instead of stopping the walk.

#include <algorithm>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <cmath>
#include <iostream>
#include <optional>
#include <set>

#include "auth/authorizer.hpp"
#include "cli/commands.hpp"
#include "cli/doctor.hpp"
#include "cli/xmetrics_client.hpp"
#include "core/json_fields.hpp"
#include "core/label_selector.hpp"
#include "core/quantity.hpp"
#include "core/strings.hpp"
#include "kube/access_reviews.hpp"
#include "kube/hpa_references.hpp"
#include "kube/kube_client.hpp"
#include "kube/kube_config.hpp"

namespace xmetrics::cli {
namespace {

using core::lowercase;
using core::oneLine;
using core::json::arrayAt;
using core::json::intAt;
using core::json::objectAt;
using core::json::str;

using doctor::Check;
using doctor::Finding;
using doctor::Verdict;

constexpr std::string_view kApiServiceName = "v1beta1.external.metrics.k8s.io";
constexpr std::string_view kExternalPrefix = "/apis/external.metrics.k8s.io/v1beta1";
constexpr std::string_view kHpaUser = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
constexpr std::string_view kLeaseName = "xmetrics-leader";
constexpr std::string_view kRbacManifest = "deploy/manifests/10-rbac.yaml";

// A list's items; empty when the answer has none.
const boost::json::array& itemsOf(const boost::json::value& list) {
  static const boost::json::array kNone;
  const auto* items = list.is_object() ? arrayAt(list.as_object(), "items") : nullptr;
  return items ? *items : kNone;
}

// Kubernetes answers that are not Status JSON end in a newline (the aggregator's plain-text 503).

std::string decodeBase64(const std::string& in) {
  std::string out(boost::beast::detail::base64::decoded_size(in.size()), '\0');
  auto [written, read] = boost::beast::detail::base64::decode(out.data(), in.data(), in.size());
  out.resize(written);
  return out;
}

std::string encodeQueryValue(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

std::string externalMetricPath(const std::string& ns, const std::string& metric,
                               const std::string& selector) {
  std::string p = std::string(kExternalPrefix) + "/namespaces/" + ns + "/" + metric;
  if (!selector.empty()) p += "?labelSelector=" + encodeQueryValue(selector);
  return p;
}

std::string requirementText(const core::SelectorRequirement& r) {
  std::string values;
  for (const auto& v : r.values) values += (values.empty() ? "" : ",") + v;
  switch (r.op) {
    case core::SelectorOperator::kEquals:
      return r.key + "=" + values;
    case core::SelectorOperator::kNotEquals:
      return r.key + "!=" + values;
    case core::SelectorOperator::kIn:
      return r.key + " in (" + values + ")";
    case core::SelectorOperator::kNotIn:
      return r.key + " notin (" + values + ")";
    case core::SelectorOperator::kExists:
      return r.key;
    case core::SelectorOperator::kDoesNotExist:
      return "!" + r.key;
  }
  return r.key;
}

// A service account given as "ns/name", "system:serviceaccount:ns:name" or "name" (in `ns`).
auth::UserInfo serviceAccountUser(const std::string& ns, const std::string& name) {
  return {
      .name = "system:serviceaccount:" + ns + ":" + name,
      .groups = {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}};
}

class Doctor {
 public:
  Doctor(const DoctorOptions& options, kube::KubeConfig cluster)
      : options_(options), clusterConfig_(cluster), kube_(std::move(cluster)) {}

  std::vector<Check> run();

 private:
  void checkApiService();
  void checkService();
  void reachXmetrics();
  void checkCertificate();
  void checkDiscovery();
  void checkHpaRbac();
  void checkXmetricsRbac();
  void checkXmetrics();
  void checkLeader();
  void checkBackends();
  void checkHpas();
  void checkAutogen();

  Check& add(std::string name, std::string subject = "") {
    checks_.push_back(Check{.name = std::move(name), .subject = std::move(subject)});
    return checks_.back();
  }
  static void apply(Check& c, const Finding& f) {
    c.verdict = f.verdict;
    c.problem = f.problem;
    c.summary = f.summary;
    c.fix = f.fix;
    c.evidence.insert(c.evidence.end(), f.evidence.begin(), f.evidence.end());
  }
  std::expected<auth::AccessDecision, std::string> review(const auth::UserInfo& user,
                                                          auth::AccessRequest request) {
    request.resourceRequest = true;
    return kube::KubeAccessReviewer(kube_).review(user, request);
  }
  // The external metric as the HPA asks for it, through kube-apiserver.
  struct MetricRead {
    long status = 0;  // HTTP status; 0 transport error
    std::string message;
    std::optional<double> value;  // the sum of the items, when 200 with items
    std::size_t items = 0;
  };
  MetricRead readMetric(const std::string& ns, const std::string& metric,
                        const std::string& selector);
  const boost::json::object* statusMetric(const std::string& ns, const std::string& metric,
                                          const std::string& selector) const;
  bool crdMode() const;
  std::pair<std::string, std::string> lease() const;  // namespace, name of the leader Lease

  const DoctorOptions& options_;
  kube::KubeConfig clusterConfig_;
  kube::KubeClient kube_;
  std::vector<Check> checks_;

  // What the walk learned so far.
  std::optional<boost::json::object> apiService_;
  bool apiServiceAvailable_ = false;
  std::string serviceNs_, serviceName_;
  int servicePort_ = 443;
  std::string caBundle_;
  bool insecureSkipTlsVerify_ = false;
  std::optional<boost::json::object> service_;
  std::vector<std::string> candidates_;  // where xmetrics should answer, as the aggregator dials
  std::string address_;                  // the one that answered
  std::vector<std::string> chain_;
  std::string reachError_;
  bool externalNamePortUndeclared_ = false;
  std::optional<boost::json::object> status_;
  std::string statusError_;
  std::string statusNote_;
  std::string readyz_;
  bool ready_ = false;
};

std::vector<Check> Doctor::run() {
  checkApiService();
  checkService();
  reachXmetrics();
  checkCertificate();
  checkDiscovery();
  checkHpaRbac();
  checkXmetricsRbac();
  checkXmetrics();
  checkLeader();
  checkBackends();
  checkHpas();
  checkAutogen();
  return std::move(checks_);
}

void Doctor::checkApiService() {
  auto& c = add("apiservice");
  auto api =
      kube_.get("/apis/apiregistration.k8s.io/v1/apiservices/" + std::string(kApiServiceName));
  std::string expectedNs = options_.service.empty()
                               ? options_.ns
                               : options_.service.substr(0, options_.service.find('/'));
  std::string expectedName = options_.service.empty()
                                 ? "xmetrics"
                                 : options_.service.substr(options_.service.find('/') + 1);
  serviceNs_ = expectedNs;
  serviceName_ = expectedName;
  if (!api) {
    c.verdict = Verdict::kFail;
    if (api.error().status == 404) {
      c.problem = "apiservice-missing";
      c.summary = std::string(kApiServiceName) + " does not exist: nothing serves external metrics";
      c.fix =
          "kubectl apply -f deploy/manifests/40-apiservice.yaml, with spec.caBundle set to the "
          "CA that signed xmetrics' serving certificate";
    } else {
      c.problem = "cluster-error";
      c.summary =
          "cannot read APIService " + std::string(kApiServiceName) + ": " + api.error().describe();
      c.fix = "check --kubeconfig and that its user may get apiservices";
    }
    return;
  }
  apiService_ = api->as_object();
  const auto* spec = objectAt(*apiService_, "spec");
  const auto* service = spec ? objectAt(*spec, "service") : nullptr;
  if (service) {
    serviceNs_ = str(*service, "namespace");
    serviceName_ = str(*service, "name");
    servicePort_ = static_cast<int>(intAt(*service, "port", 443));
    c.evidence.push_back("spec.service: " + serviceNs_ + "/" + serviceName_ + " port " +
                         std::to_string(servicePort_));
  }
  if (spec) {
    caBundle_ = decodeBase64(str(*spec, "caBundle"));
    auto* insecure = spec->if_contains("insecureSkipTLSVerify");
    insecureSkipTlsVerify_ = insecure && insecure->is_bool() && insecure->as_bool();
  }
  std::string reason, message;
  if (const auto* status = objectAt(*apiService_, "status")) {
    if (const auto* conditions = arrayAt(*status, "conditions")) {
      for (const auto& cond : *conditions) {
        if (!cond.is_object() || str(cond.as_object(), "type") != "Available") continue;
        apiServiceAvailable_ = str(cond.as_object(), "status") == "True";
        reason = str(cond.as_object(), "reason");
        message = str(cond.as_object(), "message");
      }
    }
  }
  if (!service) {
    c.verdict = Verdict::kFail;
    c.problem = "apiservice-wrong-service";
    c.summary =
        std::string(kApiServiceName) + " has no spec.service: kube-apiserver would serve it itself";
    c.fix = "kubectl apply -f deploy/manifests/40-apiservice.yaml";
    return;
  }
  if (!apiServiceAvailable_) {
    c.verdict = Verdict::kFail;
    c.problem = "apiservice-unavailable";
    c.summary = std::string(kApiServiceName) + " is not Available: " + reason +
                (message.empty() ? "" : ": " + message);
    c.fix =
        "follow the checks below (service, certificate); kube-apiserver marks it Available once "
        "its probe of /apis/external.metrics.k8s.io/v1beta1 through the Service answers 2xx";
    return;
  }
  c.summary = std::string(kApiServiceName) + " is Available";
  if (!reason.empty()) c.evidence.push_back("condition Available=True (" + reason + ")");
}

void Doctor::checkService() {
  auto& c = add("service");
  if (!apiService_ || serviceName_.empty()) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: no APIService to follow";
    return;
  }
  std::string expected = options_.service.empty() ? options_.ns + "/xmetrics" : options_.service;
  std::string actual = serviceNs_ + "/" + serviceName_;
  if (actual != expected) {
    c.verdict = Verdict::kFail;
    c.problem = "apiservice-wrong-service";
    c.summary = "the APIService points at Service " + actual + ", not at xmetrics' " + expected;
    auto slash = expected.find('/');
    c.fix = "kubectl patch apiservice " + std::string(kApiServiceName) +
            " --type=merge -p '{\"spec\":{\"service\":{\"namespace\":\"" +
            expected.substr(0, slash) + "\",\"name\":\"" + expected.substr(slash + 1) +
            "\"}}}' (or --service if xmetrics' "
            "Service has another name)";
  }
  auto svc = kube_.get("/api/v1/namespaces/" + serviceNs_ + "/services/" + serviceName_);
  if (!svc) {
    c.verdict = Verdict::kFail;
    if (c.problem.empty())
      c.problem = svc.error().status == 404 ? "service-missing" : "cluster-error";
    std::string what =
        svc.error().status == 404 ? "does not exist" : "cannot be read: " + svc.error().describe();
    if (c.summary.empty()) {
      c.summary = "Service " + actual + " " + what;
      c.fix = "kubectl apply -f deploy/manifests/30-service.yaml";
    } else {
      c.evidence.push_back("Service " + actual + " " + what);
    }
    return;
  }
  service_ = svc->as_object();
  const auto* spec = objectAt(*service_, "spec");
  std::string type = spec ? str(*spec, "type") : "";
  if (type.empty()) type = "ClusterIP";
  std::vector<int> ports;
  std::string portText;
  if (spec && arrayAt(*spec, "ports")) {
    for (const auto& p : *arrayAt(*spec, "ports")) {
      if (!p.is_object()) continue;
      int port = static_cast<int>(intAt(p.as_object(), "port"));
      ports.push_back(port);
      portText += (portText.empty() ? "" : ", ") + str(p.as_object(), "name") +
                  (str(p.as_object(), "name").empty() ? "" : " ") + std::to_string(port);
    }
  }
  c.evidence.push_back("Service " + actual + ": type " + type + ", ports " +
                       (portText.empty() ? "none" : portText));
  bool portDeclared = std::ranges::find(ports, servicePort_) != ports.end();
  if (options_.servicePort != 0 && options_.servicePort != servicePort_) {
    c.verdict = Verdict::kFail;
    if (c.problem.empty()) {
      c.problem = "apiservice-wrong-port";
      c.summary = "the APIService uses port " + std::to_string(servicePort_) + ", not " +
                  std::to_string(options_.servicePort);
      c.fix = "kubectl patch apiservice " + std::string(kApiServiceName) +
              " --type=merge -p '{\"spec\":{\"service\":{\"port\":" +
              std::to_string(options_.servicePort) + "}}}'";
    }
  }
  if (type == "ExternalName") {
    std::string external = spec ? str(*spec, "externalName") : "";
    c.evidence.push_back("ExternalName " + external + ": the aggregator dials " + external + ":" +
                         std::to_string(servicePort_) + " (the Service's ports are not consulted)");
    candidates_.push_back("https://" + external + ":" + std::to_string(servicePort_));
    // Where xmetrics may really listen when the APIService's port is wrong: tells the two apart.
    for (int p : ports) {
      if (p != servicePort_) candidates_.push_back("https://" + external + ":" + std::to_string(p));
    }
    externalNamePortUndeclared_ = !portDeclared && !ports.empty();
  } else {
    if (!portDeclared) {
      c.verdict = Verdict::kFail;
      if (c.problem.empty()) {
        c.problem = "apiservice-wrong-port";
        c.summary = "the APIService uses port " + std::to_string(servicePort_) +
                    ", which Service " + actual + " does not expose (" + portText + ")";
        c.fix =
            "set the APIService's spec.service.port to the Service's https port: kubectl "
            "patch apiservice " +
            std::string(kApiServiceName) + " --type=merge -p '{\"spec\":{\"service\":{\"port\":" +
            (ports.empty() ? std::string("443") : std::to_string(ports.front())) + "}}}'";
      }
    }
    std::string clusterIp = spec ? str(*spec, "clusterIP") : "";
    if (!clusterIp.empty() && clusterIp != "None") {
      candidates_.push_back(
          "https://" +
          (clusterIp.find(':') != std::string::npos ? "[" + clusterIp + "]" : clusterIp) + ":" +
          std::to_string(servicePort_));
    }
    candidates_.push_back("https://" + serviceName_ + "." + serviceNs_ +
                          ".svc:" + std::to_string(servicePort_));
    // Endpoints: the aggregator needs a ready one behind the Service.
    auto slices = kube_.get("/apis/discovery.k8s.io/v1/namespaces/" + serviceNs_ +
                            "/endpointslices?labelSelector=" +
                            encodeQueryValue("kubernetes.io/service-name=" + serviceName_));
    int ready = 0, total = 0;
    if (slices) {
      for (const auto& s : itemsOf(*slices)) {
        const auto* endpoints = s.is_object() ? arrayAt(s.as_object(), "endpoints") : nullptr;
        if (!endpoints) continue;
        for (const auto& e : *endpoints) {
          if (!e.is_object()) continue;
          ++total;
          const auto* conditions = objectAt(e.as_object(), "conditions");
          auto* r = conditions ? conditions->if_contains("ready") : nullptr;
          if (!r || !r->is_bool() || r->as_bool()) ++ready;
        }
      }
    }
    std::string selector;
    if (spec) {
      if (const auto* sel = objectAt(*spec, "selector")) {
        for (const auto& [k, v] : *sel) {
          selector += (selector.empty() ? "" : ",") + std::string(k) + "=" +
                      (v.is_string() ? std::string(v.as_string()) : "");
        }
      }
    }
    c.evidence.push_back("selector " + (selector.empty() ? std::string("<none>") : selector) +
                         ": " + std::to_string(ready) + " ready of " + std::to_string(total) +
                         " endpoints");
    if (slices && ready == 0) {
      c.verdict = Verdict::kFail;
      if (c.problem.empty()) {
        c.problem = "service-no-endpoints";
        c.summary = "Service " + actual + " has no ready endpoint";
        c.fix =
            selector.empty()
                ? "the Service has no selector: give it one matching xmetrics' pods (app=xmetrics)"
                : "no Ready pod matches " + selector + ": kubectl get pods -n " + serviceNs_ +
                      " -l " + selector + " (readiness is /readyz)";
      }
    }
  }
  if (c.summary.empty()) {
    c.summary = "the APIService points at Service " + actual + " port " +
                std::to_string(servicePort_) + (type == "ExternalName" ? " (ExternalName)" : "");
  }
  if (externalNamePortUndeclared_) {
    // ExternalName: the Service's ports do not matter to the aggregator, but a port that differs
    // from what the APIService says usually means one of them was edited alone. reachXmetrics()
    // decides whether it breaks anything.
    c.evidence.push_back("the APIService's port " + std::to_string(servicePort_) +
                         " is not among the Service's ports");
  }
}

void Doctor::reachXmetrics() {
  std::string name = serviceName_ + "." + serviceNs_ + ".svc";
  // --server is the user's word for where xmetrics is (a port-forward); else where the aggregator
  // would dial it.
  if (!options_.server.empty()) candidates_ = {options_.server};
  for (const auto& candidate : candidates_) {
    auto chain = fetchServingChain(candidate, name, std::chrono::seconds(3));
    if (chain) {
      address_ = candidate;
      chain_ = *chain;
      break;
    }
    reachError_ += (reachError_.empty() ? "" : "; ") + chain.error();
  }
  // With an ExternalName Service the aggregator dials <externalName>:<APIService port>; when
  // nothing answers there but xmetrics answers on the Service's own port, the APIService's port is
  // the wrong one. The only way to tell that apart from xmetrics being down.
  Check* service = nullptr;
  for (auto& c : checks_) {
    if (c.name == "service") service = &c;
  }
  const auto* spec = service_ ? objectAt(*service_, "spec") : nullptr;
  bool externalName = options_.server.empty() && spec && str(*spec, "type") == "ExternalName";
  if (address_.empty()) {
    if (candidates_.empty()) reachError_ = "no address to try: give --server";
    if (externalName && service && service->verdict == Verdict::kOk &&
        externalNamePortUndeclared_) {
      service->verdict = Verdict::kFail;
      service->problem = "apiservice-wrong-port";
      service->summary = "the APIService uses port " + std::to_string(servicePort_) +
                         ", where nothing answers, and the Service declares another";
      service->fix = "set the APIService's spec.service.port to the port xmetrics listens on";
    }
    return;
  }
  if (address_ != candidates_.front() && externalName && service) {
    std::string port = address_.substr(address_.rfind(':') + 1);
    service->verdict = Verdict::kFail;
    service->problem = "apiservice-wrong-port";
    service->summary = "the APIService uses port " + std::to_string(servicePort_) +
                       ", but xmetrics answers on the Service's port " + port;
    service->fix = "kubectl patch apiservice " + std::string(kApiServiceName) +
                   " --type=merge -p '{\"spec\":{\"service\":{\"port\":" + port + "}}}'";
    service->evidence.push_back("nothing answers at " + candidates_.front() + ": " +
                                reachError_.substr(0, reachError_.find("; ")));
  }

  // The status report, with the credentials the user has: a client certificate or token of the
  // cluster (xmetrics authenticates both in cluster mode), or xmetrics' own kubeconfig.
  Endpoint endpoint;
  if (!options_.xmetricsKubeconfig.empty()) {
    auto e = loadKubeconfig(options_.xmetricsKubeconfig);
    if (!e) {
      statusError_ = e.error();
      return;
    }
    endpoint = *e;
    if (!options_.server.empty()) endpoint.server = options_.server;
  } else {
    auto e = endpointFromKubeConfig(clusterConfig_);
    if (!e) {
      statusError_ = e.error();
      return;
    }
    endpoint = *e;
    endpoint.server = address_;
    endpoint.caPem = caBundle_;
    endpoint.verifyName = name;
    endpoint.insecureSkipVerify = insecureSkipTlsVerify_ && caBundle_.empty();
  }
  if (!options_.token.empty()) endpoint.token = options_.token;
  auto reply = xmetricsGet(endpoint, "/xmetrics/v1/status");
  if (!reply && endpoint.token.empty() && !endpoint.certPem.empty() &&
      !endpoint.insecureSkipVerify) {
    // The certificate check reports the mismatch; a client certificate reveals no secret to an
    // unverified server, so the rest of the walk can still use the report.
    auto insecure = endpoint;
    insecure.insecureSkipVerify = true;
    reply = xmetricsGet(insecure, "/xmetrics/v1/status");
    if (reply)
      statusNote_ = "read without verifying xmetrics' certificate (see the certificate check)";
  }
  if (!reply) {
    statusError_ = reply.error();
    return;
  }
  if (reply->status != 200) {
    statusError_ = endpoint.server + "/xmetrics/v1/status answered " +
                   std::to_string(reply->status) + ": " + replyMessage(*reply);
    return;
  }
  boost::system::error_code ec;
  auto parsed = boost::json::parse(reply->body, ec);
  if (ec || !parsed.is_object()) {
    statusError_ = endpoint.server + "/xmetrics/v1/status is not JSON: is this xmetrics?";
    return;
  }
  status_ = parsed.as_object();
  auto readyEndpoint = endpoint;
  readyEndpoint.insecureSkipVerify = readyEndpoint.insecureSkipVerify || !statusNote_.empty();
  auto readyz = xmetricsGet(readyEndpoint, "/readyz");
  if (readyz) {
    ready_ = readyz->status == 200;
    readyz_ = replyMessage(*readyz);
  } else {
    readyz_ = readyz.error();
  }
}

void Doctor::checkCertificate() {
  auto& c = add("certificate");
  std::string name = serviceName_ + "." + serviceNs_ + ".svc";
  if (!apiService_) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: no APIService";
    return;
  }
  if (insecureSkipTlsVerify_) {
    c.verdict = Verdict::kWarn;
    c.problem = "insecure-skip-tls-verify";
    c.summary =
        "the APIService sets insecureSkipTLSVerify: kube-apiserver accepts any server "
        "certificate for external metrics";
    c.fix =
        "set spec.caBundle to the CA that signed xmetrics' serving certificate and remove "
        "insecureSkipTLSVerify";
  }
  if (address_.empty()) {
    if (c.verdict == Verdict::kOk) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "not checked: xmetrics cannot be reached from here";
      c.fix = "give --server (e.g. after kubectl port-forward -n " + serviceNs_ + " svc/" +
              serviceName_ + " 8443:" + std::to_string(servicePort_) +
              ", --server https://127.0.0.1:8443)";
    }
    c.evidence.push_back(reachError_);
    return;
  }
  auto facts = doctor::inspectServingCertificate(chain_, caBundle_, name, core::Clock::now());
  c.evidence.push_back("presented at " + address_ + ": subject " + facts.subject + ", issuer " +
                       facts.issuer + ", expires " + facts.notAfter);
  std::string names;
  for (const auto& n : facts.names) names += (names.empty() ? "" : ", ") + n;
  c.evidence.push_back("names: " + (names.empty() ? std::string("<none>") : names));
  std::string bundle;
  for (const auto& s : facts.bundleSubjects) bundle += (bundle.empty() ? "" : ", ") + s;
  c.evidence.push_back("caBundle: " + (bundle.empty() ? std::string("<empty>") : bundle));
  if (insecureSkipTlsVerify_) return;
  if (!facts.error.empty() && facts.secondsLeft <= 0) {
    c.verdict = Verdict::kFail;
    c.problem = "certificate-expired";
    c.summary = "the serving certificate xmetrics presents expired " + facts.notAfter;
    c.fix =
        "renew it (xmetrics remakes its own leaves at start when they are near expiry; a "
        "mounted Secret must be renewed by whoever issues it)";
    return;
  }
  if (!facts.error.empty()) {
    c.verdict = Verdict::kFail;
    c.problem = facts.error.find("not valid for") != std::string::npos ? "certificate-name-mismatch"
                                                                       : "cabundle-mismatch";
    c.summary =
        c.problem == "cabundle-mismatch"
            ? "the APIService's caBundle does not verify the certificate xmetrics presents: " +
                  facts.error
            : "the certificate xmetrics presents " + facts.error;
    c.fix =
        c.problem == "certificate-name-mismatch"
            ? "point the APIService at the Service the certificate is for (see the service "
              "check), or reissue xmetrics' serving certificate with the name " +
                  name
            : "put the CA that signed the serving certificate into the APIService: kubectl "
              "patch apiservice " +
                  std::string(kApiServiceName) +
                  " --type=merge -p \"{\\\"spec\\\":{\\\"caBundle\\\":\\\"$(base64 -w0 "
                  "ca.crt)\\\"}}\" (ca.crt from xmetrics' --cert-dir or its serving-cert Secret)";
    return;
  }
  if (doctor::certificateExpiring(facts)) {
    c.verdict = Verdict::kWarn;
    c.problem = "certificate-expiring";
    c.summary = "the serving certificate expires " + facts.notAfter;
    c.fix = "renew xmetrics' serving certificate (and the caBundle if the CA changes)";
    return;
  }
  c.summary = "the serving certificate for " + name + " verifies against the caBundle";
}

void Doctor::checkDiscovery() {
  auto& c = add("discovery");
  auto d = kube_.get(kExternalPrefix);
  if (!d) {
    c.verdict = Verdict::kFail;
    c.problem = "discovery-failed";
    c.summary = "GET " + std::string(kExternalPrefix) +
                " through kube-apiserver: " + oneLine(d.error().describe());
    c.fix = apiServiceAvailable_
                ? "see xmetrics' logs; the aggregator reached it but the call failed"
                : "see the apiservice check: the APIService is not Available";
    return;
  }
  std::size_t n = 0;
  if (const auto* resources = arrayAt(d->as_object(), "resources")) n = resources->size();
  c.summary = "kube-apiserver answers " + std::string(kExternalPrefix) + " (" + std::to_string(n) +
              " resources listed)";
}

void Doctor::checkHpaRbac() {
  auto& c = add("rbac-hpa");
  auth::UserInfo hpa = serviceAccountUser("kube-system", "horizontal-pod-autoscaler");
  std::vector<std::string> denied;
  for (std::string verb : {"get", "list"}) {
    auto d = review(
        hpa,
        {.verb = verb, .group = "external.metrics.k8s.io", .version = "v1beta1", .resource = "*"});
    if (!d) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "cannot ask the cluster: " + d.error();
      c.fix = "the kubeconfig's user must be allowed to create subjectaccessreviews";
      return;
    }
    c.evidence.push_back(std::string(kHpaUser) + " " + verb +
                         " external.metrics.k8s.io/*: " + (d->allowed ? "allowed" : "denied") +
                         (d->reason.empty() ? "" : " (" + d->reason + ")"));
    if (!d->allowed) denied.push_back(verb);
  }
  if (denied.empty()) {
    c.summary = "the HPA controller may get and list external metrics";
    return;
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
}

void Doctor::checkXmetricsRbac() {
  auto& c = add("rbac-xmetrics");
  // Who xmetrics runs as: the flag, else the pods behind its Service, else the Deployment named
  // like the Service, else the service account the manifests create.
  std::string ns, name, source;
  if (!options_.serviceAccount.empty()) {
    std::string sa = options_.serviceAccount;
    if (sa.starts_with("system:serviceaccount:")) sa = sa.substr(22);
    auto sep = sa.find_first_of("/:");
    ns = sep == std::string::npos ? options_.ns : sa.substr(0, sep);
    name = sep == std::string::npos ? sa : sa.substr(sep + 1);
    source = "--service-account";
  }
  if (name.empty() && service_) {
    const auto* spec = objectAt(*service_, "spec");
    const auto* sel = spec ? objectAt(*spec, "selector") : nullptr;
    if (sel && !sel->empty()) {
      std::string selector;
      for (const auto& [k, v] : *sel) {
        selector += (selector.empty() ? "" : ",") + std::string(k) + "=" +
                    (v.is_string() ? std::string(v.as_string()) : "");
      }
      auto pods = kube_.get("/api/v1/namespaces/" + serviceNs_ +
                            "/pods?labelSelector=" + encodeQueryValue(selector));
      if (pods) {
        for (const auto& p : itemsOf(*pods)) {
          const auto* spec = p.is_object() ? objectAt(p.as_object(), "spec") : nullptr;
          if (!spec) continue;
          ns = serviceNs_;
          name = str(*spec, "serviceAccountName");
          if (name.empty()) name = "default";
          source = "pods of Service " + serviceNs_ + "/" + serviceName_;
          break;
        }
      }
    }
  }
  if (name.empty() && !serviceName_.empty()) {
    auto deployment =
        kube_.get("/apis/apps/v1/namespaces/" + serviceNs_ + "/deployments/" + serviceName_);
    if (deployment) {
      const auto* spec = objectAt(deployment->as_object(), "spec");
      const auto* tmpl = spec ? objectAt(*spec, "template") : nullptr;
      const auto* podSpec = tmpl ? objectAt(*tmpl, "spec") : nullptr;
      ns = serviceNs_;
      name = podSpec ? str(*podSpec, "serviceAccountName") : "";
      if (name.empty()) name = "default";
      source = "Deployment " + serviceNs_ + "/" + serviceName_;
    }
  }
  if (name.empty()) {
    if (kube_.get("/api/v1/namespaces/" + options_.ns + "/serviceaccounts/xmetrics")) {
      ns = options_.ns;
      name = "xmetrics";
      source =
          "assumed: the ServiceAccount of the manifests (no pod or Deployment found; give "
          "--service-account)";
    }
  }
  if (name.empty()) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: cannot tell which service account xmetrics runs as";
    c.fix = "give --service-account <namespace>/<name>";
    return;
  }
  auth::UserInfo user = serviceAccountUser(ns, name);
  c.evidence.push_back("identity " + user.name + " (" + source + ")");
  struct Need {
    auth::AccessRequest request;
    std::string why;
  };
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
  if (crdMode()) {
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
  const auto* leader = status_ ? objectAt(*status_, "leader") : nullptr;
  auto* enabled = leader ? leader->if_contains("enabled") : nullptr;
  if (enabled && enabled->is_bool() && enabled->as_bool()) {
    for (std::string verb : {"get", "create", "update"}) {
      needs.push_back({{.verb = verb,
                        .namespace_ = lease().first,
                        .group = "coordination.k8s.io",
                        .version = "v1",
                        .resource = "leases"},
                       "leader election"});
    }
  }
  std::vector<std::string> denied;
  for (auto& need : needs) {
    need.request.resourceRequest = true;  // for describe()
    auto d = review(user, need.request);
    if (!d) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "cannot ask the cluster: " + d.error();
      c.fix = "the kubeconfig's user must be allowed to create subjectaccessreviews";
      return;
    }
    if (!d->allowed) {
      denied.push_back(need.request.describe() + " — " + need.why);
      c.evidence.push_back("denied: " + need.request.describe() + " (" + need.why + ")");
    }
  }
  if (denied.empty()) {
    c.summary = user.name + " has every permission xmetrics uses (" + std::to_string(needs.size()) +
                " checked)";
    return;
  }
  c.verdict = Verdict::kFail;
  c.problem = "wrong-rbac";
  c.summary = "wrong RBAC: " + user.name + " lacks " + std::to_string(denied.size()) + " of " +
              std::to_string(needs.size()) + " permissions xmetrics uses";
  c.fix = "kubectl apply -f " + std::string(kRbacManifest) +
          " (its bindings name the service "
          "account xmetrics/xmetrics; adjust them if xmetrics runs as " +
          user.name + ")";
}

bool Doctor::crdMode() const {
  if (!status_) return false;
  const auto* k = objectAt(*status_, "kubernetes");
  const auto* w = k ? objectAt(*k, "datadogMetricWatch") : nullptr;
  return w && w->contains("synced");
}

void Doctor::checkXmetrics() {
  auto& c = add("xmetrics");
  if (address_.empty()) {
    c.verdict = apiServiceAvailable_ ? Verdict::kWarn : Verdict::kFail;
    c.problem = "xmetrics-unreachable";
    c.summary = apiServiceAvailable_
                    ? "not reachable from here (kube-apiserver reaches it): " + reachError_
                    : "xmetrics does not answer: " + reachError_;
    c.fix = apiServiceAvailable_
                ? "give --server to read its status (e.g. kubectl port-forward -n " + serviceNs_ +
                      " svc/" + serviceName_ + " 8443:" + std::to_string(servicePort_) +
                      ", --server https://127.0.0.1:8443)"
                : "check that xmetrics runs (kubectl get pods -n " + serviceNs_ +
                      ", its logs) and listens where the Service and APIService say";
    return;
  }
  if (!status_) {
    c.evidence.push_back("reached at " + address_);
    c.verdict = Verdict::kFail;
    c.problem = "status-unavailable";
    c.summary = "cannot read its status: " + statusError_;
    c.fix = statusError_.find(" 401") != std::string::npos ||
                    statusError_.find(" 403") != std::string::npos
                ? "use a kubeconfig whose user may get /xmetrics/v1/status (system:masters, or a "
                  "ClusterRole with nonResourceURLs), or --xmetrics-kubeconfig / --token"
                : "check that the address is xmetrics (its log's first line says where it serves)";
    return;
  }
  if (!statusNote_.empty()) c.evidence.push_back("status " + statusNote_);
  const auto* poller = objectAt(*status_, "poller");
  if (poller) {
    c.evidence.push_back("poller: refresh every " +
                         std::to_string(intAt(*poller, "refreshPeriodSeconds")) + "s, max-age " +
                         std::to_string(intAt(*poller, "maxAgeSeconds")) + "s, " +
                         std::to_string(intAt(*poller, "cycles")) + " cycles");
  }
  std::vector<std::string> unsynced;
  if (const auto* k = objectAt(*status_, "kubernetes")) {
    for (std::string_view watch : {"authenticationWatch", "hpaWatch", "datadogMetricWatch"}) {
      const auto* w = objectAt(*k, watch);
      if (!w || !w->contains("synced")) continue;
      auto* synced = w->if_contains("synced");
      bool ok = synced->is_bool() && synced->as_bool();
      c.evidence.push_back(
          std::string(watch) + ": " + (ok ? "synced" : "NOT synced") + ", " +
          std::to_string(intAt(*w, "objects")) + " objects" +
          (str(*w, "lastError").empty() ? "" : ", last error: " + str(*w, "lastError")));
      if (!ok) unsynced.push_back(std::string(watch));
    }
  } else {
    c.evidence.push_back("not in cluster mode: no HPA watch, no delegated authentication");
  }
  c.evidence.push_back("/readyz: " + readyz_);
  if (!ready_ || !unsynced.empty()) {
    c.verdict = Verdict::kFail;
    c.problem = "xmetrics-not-ready";
    c.summary = "reached, but not ready: " + readyz_;
    c.fix =
        "see the watches' last errors above (a 403 is the rbac-xmetrics check) and xmetrics' logs";
    return;
  }
  c.summary = "reached at " + address_ + ", ready";
}

std::pair<std::string, std::string> Doctor::lease() const {
  // The server says which Lease it elects with (--leader-lease-name, its namespace); older ones
  // do not: the contract's default.
  const auto* leader = status_ ? objectAt(*status_, "leader") : nullptr;
  std::string id = leader ? str(*leader, "lease") : "";
  if (auto slash = id.find('/'); slash != std::string::npos) {
    return {id.substr(0, slash), id.substr(slash + 1)};
  }
  return {options_.ns, std::string(kLeaseName)};
}

void Doctor::checkLeader() {
  auto& c = add("leader");
  auto [ns, name] = lease();
  std::string leaseName = ns + "/" + name;
  auto lease = kube_.get("/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases/" + name);
  if (!lease && lease.error().status != 404) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "cannot read Lease " + leaseName + ": " + oneLine(lease.error().describe());
    c.fix = "the kubeconfig's user must be allowed to get leases in " + ns;
    return;
  }
  const auto* leader = status_ ? objectAt(*status_, "leader") : nullptr;
  auto f = doctor::classifyLeader(leader, lease ? &lease->as_object() : nullptr, leaseName,
                                  core::Clock::now());
  apply(c, f);
}

void Doctor::checkBackends() {
  if (!status_) return;
  boost::json::array backends;
  if (const auto* list = arrayAt(*status_, "backends")) {
    backends = *list;
  } else if (const auto* one = objectAt(*status_, "backend")) {
    backends.push_back(*one);
  }
  for (const auto& b : backends) {
    if (!b.is_object()) continue;
    auto& c = add("backend", str(b.as_object(), "name"));
    auto f = doctor::classifyBackend(b.as_object());
    apply(c, f);
    // The subject already names it.
    if (c.summary.starts_with(c.subject + ": ")) c.summary = c.summary.substr(c.subject.size() + 2);
  }
}

Doctor::MetricRead Doctor::readMetric(const std::string& ns, const std::string& metric,
                                      const std::string& selector) {
  MetricRead r;
  auto answer = kube_.get(externalMetricPath(ns, metric, selector));
  if (!answer) {
    r.status = answer.error().status;
    r.message = oneLine(answer.error().message);
    if (!answer.error().reason.empty()) r.message = answer.error().reason + ": " + r.message;
    return r;
  }
  r.status = 200;
  if (const auto* items = arrayAt(answer->as_object(), "items")) {
    r.items = items->size();
    double sum = 0;
    for (const auto& i : *items) {
      if (!i.is_object()) continue;
      if (auto v = core::parseQuantity(str(i.as_object(), "value"))) sum += *v;
    }
    if (r.items > 0) r.value = sum;
  }
  if (r.items == 0) r.message = "an empty list (the HPA treats it as no metric)";
  return r;
}

const boost::json::object* Doctor::statusMetric(const std::string& ns, const std::string& metric,
                                                const std::string& selector) const {
  if (!status_) return nullptr;
  const auto* metrics = arrayAt(*status_, "metrics");
  if (!metrics) return nullptr;
  for (const auto& m : *metrics) {
    if (!m.is_object()) continue;
    const auto& o = m.as_object();
    if (str(o, "namespace") == ns && str(o, "metricName") == metric &&
        str(o, "selector") == selector) {
      return &o;
    }
  }
  return nullptr;
}

void Doctor::checkHpas() {
  auto list = kube_.get("/apis/autoscaling/v2/horizontalpodautoscalers");
  if (!list) {
    auto& c = add("hpa");
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "cannot list HPAs: " + list.error().describe();
    c.fix = "the kubeconfig's user must be allowed to list horizontalpodautoscalers";
    return;
  }
  std::size_t before = checks_.size();
  for (const auto& item : itemsOf(*list)) {
    if (!item.is_object()) continue;
    const auto& hpa = item.as_object();
    const auto* meta = objectAt(hpa, "metadata");
    const auto* spec = objectAt(hpa, "spec");
    const auto* hpaStatus = objectAt(hpa, "status");
    if (!meta || !spec || !arrayAt(*spec, "metrics")) continue;
    std::string ns = str(*meta, "namespace"), hpaName = str(*meta, "name");
    int minReplicas = static_cast<int>(intAt(*spec, "minReplicas", 1));
    int maxReplicas = static_cast<int>(intAt(*spec, "maxReplicas", 1));
    int current = hpaStatus ? static_cast<int>(intAt(*hpaStatus, "currentReplicas")) : 0;
    int hpaDesired = hpaStatus ? static_cast<int>(intAt(*hpaStatus, "desiredReplicas")) : 0;
    std::string scalingActive;
    if (hpaStatus && arrayAt(*hpaStatus, "conditions")) {
      for (const auto& cond : *arrayAt(*hpaStatus, "conditions")) {
        if (!cond.is_object() || str(cond.as_object(), "type") != "ScalingActive") continue;
        if (str(cond.as_object(), "status") != "True") {
          scalingActive = str(cond.as_object(), "reason") + ": " + str(cond.as_object(), "message");
        }
      }
    }
    for (const auto& m : *arrayAt(*spec, "metrics")) {
      if (!m.is_object() || str(m.as_object(), "type") != "External") continue;
      const auto* external = objectAt(m.as_object(), "external");
      const auto* metric = external ? objectAt(*external, "metric") : nullptr;
      const auto* target = external ? objectAt(*external, "target") : nullptr;
      if (!metric) continue;
      std::string name = str(*metric, "name");
      std::string metricName = lowercase(name);
      auto text = kube::labelSelectorText(objectAt(*metric, "selector"));
      std::expected<core::LabelSelector, core::SelectorError> selector =
          text ? core::LabelSelector::parse(*text)
               : std::unexpected(core::SelectorError{0, text.error()});
      auto& c = add("hpa", ns + "/" + hpaName + " " + name +
                               (text && !text->empty() ? "{" + *text + "}" : ""));
      if (!selector) {
        c.verdict = Verdict::kFail;
        c.problem = "bad-selector";
        c.summary = "its metric.selector is unusable: " + selector.error().message;
        c.fix = "fix the HPA's metric.selector";
        continue;
      }
      std::string canonical = selector->canonical();
      const auto* entry = statusMetric(ns, metricName, canonical);
      // Resolution and the status' view of the value.
      Finding metricFinding;
      if (entry) {
        c.evidence.push_back("resolution: " + doctor::describeResolution(*entry));
        if (!str(*entry, "query").empty()) {
          c.evidence.push_back("query: " + str(*entry, "query") + " (backend " +
                               str(*entry, "backend") + ")");
        }
        if (entry->contains("value")) {
          c.evidence.push_back(
              "value: " + str(*entry, "value") + ", " +
              std::to_string(intAt(*entry, "ageSeconds")) + "s old, " +
              (doctor::classifyMetric(*entry).verdict == Verdict::kOk ? "valid" : "NOT valid"));
        }
        metricFinding = doctor::classifyMetric(*entry);
      } else if (status_) {
        c.evidence.push_back(
            "xmetrics' status has no entry for it: the HPA watch has not seen this HPA");
      }
      // The request the HPA makes, through kube-apiserver.
      auto read = readMetric(ns, metricName, canonical);
      c.evidence.push_back("GET " + externalMetricPath(ns, metricName, canonical) + " → " +
                           (read.status ? std::to_string(read.status) : std::string("error")) +
                           (read.status == 200 && read.value
                                ? ", " + std::to_string(read.items) + " item(s), value " +
                                      core::formatQuantity(*read.value)
                                : ": " + read.message));
      if (!entry && read.status != 200) {
        // No status to read: classify from the answer's message (it carries the same errors).
        boost::json::object synthetic{
            {"valid", false}, {"error", read.message}, {"metricName", metricName}};
        metricFinding = doctor::classifyMetric(synthetic);
        // xmetrics' own 503s are Status bodies with a reason; the aggregator's is plain text.
        if (metricFinding.problem == "metric-error" && read.status == 503 &&
            !read.message.starts_with("ServiceUnavailable")) {
          metricFinding.problem = "apiservice-unavailable";
          metricFinding.summary = "kube-apiserver cannot reach xmetrics";
          metricFinding.fix = "see the apiservice check";
        }
        metricFinding.evidence.clear();
      }
      // Refine "no series" with probes through the same API: is the name wrong or a tag?
      if (metricFinding.problem == "no-series" &&
          (!entry || !str(*entry, "resolution").starts_with("datadogmetric"))) {
        auto whole = selector->empty() ? read : readMetric(ns, metricName, "");
        std::vector<doctor::TagProbe> probes;
        if (whole.status == 200 && whole.value && selector->requirements().size() > 1) {
          for (const auto& r : selector->requirements()) {
            if (probes.size() >= 8) break;
            auto one = readMetric(ns, metricName, requirementText(r));
            probes.push_back(
                {requirementText(r), one.status == 200 && one.value.has_value(), one.message});
          }
        } else if (whole.status == 200 && whole.value && selector->requirements().size() == 1) {
          probes.push_back({requirementText(selector->requirements()[0]), false, read.message});
        }
        auto refined = doctor::classifyNoSeries(
            name, whole.status == 200 && whole.value.has_value(), whole.message, probes);
        metricFinding.problem = refined.problem;
        metricFinding.summary = refined.summary;
        metricFinding.fix = refined.fix;
        metricFinding.evidence.insert(metricFinding.evidence.end(), refined.evidence.begin(),
                                      refined.evidence.end());
      }
      // The HPA's arithmetic on what it gets.
      std::optional<double> value = read.value;
      if (!value && entry && entry->contains("valueNumber") &&
          metricFinding.verdict == Verdict::kOk) {
        value = entry->at("valueNumber").to_number<double>();
      }
      std::string targetType = target ? str(*target, "type") : "";
      std::string targetText =
          target ? str(*target, targetType == "AverageValue" ? "averageValue" : "value") : "";
      auto targetValue = core::parseQuantity(targetText);
      doctor::HpaMath math;
      bool haveMath = false;
      if (value && targetValue && (targetType == "Value" || targetType == "AverageValue")) {
        math = doctor::explainHpa({.type = targetType == "AverageValue"
                                               ? doctor::TargetType::kAverageValue
                                               : doctor::TargetType::kValue,
                                   .target = *targetValue,
                                   .targetText = targetText,
                                   .value = *value,
                                   .currentReplicas = current,
                                   .minReplicas = minReplicas,
                                   .maxReplicas = maxReplicas});
        haveMath = true;
        c.evidence.push_back("HPA arithmetic: " + math.explanation);
      } else if (!targetType.empty()) {
        c.evidence.push_back("target: " + targetType + " " + targetText);
      }
      c.evidence.push_back("HPA status: currentReplicas " + std::to_string(current) +
                           ", desiredReplicas " + std::to_string(hpaDesired) +
                           (scalingActive.empty() ? "" : "; ScalingActive=False " + scalingActive));
      for (const auto& e : metricFinding.evidence) c.evidence.push_back(e);
      if (metricFinding.verdict != Verdict::kOk ||
          (read.status != 200 && metricFinding.problem.empty())) {
        c.verdict = Verdict::kFail;
        c.problem = metricFinding.problem.empty() ? "metric-error" : metricFinding.problem;
        c.summary = metricFinding.summary.empty()
                        ? "the external metrics API answers " + std::to_string(read.status) + ": " +
                              read.message
                        : metricFinding.summary;
        c.fix = metricFinding.fix.empty() ? "see the answer above" : metricFinding.fix;
        if (c.problem == "datadogmetric-invalid" || c.problem == "datadogmetric-missing") {
          std::string id = entry ? str(*entry, "datadogMetric") : "";
          auto slash = id.find('/');
          if (slash != std::string::npos) {
            auto object =
                kube_.get("/apis/datadoghq.com/v1alpha1/namespaces/" + id.substr(0, slash) +
                          "/datadogmetrics/" + id.substr(slash + 1));
            if (object) {
              const auto* ospec = objectAt(object->as_object(), "spec");
              c.evidence.push_back("DatadogMetric " + id + " spec.query: " +
                                   (ospec ? str(*ospec, "query") : std::string()));
            } else {
              c.evidence.push_back("DatadogMetric " + id + ": " + object.error().describe());
            }
          }
        }
        continue;
      }
      if (read.status != 200) {
        c.verdict = Verdict::kFail;
        c.problem = read.status == 403 ? "forbidden" : "metric-error";
        c.summary =
            "the external metrics API answers " + std::to_string(read.status) + ": " + read.message;
        c.fix = read.status == 403 ? "the doctor's own user may not read external metrics; the "
                                     "rbac-hpa check covers the HPA controller"
                                   : "see the answer above";
        continue;
      }
      c.summary = haveMath ? math.shown + " → desired " + std::to_string(math.desired) +
                                 " (HPA: " + std::to_string(hpaDesired) + ")"
                           : "value " + (value ? core::formatQuantity(*value) : std::string("-"));
      if (!scalingActive.empty()) {
        c.verdict = Verdict::kWarn;
        c.problem =
            scalingActive.find("forbidden") != std::string::npos ? "wrong-rbac" : "hpa-not-scaling";
        c.summary += "; but the HPA reports " + scalingActive.substr(0, scalingActive.find(':'));
        c.fix =
            c.problem == "wrong-rbac"
                ? "see the rbac-hpa check"
                : "the metric answers now; the HPA retries every sync period (15 s by default), "
                  "so this clears if the cause was transient";
      }
    }
  }
  if (checks_.size() == before) {
    auto& c = add("hpa");
    c.summary = "no HorizontalPodAutoscaler names an External metric";
  }
}

void Doctor::checkAutogen() {
  if (!crdMode()) return;
  auto& c = add("autogen");
  auto list = kube_.get("/apis/datadoghq.com/v1alpha1/datadogmetrics");
  if (!list) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "cannot list DatadogMetrics: " + list.error().describe();
    c.fix = "the kubeconfig's user must be allowed to list datadogmetrics";
    return;
  }
  std::vector<boost::json::object> objects;
  for (const auto& o : itemsOf(*list)) {
    if (o.is_object()) objects.push_back(o.as_object());
  }
  const auto* metrics = arrayAt(*status_, "metrics");
  auto findings = doctor::findAutogenShadowing(metrics ? *metrics : boost::json::array{}, objects);
  if (findings.empty()) {
    std::size_t autogen = std::ranges::count_if(objects, [](const auto& o) {
      const auto* meta = objectAt(o, "metadata");
      return meta && str(*meta, "name").starts_with("dcaautogen-");
    });
    c.summary = "no autogen DatadogMetric competes with a manual one (" +
                std::to_string(objects.size()) + " objects, " + std::to_string(autogen) +
                " autogen)";
    return;
  }
  checks_.pop_back();
  for (const auto& f : findings) apply(add("autogen"), f);
}

}  // namespace

int runDoctor(const DoctorOptions& options) {
  // KUBECONFIG may list several files, as for kubectl; the first one holds the context here.
  std::string kubeconfig = options.kubeconfig.substr(0, options.kubeconfig.find(':'));
  std::expected<kube::KubeConfig, std::string> cluster =
      !kubeconfig.empty() ? kube::loadKubeconfig(kubeconfig, options.context)
      : kube::runningInCluster()
          ? kube::inClusterConfig()
          : std::unexpected(std::string("give --kubeconfig (the cluster's, as for kubectl) or run "
                                        "in a pod"));
  if (!cluster) {
    std::cerr << "error: " << cluster.error() << "\n";
    return 1;
  }
  // Reachability first: without kube-apiserver there is nothing to walk.
  {
    kube::KubeClient probe(*cluster);
    if (auto version = probe.get("/version"); !version && version.error().status == 0) {
      std::vector<Check> checks{{.name = "cluster",
                                 .verdict = Verdict::kFail,
                                 .summary = "cannot reach kube-apiserver at " + cluster->server +
                                            ": " + version.error().message,
                                 .problem = "cluster-unreachable",
                                 .fix = "check --kubeconfig and the network path"}};
      std::cout << (options.output == "json"
                        ? boost::json::serialize(doctor::renderJson(checks)) + "\n"
                        : doctor::renderText(checks));
      return 1;
    }
  }
  Doctor doctor(options, *cluster);
  auto checks = doctor.run();
  if (options.output == "json") {
    std::cout << boost::json::serialize(doctor::renderJson(checks)) << "\n";
  } else {
    std::cout << doctor::renderText(checks);
  }
  return doctor::exitCode(checks);
}

}  // namespace xmetrics::cli

// The first links: the APIService, the Service it points at, discovery through the aggregator,
// and xmetrics itself (reached, its status read, ready).

#include <algorithm>

#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "doctor/checks.hpp"
#include "doctor/wording.hpp"

namespace xmetrics::doctor {
namespace {

using core::oneLine;
using core::json::arrayAt;
using core::json::intAt;
using core::json::objectAt;
using core::json::str;

const boost::json::object* serviceSpec(const Evidence& e) {
  if (!e.service || !*e.service || !(*e.service)->is_object()) return nullptr;
  return objectAt((*e.service)->as_object(), "spec");
}

std::string serviceType(const boost::json::object* spec) {
  std::string type = spec ? str(*spec, "type") : "";
  return type.empty() ? "ClusterIP" : type;
}

std::vector<int> servicePorts(const boost::json::object* spec) {
  std::vector<int> ports;
  if (const auto* list = arrayAt(spec, "ports")) {
    for (const auto& p : *list) {
      if (p.is_object()) ports.push_back(static_cast<int>(intAt(p.as_object(), "port")));
    }
  }
  return ports;
}

std::string portPatch(const std::string& port) {
  return "kubectl patch apiservice " + std::string(kApiServiceName) +
         " --type=merge -p '{\"spec\":{\"service\":{\"port\":" + port + "}}}'";
}

// The first failure found names the check's problem; later ones only keep it FAIL.
void fail(Check& c, std::string problem, std::string summary, std::string fix) {
  c.verdict = Verdict::kFail;
  if (!c.problem.empty()) return;
  c.problem = std::move(problem);
  c.summary = std::move(summary);
  c.fix = std::move(fix);
}

// "https 443, metrics 9090", as the Service names its ports.
std::string portsText(const boost::json::object* spec) {
  std::string text;
  if (const auto* list = arrayAt(spec, "ports")) {
    for (const auto& p : *list) {
      if (!p.is_object()) continue;
      std::string name = str(p.as_object(), "name");
      text += (text.empty() ? "" : ", ") + name + (name.empty() ? "" : " ") +
              std::to_string(intAt(p.as_object(), "port"));
    }
  }
  return text;
}

// The aggregator needs a ready endpoint behind the Service.
void judgeEndpoints(const Evidence& e, Check& c, const boost::json::object* spec,
                    const std::string& actual) {
  int ready = 0, total = 0;
  bool read = e.endpointSlices && *e.endpointSlices;
  if (read) {
    for (const auto& s : detail::itemsOf(**e.endpointSlices)) {
      const auto* endpoints = s.is_object() ? arrayAt(s.as_object(), "endpoints") : nullptr;
      if (!endpoints) continue;
      for (const auto& ep : *endpoints) {
        if (!ep.is_object()) continue;
        ++total;
        const auto* conditions = objectAt(ep.as_object(), "conditions");
        auto* r = conditions ? conditions->if_contains("ready") : nullptr;
        if (!r || !r->is_bool() || r->as_bool()) ++ready;
      }
    }
  }
  std::string selector = detail::selectorText(spec);
  c.evidence.push_back("selector " + (selector.empty() ? std::string("<none>") : selector) + ": " +
                       std::to_string(ready) + " ready of " + std::to_string(total) + " endpoints");
  if (read && ready == 0) {
    fail(c, "service-no-endpoints", "Service " + actual + " has no ready endpoint",
         selector.empty()
             ? "the Service has no selector: give it one matching xmetrics' pods (app=xmetrics)"
             : "no Ready pod matches " + selector + ": kubectl get pods -n " + e.serviceNs +
                   " -l " + selector + " (readiness is /readyz)");
  }
}

// The Service check's verdict once xmetrics was (or was not) reached: with an ExternalName
// Service the aggregator dials <externalName>:<APIService port>; when nothing answers there but
// xmetrics answers on the Service's own port, the APIService's port is the wrong one. The only way
// to tell that apart from xmetrics being down.
void judgeExternalNamePort(const Evidence& e, Check& c) {
  const auto* spec = serviceSpec(e);
  bool externalName = e.options.server.empty() && spec && str(*spec, "type") == "ExternalName";
  if (!externalName) return;
  if (e.address.empty()) {
    if (c.verdict == Verdict::kOk && externalNamePortUndeclared(e)) {
      c.verdict = Verdict::kFail;
      c.problem = "apiservice-wrong-port";
      c.summary = "the APIService uses port " + std::to_string(e.servicePort) +
                  ", where nothing answers, and the Service declares another";
      c.fix = "set the APIService's spec.service.port to the port xmetrics listens on";
    }
    return;
  }
  if (e.address == e.candidates.front()) return;
  std::string port = e.address.substr(e.address.rfind(':') + 1);
  c.verdict = Verdict::kFail;
  c.problem = "apiservice-wrong-port";
  c.summary = "the APIService uses port " + std::to_string(e.servicePort) +
              ", but xmetrics answers on the Service's port " + port;
  c.fix = portPatch(port);
  c.evidence.push_back("nothing answers at " + e.candidates.front() + ": " +
                       e.reachError.substr(0, e.reachError.find("; ")));
}

}  // namespace

Check checkApiService(const Evidence& e) {
  Check c{.name = "apiservice"};
  if (!e.apiService) {
    c.verdict = Verdict::kFail;
    if (e.apiService.error().status == 404) {
      c.problem = "apiservice-missing";
      c.summary = std::string(kApiServiceName) + " does not exist: nothing serves external metrics";
      c.fix =
          "kubectl apply -f deploy/manifests/40-apiservice.yaml, with spec.caBundle set to the "
          "CA that signed xmetrics' serving certificate";
    } else {
      c.problem = "cluster-error";
      c.summary = "cannot read APIService " + std::string(kApiServiceName) + ": " +
                  e.apiService.error().describe();
      c.fix = "check --kubeconfig and that its user may get apiservices";
    }
    return c;
  }
  if (e.hasServiceRef) {
    c.evidence.push_back("spec.service: " + e.serviceNs + "/" + e.serviceName + " port " +
                         std::to_string(e.servicePort));
  }
  if (!e.hasServiceRef) {
    c.verdict = Verdict::kFail;
    c.problem = "apiservice-wrong-service";
    c.summary =
        std::string(kApiServiceName) + " has no spec.service: kube-apiserver would serve it itself";
    c.fix = "kubectl apply -f deploy/manifests/40-apiservice.yaml";
    return c;
  }
  if (!e.apiServiceAvailable) {
    c.verdict = Verdict::kFail;
    c.problem = "apiservice-unavailable";
    c.summary = std::string(kApiServiceName) + " is not Available: " + e.availableReason +
                (e.availableMessage.empty() ? "" : ": " + e.availableMessage);
    c.fix =
        "follow the checks below (service, certificate); kube-apiserver marks it Available once "
        "its probe of /apis/external.metrics.k8s.io/v1beta1 through the Service answers 2xx";
    return c;
  }
  c.summary = std::string(kApiServiceName) + " is Available";
  if (!e.availableReason.empty()) {
    c.evidence.push_back("condition Available=True (" + e.availableReason + ")");
  }
  return c;
}

std::vector<std::string> serviceCandidates(const Evidence& e) {
  std::vector<std::string> candidates;
  const auto* spec = serviceSpec(e);
  if (!spec && !(e.service && *e.service)) return candidates;
  std::string port = std::to_string(e.servicePort);
  if (serviceType(spec) == "ExternalName") {
    std::string external = spec ? str(*spec, "externalName") : "";
    candidates.push_back("https://" + external + ":" + port);
    // Where xmetrics may really listen when the APIService's port is wrong: tells the two apart.
    for (int p : servicePorts(spec)) {
      if (p != e.servicePort) candidates.push_back("https://" + external + ":" + std::to_string(p));
    }
    return candidates;
  }
  std::string clusterIp = spec ? str(*spec, "clusterIP") : "";
  if (!clusterIp.empty() && clusterIp != "None") {
    candidates.push_back(
        "https://" +
        (clusterIp.find(':') != std::string::npos ? "[" + clusterIp + "]" : clusterIp) + ":" +
        port);
  }
  candidates.push_back("https://" + e.serviceName + "." + e.serviceNs + ".svc:" + port);
  return candidates;
}

bool externalNamePortUndeclared(const Evidence& e) {
  const auto* spec = serviceSpec(e);
  if (serviceType(spec) != "ExternalName") return false;
  auto ports = servicePorts(spec);
  return std::ranges::find(ports, e.servicePort) == ports.end() && !ports.empty();
}

Check checkService(const Evidence& e) {
  Check c{.name = "service"};
  if (!e.apiService || e.serviceName.empty() || !e.service) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: no APIService to follow";
    return c;
  }
  const auto& options = e.options;
  std::string expected = options.service.empty() ? options.ns + "/xmetrics" : options.service;
  std::string actual = e.serviceNs + "/" + e.serviceName;
  if (actual != expected) {
    auto slash = expected.find('/');
    fail(c, "apiservice-wrong-service",
         "the APIService points at Service " + actual + ", not at xmetrics' " + expected,
         "kubectl patch apiservice " + std::string(kApiServiceName) +
             " --type=merge -p '{\"spec\":{\"service\":{\"namespace\":\"" +
             expected.substr(0, slash) + "\",\"name\":\"" + expected.substr(slash + 1) +
             "\"}}}' (or --service if xmetrics' Service has another name)");
  }
  if (const auto& svc = *e.service; !svc) {
    bool missing = svc.error().status == 404;
    std::string what = missing ? "does not exist" : "cannot be read: " + svc.error().describe();
    if (!c.problem.empty()) c.evidence.push_back("Service " + actual + " " + what);
    fail(c, missing ? "service-missing" : "cluster-error", "Service " + actual + " " + what,
         "kubectl apply -f deploy/manifests/30-service.yaml");
    return c;
  }
  const auto* spec = serviceSpec(e);
  std::string type = serviceType(spec);
  std::vector<int> ports = servicePorts(spec);
  std::string portText = portsText(spec);
  c.evidence.push_back("Service " + actual + ": type " + type + ", ports " +
                       (portText.empty() ? "none" : portText));
  if (options.servicePort != 0 && options.servicePort != e.servicePort) {
    fail(c, "apiservice-wrong-port",
         "the APIService uses port " + std::to_string(e.servicePort) + ", not " +
             std::to_string(options.servicePort),
         portPatch(std::to_string(options.servicePort)));
  }
  if (type == "ExternalName") {
    std::string external = str(spec, "externalName");
    c.evidence.push_back("ExternalName " + external + ": the aggregator dials " + external + ":" +
                         std::to_string(e.servicePort) +
                         " (the Service's ports are not consulted)");
  } else {
    if (std::ranges::find(ports, e.servicePort) == ports.end()) {
      fail(c, "apiservice-wrong-port",
           "the APIService uses port " + std::to_string(e.servicePort) + ", which Service " +
               actual + " does not expose (" + portText + ")",
           "set the APIService's spec.service.port to the Service's https port: " +
               portPatch(ports.empty() ? std::string("443") : std::to_string(ports.front())));
    }
    judgeEndpoints(e, c, spec, actual);
  }
  if (c.summary.empty()) {
    c.summary = "the APIService points at Service " + actual + " port " +
                std::to_string(e.servicePort) + (type == "ExternalName" ? " (ExternalName)" : "");
  }
  if (externalNamePortUndeclared(e)) {
    // The Service's ports do not matter to the aggregator; judgeExternalNamePort decides whether
    // the difference breaks anything.
    c.evidence.push_back("the APIService's port " + std::to_string(e.servicePort) +
                         " is not among the Service's ports");
  }
  judgeExternalNamePort(e, c);
  return c;
}

Check checkDiscovery(const Evidence& e) {
  Check c{.name = "discovery"};
  if (!e.discovery) {
    c.verdict = Verdict::kFail;
    c.problem = "discovery-failed";
    c.summary = "GET " + std::string(kExternalPrefix) +
                " through kube-apiserver: " + oneLine(e.discovery.error().describe());
    c.fix = e.apiServiceAvailable
                ? "see xmetrics' logs; the aggregator reached it but the call failed"
                : "see the apiservice check: the APIService is not Available";
    return c;
  }
  std::size_t n = 0;
  if (e.discovery->is_object()) {
    if (const auto* resources = arrayAt(e.discovery->as_object(), "resources")) {
      n = resources->size();
    }
  }
  c.summary = "kube-apiserver answers " + std::string(kExternalPrefix) + " (" + std::to_string(n) +
              " resources listed)";
  return c;
}

Check checkXmetrics(const Evidence& e) {
  Check c{.name = "xmetrics"};
  if (e.address.empty()) {
    c.verdict = e.apiServiceAvailable ? Verdict::kWarn : Verdict::kFail;
    c.problem = "xmetrics-unreachable";
    c.summary = e.apiServiceAvailable
                    ? "not reachable from here (kube-apiserver reaches it): " + e.reachError
                    : "xmetrics does not answer: " + e.reachError;
    c.fix = e.apiServiceAvailable
                ? "give --server to read its status (e.g. kubectl port-forward -n " + e.serviceNs +
                      " svc/" + e.serviceName + " 8443:" + std::to_string(e.servicePort) +
                      ", --server https://127.0.0.1:8443)"
                : "check that xmetrics runs (kubectl get pods -n " + e.serviceNs +
                      ", its logs) and listens where the Service and APIService say";
    return c;
  }
  if (!e.status) {
    c.evidence.push_back("reached at " + e.address);
    c.verdict = Verdict::kFail;
    c.problem = "status-unavailable";
    c.summary = "cannot read its status: " + e.statusError;
    c.fix = e.statusError.find(" 401") != std::string::npos ||
                    e.statusError.find(" 403") != std::string::npos
                ? "use a kubeconfig whose user may get /xmetrics/v1/status (system:masters, or a "
                  "ClusterRole with nonResourceURLs), or --xmetrics-kubeconfig / --token"
                : "check that the address is xmetrics (its log's first line says where it serves)";
    return c;
  }
  if (!e.statusNote.empty()) c.evidence.push_back("status " + e.statusNote);
  const auto& status = *e.status;
  const auto& poller = status.poller;
  c.evidence.push_back("poller: refresh every " + std::to_string(poller.refreshPeriodSeconds) +
                       "s, max-age " + std::to_string(poller.maxAgeSeconds) + "s, " +
                       std::to_string(poller.cycles) + " cycles");
  std::vector<std::string> unsynced;
  if (const auto& k = status.kubernetes) {
    for (const auto& [watch, w] : {std::pair{"authenticationWatch", &k->authenticationWatch},
                                   std::pair{"hpaWatch", &k->hpaWatch},
                                   std::pair{"datadogMetricWatch", &k->datadogMetricWatch}}) {
      if (!*w) continue;
      const auto& s = **w;
      c.evidence.push_back(std::string(watch) + ": " + (s.synced ? "synced" : "NOT synced") + ", " +
                           std::to_string(s.objects) + " objects" +
                           (s.lastError.empty() ? "" : ", last error: " + s.lastError));
      if (!s.synced) unsynced.push_back(std::string(watch));
    }
  } else {
    c.evidence.push_back("not in cluster mode: no HPA watch, no delegated authentication");
  }
  c.evidence.push_back("/readyz: " + e.readyz);
  if (!e.ready || !unsynced.empty()) {
    c.verdict = Verdict::kFail;
    c.problem = "xmetrics-not-ready";
    c.summary = "reached, but not ready: " + e.readyz;
    c.fix =
        "see the watches' last errors above (a 403 is the rbac-xmetrics check) and xmetrics' logs";
    return c;
  }
  c.summary = "reached at " + e.address + ", ready";
  return c;
}

}  // namespace xmetrics::doctor

#pragma once

#include <expected>
#include <optional>
#include <string>

#include "client/xmetrics_client.hpp"
#include "core/status_report.hpp"
#include "doctor/report.hpp"

// doctor/: `xmetrics doctor` as a library — walks every link from an HPA to a backend value
// (APIService → Service → certificate → discovery → RBAC → xmetrics → leader → backends → each
// HPA's External metrics) and says OK / WARN / FAIL with evidence and a fix. flare/ calls it in
// process. Two halves: evidence.hpp gathers (the only I/O: kube/ calls and client/ calls to
// xmetrics), checks.hpp turns that evidence into verdicts without any I/O. May include core/,
// auth/ (request and identity types), kube/ and client/; never cli/, flare/ or server/.
namespace xmetrics::doctor {

struct Options {
  std::string kubeconfig;  // the cluster's (as for kubectl); in a pod the service account
  std::string context;
  std::string ns = "xmetrics";  // xmetrics' namespace: its Lease, Service, service account
  std::string service;          // the Service the APIService must point at; default <ns>/xmetrics
  int servicePort = 0;          // the port it must use; 0: any port the Service exposes
  std::string server;           // reach xmetrics here instead of where the aggregator would
  std::string xmetricsKubeconfig;  // credentials for xmetrics itself (serve --write-kubeconfig)
  std::string token;               // bearer token for xmetrics itself
  std::string serviceAccount;      // the identity xmetrics runs as, for the RBAC check
  // When xmetrics runs doctor on itself (its self-check): its own report, instead of reading it
  // back over HTTPS as itself (which would need RBAC on its own status path).
  std::optional<core::StatusReport> status;
};

enum class OutputFormat { kText, kJson };

// What `xmetrics doctor` prints and returns.
struct Outcome {
  std::string out;    // the report (renderText, or renderJson and a newline)
  std::string error;  // a reason the walk could not start (bad kubeconfig), for stderr
  int exitCode = 0;   // 0 all OK, 1 any FAIL (or no walk), 2 the worst is a WARN
};

// The whole walk. Every call is bounded (kube client and xmetrics client timeouts), and a link
// that cannot be checked says so instead of stopping the walk.
Outcome run(const Options& options, OutputFormat format);

// The cluster doctor walks: options.kubeconfig (the first file of a KUBECONFIG list), else as
// kubectl reads it ($KUBECONFIG, ~/.kube/config), else the pod's service account.
std::expected<kube::KubeConfig, std::string> clusterConfig(const Options& options);

// Where xmetrics answers for that cluster and how to ask it (see evidence.hpp): what `xmetrics
// status` and `kubectl xmetrics status` read when no kubeconfig of xmetrics' own is given.
std::expected<client::Endpoint, std::string> locateXmetrics(const Options& options);

}  // namespace xmetrics::doctor

#pragma once

#include <string>

#include "config/serve_options.hpp"
#include "doctor/doctor.hpp"

namespace xmetrics::cli {

// `xmetrics serve`: runs until SIGTERM/SIGINT. Returns the process exit code.
// `sources` are kept to resolve the settings again when the --config file changes.
int runServe(const config::ServeOptions& options, const config::SettingSources& sources);

struct StatusOptions {
  std::string kubeconfig;        // the file `serve --write-kubeconfig` wrote
  std::string server;            // overrides the kubeconfig's server URL
  std::string token;             // bearer token instead of the client certificate
  std::string output = "table";  // table | json
  // Neither kubeconfig nor server: the cluster's kubeconfig as kubectl reads it, and xmetrics
  // where its APIService points (doctor::locateXmetrics).
  std::string context;
  std::string ns = "xmetrics";  // xmetrics' namespace, for the Service when none is named
};

// `xmetrics status`: reads /xmetrics/v1/status of a running server and prints it.
int runStatus(const StatusOptions& options);

struct FlareOptions {
  std::string kubeconfig;  // xmetrics' own (serve --write-kubeconfig), as for status
  std::string server;
  std::string token;
  std::string clusterKubeconfig;  // the cluster's: objects and doctor
  std::string ns = "xmetrics";    // where xmetrics runs
  std::string output;             // default xmetrics-flare-<UTC time>.tar.gz
};

// `xmetrics flare`: one .tar.gz with status, effective config (secrets redacted), recent logs,
// the /metrics scrape, doctor's report and the Kubernetes objects involved.
int runFlare(const FlareOptions& options);

// doctor's own options, and how to print its report.
struct DoctorOptions : doctor::Options {
  std::string output = "table";  // table | json
};

// `xmetrics doctor`: walks APIService → Service → certificate → discovery → RBAC → xmetrics →
// backends → every HPA's External metrics, printing OK/WARN/FAIL with evidence and fixes.
// Returns 0 when all is OK, 1 on any FAIL, 2 when the worst is a WARN.
int runDoctor(const DoctorOptions& options);

struct QueryOptions {
  std::string kubeconfig;  // default: as kubectl ($KUBECONFIG, ~/.kube/config), unless --server
  std::string context;
  std::string server;  // a metrics server itself, or overrides the kubeconfig's server
  std::string token;
  std::string certificateAuthority;  // PEM file
  bool insecureSkipTlsVerify = false;
  std::string ns;  // default: the context's namespace, else "default"
  std::string metric;
  std::string selector;        // -l
  std::string metricSelector;  // custom metrics only
  std::string custom;          // RESOURCE/NAME: custom.metrics.k8s.io; empty: external
  std::string apiVersion;
  std::string output = "table";  // table | json
  int watchSeconds = 0;          // 0: read once
  int timeoutSeconds = 10;       // per step of a read (connect, handshake, write, read)
};

// `xmetrics query`: one metric from any external or custom metrics server, as a table or JSON.
// Returns 0 when it answered with values, 1 when it did not (the Status on stderr), 2 for a
// question that cannot be asked.
int runQuery(const QueryOptions& options);

// `xmetrics version` (and `--version`): version, git revision, build date, compiler, and the
// OpenSSL, libcurl and Boost versions; output "table" (lines) or "json".
int runVersion(const std::string& output);

}  // namespace xmetrics::cli

#pragma once

#include <string>

#include "config/serve_options.hpp"

namespace xmetrics::cli {

// `xmetrics serve`: runs until SIGTERM/SIGINT. Returns the process exit code.
// `sources` are kept to resolve the settings again when the --config file changes.
int runServe(const config::ServeOptions& options, const config::SettingSources& sources);

struct StatusOptions {
  std::string kubeconfig;        // the file `serve --write-kubeconfig` wrote
  std::string server;            // overrides the kubeconfig's server URL
  std::string token;             // bearer token instead of the client certificate
  std::string output = "table";  // table | json
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

// A Kubernetes object or list as JSON, with credential-like env values, Secret payloads,
// managedFields and last-applied-configuration removed.
std::string redactForFlare(std::string_view json);

}  // namespace xmetrics::cli

#pragma once

#include <ostream>
#include <string>
#include <string_view>

// flare/: `xmetrics flare` as a library — one .tar.gz with xmetrics' status, effective config
// (secrets redacted), recent logs, the /metrics scrape, doctor's report (run in process) and the
// Kubernetes objects involved. May include core/, kube/, client/ and doctor/; never cli/ or
// server/.
namespace xmetrics::flare {

struct Options {
  std::string kubeconfig;         // xmetrics' own (serve --write-kubeconfig), as for status
  std::string server;             // overrides its server URL
  std::string token;              // bearer token instead of the client certificate
  std::string clusterKubeconfig;  // the cluster's: objects and doctor
  std::string ns = "xmetrics";    // where xmetrics runs
  std::string output;             // default xmetrics-flare-<UTC time>.tar.gz
};

// Collects and writes the archive. What cannot be collected is noted on `err` (and in the
// archive's README.txt) without stopping; the archive's path and file count go to `out`. Returns
// the exit code: 0 written, 1 when xmetrics' endpoint is unusable or the archive cannot be written.
int writeFlare(const Options& options, std::ostream& out, std::ostream& err);

// A Kubernetes object or list as JSON, with credential-like env values, Secret payloads,
// managedFields and last-applied-configuration removed.
std::string redactForFlare(std::string_view json);

}  // namespace xmetrics::flare

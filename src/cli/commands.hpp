#pragma once

#include <string>

#include "config/serve_options.hpp"

namespace xmetrics::cli {

// `xmetrics serve`: runs until SIGTERM/SIGINT. Returns the process exit code.
int runServe(const config::ServeOptions& options);

struct StatusOptions {
  std::string kubeconfig;        // the file `serve --write-kubeconfig` wrote
  std::string server;            // overrides the kubeconfig's server URL
  std::string token;             // bearer token instead of the client certificate
  std::string output = "table";  // table | json
};

// `xmetrics status`: reads /xmetrics/v1/status of a running server and prints it.
int runStatus(const StatusOptions& options);

}  // namespace xmetrics::cli

// `xmetrics flare`: the flags into flare::Options; the archive is flare/'s work.

#include <iostream>

#include "cli/commands.hpp"
#include "flare/flare.hpp"

namespace xmetrics::cli {

int runFlare(const FlareOptions& options) {
  return flare::writeFlare({.kubeconfig = options.kubeconfig,
                            .server = options.server,
                            .token = options.token,
                            .clusterKubeconfig = options.clusterKubeconfig,
                            .ns = options.ns,
                            .output = options.output},
                           std::cout, std::cerr);
}

}  // namespace xmetrics::cli

#pragma once

#include <expected>
#include <string>

namespace xmetrics::cli {

// How the CLI commands (status, flare, doctor) reach a running `xmetrics serve`: its URL and the
// credentials of the kubeconfig `serve --write-kubeconfig` wrote.
struct Endpoint {
  std::string server;
  std::string caPem, certPem, keyPem;
};

std::expected<Endpoint, std::string> loadKubeconfig(const std::string& path);

// One HTTPS GET over TLS with the endpoint's CA and client certificate (or `token`), every step
// bounded by a 10 s deadline. The error says what failed and, for a non-200, the Status message.
std::expected<std::string, std::string> httpsGet(const Endpoint& endpoint, const std::string& token,
                                                 const std::string& target);

}  // namespace xmetrics::cli

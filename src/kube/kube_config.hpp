#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "http/http_client.hpp"

namespace xmetrics::kube {

// How to reach and authenticate to kube-apiserver.
struct KubeConfig {
  std::string server;      // https://host:port, no trailing slash
  http::TlsOptions tls;    // CA to trust, optional client certificate
  std::string token;       // static bearer token, or
  std::string tokenFile;   // a file re-read on every use (projected service-account tokens rotate)
  std::string namespace_;  // the namespace xmetrics runs in (in-cluster), or the context's
};

// True when the process runs in a pod (KUBERNETES_SERVICE_HOST set and a service-account token
// mounted).
bool runningInCluster();

// The pod's service account: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
// /var/run/secrets/kubernetes.io/serviceaccount/{ca.crt,token,namespace}.
std::expected<KubeConfig, std::string> inClusterConfig();

// A kubeconfig file's current context (or `context`): server, certificate-authority(-data),
// client-certificate(-data)/client-key(-data), token/tokenFile. Relative paths are resolved against
// the kubeconfig's directory, as kubectl does. Errors name the file and the field.
std::expected<KubeConfig, std::string> loadKubeconfig(const std::string& path,
                                                      const std::string& context = "");

// The kubeconfig kubectl would read: the first file of $KUBECONFIG that exists (kubectl merges the
// list; here that file holds the context), else $HOME/.kube/config when it exists; empty when
// neither.
std::string kubectlKubeconfigPath();

// loadKubeconfig on a kubeconfig's text; `path` names it in errors and anchors relative paths.
std::expected<KubeConfig, std::string> parseKubeconfig(std::string_view yaml,
                                                       const std::string& path,
                                                       const std::string& context = "");

}  // namespace xmetrics::kube

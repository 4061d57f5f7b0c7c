#include "kube/kube_config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/strings.hpp"

namespace xmetrics::kube {
namespace {

namespace fs = std::filesystem;
constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Names the entry and the field, never the value (a client key).
std::string notBase64(const std::string& path, std::string_view kind, const std::string& name,
                      std::string_view field) {
  return "--kubeconfig " + path + ": " + std::string(kind) + " \"" + name +
         "\": " + std::string(field) + " is not base64 (as `base64 -w0` writes it)";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

bool runningInCluster() {
  return std::getenv("KUBERNETES_SERVICE_HOST") != nullptr &&
         fs::exists(std::string(kServiceAccountDir) + "/token");
}

std::expected<KubeConfig, std::string> inClusterConfig() {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    return std::unexpected(
        "not running in a pod (KUBERNETES_SERVICE_HOST/PORT unset); give --kubeconfig");
  }
  std::string dir = kServiceAccountDir;
  if (!fs::exists(dir + "/token")) {
    return std::unexpected("no service-account token at " + dir +
                           "/token; set automountServiceAccountToken: true or give --kubeconfig");
  }
  KubeConfig c;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  c.server = "https://" + h + ":" + port;
  c.tls.caFile = dir + "/ca.crt";
  c.tokenFile = dir + "/token";
  c.namespace_ = trimmed(readAll(dir + "/namespace"));
  if (c.namespace_.empty()) c.namespace_ = "default";
  return c;
}

std::string kubectlKubeconfigPath() {
  if (const char* list = std::getenv("KUBECONFIG"); list && *list) {
    // kubectl merges the files of the list; here the first that exists holds the context. Empty
    // and missing entries are skipped, as kubectl skips them.
    std::string_view paths(list);
    std::error_code ec;
    while (!paths.empty()) {
      auto colon = paths.find(':');
      std::string path(paths.substr(0, colon));
      if (!path.empty() && fs::exists(path, ec)) return path;
      paths = colon == std::string_view::npos ? std::string_view() : paths.substr(colon + 1);
    }
    return "";
  }
  const char* home = std::getenv("HOME");
  if (!home || !*home) return "";
  std::string path = std::string(home) + "/.kube/config";
  std::error_code ec;
  return fs::exists(path, ec) ? path : "";
}

std::expected<KubeConfig, std::string> loadKubeconfig(const std::string& path,
                                                      const std::string& context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected("--kubeconfig " + path + ": cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  return parseKubeconfig(text.str(), path, context);
}

std::expected<KubeConfig, std::string> parseKubeconfig(std::string_view yaml,
                                                       const std::string& path,
                                                       const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return std::unexpected("--kubeconfig " + path + ": " + e.what());
  }
  fs::path base = fs::path(path).parent_path();
  auto resolve = [&](const std::string& p) {
    return p.empty() || fs::path(p).is_absolute() ? p : (base / p).string();
  };
  try {
    std::string want = context.empty() ? root["current-context"].as<std::string>("") : context;
    // Without a current-context, the first context. (A default YAML::Node counts as defined, so
    // whether one was found is kept apart.)
    YAML::Node ctx;
    bool found = false;
    for (const auto& c : root["contexts"]) {
      if (!found && (want.empty() || c["name"].as<std::string>("") == want)) {
        ctx = c["context"];
        found = true;
      }
    }
    if (!found) {
      return std::unexpected(
          "--kubeconfig " + path +
          (want.empty() ? std::string(": no contexts") : ": no context \"" + want + "\""));
    }
    std::string clusterName = ctx["cluster"].as<std::string>("");
    std::string userName = ctx["user"].as<std::string>("");
    KubeConfig c;
    c.namespace_ = ctx["namespace"].as<std::string>("default");
    bool foundCluster = false;
    for (const auto& cl : root["clusters"]) {
      if (cl["name"].as<std::string>("") != clusterName) continue;
      foundCluster = true;
      auto cluster = cl["cluster"];
      c.server = cluster["server"].as<std::string>("");
      while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
      if (cluster["certificate-authority-data"]) {
        auto pem = core::decodeBase64(cluster["certificate-authority-data"].as<std::string>());
        if (!pem)
          return std::unexpected(
              notBase64(path, "cluster", clusterName, "certificate-authority-data"));
        c.tls.caPem = std::move(*pem);
      } else if (cluster["certificate-authority"]) {
        c.tls.caFile = resolve(cluster["certificate-authority"].as<std::string>());
      }
      c.tls.insecureSkipVerify = cluster["insecure-skip-tls-verify"].as<bool>(false);
    }
    if (!foundCluster || c.server.empty()) {
      return std::unexpected("--kubeconfig " + path + ": cluster \"" + clusterName +
                             "\" has no server");
    }
    for (const auto& u : root["users"]) {
      if (u["name"].as<std::string>("") != userName) continue;
      auto user = u["user"];
      if (user["client-certificate-data"]) {
        auto cert = core::decodeBase64(user["client-certificate-data"].as<std::string>());
        auto key = core::decodeBase64(user["client-key-data"].as<std::string>(""));
        if (!cert)
          return std::unexpected(notBase64(path, "user", userName, "client-certificate-data"));
        if (!key) return std::unexpected(notBase64(path, "user", userName, "client-key-data"));
        c.tls.clientCertPem = std::move(*cert);
        c.tls.clientKeyPem = std::move(*key);
      } else if (user["client-certificate"]) {
        c.tls.clientCertFile = resolve(user["client-certificate"].as<std::string>());
        c.tls.clientKeyFile = resolve(user["client-key"].as<std::string>(""));
      }
      c.token = user["token"].as<std::string>("");
      c.tokenFile = resolve(user["tokenFile"].as<std::string>(""));
      // A credential plugin (EKS, GKE, AKS) is a program kubectl runs; xmetrics does not, and
      // sending no credential would only end in a 401 that says nothing of why.
      bool hasCredential = !c.token.empty() || !c.tokenFile.empty() ||
                           !c.tls.clientCertPem.empty() || !c.tls.clientCertFile.empty();
      if (!hasCredential && (user["exec"] || user["auth-provider"])) {
        return std::unexpected(
            "--kubeconfig " + path + ": user \"" + userName + "\" authenticates with " +
            (user["exec"] ? "an exec credential plugin" : "an auth-provider") +
            ", which xmetrics does not run; use a kubeconfig with a token, tokenFile or client "
            "certificate (e.g. a service account's token)");
      }
    }
    return c;
  } catch (const YAML::Exception& e) {
    return std::unexpected("--kubeconfig " + path + ": " + e.what());
  }
}

}  // namespace xmetrics::kube

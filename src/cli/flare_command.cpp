#include <boost/json.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <regex>

#include "cli/commands.hpp"
#include "cli/tar_gz.hpp"
#include "cli/xmetrics_client.hpp"
#include "core/time_format.hpp"
#include "kube/kube_client.hpp"
#include "kube/kube_config.hpp"

namespace xmetrics::cli {
namespace {

// Endpoint lists carry per-endpoint keys; proxy URLs carry user:password.
bool looksSecret(std::string_view name) {
  static const std::regex pattern("(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|ENDPOINTS|PROXY)",
                                  std::regex::icase);
  return std::regex_search(name.begin(), name.end(), pattern);
}

// A container argument like --datadog-api-key=…, and user:password@ in any URL.
std::string redactText(const std::string& text) {
  static const std::regex flag(
      "^(--?[A-Za-z0-9-]*(key|token|secret|password|credential|endpoints|proxy)[A-Za-z0-9-]*=).+$",
      std::regex::icase);
  static const std::regex userinfo("(://)[^/@\\s]+@");
  std::string out = std::regex_replace(text, flag, "$1<redacted>");
  return std::regex_replace(out, userinfo, "$1<redacted>@");
}

void redactInPlace(boost::json::value& v) {
  if (v.is_string()) {
    v = redactText(std::string(v.as_string()));
    return;
  }
  if (v.is_array()) {
    for (auto& item : v.as_array()) redactInPlace(item);
    return;
  }
  if (!v.is_object()) return;
  auto& o = v.as_object();
  // Bulky, and last-applied-configuration repeats every env value verbatim.
  if (auto* meta = o.if_contains("metadata"); meta && meta->is_object()) {
    meta->as_object().erase("managedFields");
    if (auto* ann = meta->as_object().if_contains("annotations"); ann && ann->is_object()) {
      ann->as_object().erase("kubectl.kubernetes.io/last-applied-configuration");
    }
  }
  // Container env: {name, value} pairs whose name says credential.
  if (auto* name = o.if_contains("name");
      name && name->is_string() && o.contains("value") && looksSecret(name->as_string())) {
    o["value"] = "<redacted>";
  }
  // A Secret's payload never travels, whatever it is called.
  if (auto* kind = o.if_contains("kind");
      kind && kind->is_string() && kind->as_string() == "Secret") {
    o.erase("data");
    o.erase("stringData");
  }
  for (auto& [key, child] : o) redactInPlace(child);
}

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string selfPath() {
  char buffer[4096];
  auto n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "xmetrics";
}

}  // namespace

// Exposed for tests through commands.hpp.
std::string redactForFlare(std::string_view json) {
  boost::system::error_code ec;
  auto v = boost::json::parse(json, ec);
  if (ec) return "<not JSON; left out>";
  redactInPlace(v);
  return boost::json::serialize(v);
}

int runFlare(const FlareOptions& options) {
  std::vector<std::pair<std::string, std::string>> files;
  std::string problems;
  auto note = [&](const std::string& what, const std::string& why) {
    problems += what + ": " + why + "\n";
    std::cerr << "flare: " << what << ": " << why << "\n";
  };

  // From xmetrics itself.
  if (!options.kubeconfig.empty() || !options.server.empty()) {
    auto endpoint = endpointFromFlags(options.kubeconfig, options.server);
    if (!endpoint) {
      std::cerr << "error: " << endpoint.error() << "\n";
      return 1;
    }
    for (const auto& [path, file] :
         std::vector<std::pair<std::string, std::string>>{{"/xmetrics/v1/status", "status.json"},
                                                          {"/xmetrics/v1/config", "config.json"},
                                                          {"/xmetrics/v1/logs", "logs.txt"},
                                                          {"/metrics", "metrics.txt"}}) {
      auto body = httpsGet(*endpoint, options.token, path);
      if (body) {
        files.emplace_back(file, std::move(*body));
      } else {
        note(file, body.error());
      }
    }
  } else {
    note("xmetrics", "no --kubeconfig/--server: status, config, logs and metrics not collected");
  }

  // From the cluster: the objects that decide whether an HPA gets a value, and doctor's verdict.
  if (!options.clusterKubeconfig.empty()) {
    auto config = kube::loadKubeconfig(options.clusterKubeconfig);
    if (!config) {
      note("cluster", config.error());
    } else {
      kube::KubeClient client(*config);
      for (const auto& [path, file] : std::vector<std::pair<std::string, std::string>>{
               {"/apis/apps/v1/namespaces/" + options.ns + "/deployments",
                "kubernetes/deployments.json"},
               {"/api/v1/namespaces/" + options.ns + "/pods", "kubernetes/pods.json"},
               {"/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io",
                "kubernetes/apiservice.json"},
               {"/api/v1/namespaces/" + options.ns + "/services", "kubernetes/services.json"},
               {"/apis/autoscaling/v2/horizontalpodautoscalers", "kubernetes/hpas.json"},
               {"/apis/datadoghq.com/v1alpha1/datadogmetrics", "kubernetes/datadogmetrics.json"},
               {"/apis/coordination.k8s.io/v1/namespaces/" + options.ns + "/leases",
                "kubernetes/leases.json"}}) {
        auto got = client.get(path);
        if (got) {
          files.emplace_back(file, redactForFlare(boost::json::serialize(*got)));
        } else {
          note(file, got.error().describe());
        }
      }
      std::string command = shellQuote(selfPath()) + " doctor -o json --kubeconfig " +
                            shellQuote(options.clusterKubeconfig) + " --namespace " +
                            shellQuote(options.ns);
      if (!options.kubeconfig.empty()) {
        command += " --xmetrics-kubeconfig " + shellQuote(options.kubeconfig);
      }
      std::string doctor;
      if (FILE* pipe = ::popen(("timeout 120 " + command + " 2>&1").c_str(), "r")) {
        char buffer[4096];
        std::size_t n;
        while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) doctor.append(buffer, n);
        int status = ::pclose(pipe);
        files.emplace_back(
            "doctor.txt", doctor + "\n(exit status " + std::to_string(WEXITSTATUS(status)) + ")\n");
      } else {
        note("doctor.txt", "could not run xmetrics doctor");
      }
    }
  } else {
    note("cluster", "no --cluster-kubeconfig: Kubernetes objects and doctor not collected");
  }

  files.emplace_back(
      "README.txt", "xmetrics flare, " + core::rfc3339(core::Clock::now()) +
                        "\nSecrets are redacted: settings holding keys show <redacted>; env values "
                        "named like credentials and Secret payloads are removed.\n\n"
                        "Not collected:\n" +
                        (problems.empty() ? std::string("(nothing)\n") : problems));
  std::string output = options.output;
  if (output.empty()) {
    char stamp[32];
    std::time_t t = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&t, &utc);
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
    output = std::string("xmetrics-flare-") + stamp + ".tar.gz";
  }
  if (auto written = writeTarGz(output, files); !written) {
    std::cerr << "error: " << written.error() << "\n";
    return 1;
  }
  std::cout << output << " (" << files.size() << " files)\n";
  return 0;
}

}  // namespace xmetrics::cli

// The flare archive: what xmetrics says of itself (status, config, logs, /metrics), the cluster's
// objects that decide whether an HPA gets a value, and doctor's verdict on them.

#include "flare/flare.hpp"

#include <boost/json.hpp>
#include <cstdlib>
#include <ctime>
#include <optional>

#include "client/xmetrics_client.hpp"
#include "core/time_format.hpp"
#include "doctor/doctor.hpp"
#include "flare/tar_gz.hpp"
#include "kube/kube_client.hpp"
#include "kube/kube_config.hpp"

namespace xmetrics::flare {

int writeFlare(const Options& options, std::ostream& out, std::ostream& err) {
  std::vector<std::pair<std::string, std::string>> files;
  std::string problems;
  auto note = [&](const std::string& what, const std::string& why) {
    problems += what + ": " + why + "\n";
    err << "flare: " << what << ": " << why << "\n";
  };

  // From xmetrics itself: through its own kubeconfig or --server, else where the cluster's
  // APIService leads (as `kubectl xmetrics flare` finds it), with the cluster's credentials.
  std::optional<client::Endpoint> endpoint;
  if (!options.kubeconfig.empty() || !options.server.empty()) {
    auto own = client::endpointFromFlags(options.kubeconfig, options.server);
    if (!own) {
      err << "error: " << own.error() << "\n";
      return 1;
    }
    endpoint = std::move(*own);
  } else if (!options.clusterKubeconfig.empty()) {
    auto located =
        doctor::locateXmetrics({.kubeconfig = options.clusterKubeconfig, .ns = options.ns});
    if (located) {
      endpoint = std::move(*located);
    } else {
      note("xmetrics", "not found through the cluster (" + located.error() +
                           "): status, config, logs and metrics not collected");
    }
  } else {
    note("xmetrics", "no --kubeconfig/--server: status, config, logs and metrics not collected");
  }
  if (endpoint) {
    for (const auto& [path, file] :
         std::vector<std::pair<std::string, std::string>>{{"/xmetrics/v1/status", "status.json"},
                                                          {"/xmetrics/v1/config", "config.json"},
                                                          {"/xmetrics/v1/logs", "logs.txt"},
                                                          {"/metrics", "metrics.txt"}}) {
      auto body = client::httpsGet(*endpoint, options.token, path);
      if (body) {
        files.emplace_back(file, std::move(*body));
      } else {
        note(file, body.error());
      }
    }
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
      // In process, as `xmetrics doctor -o json --kubeconfig <cluster> --namespace <ns>
      // [--xmetrics-kubeconfig <kubeconfig>]` would run: XMETRICS_TOKEN, as that command reads it.
      const char* token = std::getenv("XMETRICS_TOKEN");
      auto report = doctor::run({.kubeconfig = options.clusterKubeconfig,
                                 .ns = options.ns,
                                 .xmetricsKubeconfig = options.kubeconfig,
                                 .token = token ? token : ""},
                                doctor::OutputFormat::kJson);
      files.emplace_back("doctor.txt", report.error + report.out + "\n(exit status " +
                                           std::to_string(report.exitCode) + ")\n");
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
    err << "error: " << written.error() << "\n";
    return 1;
  }
  out << output << " (" << files.size() << " files)\n";
  return 0;
}

}  // namespace xmetrics::flare

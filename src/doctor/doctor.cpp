#include "doctor/doctor.hpp"

#include <boost/json.hpp>

#include "doctor/checks.hpp"
#include "doctor/evidence.hpp"
#include "kube/kube_client.hpp"
#include "kube/kube_config.hpp"

namespace xmetrics::doctor {
namespace {

template <typename Checks>
void append(std::vector<Check>& into, Checks&& more) {
  for (auto& c : more) into.push_back(std::move(c));
}

Outcome finish(const std::vector<Check>& checks, OutputFormat format) {
  return {.out = format == OutputFormat::kJson ? boost::json::serialize(renderJson(checks)) + "\n"
                                               : renderText(checks),
          .exitCode = exitCode(checks)};
}

}  // namespace

std::vector<Check> judge(const Evidence& e) {
  std::vector<Check> checks{checkApiService(e), checkService(e), checkCertificate(e),
                            checkDiscovery(e),  checkHpaRbac(e), checkXmetricsRbac(e),
                            checkXmetrics(e),   checkLeader(e)};
  append(checks, checkBackends(e));
  append(checks, checkHpas(e));
  append(checks, checkAutogen(e));
  append(checks, checkMigration(e));
  return checks;
}

std::expected<kube::KubeConfig, std::string> clusterConfig(const Options& options) {
  // KUBECONFIG may list several files, as for kubectl; the first one holds the context here.
  std::string kubeconfig = options.kubeconfig.substr(0, options.kubeconfig.find(':'));
  if (!kubeconfig.empty()) return kube::loadKubeconfig(kubeconfig, options.context);
  // As kubectl: $KUBECONFIG or ~/.kube/config before a pod's service account.
  if (auto path = kube::kubectlKubeconfigPath(); !path.empty()) {
    return kube::loadKubeconfig(path, options.context);
  }
  if (kube::runningInCluster()) return kube::inClusterConfig();
  return std::unexpected(std::string(
      "give --kubeconfig (the cluster's, as for kubectl), set KUBECONFIG, or run in a pod"));
}

std::expected<client::Endpoint, std::string> locateXmetrics(const Options& options) {
  auto cluster = clusterConfig(options);
  if (!cluster) return std::unexpected(cluster.error());
  return locateXmetrics(options, *cluster);
}

Outcome run(const Options& options, OutputFormat format) {
  auto cluster = clusterConfig(options);
  if (!cluster) return {.error = "error: " + cluster.error() + "\n", .exitCode = 1};
  // Reachability first: without kube-apiserver there is nothing to walk.
  {
    kube::KubeClient probe(*cluster);
    if (auto version = probe.get("/version"); !version && version.error().status == 0) {
      auto outcome = finish({{.name = "cluster",
                              .verdict = Verdict::kFail,
                              .summary = "cannot reach kube-apiserver at " + cluster->server +
                                         ": " + version.error().message,
                              .problem = "cluster-unreachable",
                              .fix = "check --kubeconfig and the network path"}},
                            format);
      outcome.exitCode = 1;
      return outcome;
    }
  }
  return finish(judge(gatherEvidence(options, *cluster)), format);
}

}  // namespace xmetrics::doctor

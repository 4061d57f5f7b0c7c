#include "cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <set>

#include "app/logging.hpp"
#include "app/versions.hpp"
#include "backends/registry.hpp"
#include "cli/commands.hpp"
#include "kube/kube_config.hpp"

extern char** environ;

namespace xmetrics::cli {

namespace {

// Installed as kubectl-xmetrics (a symlink to this binary), kubectl runs it for `kubectl xmetrics
// ...`: the commands are the same, and help names them as the user typed them.
bool calledAsKubectlPlugin(const char* argv0) {
  std::string_view name(argv0 ? argv0 : "");
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  return name == "kubectl-xmetrics";
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{
      "xmetrics: a Kubernetes external metrics adapter",
      calledAsKubectlPlugin(argc > 0 ? argv[0] : nullptr) ? "kubectl xmetrics" : "xmetrics"};
  app.require_subcommand(1);
  // --version needs no subcommand: CLI11 handles it before require_subcommand applies.
  app.set_version_flag("--version", [] {
    auto text = xmetrics::app::versionText(xmetrics::app::versions());
    text.pop_back();  // CLI11 adds the final newline
    return text;
  });

  auto* version = app.add_subcommand("version", "print the version, revision and library versions");
  std::string versionOutput = "table";
  version->add_option("-o,--output", versionOutput, "table or json")
      ->check(CLI::IsMember({"table", "json"}));

  auto* serve = app.add_subcommand("serve", "serve external.metrics.k8s.io over HTTPS");
  config::SettingSources sources;
  std::map<std::string, std::string> flagValues;
  const auto backendSettings = backends::registeredBackends().settings();
  const auto settings = config::serveSettings(backendSettings);
  for (const auto& s : settings) {
    std::string help =
        s.help + " (default " + (s.defaultText.empty() ? "none" : s.defaultText) + ")";
    for (const auto& var : s.env) help += "; env " + var;
    serve->add_option("--" + s.name, flagValues[s.name], help);
  }
  serve->add_option("--config", sources.configFile,
                    "YAML file of settings (same names as the flags)");

  auto* status = app.add_subcommand("status", "show every metric, its value, age and validity");
  StatusOptions statusOptions;
  status
      ->add_option("--kubeconfig", statusOptions.kubeconfig,
                   "kubeconfig written by `serve --write-kubeconfig`")
      ->envname("XMETRICS_KUBECONFIG");
  status->add_option("--server", statusOptions.server,
                     "https://host:port (overrides the kubeconfig)");
  status->add_option("--token", statusOptions.token, "bearer token from the --token-auth-file")
      ->envname("XMETRICS_TOKEN");
  status->add_option("-o,--output", statusOptions.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  status->add_option("--context", statusOptions.context,
                     "without --kubeconfig and --server: the context of the cluster's kubeconfig "
                     "($KUBECONFIG, ~/.kube/config) whose APIService leads to xmetrics");
  status->add_option("--namespace", statusOptions.ns,
                     "xmetrics' namespace when its APIService names no other (default xmetrics)");

  auto* flare = app.add_subcommand(
      "flare", "collect status, config, logs, metrics, doctor and cluster objects in a .tar.gz");
  FlareOptions flareOptions;
  flare
      ->add_option("--kubeconfig", flareOptions.kubeconfig,
                   "kubeconfig written by `serve --write-kubeconfig` (reaches xmetrics)")
      ->envname("XMETRICS_KUBECONFIG");
  flare->add_option("--server", flareOptions.server,
                    "https://host:port (overrides the kubeconfig)");
  flare->add_option("--token", flareOptions.token, "bearer token instead of the client certificate")
      ->envname("XMETRICS_TOKEN");
  flare->add_option("--cluster-kubeconfig", flareOptions.clusterKubeconfig,
                    "the cluster's kubeconfig: collects the Deployment, APIService, HPAs, "
                    "DatadogMetrics, Lease and doctor's report, and finds xmetrics through its "
                    "APIService when --kubeconfig and --server are not given (default "
                    "$KUBECONFIG, else ~/.kube/config)");
  flare->add_option("--namespace", flareOptions.ns, "xmetrics' namespace");
  flare->add_option("-o,--output", flareOptions.output, "archive path");

  auto* doctor = app.add_subcommand(
      "doctor", "check every link from an HPA to the backend: OK / WARN / FAIL, evidence, fix");
  DoctorOptions doctorOptions;
  doctor
      ->add_option("--kubeconfig", doctorOptions.kubeconfig,
                   "the cluster's kubeconfig (as for kubectl); in a pod the service account")
      ->envname("KUBECONFIG");
  doctor->add_option("--context", doctorOptions.context, "kubeconfig context (default: current)");
  doctor->add_option("--namespace", doctorOptions.ns,
                     "xmetrics' namespace: its Service, service account and Lease (default "
                     "xmetrics)");
  doctor->add_option("--service", doctorOptions.service,
                     "namespace/name of the Service the APIService must point at (default "
                     "<namespace>/xmetrics)");
  doctor->add_option("--service-port", doctorOptions.servicePort,
                     "the port the APIService must use (default: any port the Service exposes)");
  doctor->add_option("--server", doctorOptions.server,
                     "https://host:port where xmetrics answers (e.g. a kubectl port-forward); "
                     "default: where kube-apiserver's aggregator dials it");
  doctor->add_option("--xmetrics-kubeconfig", doctorOptions.xmetricsKubeconfig,
                     "credentials for xmetrics itself (the file `serve --write-kubeconfig` wrote); "
                     "default: the cluster kubeconfig's user");
  doctor->add_option("--token", doctorOptions.token, "bearer token for xmetrics itself")
      ->envname("XMETRICS_TOKEN");
  doctor->add_option("--service-account", doctorOptions.serviceAccount,
                     "namespace/name of the service account xmetrics runs as (default: read from "
                     "its pods or Deployment)");
  doctor->add_option("-o,--output", doctorOptions.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));

  auto* query = app.add_subcommand(
      "query",
      "read one metric from any external or custom metrics server (xmetrics, the Cluster Agent, "
      "KEDA, prometheus-adapter, or through kube-apiserver)");
  QueryOptions queryOptions;
  query->add_option("METRIC", queryOptions.metric, "the metric's name")->required();
  query->add_option("--kubeconfig", queryOptions.kubeconfig,
                    "kubeconfig as for kubectl (default $KUBECONFIG, else ~/.kube/config, unless "
                    "--server names the metrics server alone)");
  query->add_option("--context", queryOptions.context, "kubeconfig context (default: current)");
  query->add_option("--server", queryOptions.server,
                    "https://host:port of the metrics server (or kube-apiserver); with a "
                    "kubeconfig, overrides its server");
  query->add_option("--token", queryOptions.token, "bearer token")->envname("XMETRICS_TOKEN");
  query->add_option("--certificate-authority", queryOptions.certificateAuthority,
                    "PEM file of the CAs to trust (default: the kubeconfig's, else the system's)");
  query->add_flag("--insecure-skip-tls-verify", queryOptions.insecureSkipTlsVerify,
                  "do not verify the server's certificate");
  query->add_option("-n,--namespace", queryOptions.ns,
                    "the HPA's namespace (default: the context's, else default)");
  query->add_option("-l,--selector", queryOptions.selector,
                    "label selector: an external metric's labels, or which objects for "
                    "--custom RESOURCE/*");
  query->add_option("--metric-selector", queryOptions.metricSelector,
                    "custom metrics: the metric's labels");
  query->add_option("--custom", queryOptions.custom,
                    "ask custom.metrics.k8s.io about RESOURCE/NAME (pods/*, deployment/web, "
                    "namespace/prod) instead of external.metrics.k8s.io");
  query->add_option("--api-version", queryOptions.apiVersion,
                    "v1beta1 (external; custom) or v1beta2 (custom, the default there)");
  query->add_option("-o,--output", queryOptions.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}));
  query
      ->add_option("-w,--watch", queryOptions.watchSeconds,
                   "read again every N seconds until interrupted")
      ->check(CLI::Range(1, 86400));
  query
      ->add_option("--timeout", queryOptions.timeoutSeconds,
                   "seconds each step of a read may take (connect, handshake, send, answer)")
      ->check(CLI::Range(1, 600));

  CLI11_PARSE(app, argc, argv);
  if (version->parsed()) return runVersion(versionOutput);
  if (flare->parsed()) {
    // As kubectl: without --cluster-kubeconfig, $KUBECONFIG or ~/.kube/config when there is one.
    if (flareOptions.clusterKubeconfig.empty()) {
      flareOptions.clusterKubeconfig = kube::kubectlKubeconfigPath();
      // Said, so nobody attaches a cluster's objects without knowing which cluster.
      if (!flareOptions.clusterKubeconfig.empty()) {
        std::cerr << "flare: collecting from the cluster of " << flareOptions.clusterKubeconfig
                  << " (its current context), as kubectl would; --cluster-kubeconfig names "
                     "another\n";
      }
    }
    return runFlare(flareOptions);
  }

  if (serve->parsed()) {
    for (const auto& s : settings) {
      if (serve->count("--" + s.name) > 0) sources.flags[s.name] = flagValues[s.name];
    }
    // Every DD_* variable (those xmetrics does not read are reviewed and reported), and the
    // few others a setting names (POD_NAME).
    std::set<std::string, std::less<>> named;
    for (const auto& s : settings) named.insert(s.env.begin(), s.env.end());
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq == std::string_view::npos) continue;
      auto name = kv.substr(0, eq);
      if (name.starts_with("DD_") || named.contains(name)) {
        sources.env.emplace(name, kv.substr(eq + 1));
      }
    }
    sources.inPod = kube::runningInCluster();
    auto options = config::resolveServeOptions(sources, backendSettings);
    if (!options) {
      for (const auto& error : options.error()) std::cerr << "error: " << error << "\n";
      return 2;
    }
    app::setupLogging(options->logFormat, options->logLevel);
    return runServe(*options, sources);
  }
  if (doctor->parsed()) return runDoctor(doctorOptions);
  if (query->parsed()) return runQuery(queryOptions);
  return runStatus(statusOptions);
}

}  // namespace xmetrics::cli

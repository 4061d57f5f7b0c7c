// `xmetrics query`: asks any server of the external or custom metrics API for one metric and
// prints what it answered (a table, or the JSON as served), once or every --watch seconds.

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "cli/commands.hpp"
#include "cli/table.hpp"
#include "client/metrics_api.hpp"
#include "client/xmetrics_client.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"

namespace xmetrics::cli {
namespace {

// Where to ask: --server alone (with --token, --certificate-authority) is a metrics server
// itself; otherwise the kubeconfig as kubectl reads it (--kubeconfig, $KUBECONFIG,
// ~/.kube/config) and its --context, whose server --server may override.
std::expected<client::Endpoint, std::string> endpointOf(const QueryOptions& o,
                                                        std::string& contextNamespace) {
  client::Endpoint endpoint;
  std::string kubeconfig = o.kubeconfig;
  if (kubeconfig.empty() && o.server.empty()) kubeconfig = kube::kubectlKubeconfigPath();
  if (!kubeconfig.empty()) {
    auto config = kube::loadKubeconfig(kubeconfig, o.context);
    if (!config) return std::unexpected(config.error());
    contextNamespace = config->namespace_;
    auto loaded = client::endpointFromKubeConfig(*config);
    if (!loaded) return std::unexpected(loaded.error());
    endpoint = std::move(*loaded);
  } else if (o.server.empty()) {
    return std::unexpected(std::string(
        "no kubeconfig: give --kubeconfig, set KUBECONFIG, or name the metrics server with "
        "--server (and --token)"));
  }
  if (!o.server.empty()) endpoint.server = o.server;
  if (!o.token.empty()) endpoint.token = o.token;
  if (!o.certificateAuthority.empty()) {
    auto pem = client::readFile(o.certificateAuthority);
    if (!pem) return std::unexpected("--certificate-authority: " + pem.error());
    endpoint.caPem = std::move(*pem);
  }
  if (o.insecureSkipTlsVerify) endpoint.insecureSkipVerify = true;
  return endpoint;
}

using Row = std::vector<std::string>;

// VALUE carries the quantity as served and its number (a quantity has no unit of its own: the
// number is what the HPA compares with its target); AGE is from this machine's clock.
void printTable(const std::vector<client::MetricsRow>& items, bool custom) {
  std::vector<Row> rows;
  if (custom) {
    rows.push_back({"OBJECT", "METRIC", "SELECTOR", "VALUE", "TIMESTAMP", "AGE", "WINDOW"});
  } else {
    rows.push_back({"METRIC", "LABELS", "VALUE", "TIMESTAMP", "AGE"});
  }
  for (const auto& item : items) {
    std::string value =
        item.value + (item.number ? " (" + core::shortestDecimal(*item.number) + ")" : "");
    std::string age = item.ageSeconds ? std::to_string(*item.ageSeconds) + "s" : "-";
    std::string labels = item.labels.empty() ? "<none>" : item.labels;
    if (custom) {
      rows.push_back({item.object, item.metric, labels, value, item.timestamp, age,
                      item.windowSeconds ? std::to_string(*item.windowSeconds) + "s" : "-"});
    } else {
      rows.push_back({item.metric, labels, value, item.timestamp, age});
    }
  }
  if (rows.size() == 1) {
    std::cout << "(the server answered with no items)\n";
    return;
  }
  printAligned(std::cout, rows);
}

// One read: 0 when the server answered with a MetricValueList, 1 otherwise (said on stderr).
int readOnce(const client::Endpoint& endpoint, const std::string& target, bool json, bool custom,
             std::chrono::seconds timeout) {
  auto reply = client::xmetricsGet(endpoint, target, timeout);
  if (!reply) {
    std::cerr << "error: " << reply.error() << "\n";
    return 1;
  }
  if (reply->status != 200) {
    std::cerr << "error: " << endpoint.server << target << " answered "
              << client::describeFailure(reply->status, reply->body) << "\n";
    return 1;
  }
  boost::system::error_code ec;
  auto body = boost::json::parse(reply->body, ec);
  auto items = ec ? std::unexpected(std::string("the answer is not JSON"))
                  : client::parseMetricValueList(body, std::chrono::system_clock::now());
  if (!items) {
    std::cerr << "error: " << endpoint.server << target << ": " << items.error() << "\n";
    return 1;
  }
  if (json) {
    std::cout << reply->body << "\n";
  } else {
    printTable(*items, custom);
  }
  std::cout.flush();
  return 0;
}

}  // namespace

int runQuery(const QueryOptions& options) {
  std::string contextNamespace = "default";
  auto endpoint = endpointOf(options, contextNamespace);
  if (!endpoint) {
    std::cerr << "error: " << endpoint.error() << "\n";
    return 1;
  }
  client::MetricsQuestion question{
      .ns = options.ns.empty() ? contextNamespace : options.ns,
      .metric = options.metric,
      .labelSelector = options.selector,
      .metricSelector = options.metricSelector,
      .object = options.custom,
      .apiVersion = options.apiVersion,
  };
  auto target = client::metricsTarget(question);
  if (!target) {
    std::cerr << "error: " << target.error() << "\n";
    return 2;
  }
  bool json = options.output == "json";
  bool custom = !options.custom.empty();
  std::chrono::seconds timeout(std::max(1, options.timeoutSeconds));
  if (options.watchSeconds <= 0) return readOnce(*endpoint, *target, json, custom, timeout);
  // --watch: until interrupted; a failed read is reported and the next one is tried, as a person
  // watching a metric through a backend outage wants to see it come back.
  for (;;) {
    if (!json) std::cout << "# " << core::rfc3339(std::chrono::system_clock::now()) << "\n";
    readOnce(*endpoint, *target, json, custom, timeout);
    std::this_thread::sleep_for(std::chrono::seconds(options.watchSeconds));
  }
}

}  // namespace xmetrics::cli

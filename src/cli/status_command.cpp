// `xmetrics status`: reads /xmetrics/v1/status of a running server and prints it as a table (or
// the JSON as served).

#include <algorithm>
#include <boost/json.hpp>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/table.hpp"
#include "client/xmetrics_client.hpp"
#include "core/status_report.hpp"
#include "core/strings.hpp"
#include "doctor/doctor.hpp"

namespace xmetrics::cli {
namespace {

void printTable(const core::StatusReport& report) {
  // RESOLUTION says which catalog rule chose the query (inline, autogen, or a DatadogMetric).
  std::vector<std::vector<std::string>> rows{{"NAMESPACE", "METRIC", "SELECTOR", "RESOLUTION",
                                              "QUERY", "VALUE", "AGE", "VALID", "LAST FETCH",
                                              "USED BY"}};
  std::vector<std::string> errors;
  for (const auto& m : report.metrics) {
    std::string value = "-";
    if (m.sample) {
      value = m.sample->value + " (" + core::shortestDecimal(m.sample->valueNumber) +
              (m.sample->unit.empty() ? "" : " " + m.sample->unit) + ")";
    }
    std::string usedBy;
    for (const auto& r : m.references) usedBy += (usedBy.empty() ? "" : ",") + r;
    rows.push_back({m.ns, m.metricName, m.selector.empty() ? "<none>" : m.selector, m.resolution,
                    m.query.empty() ? "-" : m.query, value,
                    m.sample ? std::to_string(m.sample->ageSeconds) + "s" : "-",
                    m.valid ? "yes" : "NO", std::to_string(m.lastFetchAgeSeconds) + "s ago",
                    usedBy.empty() ? "-" : usedBy});
    if (!m.valid) errors.push_back(m.ns + "/" + m.metricName + ": " + m.error);
  }
  printAligned(std::cout, rows);
  if (rows.size() == 1) std::cout << "(no metrics requested yet)\n";
  for (const auto& e : errors) std::cout << "error: " << e << "\n";
  // Every running backend, the default first (older servers only report "backend").
  auto backends = report.allBackends();
  std::cout << "\n";
  for (std::size_t i = 0; i < backends.size(); ++i) {
    const auto& backend = backends[i];
    std::cout << "backend " << backend.name << (i == 0 && backends.size() > 1 ? " (default)" : "")
              << ": " << (backend.reachable ? "reachable" : "UNREACHABLE");
    if (!backend.lastError.empty()) std::cout << " (last error: " << backend.lastError << ")";
    std::cout << "\n";
    for (const auto& [k, v] : backend.details) std::cout << "  " << k << ": " << v << "\n";
  }
  const auto& poller = report.poller;
  std::cout << "poller: refresh every " << poller.refreshPeriodSeconds << "s, max-age "
            << poller.maxAgeSeconds << "s, " << poller.cycles << " cycles, last took "
            << poller.lastCycleDurationMicroseconds << "us, " << poller.backendCalls
            << " backend calls\n";
  if (const auto& d = report.dogstatsd) {
    std::cout << "dogstatsd " << d->address << ": " << d->packets << " packets, " << d->metrics
              << " metrics, " << d->malformed << " malformed lines\n";
  }
  if (const auto& e = report.embedded) {
    std::cout << "embedded store: " << e->series << " series, " << e->points << " points, ~"
              << e->approxBytes / 1024 << " KiB\n";
  }
}

}  // namespace

int runStatus(const StatusOptions& options) {
  // xmetrics' own kubeconfig or --server; else, as `kubectl xmetrics status`, the cluster's
  // current context and xmetrics where the aggregator dials it, with the cluster's credentials.
  std::expected<client::Endpoint, std::string> endpoint;
  if (!options.kubeconfig.empty() || !options.server.empty()) {
    endpoint = client::endpointFromFlags(options.kubeconfig, options.server);
  } else {
    endpoint = doctor::locateXmetrics({.context = options.context, .ns = options.ns});
    if (!endpoint) {
      endpoint = std::unexpected(
          "no --kubeconfig (as `xmetrics serve --write-kubeconfig` writes it) or --server, and "
          "not through a cluster: " +
          endpoint.error());
    }
  }
  if (!endpoint) {
    std::cerr << "error: " << endpoint.error() << "\n";
    return 1;
  }
  auto body = client::httpsGet(*endpoint, options.token, "/xmetrics/v1/status");
  if (!body) {
    std::cerr << "error: " << body.error() << "\n";
    return 1;
  }
  if (options.output == "json") {
    std::cout << *body << "\n";
    return 0;
  }
  boost::system::error_code ec;
  auto json = boost::json::parse(*body, ec);
  auto report = ec ? std::unexpected(std::string("not JSON")) : core::parseStatusReport(json);
  if (!report) {
    std::cerr << "error: the status endpoint returned something that is not JSON\n";
    return 1;
  }
  printTable(*report);
  return 0;
}

}  // namespace xmetrics::cli

// `xmetrics status`: reads /xmetrics/v1/status of a running server and prints it as a table (or
// the JSON as served).

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <iostream>

#include "cli/commands.hpp"
#include "client/xmetrics_client.hpp"
#include "core/status_report.hpp"

namespace xmetrics::cli {
namespace {

// Shortest decimal that round-trips, e.g. 42 or 0.0015 (Boost.JSON would print 4.2E1).
std::string number(double v) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc() ? std::string(buffer, end) : "-";
}

void printTable(const core::StatusReport& report) {
  // RESOLUTION says which catalog rule chose the query (inline, autogen, or a DatadogMetric).
  using Row = std::array<std::string, 10>;
  std::vector<Row> rows{{"NAMESPACE", "METRIC", "SELECTOR", "RESOLUTION", "QUERY", "VALUE", "AGE",
                         "VALID", "LAST FETCH", "USED BY"}};
  std::vector<std::string> errors;
  for (const auto& m : report.metrics) {
    std::string value = "-";
    if (m.sample) {
      value = m.sample->value + " (" + number(m.sample->valueNumber) +
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
  std::array<std::size_t, 10> width{};
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
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
  auto endpoint = client::endpointFromFlags(options.kubeconfig, options.server);
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

#include <yaml-cpp/yaml.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "cli/commands.hpp"
#include "client/xmetrics_client.hpp"
#include "core/json_fields.hpp"

namespace xmetrics::cli {
namespace {

using core::json::str;

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// Shortest decimal that round-trips, e.g. 42 or 0.0015 (Boost.JSON would print 4.2E1).
std::string number(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_number()) return "-";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, it->value().to_number<double>());
  return ec == std::errc() ? std::string(buffer, end) : "-";
}

std::string seconds(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? "-" : std::to_string(it->value().to_number<int64_t>()) + "s";
}

void printTable(const boost::json::object& report) {
  // RESOLUTION says which catalog rule chose the query (inline, autogen, or a DatadogMetric).
  using Row = std::array<std::string, 10>;
  std::vector<Row> rows{{"NAMESPACE", "METRIC", "SELECTOR", "RESOLUTION", "QUERY", "VALUE", "AGE",
                         "VALID", "LAST FETCH", "USED BY"}};
  std::vector<std::string> errors;
  for (const auto& m : report.at("metrics").as_array()) {
    const auto& o = m.as_object();
    std::string value = "-";
    if (o.contains("value")) {
      value = str(o, "value") + " (" + number(o, "valueNumber") +
              (o.contains("unit") ? " " + str(o, "unit") : "") + ")";
    }
    std::string usedBy;
    if (auto* refs = o.if_contains("references"); refs && refs->is_array()) {
      for (const auto& r : refs->as_array()) {
        if (r.is_string()) usedBy += (usedBy.empty() ? "" : ",") + std::string(r.as_string());
      }
    }
    bool valid = o.at("valid").as_bool();
    rows.push_back({str(o, "namespace"), str(o, "metricName"),
                    str(o, "selector").empty() ? "<none>" : str(o, "selector"),
                    str(o, "resolution"), str(o, "query").empty() ? "-" : str(o, "query"), value,
                    seconds(o, "ageSeconds"), valid ? "yes" : "NO",
                    seconds(o, "lastFetchAgeSeconds") + " ago", usedBy.empty() ? "-" : usedBy});
    if (!valid) {
      errors.push_back(str(o, "namespace") + "/" + str(o, "metricName") + ": " + str(o, "error"));
    }
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
  boost::json::array backends;
  if (auto* list = report.if_contains("backends"); list && list->is_array()) {
    backends = list->as_array();
  } else {
    backends.push_back(report.at("backend"));
  }
  std::cout << "\n";
  for (std::size_t i = 0; i < backends.size(); ++i) {
    const auto& backend = backends[i].as_object();
    std::cout << "backend " << str(backend, "name")
              << (i == 0 && backends.size() > 1 ? " (default)" : "") << ": "
              << (backend.at("reachable").as_bool() ? "reachable" : "UNREACHABLE");
    if (!str(backend, "lastError").empty())
      std::cout << " (last error: " << str(backend, "lastError") << ")";
    std::cout << "\n";
    if (auto d = backend.find("details"); d != backend.end() && d->value().is_object()) {
      for (const auto& [k, v] : d->value().as_object()) {
        std::cout << "  " << std::string(k) << ": "
                  << (v.is_string() ? std::string(v.as_string()) : "") << "\n";
      }
    }
  }
  const auto& poller = report.at("poller").as_object();
  std::cout << "poller: refresh every " << str(poller, "refreshPeriodSeconds") << "s, max-age "
            << str(poller, "maxAgeSeconds") << "s, " << str(poller, "cycles")
            << " cycles, last took " << str(poller, "lastCycleDurationMicroseconds") << "us, "
            << str(poller, "backendCalls") << " backend calls\n";
  if (report.contains("dogstatsd")) {
    const auto& d = report.at("dogstatsd").as_object();
    std::cout << "dogstatsd " << str(d, "address") << ": " << str(d, "packets") << " packets, "
              << str(d, "metrics") << " metrics, " << str(d, "malformed") << " malformed lines\n";
  }
  if (report.contains("embedded")) {
    const auto& e = report.at("embedded").as_object();
    std::cout << "embedded store: " << str(e, "series") << " series, " << str(e, "points")
              << " points, ~" << e.at("approxBytes").to_number<int64_t>() / 1024 << " KiB\n";
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
  auto report = boost::json::parse(*body, ec);
  if (ec || !report.is_object()) {
    std::cerr << "error: the status endpoint returned something that is not JSON\n";
    return 1;
  }
  printTable(report.as_object());
  return 0;
}

}  // namespace xmetrics::cli

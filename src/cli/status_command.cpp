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

namespace xmetrics::cli {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Endpoint {
  std::string server;
  std::string caPem, certPem, keyPem;
};

std::string decodeBase64(const std::string& in) {
  std::string out(beast::detail::base64::decoded_size(in.size()), '\0');
  auto [written, read] = beast::detail::base64::decode(out.data(), in.data(), in.size());
  out.resize(written);
  return out;
}

std::expected<Endpoint, std::string> loadKubeconfig(const std::string& path) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    auto current = root["current-context"].as<std::string>("");
    std::string clusterName, userName;
    for (const auto& c : root["contexts"]) {
      if (current.empty() || c["name"].as<std::string>() == current) {
        clusterName = c["context"]["cluster"].as<std::string>();
        userName = c["context"]["user"].as<std::string>("");
        break;
      }
    }
    Endpoint e;
    for (const auto& c : root["clusters"]) {
      if (c["name"].as<std::string>() != clusterName) continue;
      e.server = c["cluster"]["server"].as<std::string>();
      e.caPem = decodeBase64(c["cluster"]["certificate-authority-data"].as<std::string>(""));
    }
    for (const auto& u : root["users"]) {
      if (u["name"].as<std::string>() != userName) continue;
      e.certPem = decodeBase64(u["user"]["client-certificate-data"].as<std::string>(""));
      e.keyPem = decodeBase64(u["user"]["client-key-data"].as<std::string>(""));
    }
    if (e.server.empty())
      return std::unexpected(path + ": no server for context \"" + current + "\"");
    return e;
  } catch (const YAML::Exception& ex) {
    return std::unexpected(path + ": " + ex.what());
  }
}

std::expected<std::string, std::string> httpsGet(const Endpoint& endpoint, const std::string& token,
                                                 const std::string& target) {
  auto url = boost::urls::parse_uri(endpoint.server);
  if (!url || url->scheme() != "https") {
    return std::unexpected("server \"" + endpoint.server + "\" is not an https:// URL");
  }
  std::string host = url->host_address();
  std::string port = url->has_port() ? std::string(url->port()) : "443";
  try {
    net::io_context ioc;
    net::ssl::context ctx(net::ssl::context::tls_client);
    if (!endpoint.caPem.empty()) {
      ctx.add_certificate_authority(net::buffer(endpoint.caPem));
    } else {
      ctx.set_default_verify_paths();
    }
    ctx.set_verify_mode(net::ssl::verify_peer);
    if (!endpoint.certPem.empty() && token.empty()) {
      ctx.use_certificate_chain(net::buffer(endpoint.certPem));
      ctx.use_private_key(net::buffer(endpoint.keyPem), net::ssl::context::pem);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    std::string sniHost(url->host());
    SSL_set_tlsext_host_name(stream.native_handle(), sniHost.c_str());
    stream.set_verify_callback(net::ssl::host_name_verification(std::string(url->host_address())));
    net::ip::tcp::resolver resolver(ioc);
    // Asynchronous operations, so tcp_stream's deadline bounds each step: a server that accepts and
    // never answers cannot hang `status`. The io_context runs on a helper thread.
    auto work = net::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    struct Join {
      net::io_context& ioc;
      std::thread& t;
      ~Join() {
        ioc.stop();
        t.join();
      }
    } join{ioc, runner};
    auto& tcp = beast::get_lowest_layer(stream);
    constexpr auto kStepTimeout = std::chrono::seconds(10);
    auto endpoints = resolver.resolve(host, port);
    tcp.expires_after(kStepTimeout);
    tcp.async_connect(endpoints, net::use_future).get();
    tcp.expires_after(kStepTimeout);
    stream.async_handshake(net::ssl::stream_base::client, net::use_future).get();
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::accept, "application/json");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    tcp.expires_after(kStepTimeout);
    http::async_write(stream, req, net::use_future).get();
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    tcp.expires_after(kStepTimeout);
    http::async_read(stream, buffer, res, net::use_future).get();
    tcp.close();
    if (res.result_int() != 200) {
      std::string message = res.body();
      boost::system::error_code jec;
      auto parsed = boost::json::parse(res.body(), jec);
      if (!jec && parsed.is_object() && parsed.as_object().contains("message")) {
        message = parsed.as_object().at("message").as_string().c_str();
      }
      return std::unexpected(endpoint.server + " answered " + std::to_string(res.result_int()) +
                             ": " + message);
    }
    return res.body();
  } catch (const boost::system::system_error& e) {
    // code().message(): what() also carries Boost's source location, which helps nobody here.
    return std::unexpected("cannot reach xmetrics at " + endpoint.server + ": " +
                           e.code().message());
  } catch (const std::exception& e) {
    return std::unexpected("cannot reach xmetrics at " + endpoint.server + ": " + e.what());
  }
}

std::string str(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return "";
  if (it->value().is_string()) return std::string(it->value().as_string());
  return boost::json::serialize(it->value());
}

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
  Endpoint endpoint;
  if (!options.kubeconfig.empty()) {
    auto loaded = loadKubeconfig(options.kubeconfig);
    if (!loaded) {
      std::cerr << "error: " << loaded.error() << "\n";
      return 1;
    }
    endpoint = *loaded;
  }
  if (!options.server.empty()) endpoint.server = options.server;
  if (endpoint.server.empty()) {
    std::cerr << "error: give --kubeconfig (as written by `xmetrics serve --write-kubeconfig`) or "
                 "--server\n";
    return 1;
  }
  auto body = httpsGet(endpoint, options.token, "/xmetrics/v1/status");
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

#include "cli/xmetrics_client.hpp"

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
#include <thread>

namespace xmetrics::cli {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

std::string decodeBase64(const std::string& in) {
  std::string out(beast::detail::base64::decoded_size(in.size()), '\0');
  auto [written, read] = beast::detail::base64::decode(out.data(), in.data(), in.size());
  out.resize(written);
  return out;
}

}  // namespace

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

}  // namespace xmetrics::cli

#include "client/xmetrics_client.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "kube/kube_config.hpp"

namespace xmetrics::client {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string pemOf(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

struct Target {
  std::string host, port;
  std::string
      pathPrefix;   // a server URL's own path (a proxy's /k8s/clusters/c-1), without '/' at the end
  std::string sni;  // sent in the handshake
  std::string verify;  // the name (or IP address) the certificate must carry
};

std::expected<Target, std::string> targetOf(const std::string& server,
                                            const std::string& verifyName) {
  auto url = boost::urls::parse_uri(server);
  if (!url || url->scheme() != "https") {
    return std::unexpected("server \"" + server + "\" is not an https:// URL");
  }
  Target t;
  t.host = url->host_address();
  t.port = url->has_port() ? std::string(url->port()) : "443";
  t.sni = verifyName.empty() ? std::string(url->host()) : verifyName;
  t.verify = verifyName.empty() ? t.host : verifyName;
  t.pathPrefix = std::string(url->encoded_path());
  while (!t.pathPrefix.empty() && t.pathPrefix.back() == '/') t.pathPrefix.pop_back();
  return t;
}

// One TLS connection whose every step is asynchronous, so tcp_stream's deadline bounds it; the
// io_context runs on a helper thread that the destructor stops and joins.
class TlsConnection {
 public:
  TlsConnection(net::ssl::context& ctx, std::chrono::seconds stepTimeout)
      : stream_(ioc_, ctx), stepTimeout_(stepTimeout), runner_([this] { ioc_.run(); }) {}
  ~TlsConnection() {
    ioc_.stop();
    runner_.join();
  }

  void connect(const Target& target) {
    // An IP address is no valid SNI host name; OpenSSL would send it anyway.
    boost::system::error_code ec;
    net::ip::make_address(target.sni, ec);
    if (ec) SSL_set_tlsext_host_name(stream_.native_handle(), target.sni.c_str());
    net::ip::tcp::resolver resolver(ioc_);
    auto endpoints = resolver.resolve(target.host, target.port);
    auto& tcp = beast::get_lowest_layer(stream_);
    tcp.expires_after(stepTimeout_);
    tcp.async_connect(endpoints, net::use_future).get();
    tcp.expires_after(stepTimeout_);
    stream_.async_handshake(net::ssl::stream_base::client, net::use_future).get();
  }

  std::vector<std::string> peerChain() {
    std::vector<std::string> out;
    STACK_OF(X509)* chain = SSL_get_peer_cert_chain(stream_.native_handle());
    for (int i = 0; chain && i < sk_X509_num(chain); ++i)
      out.push_back(pemOf(sk_X509_value(chain, i)));
    return out;
  }

  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
  void expiresAfterStep() { beast::get_lowest_layer(stream_).expires_after(stepTimeout_); }

 private:
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  beast::ssl_stream<beast::tcp_stream> stream_;
  std::chrono::seconds stepTimeout_;
  std::thread runner_;
};

}  // namespace

std::expected<std::string, std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::expected<Endpoint, std::string> loadKubeconfig(const std::string& path) {
  auto config = kube::loadKubeconfig(path);
  if (!config) return std::unexpected(config.error());
  return endpointFromKubeConfig(*config);
}

std::expected<Endpoint, std::string> endpointFromFlags(const std::string& kubeconfig,
                                                       const std::string& server) {
  Endpoint endpoint;
  if (!kubeconfig.empty()) {
    auto loaded = loadKubeconfig(kubeconfig);
    if (!loaded) return std::unexpected(loaded.error());
    endpoint = std::move(*loaded);
  }
  if (!server.empty()) endpoint.server = server;
  if (endpoint.server.empty()) {
    return std::unexpected(
        "give --kubeconfig (as written by `xmetrics serve --write-kubeconfig`) or --server");
  }
  return endpoint;
}

std::expected<Endpoint, std::string> endpointFromKubeConfig(const kube::KubeConfig& loaded) {
  const kube::KubeConfig* config = &loaded;
  Endpoint e;
  e.server = config->server;
  e.insecureSkipVerify = config->tls.insecureSkipVerify;
  e.caPem = config->tls.caPem;
  e.certPem = config->tls.clientCertPem;
  e.keyPem = config->tls.clientKeyPem;
  for (auto [file, into] : {std::pair{&config->tls.caFile, &e.caPem},
                            std::pair{&config->tls.clientCertFile, &e.certPem},
                            std::pair{&config->tls.clientKeyFile, &e.keyPem}}) {
    if (file->empty()) continue;
    auto content = readFile(*file);
    if (!content) return std::unexpected(content.error());
    *into = *content;
  }
  e.token = config->token;
  if (!config->tokenFile.empty()) {
    auto content = readFile(config->tokenFile);
    if (!content) return std::unexpected(content.error());
    e.token = *content;
    while (!e.token.empty() && (e.token.back() == '\n' || e.token.back() == '\r'))
      e.token.pop_back();
  }
  return e;
}

std::expected<XmetricsReply, std::string> xmetricsGet(const Endpoint& endpoint,
                                                      const std::string& target,
                                                      std::chrono::seconds stepTimeout) {
  auto where = targetOf(endpoint.server, endpoint.verifyName);
  if (!where) return std::unexpected(where.error());
  try {
    net::ssl::context ctx(net::ssl::context::tls_client);
    if (endpoint.insecureSkipVerify) {
      ctx.set_verify_mode(net::ssl::verify_none);
    } else {
      if (!endpoint.caPem.empty()) {
        ctx.add_certificate_authority(net::buffer(endpoint.caPem));
      } else {
        ctx.set_default_verify_paths();
      }
      ctx.set_verify_mode(net::ssl::verify_peer);
    }
    if (!endpoint.certPem.empty() && endpoint.token.empty()) {
      ctx.use_certificate_chain(net::buffer(endpoint.certPem));
      ctx.use_private_key(net::buffer(endpoint.keyPem), net::ssl::context::pem);
    }
    TlsConnection connection(ctx, stepTimeout);
    auto& stream = connection.stream();
    if (!endpoint.insecureSkipVerify) {
      stream.set_verify_callback(net::ssl::host_name_verification(where->verify));
    }
    connection.connect(*where);
    http::request<http::empty_body> req{http::verb::get, where->pathPrefix + target, 11};
    req.set(http::field::host, where->host);
    req.set(http::field::accept, "application/json");
    if (!endpoint.token.empty()) req.set(http::field::authorization, "Bearer " + endpoint.token);
    connection.expiresAfterStep();
    http::async_write(stream, req, net::use_future).get();
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    connection.expiresAfterStep();
    http::async_read(stream, buffer, res, net::use_future).get();
    XmetricsReply reply{res.result_int(), std::move(res.body()), connection.peerChain()};
    beast::get_lowest_layer(stream).close();
    return reply;
  } catch (const boost::system::system_error& e) {
    // code().message(): what() also carries Boost's source location, which helps nobody here.
    return std::unexpected("cannot reach " + endpoint.server + ": " + e.code().message());
  } catch (const std::exception& e) {
    return std::unexpected("cannot reach " + endpoint.server + ": " + e.what());
  }
}

std::expected<std::string, std::string> httpsGet(const Endpoint& endpoint, const std::string& token,
                                                 const std::string& target) {
  Endpoint e = endpoint;
  if (!token.empty()) e.token = token;
  auto reply = xmetricsGet(e, target);
  if (!reply) return std::unexpected(reply.error());
  if (reply->status != 200) {
    return std::unexpected(endpoint.server + " answered " + std::to_string(reply->status) + ": " +
                           replyMessage(*reply));
  }
  return std::move(reply->body);
}

std::string replyMessage(const XmetricsReply& reply) {
  boost::system::error_code ec;
  auto parsed = boost::json::parse(reply.body, ec);
  if (!ec && parsed.is_object()) {
    if (auto* m = parsed.as_object().if_contains("message"); m && m->is_string()) {
      return std::string(m->as_string());
    }
  }
  std::string text = reply.body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::expected<std::vector<std::string>, std::string> fetchServingChain(
    const std::string& server, const std::string& serverName, std::chrono::seconds timeout) {
  auto where = targetOf(server, serverName);
  if (!where) return std::unexpected(where.error());
  try {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.set_verify_mode(net::ssl::verify_none);
    TlsConnection connection(ctx, timeout);
    connection.connect(*where);
    auto chain = connection.peerChain();
    beast::get_lowest_layer(connection.stream()).close();
    if (chain.empty()) return std::unexpected(server + " presented no certificate");
    return chain;
  } catch (const boost::system::system_error& e) {
    return std::unexpected("cannot reach " + server + ": " + e.code().message());
  } catch (const std::exception& e) {
    return std::unexpected("cannot reach " + server + ": " + e.what());
  }
}

}  // namespace xmetrics::client

#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "auth/identity.hpp"

namespace xmetrics::server {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

using auth::PeerCertificate;

// Where a handler sends its one response. Thread-safe: may be called from any thread; the first
// call wins and later ones are ignored, so a handler can race a backend answer against a deadline.
class ResponseSlot {
 public:
  virtual ~ResponseSlot() = default;
  virtual void respond(HttpResponse&& response) = 0;
  // The session's executor, for timers that bound a deferred answer.
  virtual boost::asio::any_io_executor executor() = 0;
};
using ResponseSlotPtr = std::shared_ptr<ResponseSlot>;

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Called on the session's strand (slot->executor()). Must not block: answer at once, or keep
  // `slot` and answer later from any thread.
  virtual void handle(const HttpRequest& request, const PeerCertificate& peer,
                      ResponseSlotPtr slot) = 0;
  // Called on the session's strand when the answer to `request` is handed to the connection, with
  // the time since the request was read; for request metrics. Runs once per request on the server
  // threads: must be cheap and must not block. A request that could not be parsed comes as an
  // empty request.
  virtual void responded(const HttpRequest& /*request*/, unsigned /*status*/,
                         std::chrono::steady_clock::duration /*elapsed*/) {}
};

struct TlsFiles {
  std::string certificateFile;  // PEM serving chain
  std::string privateKeyFile;   // PEM key
};

struct HttpsServerOptions {
  std::string bindAddress = "127.0.0.1";
  uint16_t port = 8443;  // 0 picks a free port; see HttpsServer::port()
  unsigned threads = 1;
  TlsFiles tls;
  std::chrono::seconds handshakeTimeout{10};
  // Keep-alive connections with no request for this long close.
  std::chrono::seconds idleTimeout{90};
  // Once a request's first byte is in, the whole request must be within this (Go's
  // ReadHeaderTimeout): a client trickling a byte a second holds a connection 10 s, not 90.
  std::chrono::seconds requestTimeout{10};
  std::chrono::seconds writeTimeout{30};
  std::size_t maxBodyBytes = 1 << 20;
  std::size_t maxConnections = 4096;  // beyond this, new connections wait in the kernel backlog
};

// TLS 1.2/1.3 HTTP/1.1 server on Boost.Beast. One io_context, `threads` threads running it.
class HttpsServer {
 public:
  HttpsServer(HttpsServerOptions options, RequestHandler& handler);
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // Loads the certificates, binds and starts the threads. The error names the file or address.
  std::expected<void, std::string> start();
  uint16_t port() const;
  // Re-reads the certificate files for new connections (rotation); open connections keep theirs.
  std::expected<void, std::string> reloadCertificates();
  // Stops accepting, lets in-flight requests finish (bounded), joins the threads.
  void stop();

  struct Impl;  // public so the session types in the .cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace xmetrics::server

#pragma once

// http/: outbound HTTP(S) on libcurl, for the Kubernetes client and the backends. May include
// core/ only.

#include <atomic>
#include <chrono>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xmetrics::http {

// Outbound HTTP(S) for the Kubernetes client and the backends, on libcurl (proxies, TLS, HTTP/2).
// HTTPS_PROXY / NO_PROXY from the environment apply as libcurl applies them.

struct TlsOptions {
  std::string caFile;  // PEM bundle to trust; empty: caPem, else the system store
  std::string caPem;
  std::string clientCertFile, clientKeyFile;  // client certificate authentication (files)
  std::string clientCertPem, clientKeyPem;    // ... or in memory (kubeconfig *-data)
  bool insecureSkipVerify = false;
  // Check the chain but not the host name: for peers whose certificate names a Service while they
  // are dialled by pod IP (xmetrics replicas sharing one serving certificate).
  bool verifyHostname = true;
};

struct CaseInsensitiveLess {
  bool operator()(std::string_view a, std::string_view b) const;
  using is_transparent = void;
};
using Headers = std::map<std::string, std::string, CaseInsensitiveLess>;

struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};  // whole exchange; 0 = none (watches)
  std::chrono::milliseconds connectTimeout{5'000};
  std::string proxy;    // overrides the environment's proxy when set
  std::string noProxy;  // comma-separated hosts reached directly (libcurl NOPROXY), when set
};

struct Response {
  long status = 0;
  Headers headers;
  std::string body;
};

// True when `error`, a text from HttpClient::send, says the call ran out of time (the backends
// count timeouts apart from other failures).
bool isTimeoutError(std::string_view error);

// Thread-safe. Keeps one connection pool (a libcurl share of connections, TLS sessions and DNS).
class HttpClient {
 public:
  // @param maxConnections connections kept open for reuse. Below the number of calls in flight at
  // once, every call over it closes an idle connection and opens a new one (with a TLS handshake).
  explicit HttpClient(TlsOptions tls = {}, std::size_t maxConnections = 16);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // The error text is the transport failure (DNS, connect, TLS, timeout) with the URL's host; it
  // never contains header values, so credentials cannot leak through it.
  std::expected<Response, std::string> send(const Request& request);

  // For long-running responses (watches): calls onData with each chunk of the body as it arrives;
  // returns the status when the server ends the response, when onData returns false, or when
  // `cancel` becomes true (checked at libcurl's progress tick, up to a second apart while no data
  // comes; cancel() below ends the stream at once).
  std::expected<long, std::string> stream(const Request& request,
                                          const std::function<bool(std::string_view)>& onData,
                                          const std::atomic<bool>* cancel = nullptr);

  // Shutdown: every call in flight fails at once (its sockets are shut down, which wakes libcurl
  // from its wait, where a progress callback would take up to a second), and every later call
  // fails without trying. For the backends' cancel(): SIGTERM must not wait for a hung API.
  void cancel();

 private:
  struct Impl;
  // Made at the first call, not here: constructing a client (the follower's, a backend's that is
  // configured but not used yet) must not load libcurl and its ~25 libraries (3 MB resident).
  Impl& impl();
  TlsOptions tls_;
  std::size_t maxConnections_;
  std::mutex implMutex_;
  std::unique_ptr<Impl> impl_;   // under implMutex_ until made, then never replaced
  bool cancelledEarly_ = false;  // cancel() before the first call; under implMutex_
};

}  // namespace xmetrics::http

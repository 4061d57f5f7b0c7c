#include "http/http_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <set>

#include "http/curl_api.hpp"

namespace xmetrics::http {
namespace {

struct EasyDeleter {
  void operator()(CURL* c) const { curl().easy_cleanup(c); }
};
using Easy = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl().slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

constexpr std::string_view kTimeoutText = "Timeout was reached";

// scheme://host[:port] of a URL: what an error may show (never the path's query or credentials).
std::string originOf(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto end = url.find_first_of("/?#", start);
  std::string origin = url.substr(0, end);
  if (auto at = origin.find('@', start); at != std::string::npos)
    origin.erase(start, at + 1 - start);
  return origin;
}

// URLs at least this long are handed to libcurl in two parts (see targetStart).
constexpr std::size_t kSplitUrlLength = 512;

bool anyEnvironmentSet(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value && *value) return true;
  }
  return false;
}

// Where the request target (path and query) of a long URL starts, when it may be given to libcurl
// apart from the URL; npos otherwise. libcurl copies a URL through its own printf, one character
// at a time, several times per call (parsing, normalising, writing the request line): for a
// Datadog batch of 35 queries (3,000-7,000 characters) that was a quarter of the process's CPU per
// refresh. With CURLOPT_REQUEST_TARGET it parses only scheme://host:port/ and copies the target
// as it is, so the target must be what libcurl would have sent: visible ASCII only (libcurl
// refuses controls and spaces; a CR or LF would split the request), no fragment (libcurl drops
// it), no dot segment in the path (libcurl removes them). And an http:// URL through a proxy needs
// the absolute form in its request line: whenever a proxy may apply, the URL goes whole.
std::size_t targetStart(const Request& r) {
  const std::string& url = r.url;
  if (url.size() < kSplitUrlLength || !r.proxy.empty()) return std::string::npos;
  bool https = url.starts_with("https://");
  if (!https && !url.starts_with("http://")) return std::string::npos;
  if (!https && anyEnvironmentSet({"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"})) {
    return std::string::npos;
  }
  std::size_t start = url.find_first_of("/?#", https ? 8 : 7);
  if (start == std::string::npos || url[start] != '/') return std::string::npos;
  std::size_t queryStart = url.find('?', start);
  std::string_view path = std::string_view(url).substr(start, queryStart - start);
  if (path.find("/.") != std::string_view::npos) return std::string::npos;
  for (std::size_t i = start; i < url.size(); ++i) {
    auto c = static_cast<unsigned char>(url[i]);
    if (c <= 0x20 || c >= 0x7f || c == '#') return std::string::npos;
  }
  return start;
}

void setBlob(CURL* c, CURLoption option, const std::string& data) {
  curl_blob blob{const_cast<char*>(data.data()), data.size(), CURL_BLOB_COPY};
  curl().easy_setopt(c, option, &blob);
}

size_t onHeader(char* buffer, size_t size, size_t n, void* user) {
  auto* headers = static_cast<Headers*>(user);
  std::string_view line(buffer, size * n);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (after 100-continue or a redirect) starts over
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    (*headers)[std::string(line.substr(0, colon))] = std::string(value);
  }
  return size * n;
}

size_t onBody(char* buffer, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(buffer, size * n);
  return size * n;
}

}  // namespace

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  // ASCII folding, as std::tolower does in the "C" locale xmetrics runs in, without its call per
  // character: every response header goes through here several times.
  auto fold = [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 'A' && u <= 'Z' ? static_cast<unsigned char>(u + ('a' - 'A')) : u;
  };
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [&](char x, char y) { return fold(x) < fold(y); });
}

struct HttpClient::Impl {
  TlsOptions tls;
  CURLSH* share = nullptr;
  std::mutex shareLocks[CURL_LOCK_DATA_LAST];
  long maxConnections;
  std::mutex idleMutex;
  std::vector<Easy> idle;
  // Every socket this client's connections hold, so cancel() can shut them down.
  std::mutex socketsMutex;
  std::set<curl_socket_t> sockets;
  std::atomic<bool> cancelled{false};

  static curl_socket_t openSocket(void* user, curlsocktype, struct curl_sockaddr* address) {
    auto* impl = static_cast<Impl*>(user);
    curl_socket_t fd =
        ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd == CURL_SOCKET_BAD) return fd;
    std::lock_guard lock(impl->socketsMutex);
    if (impl->cancelled.load()) {
      ::close(fd);
      return CURL_SOCKET_BAD;
    }
    impl->sockets.insert(fd);
    return fd;
  }
  static int closeSocket(void* user, curl_socket_t fd) {
    auto* impl = static_cast<Impl*>(user);
    {
      std::lock_guard lock(impl->socketsMutex);
      impl->sockets.erase(fd);
    }
    return ::close(fd);
  }

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->shareLocks[data].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->shareLocks[data].unlock();
  }

  Impl(TlsOptions t, std::size_t connections)
      : tls(std::move(t)),
        maxConnections(static_cast<long>(std::max<std::size_t>(1, connections))) {
    share = curl().share_init();
    curl().share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl().share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl().share_setopt(share, CURLSHOPT_USERDATA, this);
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  }
  ~Impl() {
    idle.clear();  // the handles use the share: they go first
    curl().share_cleanup(share);
  }

  // A fresh easy handle costs more than the transfer it makes on a kept-alive connection (libcurl
  // builds a private multi handle, with a wakeup socket pair, for each one), so finished handles
  // are kept for the next call. Reset keeps the share and drops every pointer into the finished
  // call (error buffer, header list, callbacks' data).
  Easy acquire() {
    {
      std::lock_guard lock(idleMutex);
      if (!idle.empty()) {
        Easy c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    Easy c(curl().easy_init());
    curl().easy_setopt(c.get(), CURLOPT_SHARE, share);
    return c;
  }
  void release(Easy c) {
    curl().easy_reset(c.get());
    std::lock_guard lock(idleMutex);
    if (idle.size() < static_cast<std::size_t>(maxConnections)) idle.push_back(std::move(c));
  }

  // Everything but the body handling. The header list must outlive the transfer.
  Easy prepare(const Request& r, Headers* responseHeaders, Slist& headerList) {
    Easy c = acquire();
    CURL* h = c.get();
    if (std::size_t start = targetStart(r); start != std::string::npos) {
      curl().easy_setopt(h, CURLOPT_URL, (r.url.substr(0, start) + "/").c_str());
      curl().easy_setopt(h, CURLOPT_REQUEST_TARGET, r.url.c_str() + start);
    } else {
      curl().easy_setopt(h, CURLOPT_URL, r.url.c_str());
    }
    curl().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl().easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl().easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connectTimeout.count()));
    curl().easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
    curl().easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // gzip when the server offers it
    curl().easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    // The share's pool counts connections in use too; libcurl's default of 5 would close one after
    // each call whenever more than 5 run in parallel.
    curl().easy_setopt(h, CURLOPT_MAXCONNECTS, maxConnections);
    if (r.method == "GET") {
      curl().easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
      curl().easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      curl().easy_setopt(h, CURLOPT_POSTFIELDS, r.body.c_str());
      curl().easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    }
    for (const auto& [name, value] : r.headers) {
      headerList.reset(curl().slist_append(headerList.release(), (name + ": " + value).c_str()));
    }
    if (r.method != "GET" && !r.headers.contains("Expect")) {
      headerList.reset(curl().slist_append(headerList.release(), "Expect:"));
    }
    curl().easy_setopt(h, CURLOPT_HTTPHEADER, headerList.get());
    if (!r.proxy.empty()) curl().easy_setopt(h, CURLOPT_PROXY, r.proxy.c_str());
    if (!r.noProxy.empty()) curl().easy_setopt(h, CURLOPT_NOPROXY, r.noProxy.c_str());
    if (!tls.caFile.empty()) {
      curl().easy_setopt(h, CURLOPT_CAINFO, tls.caFile.c_str());
      // libcurl keeps a parsed CA file for 24 h by default; a CA file that rotates (the shared
      // serving-cert Secret's bundle) must be read again within a minute of changing.
      curl().easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 60L);
    } else if (!tls.caPem.empty()) {
      setBlob(h, CURLOPT_CAINFO_BLOB, tls.caPem);
    }
    if (!tls.clientCertFile.empty()) {
      curl().easy_setopt(h, CURLOPT_SSLCERT, tls.clientCertFile.c_str());
      curl().easy_setopt(h, CURLOPT_SSLKEY, tls.clientKeyFile.c_str());
    } else if (!tls.clientCertPem.empty()) {
      setBlob(h, CURLOPT_SSLCERT_BLOB, tls.clientCertPem);
      setBlob(h, CURLOPT_SSLKEY_BLOB, tls.clientKeyPem);
      curl().easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
      curl().easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (tls.insecureSkipVerify) {
      curl().easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl().easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!tls.verifyHostname) {
      curl().easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl().easy_setopt(h, CURLOPT_HEADERFUNCTION, &onHeader);
    curl().easy_setopt(h, CURLOPT_HEADERDATA, responseHeaders);
    curl().easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &Impl::openSocket);
    curl().easy_setopt(h, CURLOPT_OPENSOCKETDATA, this);
    curl().easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, &Impl::closeSocket);
    curl().easy_setopt(h, CURLOPT_CLOSESOCKETDATA, this);
    return c;
  }

  static std::string failure(const Request& r, CURLcode code, const char* detail) {
    // A timeout is spelled by us (as libcurl does) so that isTimeoutError() never depends on the
    // wording of the libcurl that happens to be loaded.
    std::string text =
        r.method + " " + originOf(r.url) + " failed: " +
        (code == CURLE_OPERATION_TIMEDOUT ? std::string(kTimeoutText) : curl().easy_strerror(code));
    if (detail && *detail) text += " (" + std::string(detail) + ")";
    return text;
  }
};

bool isTimeoutError(std::string_view error) {
  return error.find(kTimeoutText) != std::string_view::npos;
}

HttpClient::HttpClient(TlsOptions tls, std::size_t maxConnections)
    : tls_(std::move(tls)), maxConnections_(maxConnections) {}
HttpClient::~HttpClient() = default;

HttpClient::Impl& HttpClient::impl() {
  std::lock_guard lock(implMutex_);
  if (!impl_) {
    impl_ = std::make_unique<Impl>(tls_, maxConnections_);
    if (cancelledEarly_) impl_->cancelled.store(true);
  }
  return *impl_;
}

void HttpClient::cancel() {
  Impl* made = nullptr;
  {
    std::lock_guard lock(implMutex_);
    cancelledEarly_ = true;
    made = impl_.get();
  }
  if (!made) return;  // nothing was ever sent: later calls fail from the flag
  std::lock_guard lock(made->socketsMutex);
  made->cancelled.store(true);
  for (curl_socket_t fd : made->sockets) ::shutdown(fd, SHUT_RDWR);
}

std::expected<Response, std::string> HttpClient::send(const Request& request) {
  Impl& self = impl();
  if (self.cancelled.load()) {
    return std::unexpected(request.method + " " + originOf(request.url) +
                           " failed: cancelled (xmetrics is shutting down)");
  }
  Response response;
  Slist headerList;
  Easy c = self.prepare(request, &response.headers, headerList);
  char detail[CURL_ERROR_SIZE] = {};
  curl().easy_setopt(c.get(), CURLOPT_ERRORBUFFER, detail);
  curl().easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &onBody);
  curl().easy_setopt(c.get(), CURLOPT_WRITEDATA, &response.body);
  CURLcode code = curl().easy_perform(c.get());
  if (code == CURLE_OK) curl().easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &response.status);
  self.release(std::move(c));
  if (code != CURLE_OK) return std::unexpected(Impl::failure(request, code, detail));
  return response;
}

std::expected<long, std::string> HttpClient::stream(
    const Request& request, const std::function<bool(std::string_view)>& onData,
    const std::atomic<bool>* cancel) {
  struct State {
    const std::function<bool(std::string_view)>* onData;
    const std::atomic<bool>* cancel;
    bool stoppedByCaller = false;
  } state{&onData, cancel};
  Impl& self = impl();
  Headers headers;
  Slist headerList;
  Easy c = self.prepare(request, &headers, headerList);
  char detail[CURL_ERROR_SIZE] = {};
  curl().easy_setopt(c.get(), CURLOPT_ERRORBUFFER, detail);
  curl().easy_setopt(
      c.get(), CURLOPT_WRITEFUNCTION,
      +[](char* buffer, size_t size, size_t n, void* user) -> size_t {
        auto* s = static_cast<State*>(user);
        if (!(*s->onData)(std::string_view(buffer, size * n))) {
          s->stoppedByCaller = true;
          return 0;  // aborts the transfer
        }
        return size * n;
      });
  curl().easy_setopt(c.get(), CURLOPT_WRITEDATA, &state);
  // The progress callback runs about every second even with no data, so cancellation is prompt.
  curl().easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
  curl().easy_setopt(
      c.get(), CURLOPT_XFERINFOFUNCTION,
      +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
        auto* s = static_cast<State*>(user);
        if (s->cancel && s->cancel->load()) {
          s->stoppedByCaller = true;
          return 1;
        }
        return 0;
      });
  curl().easy_setopt(c.get(), CURLOPT_XFERINFODATA, &state);
  CURLcode code = curl().easy_perform(c.get());
  long status = 0;
  curl().easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  self.release(std::move(c));
  if (code != CURLE_OK && !state.stoppedByCaller) {
    return std::unexpected(Impl::failure(request, code, detail));
  }
  return status;
}

}  // namespace xmetrics::http

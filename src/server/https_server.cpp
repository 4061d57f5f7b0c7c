#include "server/https_server.hpp"

#include <malloc.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <list>
#include <mutex>

#include "core/thread_name.hpp"
#include "server/tls_stream.hpp"

namespace xmetrics::server {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string x509NameEntry(X509_NAME* name, int nid, std::vector<std::string>* all = nullptr) {
  std::string first;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) continue;
    std::string value(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    if (first.empty()) first = value;
    if (all) all->push_back(std::move(value));
  }
  return first;
}

// Records what the client presented; trust is decided per request by the Authenticator, against
// whichever CA pool applies (front-proxy, client CA), since those rotate independently.
PeerCertificate inspectPeer(SSL* ssl) {
  PeerCertificate peer;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return peer;
  peer.presented = true;
  peer.leaf = std::shared_ptr<X509>(cert, X509_free);
  peer.verdicts = std::make_shared<auth::CertificateVerdicts>();
  if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(ssl)) {
    peer.chain = std::shared_ptr<STACK_OF(X509)>(
        X509_chain_up_ref(sent), [](STACK_OF(X509) * c) { sk_X509_pop_free(c, X509_free); });
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  peer.commonName = x509NameEntry(subject, NID_commonName);
  x509NameEntry(subject, NID_organizationName, &peer.organizations);
  return peer;
}

std::expected<std::shared_ptr<ssl::context>, std::string> makeTlsContext(const TlsFiles& files) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // OpenSSL's record buffers (about 34 KB per connection) are freed while a connection is idle
  // and taken again for its next request: idle keep-alive connections are most connections.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.certificateFile, ec);
  if (ec)
    return std::unexpected("cannot load serving certificate " + files.certificateFile + ": " +
                           ec.message());
  ctx->use_private_key_file(files.privateKeyFile, ssl::context::pem, ec);
  if (ec)
    return std::unexpected("cannot load serving key " + files.privateKeyFile + ": " + ec.message());
  // Request a certificate but never fail the handshake over it: the Authenticator judges it per
  // request, and a caller without one may still use a bearer token. No list of acceptable CAs is
  // sent: Go clients (the aggregator, kubectl) withhold a certificate whose issuer is not listed,
  // and the trusted pools (front-proxy CA, client CA) change at run time.
  SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER,
                     [](int, X509_STORE_CTX*) -> int { return 1; });
  // Session resumption across reconnects of the same client (kubectl, the aggregator).
  SSL_CTX_set_session_id_context(ctx->native_handle(),
                                 reinterpret_cast<const unsigned char*>("xmetrics"), 8);
  return ctx;
}

}  // namespace

namespace {
class Session;
}

struct HttpsServer::Impl {
  HttpsServerOptions options;
  RequestHandler& handler;
  // The concurrency hint lets Asio drop its internal locking when one thread runs everything.
  // Before the io_context: its destructor destroys queued handlers, and the sessions they hold
  // unregister themselves here.
  std::mutex registryMutex;
  std::list<std::weak_ptr<Session>> registry;
  std::atomic<int> sessions{0};
  // Connections closed since the heap was last trimmed: glibc keeps freed memory in its arenas,
  // so 2,000 closed connections would leave their memory resident for good.
  std::atomic<uint64_t> closed{0};
  net::io_context ioc{static_cast<int>(std::max(1u, options.threads))};
  tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer acceptRetry{acceptor.get_executor()};
  uint64_t acceptFailures = 0;
  std::chrono::steady_clock::time_point lastAcceptLog;
  std::vector<std::thread> threads;
  std::mutex tlsMutex;
  std::shared_ptr<ssl::context> tls;  // swapped on reload; sessions keep the one they started with
  std::atomic<bool> stopping{false};
  // On the acceptor's strand, as stop()'s cancel is: one timer is never touched by two threads.
  net::steady_timer trimTimer{acceptor.get_executor()};
  void trimEvery(std::chrono::seconds period) {
    trimTimer.expires_after(period);
    trimTimer.async_wait([this, period](beast::error_code ec) {
      if (ec || stopping) return;
      if (closed.exchange(0, std::memory_order_relaxed) >= kTrimAfterClosed) ::malloc_trim(0);
      trimEvery(period);
    });
  }
  static constexpr uint64_t kTrimAfterClosed = 64;
  uint16_t boundPort = 0;

  // `registry` (above): every open connection, oldest first. At the cap, a new client takes the
  // place of the one that has done least for longest (a request trickled in, then a handshake,
  // then the oldest idle keep-alive), so a full table never starves new clients.
  // Closes the connection that yields its place; false when every one is busy answering.
  bool shedOne();
  // At stop: closes every connection not in the middle of an answer.
  void shedIdle();

  Impl(HttpsServerOptions o, RequestHandler& h) : options(std::move(o)), handler(h) {}

  std::shared_ptr<ssl::context> currentTls() {
    std::lock_guard lock(tlsMutex);
    return tls;
  }

  void accept();
  void retryAcceptAfter(std::chrono::milliseconds delay);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  // What a connection is doing, for the choice of which one makes room at the cap.
  enum class State : int {
    kHandshake = 0,
    kIdle = 1,       // keep-alive, no request begun
    kReading = 2,    // a request's first byte is in, not the whole request
    kAnswering = 3,  // a request is handled or its answer written: never cut
  };

  Session(tcp::socket&& socket, std::shared_ptr<ssl::context> tls, HttpsServer::Impl& server)
      : tls_(std::move(tls)),
        stream_(std::move(socket), tls_->native_handle()),
        deadline_(stream_.get_executor()),
        server_(server) {
    ++server_.sessions;
  }
  ~Session() {
    if (registered_) {
      std::lock_guard lock(server_.registryMutex);
      server_.registry.erase(slot_);
    }
    --server_.sessions;
    server_.closed.fetch_add(1, std::memory_order_relaxed);
  }

  void run() {
    {
      std::lock_guard lock(server_.registryMutex);
      slot_ = server_.registry.insert(server_.registry.end(), weak_from_this());
      registered_ = true;
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->doHandshake(); });
  }

  void write(HttpResponse&& response) {
    response_ = std::move(response);
    server_.handler.responded(request_, response_.result_int(),
                              std::chrono::steady_clock::now() - requestRead_);
    response_.keep_alive(keepAlive_ && !server_.stopping.load(std::memory_order_relaxed));
    response_.prepare_payload();
    // HEAD: the headers of the GET answer, Content-Length included, and no body.
    if (isHead_) response_.body().clear();
    setDeadline(server_.options.writeTimeout);
    http::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onWrite(ec); });
  }

  net::any_io_executor executor() { return stream_.get_executor(); }

  State state() const { return state_.load(std::memory_order_relaxed); }
  std::chrono::steady_clock::time_point stateSince() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(stateSince_.load(std::memory_order_relaxed)));
  }
  // Claims this connection for closing; false when another caller already did.
  bool claimForShedding() { return !shed_.exchange(true); }
  bool shedding() const { return shed_.load(std::memory_order_relaxed); }
  // On its strand, for a shed: closes the socket unless a request got in meanwhile (then it is
  // answered, and stays a candidate for later).
  void shed() {
    if (state() == State::kAnswering) {
      shed_.store(false);
      return;
    }
    close();
  }
  // On its strand: closes the socket, so whatever it waits for ends with an error and it goes.
  void close() {
    boost::system::error_code ignored;
    ++deadlineGeneration_;
    deadline_.cancel();
    stream_.socket().close(ignored);
  }

 private:
  void setState(State state) {
    state_.store(state, std::memory_order_relaxed);
    stateSince_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                      std::memory_order_relaxed);
  }

  // Each phase has its own bound (handshake, idle, request, write); passing it closes the
  // connection. The timer holds no reference: a connection the peer closed goes at once.
  // A handler already queued when the deadline moved would still see success: the generation
  // tells it that its deadline is no longer the connection's.
  void setDeadline(std::chrono::steady_clock::duration d) {
    uint64_t generation = ++deadlineGeneration_;
    deadline_.expires_after(d);
    deadline_.async_wait([weak = weak_from_this(), generation](beast::error_code ec) {
      if (ec) return;  // moved or cancelled
      auto self = weak.lock();
      if (self && self->deadlineGeneration_ == generation) self->close();
    });
  }
  void clearDeadline() {
    ++deadlineGeneration_;
    deadline_.cancel();
  }

  void doHandshake() {
    setState(State::kHandshake);
    setDeadline(server_.options.handshakeTimeout);
    stream_.async_handshake(
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onHandshake(ec); });
  }

  void onHandshake(beast::error_code ec) {
    if (ec) {
      spdlog::debug("component=server event=handshake_failed error=\"{}\"", ec.message());
      return;
    }
    peer_ = inspectPeer(stream_.native_handle());
    doRead();
  }

  // Idle until a request's first byte (idleTimeout), then the request itself (requestTimeout).
  void doRead() {
    parser_.emplace();
    parser_->body_limit(server_.options.maxBodyBytes);
    if (buffer_.size() > 0) return readRequest();  // pipelined: already begun
    // Idle from here, holding no buffer: what the last exchange held goes back (the next one
    // allocates anew once bytes arrive).
    buffer_.shrink_to_fit();
    stream_.releaseBuffers();
    request_ = {};
    response_ = {};
    setState(State::kIdle);
    setDeadline(server_.options.idleTimeout);
    stream_.async_wait_readable([self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->onRead(ec);
      self->readRequest();
    });
  }

  void readRequest() {
    setState(State::kReading);
    setDeadline(server_.options.requestTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec);

  void onWrite(beast::error_code ec) {
    if (ec) return;
    if (!response_.keep_alive()) return doShutdown();
    doRead();
  }

  void doShutdown() {
    setDeadline(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code, std::size_t) {});
  }

  std::shared_ptr<ssl::context> tls_;
  TlsStream stream_;
  net::steady_timer deadline_;
  uint64_t deadlineGeneration_ = 0;  // strand only
  HttpsServer::Impl& server_;
  std::list<std::weak_ptr<Session>>::iterator slot_;  // in server_.registry
  bool registered_ = false;
  std::atomic<State> state_{State::kHandshake};
  std::atomic<int64_t> stateSince_{std::chrono::steady_clock::now().time_since_epoch().count()};
  std::atomic<bool> shed_{false};
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;
  std::chrono::steady_clock::time_point requestRead_;
  HttpResponse response_;
  PeerCertificate peer_;
  bool keepAlive_ = true;
  bool isHead_ = false;
};

// One per request: the first respond() wins; it hops onto the session's strand to write.
class SessionSlot final : public ResponseSlot {
 public:
  explicit SessionSlot(std::shared_ptr<Session> session)
      : executor_(session->executor()), session_(std::move(session)) {}

  // ResponseSlot
  void respond(HttpResponse&& response) override {
    if (answered_.exchange(true)) return;
    auto session = std::move(session_);
    net::dispatch(session->executor(), [session, response = std::move(response)]() mutable {
      session->write(std::move(response));
    });
  }
  net::any_io_executor executor() override { return executor_; }

 private:
  net::any_io_executor executor_;  // kept apart: session_ is given up by the first respond()
  std::atomic<bool> answered_{false};
  std::shared_ptr<Session> session_;
};

void Session::onRead(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == net::error::eof) return doShutdown();
  // Closed without close_notify: a fatal TLS error, after which OpenSSL forbids SSL_shutdown.
  if (ec == net::ssl::error::stream_truncated) return;
  if (ec) {
    if (ec == http::error::body_limit || ec == http::error::header_limit ||
        ec.category() == http::make_error_code(http::error::bad_method).category()) {
      HttpResponse bad{http::status::bad_request, 11};
      bad.set(http::field::content_type, "application/json");
      bad.body() =
          R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"malformed HTTP request: )" +
          ec.message() + R"(","reason":"BadRequest","code":400})";
      keepAlive_ = false;
      setState(State::kAnswering);
      request_ = {};  // the previous request's target must not be counted again
      requestRead_ = std::chrono::steady_clock::now();
      return write(std::move(bad));
    }
    return;  // timeout or reset: nothing to answer
  }
  requestRead_ = std::chrono::steady_clock::now();
  setState(State::kAnswering);
  clearDeadline();  // the handler bounds its own answer; the write has its deadline
  request_ = parser_->release();
  keepAlive_ = request_.keep_alive();
  isHead_ = request_.method() == http::verb::head;
  server_.handler.handle(request_, peer_, std::make_shared<SessionSlot>(shared_from_this()));
}

}  // namespace

bool HttpsServer::Impl::shedOne() {
  // The connection that has done least for longest: a request trickled in first (the slowloris),
  // then a handshake, then the oldest idle keep-alive. Never one answering.
  std::shared_ptr<Session> victim;
  std::pair<int, std::chrono::steady_clock::time_point> best{
      -1, std::chrono::steady_clock::time_point::max()};
  // Every session locked here is released only after the registry's lock: the last reference
  // dropped inside it would run ~Session, which takes that lock.
  std::vector<std::shared_ptr<Session>> seen;
  {
    std::lock_guard lock(registryMutex);
    seen.reserve(registry.size());
    for (const auto& weak : registry) {
      auto session = weak.lock();
      if (session) seen.push_back(session);
      if (!session || session->state() == Session::State::kAnswering || session->shedding()) {
        continue;
      }
      // Rank: reading 2, handshake 1, idle 0; older first within a rank.
      int rank = session->state() == Session::State::kReading     ? 2
                 : session->state() == Session::State::kHandshake ? 1
                                                                  : 0;
      auto since = session->stateSince();
      if (rank > best.first || (rank == best.first && since < best.second)) {
        best = {rank, since};
        victim = session;
      }
    }
  }
  if (!victim || !victim->claimForShedding()) return false;
  net::post(victim->executor(), [victim] { victim->shed(); });
  return true;
}

void HttpsServer::Impl::shedIdle() {
  std::vector<std::shared_ptr<Session>> all;  // released after the lock, as in shedOne()
  {
    std::lock_guard lock(registryMutex);
    for (const auto& weak : registry) {
      if (auto session = weak.lock()) all.push_back(std::move(session));
    }
  }
  for (auto& session : all) {
    if (session->state() != Session::State::kAnswering && session->claimForShedding()) {
      net::post(session->executor(), [session] { session->shed(); });
    }
  }
}

void HttpsServer::Impl::accept() {
  if (stopping) return;
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping) return;
      // EMFILE and friends repeat at once: back off instead of spinning, and log once a second.
      auto now = std::chrono::steady_clock::now();
      ++acceptFailures;
      if (now - lastAcceptLog > std::chrono::seconds(1)) {
        spdlog::warn("component=server event=accept_failed error=\"{}\" count={}", ec.message(),
                     acceptFailures);
        lastAcceptLog = now;
        acceptFailures = 0;
      }
      return retryAcceptAfter(std::chrono::milliseconds(100));
    }
    if (stopping) {
      socket.close(ec);
      return;
    }
    // At the connection cap a new client takes the place of the connection that has done least
    // for longest; only when every one is answering a request is it turned away.
    if (sessions.load() >= static_cast<int>(options.maxConnections) && !shedOne()) {
      socket.close(ec);
      auto now = std::chrono::steady_clock::now();
      if (now - lastAcceptLog > std::chrono::seconds(1)) {
        spdlog::warn(
            "component=server event=connection_refused reason=\"{} connections, every "
            "one answering a request\"",
            options.maxConnections);
        lastAcceptLog = now;
      }
      return accept();
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Session>(std::move(socket), currentTls(), *this)->run();
    accept();
  });
}

void HttpsServer::Impl::retryAcceptAfter(std::chrono::milliseconds delay) {
  acceptRetry.expires_after(delay);
  acceptRetry.async_wait([this](beast::error_code ec) {
    if (!ec) accept();
  });
}

HttpsServer::HttpsServer(HttpsServerOptions options, RequestHandler& handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}

HttpsServer::~HttpsServer() { stop(); }

std::expected<void, std::string> HttpsServer::reloadCertificates() {
  auto tls = makeTlsContext(impl_->options.tls);
  if (!tls) return std::unexpected(tls.error());
  std::lock_guard lock(impl_->tlsMutex);
  impl_->tls = std::move(*tls);
  return {};
}

std::expected<void, std::string> HttpsServer::start() {
  // OpenSSL writes the sockets with write(), not send(MSG_NOSIGNAL): a peer that reset must be
  // an error on that connection, not the end of the process.
  ::signal(SIGPIPE, SIG_IGN);
  if (auto loaded = reloadCertificates(); !loaded) return loaded;
  const auto& o = impl_->options;
  boost::system::error_code ec;
  auto address = net::ip::make_address(o.bindAddress, ec);
  if (ec) {
    return std::unexpected("invalid --bind-address \"" + o.bindAddress + "\": not an IP address");
  }
  tcp::endpoint endpoint{address, o.port};
  auto& acceptor = impl_->acceptor;
  std::string where = o.bindAddress + ":" + std::to_string(o.port);
  if (acceptor.open(endpoint.protocol(), ec); ec)
    return std::unexpected("cannot open socket for " + where + ": " + ec.message());
  acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (acceptor.bind(endpoint, ec); ec) {
    return std::unexpected("cannot listen on " + where + ": " + ec.message() +
                           "; choose another --secure-port or --bind-address");
  }
  if (acceptor.listen(net::socket_base::max_listen_connections, ec); ec) {
    return std::unexpected("cannot listen on " + where + ": " + ec.message());
  }
  impl_->boundPort = acceptor.local_endpoint().port();
  net::post(impl_->acceptor.get_executor(), [this] { impl_->accept(); });
  impl_->trimEvery(std::chrono::seconds(5));
  unsigned n = std::max(1u, o.threads);
  for (unsigned i = 0; i < n; ++i) {
    impl_->threads.emplace_back([this] {
      core::nameThisThread("xm-https");
      impl_->ioc.run();
    });
  }
  return {};
}

uint16_t HttpsServer::port() const { return impl_->boundPort; }

void HttpsServer::stop() {
  if (impl_->threads.empty()) return;
  impl_->stopping = true;
  net::post(impl_->acceptor.get_executor(), [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    impl_->acceptRetry.cancel();
    impl_->trimTimer.cancel();
  });
  // In-flight requests finish (responses are sent with Connection: close); the others (idle
  // keep-alive, handshakes, requests not yet whole) close now.
  impl_->shedIdle();
  for (int i = 0; i < 50 && impl_->sessions.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace xmetrics::server

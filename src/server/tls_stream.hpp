#pragma once

// TLS straight on the socket: OpenSSL reads and writes the file descriptor itself, and Asio only
// says when it is readable or writable. Asio's ssl::stream keeps four 17 KB buffers per connection
// for its memory-BIO pair (about 70 KB), for the life of the connection; here an idle connection
// holds its SSL object and nothing else (SSL_MODE_RELEASE_BUFFERS frees the record buffers between
// requests), and each record is copied once less.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <vector>

namespace xmetrics::server {

// An AsyncReadStream and AsyncWriteStream (what Beast's http::async_read/async_write take) over a
// non-blocking TCP socket. Every operation runs on the socket's executor (a strand), one read and
// one write at a time, as with any Asio stream. Errors: end of stream is net::error::eof (a
// close_notify) or net::ssl::error::stream_truncated (the peer closed without one); OpenSSL's are
// in net::error::get_ssl_category().
class TlsStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using Socket = boost::asio::ip::tcp::socket;

  // Takes `socket` (made non-blocking) and a new SSL object of `context` for the server side.
  TlsStream(Socket&& socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  SSL* native_handle() { return ssl_; }
  Socket& socket() { return socket_; }

  template <class Token>
  auto async_handshake(Token&& token) {
    return run([this] { return SSL_do_handshake(ssl_); }, std::forward<Token>(token));
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    auto buffer = firstBuffer<boost::asio::mutable_buffer>(buffers);
    return run(
        [this, buffer]() -> int {
          if (buffer.size() == 0) return 0;  // a zero-byte read completes at once with 0
          std::size_t n = 0;
          int r = SSL_read_ex(ssl_, buffer.data(), buffer.size(), &n);
          return r > 0 ? static_cast<int>(n) : r == 0 ? -1 : r;
        },
        std::forward<Token>(token), buffer.size() == 0);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    // Beast hands a response as many small buffers (one per header field): one TLS record and
    // one send each would cost several times the CPU. Up to a record's worth is copied into one.
    auto buffer = coalesce(buffers);
    return run(
        [this, buffer]() -> int {
          if (buffer.size() == 0) return 0;
          std::size_t n = 0;
          int r = SSL_write_ex(ssl_, buffer.data(), buffer.size(), &n);
          return r > 0 ? static_cast<int>(n) : r == 0 ? -1 : r;
        },
        std::forward<Token>(token), buffer.size() == 0);
  }

  // Sends close_notify (best effort: does not wait for the peer's).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return run(
        [this]() -> int {
          int r = SSL_shutdown(ssl_);
          return r >= 0 ? 1 : r;  // 0: ours is sent, the peer's not awaited
        },
        std::forward<Token>(token));
  }

  // Completes once a read can make progress (bytes on the socket, or decrypted bytes OpenSSL
  // holds), without taking a buffer: an idle connection waits holding none.
  template <class Token>
  auto async_wait_readable(Token&& token) {
    if (ssl_ && socket_.is_open() && SSL_pending(ssl_) > 0) {
      return boost::asio::async_compose<Token, void(boost::system::error_code)>(
          [this, started = false](auto& self, boost::system::error_code = {}) mutable {
            if (!started) {
              started = true;
              return boost::asio::post(socket_.get_executor(), std::move(self));
            }
            self.complete({});
          },
          token, socket_);
    }
    return socket_.async_wait(Socket::wait_read, std::forward<Token>(token));
  }

 private:
  // What one call of SSL_read/SSL_write/SSL_do_handshake/SSL_shutdown asks for next.
  enum class Need { kDone, kRead, kWrite };
  struct Outcome {
    Need need = Need::kDone;
    boost::system::error_code error;
    std::size_t bytes = 0;
  };
  // `ret`: > 0 bytes done (1 for the handshake and shutdown), <= 0 as OpenSSL returned.
  Outcome outcomeOf(int ret);

  template <class ConstBuffers>
  boost::asio::const_buffer coalesce(const ConstBuffers& buffers) {
    auto first = firstBuffer<boost::asio::const_buffer>(buffers);
    if (first.size() >= kRecordBytes) return first;
    std::size_t total = 0;
    int nonEmpty = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && total < kRecordBytes; ++it) {
      boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      ++nonEmpty;
      total += b.size();
    }
    if (nonEmpty < 2) return first;
    std::size_t n = std::min(total, kRecordBytes);
    coalesced_.resize(n);
    boost::asio::buffer_copy(boost::asio::buffer(coalesced_), buffers, n);
    return boost::asio::buffer(coalesced_.data(), n);
  }
  static constexpr std::size_t kRecordBytes = 16 * 1024;  // TLS's largest record

  template <class Buffer, class Buffers>
  static Buffer firstBuffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      Buffer b(*it);
      if (b.size() > 0) return b;
    }
    return Buffer();
  }

  // Calls `call` until it completes, waiting for the socket as OpenSSL asks; completes with
  // (error, bytes), never inline from the initiating call.
  template <class Call, class Token>
  auto run(Call call, Token&& token, bool nothingToDo = false) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        [this, call, nothingToDo, started = false, outcome = Outcome{}](
            auto& self, boost::system::error_code waited = {}) mutable {
          if (started && outcome.need == Need::kDone) {
            return self.complete(outcome.error, outcome.bytes);  // after the post below
          }
          if (waited) return self.complete(waited, 0);  // cancelled, closed
          // Closed (a deadline, a shed): OpenSSL must never touch the descriptor number again,
          // which may already belong to another connection.
          if (!ssl_ || !socket_.is_open()) {
            outcome = Outcome{Need::kDone, boost::asio::error::bad_descriptor, 0};
            if (!started) {
              started = true;
              return boost::asio::post(socket_.get_executor(), std::move(self));
            }
            return self.complete(outcome.error, 0);
          }
          if (nothingToDo) {
            outcome = Outcome{};
          } else {
            ERR_clear_error();  // SSL_get_error reads the thread's queue: it must hold only ours
            outcome = outcomeOf(call());
          }
          bool first = !started;
          started = true;
          switch (outcome.need) {
            case Need::kRead:
              return socket_.async_wait(Socket::wait_read, std::move(self));
            case Need::kWrite:
              return socket_.async_wait(Socket::wait_write, std::move(self));
            case Need::kDone:
              if (first) return boost::asio::post(socket_.get_executor(), std::move(self));
              return self.complete(outcome.error, outcome.bytes);
          }
        },
        token, socket_);
  }

  Socket socket_;
  SSL* ssl_ = nullptr;
  std::vector<char> coalesced_;  // the copy being written; released while idle

 public:
  // Gives back what the last write held (called when the connection goes idle).
  void releaseBuffers() {
    coalesced_.clear();
    coalesced_.shrink_to_fit();
  }
};

}  // namespace xmetrics::server

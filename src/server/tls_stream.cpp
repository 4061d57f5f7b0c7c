#include "server/tls_stream.hpp"

#include <openssl/err.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>

namespace xmetrics::server {

TlsStream::TlsStream(Socket&& socket, SSL_CTX* context)
    : socket_(std::move(socket)), ssl_(SSL_new(context)) {
  boost::system::error_code ignored;
  socket_.non_blocking(true, ignored);
  if (!ssl_) socket_.close(ignored);  // out of memory: every operation fails
  if (ssl_) {
    SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));
    SSL_set_accept_state(ssl_);
    // Beast hands the rest of a buffer again after a partial write, from wherever it now is.
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
}

TlsStream::~TlsStream() {
  if (ssl_) SSL_free(ssl_);
}

TlsStream::Outcome TlsStream::outcomeOf(int ret) {
  if (ret > 0) return {Need::kDone, {}, static_cast<std::size_t>(ret)};
  if (!ssl_) return {Need::kDone, boost::asio::error::no_memory, 0};
  int saved = errno;
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      return {Need::kRead, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      return {Need::kWrite, {}, 0};
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      return {Need::kDone, boost::asio::error::eof, 0};
    case SSL_ERROR_SYSCALL:
      if (unsigned long e = ERR_get_error()) {
        return {Need::kDone, {static_cast<int>(e), boost::asio::error::get_ssl_category()}, 0};
      }
      // No error queued: the socket failed (reset), or the peer closed without close_notify.
      if (saved != 0 && saved != EAGAIN) {
        return {Need::kDone, {saved, boost::system::system_category()}, 0};
      }
      return {Need::kDone, boost::asio::ssl::error::stream_truncated, 0};
    default: {
      unsigned long e = ERR_get_error();
      ERR_clear_error();
      // OpenSSL 3 reports a peer that closed without close_notify this way.
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return {Need::kDone, boost::asio::ssl::error::stream_truncated, 0};
      }
      return {Need::kDone,
              {static_cast<int>(e ? e : SSL_R_UNEXPECTED_MESSAGE),
               boost::asio::error::get_ssl_category()},
              0};
    }
  }
}

}  // namespace xmetrics::server

#include "http/http_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace xmetrics::http {
namespace {

// A listening TCP socket on 127.0.0.1 at a port the kernel picks; the port goes to *port.
int listenOnLoopback(int* port) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(::listen(listener, 4), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  *port = ntohs(address.sin_port);
  return listener;
}

// A server on 127.0.0.1 that answers one request and keeps its head (request line and headers) as
// it came off the wire. It waits at most 5 s for the request, so a test never hangs on it.
class OneRequestServer {
 public:
  OneRequestServer() {
    listener_ = listenOnLoopback(&port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~OneRequestServer() {
    thread_.join();
    ::close(listener_);
  }

  std::string origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string hostHeader() const { return "Host: 127.0.0.1:" + std::to_string(port_); }
  // The request's head; empty when none came. Call after the request was answered.
  std::string head() {
    thread_.join();
    thread_ = std::thread([] {});
    return head_;
  }

 private:
  void serve() {
    pollfd waiting{listener_, POLLIN, 0};
    if (::poll(&waiting, 1, 5'000) != 1) return;
    int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) return;
    std::string received;
    char buffer[4096];
    while (received.find("\r\n\r\n") == std::string::npos) {
      pollfd readable{connection, POLLIN, 0};
      if (::poll(&readable, 1, 5'000) != 1) break;
      ssize_t n = ::read(connection, buffer, sizeof buffer);
      if (n <= 0) break;
      received.append(buffer, static_cast<std::size_t>(n));
    }
    head_ = received.substr(0, received.find("\r\n\r\n"));
    std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    (void)!::write(connection, answer.data(), answer.size());
    ::close(connection);
  }

  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string head_;
};

std::string requestLine(const std::string& head) { return head.substr(0, head.find("\r\n")); }

// A query string as long as a Datadog batch of 35 queries.
std::string longQuery() {
  std::string query = "from=1&to=2&query=";
  for (int i = 0; i < 35; ++i) {
    if (i) query += "%2C";
    query += "avg%3Asystem.cpu.user%7Bservice%3Aservice-number-" + std::to_string(i) + "%7D";
  }
  return query;
}

Request get(const std::string& url) {
  Request request;
  request.url = url;
  request.timeout = std::chrono::milliseconds(5'000);
  request.connectTimeout = std::chrono::milliseconds(5'000);
  return request;
}

TEST(HttpClient, ALongUrlGoesOnTheWireAsAShortOneDoes) {
  HttpClient client;
  // Short, long, short on one client: the handle a long URL used is reused for the next call, and
  // its request target must not stick to it.
  const std::string shortQuery = "query=avg%3Aa%7B%2A%7D";
  for (const std::string& query : {shortQuery, longQuery(), shortQuery}) {
    OneRequestServer server;
    auto answer = client.send(get(server.origin() + "/api/v1/query?" + query));
    ASSERT_TRUE(answer.has_value()) << answer.error();
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(answer->body, "ok");
    std::string head = server.head();
    EXPECT_EQ(requestLine(head), "GET /api/v1/query?" + query + " HTTP/1.1");
    EXPECT_NE(head.find("\r\n" + server.hostHeader() + "\r\n"), std::string::npos) << head;
  }
}

TEST(HttpClient, ALongUrlWithADotSegmentIsNormalisedAsLibcurlNormalisesIt) {
  HttpClient client;
  OneRequestServer server;
  std::string query = longQuery();
  auto answer = client.send(get(server.origin() + "/api/./v1/../v1/query?" + query));
  ASSERT_TRUE(answer.has_value()) << answer.error();
  EXPECT_EQ(requestLine(server.head()), "GET /api/v1/query?" + query + " HTTP/1.1");
}

TEST(HttpClient, ALongUrlDropsItsFragmentAsLibcurlDoes) {
  HttpClient client;
  OneRequestServer server;
  std::string query = longQuery();
  auto answer = client.send(get(server.origin() + "/api/v1/query?" + query + "#part"));
  ASSERT_TRUE(answer.has_value()) << answer.error();
  EXPECT_EQ(requestLine(server.head()), "GET /api/v1/query?" + query + " HTTP/1.1");
}

TEST(HttpClient, ALongUrlThroughAProxyKeepsTheAbsoluteForm) {
  HttpClient client;
  OneRequestServer proxy;
  std::string url = "http://metrics.example.invalid:8080/api/v1/query?" + longQuery();
  Request request = get(url);
  request.proxy = proxy.origin();
  auto answer = client.send(request);
  ASSERT_TRUE(answer.has_value()) << answer.error();
  EXPECT_EQ(requestLine(proxy.head()), "GET " + url + " HTTP/1.1");
}

TEST(HttpClient, ALongUrlWithALineBreakIsRefusedNotSent) {
  HttpClient client;
  OneRequestServer server;
  std::string url = server.origin() + "/api/v1/query?" + longQuery() + "\r\nX-Injected: yes";
  auto answer = client.send(get(url));
  // libcurl refuses the URL, or sends it escaped; never the header it would smuggle in.
  if (answer.has_value()) {
    EXPECT_EQ(server.head().find("\r\nX-Injected"), std::string::npos);
  } else {
    EXPECT_NE(answer.error().find("GET " + server.origin() + " failed"), std::string::npos)
        << answer.error();
    // Nothing was sent; wake the server's accept so it stops now rather than after 5 s.
    HttpClient other;
    (void)other.send(get(server.origin() + "/"));
    EXPECT_EQ(requestLine(server.head()), "GET / HTTP/1.1");
  }
}

// A watch that stays open with no data: only cancel() can end it, since no `cancel` flag is
// given. The server holds the response open for up to 10 s and notes whether the client closed
// the connection first.
TEST(HttpClient, CancelEndsAStreamThatIsWaitingForData) {
  int port = 0;
  int listener = listenOnLoopback(&port);
  std::string origin = "http://127.0.0.1:" + std::to_string(port);
  std::atomic<bool> clientClosedFirst{false};
  std::thread server([&] {
    pollfd waiting{listener, POLLIN, 0};
    if (::poll(&waiting, 1, 5'000) != 1) return;
    int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) return;
    char buffer[4096];
    (void)!::read(connection, buffer, sizeof buffer);
    std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    (void)!::write(connection, answer.data(), answer.size());
    pollfd readable{connection, POLLIN, 0};
    if (::poll(&readable, 1, 10'000) == 1 && ::read(connection, buffer, sizeof buffer) <= 0) {
      clientClosedFirst = true;
    }
    ::close(connection);
  });

  HttpClient client;
  std::atomic<bool> gotData{false};
  std::expected<long, std::string> result;
  std::thread watcher([&] {
    result = client.stream(get(origin + "/watch"), [&](std::string_view chunk) {
      if (chunk.find("first") != std::string_view::npos) gotData = true;
      return true;
    });
  });
  for (int i = 0; i < 500 && !gotData; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(gotData);
  client.cancel();
  watcher.join();
  server.join();
  ::close(listener);
  EXPECT_TRUE(clientClosedFirst) << "the stream ran until the server gave up";
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().find("GET " + origin + " failed"), std::string::npos) << result.error();
  // And a call after cancel() fails without trying.
  auto later = client.send(get(origin + "/"));
  ASSERT_FALSE(later.has_value());
  EXPECT_NE(later.error().find("cancelled"), std::string::npos) << later.error();
}

}  // namespace
}  // namespace xmetrics::http

#include "ingest/dogstatsd_listener.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>
#include <system_error>
#include <vector>

#include "ingest/dogstatsd_parser.hpp"
#include "tsdb/time_series_store.hpp"

namespace xmetrics::ingest {

namespace {

// Large enough for any UDP payload (65507 bytes over IPv4), so no datagram is ever truncated;
// the Agent's default is 8 KiB, clients that batch stay below it.
constexpr std::size_t kDatagramBytes = 64 * 1024;
constexpr std::size_t kBatch = 16;  // datagrams per recvmmsg call
constexpr std::size_t kMalformedExcerptBytes = 200;
constexpr int kPollTimeoutMs = 1000;  // the periodic work (expiry, log flush) needs a tick

std::string errnoText(int error) { return std::system_category().message(error); }

std::string listenError(std::string_view address, std::string_view cause) {
  return "cannot listen for DogStatsD on " + std::string(address) + ": " + std::string(cause) +
         "; set --dogstatsd-address";
}

struct HostPort {
  std::string host;  // empty: every interface
  std::string port;
};

std::expected<HostPort, std::string> splitAddress(std::string_view address) {
  auto invalid = [&] {
    return std::unexpected("invalid DogStatsD address \"" + std::string(address) +
                           "\": expected host:port, [ipv6]:port or :port (e.g. 127.0.0.1:8125); "
                           "set --dogstatsd-address");
  };
  std::string_view host;
  std::string_view port;
  if (address.starts_with('[')) {
    auto close = address.find(']');
    if (close == std::string_view::npos || address.substr(close + 1, 1) != ":") return invalid();
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
    if (host.empty()) return invalid();
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return invalid();
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return invalid();  // IPv6 needs brackets
  }
  unsigned number = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc{} || ptr != port.data() + port.size() || number > 65535) {
    return invalid();
  }
  return HostPort{std::string(host), std::string(port)};
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

// Candidates in the order to try. For every interface an IPv6 socket comes first because, with
// IPV6_V6ONLY off, it receives IPv4 too; for a name such as `localhost` IPv4 comes first, since
// that is where clients send by default (and what the Agent binds).
std::vector<const addrinfo*> bindOrder(const addrinfo* list, bool wildcard) {
  std::vector<const addrinfo*> order;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) order.push_back(ai);
  }
  int first = wildcard ? AF_INET6 : AF_INET;
  std::stable_partition(order.begin(), order.end(),
                        [first](const addrinfo* ai) { return ai->ai_family == first; });
  return order;
}

uint16_t boundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

// Asks for a big receive buffer: DogStatsD clients burst and UDP drops what does not fit.
// SO_RCVBUFFORCE passes net.core.rmem_max when the process may (CAP_NET_ADMIN); otherwise the
// kernel caps SO_RCVBUF silently, so the result is read back and reported.
int growReceiveBuffer(int fd, int wanted) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &wanted, sizeof(wanted)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &wanted, sizeof(wanted));
  }
  int actual = 0;
  socklen_t len = sizeof(actual);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actual, &len);
  return actual / 2;  // Linux reports twice what was granted, the other half being bookkeeping
}

}  // namespace

DogStatsdListener::DogStatsdListener(tsdb::TimeSeriesStore& store, DogStatsdListenerOptions options)
    : store_(store), options_(std::move(options)) {}

DogStatsdListener::~DogStatsdListener() { stop(); }

core::Clock::time_point DogStatsdListener::now() const {
  return options_.clock ? options_.clock() : core::Clock::now();
}

std::expected<void, std::string> DogStatsdListener::start() {
  if (thread_.joinable()) return std::unexpected("DogStatsD listener already started");
  auto hostPort = splitAddress(options_.address);
  if (!hostPort) return std::unexpected(hostPort.error());

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  const bool wildcard = hostPort->host.empty();
  int rc = getaddrinfo(wildcard ? nullptr : hostPort->host.c_str(), hostPort->port.c_str(), &hints,
                       &raw);
  std::unique_ptr<addrinfo, AddrInfoDeleter> resolved(raw);
  if (rc != 0) {
    return std::unexpected(listenError(options_.address, gai_strerror(rc)));
  }

  int fd = -1;
  int lastError = EADDRNOTAVAIL;
  for (const addrinfo* ai : bindOrder(resolved.get(), wildcard)) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      lastError = errno;
      continue;
    }
    if (ai->ai_family == AF_INET6) {
      int off = 0;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    lastError = errno;
    close(fd);
    fd = -1;
  }
  if (fd < 0) return std::unexpected(listenError(options_.address, errnoText(lastError)));

  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));  // lets us count kernel drops
  int receiveBuffer = growReceiveBuffer(fd, options_.receiveBufferBytes);
  if (receiveBuffer < options_.receiveBufferBytes) {
    spdlog::info(
        "dogstatsd: receive buffer is {} bytes, less than the {} asked for; bursts may be dropped "
        "(raise net.core.rmem_max) component=dogstatsd",
        receiveBuffer, options_.receiveBufferBytes);
  }

  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int error = errno;
    close(fd);
    return std::unexpected(listenError(options_.address, errnoText(error)));
  }

  socket_ = fd;
  wakeFd_ = wake;
  port_.store(boundPort(fd), std::memory_order_relaxed);
  // As if a warning had just gone out one interval ago: the first bad line is reported at once.
  lastMalformedLog_ = now() - options_.malformedLogInterval;
  unloggedMalformed_ = 0;
  firstUnlogged_.clear();
  dropBase_ = dropped_.load(std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
  spdlog::info("dogstatsd: listening on {} component=dogstatsd port={} receive_buffer={}",
               options_.address, port(), receiveBuffer);
  return {};
}

void DogStatsdListener::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  // The eventfd counter cannot overflow from one write; a failure would only delay the stop to
  // the next poll timeout.
  [[maybe_unused]] auto written = write(wakeFd_, &one, sizeof(one));
  thread_.join();
  close(socket_);
  close(wakeFd_);
  socket_ = -1;
  wakeFd_ = -1;
}

DogStatsdListenerStats DogStatsdListener::stats() const {
  return DogStatsdListenerStats{
      .packets = packets_.load(std::memory_order_relaxed),
      .bytes = bytes_.load(std::memory_order_relaxed),
      .metrics = metrics_.load(std::memory_order_relaxed),
      .skipped = skipped_.load(std::memory_order_relaxed),
      .malformed = malformed_.load(std::memory_order_relaxed),
      .dropped = dropped_.load(std::memory_order_relaxed),
  };
}

void DogStatsdListener::flushMalformedLog(core::Clock::time_point at, bool force) {
  if (unloggedMalformed_ == 0) return;
  auto elapsed = at - lastMalformedLog_;
  if (!force && elapsed < options_.malformedLogInterval) return;
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count();
  spdlog::warn("dogstatsd: {} malformed lines in the last {}s, first: {:?} component=dogstatsd",
               unloggedMalformed_, std::max<int64_t>(seconds, 0), firstUnlogged_);
  unloggedMalformed_ = 0;
  firstUnlogged_.clear();
  lastMalformedLog_ = at;
}

void DogStatsdListener::run() {
  std::vector<char> buffer(kBatch * kDatagramBytes);
  constexpr std::size_t kControlBytes = CMSG_SPACE(sizeof(uint32_t));
  std::vector<char> control(kBatch * kControlBytes);
  std::array<iovec, kBatch> iovs{};
  std::array<mmsghdr, kBatch> messages{};

  auto lastExpire = now();
  auto lastErrorLog = core::Clock::time_point{};
  std::array<pollfd, 2> fds{pollfd{socket_, POLLIN, 0}, pollfd{wakeFd_, POLLIN, 0}};

  while (true) {
    int ready = poll(fds.data(), fds.size(), kPollTimeoutMs);
    if (ready < 0 && errno != EINTR) {
      spdlog::error("dogstatsd: poll failed: {} component=dogstatsd", errnoText(errno));
      break;
    }
    if (fds[1].revents != 0) break;  // stop()
    if ((fds[0].revents & POLLERR) != 0) {
      // A pending socket error would make every poll return at once; reading it clears it.
      int error = 0;
      socklen_t len = sizeof(error);
      getsockopt(socket_, SOL_SOCKET, SO_ERROR, &error, &len);
    }

    // Drain what the socket holds before polling again.
    while (ready > 0 && (fds[0].revents & POLLIN) != 0) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        iovs[i] = iovec{buffer.data() + i * kDatagramBytes, kDatagramBytes};
        messages[i] = mmsghdr{};
        messages[i].msg_hdr.msg_iov = &iovs[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = control.data() + i * kControlBytes;
        messages[i].msg_hdr.msg_controllen = kControlBytes;
      }
      int received = recvmmsg(socket_, messages.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (received < 0) {
        int error = errno;
        if (error == EINTR) continue;
        if (error != EAGAIN && error != EWOULDBLOCK) {
          auto at = now();
          if (at - lastErrorLog >= options_.malformedLogInterval) {
            spdlog::warn("dogstatsd: receive failed: {} component=dogstatsd", errnoText(error));
            lastErrorLog = at;
          }
        }
        break;
      }

      auto at = now();
      uint64_t bytes = 0;
      ParseStats total;
      for (int i = 0; i < received; ++i) {
        const msghdr& header = messages[i].msg_hdr;
        for (cmsghdr* c = CMSG_FIRSTHDR(&header); c != nullptr;
             c = CMSG_NXTHDR(const_cast<msghdr*>(&header), c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t drops = 0;
            std::memcpy(&drops, CMSG_DATA(c), sizeof(drops));
            // The kernel reports its running total for the socket.
            uint64_t total = dropBase_ + drops;
            if (total > dropped_.load(std::memory_order_relaxed)) {
              dropped_.store(total, std::memory_order_relaxed);
            }
          }
        }
        std::string_view datagram(static_cast<const char*>(iovs[i].iov_base), messages[i].msg_len);
        bytes += datagram.size();
        ParseStats stats = parseDatagram(
            datagram, [&](const DogStatsdMetric& metric) { store_.ingest(metric, at); });
        total.metrics += stats.metrics;
        total.skipped += stats.skipped;
        if (stats.malformed > 0) {
          total.malformed += stats.malformed;
          // Copied now: the view dies with the buffer on the next receive.
          if (firstUnlogged_.empty()) {
            firstUnlogged_.assign(stats.firstMalformed.substr(0, kMalformedExcerptBytes));
          }
        }
      }
      packets_.fetch_add(static_cast<uint64_t>(received), std::memory_order_relaxed);
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      metrics_.fetch_add(total.metrics, std::memory_order_relaxed);
      skipped_.fetch_add(total.skipped, std::memory_order_relaxed);
      malformed_.fetch_add(total.malformed, std::memory_order_relaxed);
      unloggedMalformed_ += total.malformed;
      flushMalformedLog(at, false);
      if (static_cast<std::size_t>(received) < kBatch) break;  // drained
    }

    auto at = now();
    if (at - lastExpire >= options_.expireInterval) {
      store_.expire(at);
      lastExpire = at;
    }
    flushMalformedLog(at, false);
  }
  flushMalformedLog(now(), true);
}

}  // namespace xmetrics::ingest

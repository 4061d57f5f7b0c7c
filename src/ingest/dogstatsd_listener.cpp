#include "ingest/dogstatsd_listener.hpp"

#include <arpa/inet.h>
#include <linux/sock_diag.h>
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
// Datagrams per recvmmsg call. Most clients send one line per datagram, so the per-call cost
// (syscall entry, poll) is spread over this many lines.
constexpr std::size_t kBatch = 64;
// Calls in a row before the loop comes back up for its periodic work: under a sustained flood the
// socket never drains, and expiry and the drop count must still run.
constexpr int kCallsPerDrain = 256;
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
  // SO_RCVBUFFORCE first: with CAP_NET_ADMIN it is not capped at net.core.rmem_max.
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

  int receiveBuffer = growReceiveBuffer(fd, options_.receiveBufferBytes);
  if (receiveBuffer < options_.receiveBufferBytes) {
    // A warning: at the usual cap (208 KiB) one-line datagrams are lost from 300,000 a second on
    // (bench/dogstatsd_ingest), silently but for the dropped counter.
    spdlog::warn(
        "dogstatsd: receive buffer is {} bytes, less than the {} asked for; bursts may be dropped: "
        "raise the node's limit (sysctl -w net.core.rmem_max={}) or give the container "
        "CAP_NET_ADMIN component=dogstatsd",
        receiveBuffer, options_.receiveBufferBytes, options_.receiveBufferBytes);
  }

  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int error = errno;
    close(fd);
    return std::unexpected(listenError(options_.address, errnoText(error)));
  }

  socket_ = fd;
  wakeFd_ = wake;
  relaySocket4_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
  relaySocket6_ = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
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
  for (int* fd : {&relaySocket4_, &relaySocket6_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
  socket_ = -1;
  wakeFd_ = -1;
}

std::vector<std::string> DogStatsdListener::setRelayTargets(
    const std::vector<std::string>& addresses) {
  std::vector<std::string> unreadable;
  auto targets = std::make_shared<std::vector<RelayTarget>>();
  for (const auto& address : addresses) {
    auto hostPort = splitAddress(address);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* raw = nullptr;
    if (!hostPort || hostPort->host.empty() ||
        getaddrinfo(hostPort->host.c_str(), hostPort->port.c_str(), &hints, &raw) != 0 || !raw) {
      unreadable.push_back(address);
      continue;
    }
    std::unique_ptr<addrinfo, AddrInfoDeleter> resolved(raw);
    RelayTarget target;
    std::memcpy(&target.address, raw->ai_addr, raw->ai_addrlen);
    target.length = static_cast<socklen_t>(raw->ai_addrlen);
    targets->push_back(target);
  }
  std::lock_guard lock(relayMutex_);
  relayTargets_ = std::move(targets);
  return unreadable;
}

void DogStatsdListener::relay(const std::vector<std::string_view>& datagrams) {
  std::shared_ptr<const std::vector<RelayTarget>> targets;
  {
    std::lock_guard lock(relayMutex_);
    targets = relayTargets_;
  }
  if (!targets || targets->empty()) return;
  std::size_t count = datagrams.size() * targets->size();
  if (relayMessages_.size() < count) {
    relayMessages_.resize(count);
    relayIovs_.resize(count);
  }
  // One sendmmsg per address family: the marker and the datagram as two pieces, nothing copied.
  for (int family : {AF_INET, AF_INET6}) {
    int fd = family == AF_INET ? relaySocket4_ : relaySocket6_;
    std::size_t n = 0;
    for (const auto& target : *targets) {
      if (target.address.ss_family != family) continue;
      for (auto datagram : datagrams) {
        relayIovs_[n] = {iovec{const_cast<char*>(kRelayMarker.data()), kRelayMarker.size()},
                         iovec{const_cast<char*>(datagram.data()), datagram.size()}};
        msghdr& h = relayMessages_[n].msg_hdr;
        h = msghdr{};
        h.msg_name = const_cast<sockaddr_storage*>(&target.address);
        h.msg_namelen = target.length;
        h.msg_iov = relayIovs_[n].data();
        h.msg_iovlen = 2;
        ++n;
      }
    }
    if (n == 0) continue;
    std::size_t sent = 0;
    while (fd >= 0 && sent < n) {
      int r =
          sendmmsg(fd, relayMessages_.data() + sent, static_cast<unsigned>(n - sent), MSG_DONTWAIT);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        // A full send buffer or a replica that went away (ECONNREFUSED from an earlier ICMP):
        // skip this message, count it, try the rest.
        ++sent;
        relayFailed_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      sent += static_cast<std::size_t>(r);
      relayed_.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
    }
    if (fd < 0) relayFailed_.fetch_add(n, std::memory_order_relaxed);
  }
}

DogStatsdListenerStats DogStatsdListener::stats() const {
  return DogStatsdListenerStats{
      .packets = packets_.load(std::memory_order_relaxed),
      .bytes = bytes_.load(std::memory_order_relaxed),
      .metrics = metrics_.load(std::memory_order_relaxed),
      .skipped = skipped_.load(std::memory_order_relaxed),
      .malformed = malformed_.load(std::memory_order_relaxed),
      .dropped = dropped_.load(std::memory_order_relaxed),
      .relayed = relayed_.load(std::memory_order_relaxed),
      .relayFailed = relayFailed_.load(std::memory_order_relaxed),
      .fromReplicas = fromReplicas_.load(std::memory_order_relaxed),
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

// The kernel's count of datagrams it dropped on this socket (a full receive buffer). Read once per
// drain rather than with SO_RXQ_OVFL, which costs a control message on every datagram.
void DogStatsdListener::readDrops() {
  std::array<uint32_t, SK_MEMINFO_VARS> meminfo{};
  socklen_t len = sizeof(meminfo);
  if (getsockopt(socket_, SOL_SOCKET, SO_MEMINFO, meminfo.data(), &len) != 0 ||
      len < sizeof(uint32_t) * (SK_MEMINFO_DROPS + 1)) {
    return;
  }
  uint64_t total = dropBase_ + meminfo[SK_MEMINFO_DROPS];
  if (total > dropped_.load(std::memory_order_relaxed)) {
    dropped_.store(total, std::memory_order_relaxed);
  }
}

void DogStatsdListener::run() {
  // Not zeroed (new char[], not a vector): only the pages datagrams are written to become
  // resident, about one per slot for the small datagrams clients send, not all 4 MiB.
  std::unique_ptr<char[]> buffer(new char[kBatch * kDatagramBytes]);
  std::array<iovec, kBatch> iovs{};
  std::array<mmsghdr, kBatch> messages{};
  for (std::size_t i = 0; i < kBatch; ++i) {
    iovs[i] = iovec{buffer.get() + i * kDatagramBytes, kDatagramBytes};
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  DogStatsdMetric scratch;  // one line at a time, its vectors reused
  std::vector<std::string_view> toRelay;
  toRelay.reserve(kBatch);

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

    // Drain what the socket holds before polling again (or do the periodic work first when it
    // keeps filling).
    for (int calls = 0; ready > 0 && (fds[0].revents & POLLIN) != 0 && calls < kCallsPerDrain;
         ++calls) {
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
      uint64_t fromReplicas = 0;
      ParseStats total;
      toRelay.clear();
      for (int i = 0; i < received; ++i) {
        std::string_view datagram(static_cast<const char*>(iovs[i].iov_base), messages[i].msg_len);
        bytes += datagram.size();
        if (datagram.starts_with(kRelayMarker)) {
          datagram.remove_prefix(kRelayMarker.size());  // another replica's: ours, not to relay
          ++fromReplicas;
        } else {
          toRelay.push_back(datagram);
        }
        ParseStats stats = parseDatagram(
            datagram, scratch, [&](const DogStatsdMetric& metric) { store_.ingest(metric, at); });
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
      if (!toRelay.empty()) relay(toRelay);
      fromReplicas_.fetch_add(fromReplicas, std::memory_order_relaxed);
      packets_.fetch_add(static_cast<uint64_t>(received), std::memory_order_relaxed);
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      metrics_.fetch_add(total.metrics, std::memory_order_relaxed);
      skipped_.fetch_add(total.skipped, std::memory_order_relaxed);
      malformed_.fetch_add(total.malformed, std::memory_order_relaxed);
      unloggedMalformed_ += total.malformed;
      flushMalformedLog(at, false);
      if (static_cast<std::size_t>(received) < kBatch) break;  // drained
    }

    readDrops();
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

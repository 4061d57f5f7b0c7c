#pragma once

// ingest/: DogStatsD over UDP -> tsdb. The parser is pure and fuzzed; the listener owns the
// socket. May include core/ and tsdb/.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/sample.hpp"

namespace xmetrics::tsdb {
class TimeSeriesStore;
}

namespace xmetrics::ingest {

struct DogStatsdListenerOptions {
  // `host:port`, `[v6-address]:port` or `:port` (all interfaces, IPv4 and IPv6). Port 0 picks a
  // free port; read it back with DogStatsdListener::port().
  std::string address = "127.0.0.1:8125";
  int receiveBufferBytes = 4 << 20;                // SO_RCVBUF asked for; bursts wait here
  std::chrono::seconds expireInterval{10};         // how often the store drops old points
  std::chrono::seconds malformedLogInterval{10};   // at most one malformed-lines warning per this
  std::function<core::Clock::time_point()> clock;  // empty: core::Clock::now
};

// Totals over the listener's life (they carry over a stop() and start()); each only grows.
struct DogStatsdListenerStats {
  uint64_t packets = 0;    // datagrams received
  uint64_t bytes = 0;      // payload bytes received
  uint64_t metrics = 0;    // lines handed to the store
  uint64_t skipped = 0;    // events and service checks, ignored on purpose
  uint64_t malformed = 0;  // lines that could not be parsed (logged, rate-limited)
  uint64_t dropped = 0;    // datagrams the kernel dropped because the receive buffer was full
  // High availability (setRelayTargets): datagrams sent on to the other replicas (one per
  // replica), those that could not be (a full send buffer, an unreachable replica), and those
  // that came from another replica.
  uint64_t relayed = 0;
  uint64_t relayFailed = 0;
  uint64_t fromReplicas = 0;
};

// The first bytes of a datagram one replica relays to another: never a DogStatsD line (a NUL
// cannot be in one), so a relayed datagram is recognised, ingested and never relayed again.
inline constexpr std::string_view kRelayMarker{"\0xmetrics-relay/1\n", 19};

// Receives DogStatsD over UDP on one thread of its own and feeds each metric line to the
// embedded store. The store must outlive the listener. start() and stop() are called from one
// thread; stats() and port() from any.
class DogStatsdListener {
 public:
  explicit DogStatsdListener(tsdb::TimeSeriesStore& store, DogStatsdListenerOptions options = {});
  ~DogStatsdListener();  // stops
  DogStatsdListener(const DogStatsdListener&) = delete;
  DogStatsdListener& operator=(const DogStatsdListener&) = delete;

  // Binds the socket and starts the receive thread. The error names the address, the cause and
  // the flag to change ("cannot listen for DogStatsD on 127.0.0.1:8125: Address already in
  // use; set --dogstatsd-address").
  std::expected<void, std::string> start();

  // Wakes the receive thread and joins it; returns within milliseconds. Idempotent.
  void stop();

  // The bound UDP port (the one picked when the address said port 0); 0 before start().
  uint16_t port() const { return port_.load(std::memory_order_relaxed); }

  DogStatsdListenerStats stats() const;

  // High availability: every datagram a client sends here is also sent on to each of
  // `addresses` (the other replicas' DogStatsD, numeric `host:port` or `[v6]:port`), marked with
  // kRelayMarker, so every replica's store holds all the traffic whichever replica a UDP Service
  // delivered it to. Replaces the previous targets; returns the addresses it could not read.
  // Thread-safe.
  std::vector<std::string> setRelayTargets(const std::vector<std::string>& addresses);

  struct RelayTarget {
    sockaddr_storage address{};
    socklen_t length = 0;
  };

 private:
  void relay(const std::vector<std::string_view>& datagrams);
  void run();
  void readDrops();
  void flushMalformedLog(core::Clock::time_point now, bool force);
  core::Clock::time_point now() const;

  tsdb::TimeSeriesStore& store_;
  DogStatsdListenerOptions options_;
  int socket_ = -1;
  int wakeFd_ = -1;  // eventfd: stop() writes it so poll() returns at once
  std::thread thread_;
  std::atomic<uint16_t> port_{0};

  std::atomic<uint64_t> packets_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> metrics_{0};
  std::atomic<uint64_t> skipped_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> dropped_{0};
  uint64_t dropBase_ = 0;  // dropped_ when the current socket opened: its kernel count starts at 0

  std::mutex relayMutex_;
  std::shared_ptr<const std::vector<RelayTarget>> relayTargets_;  // guarded by relayMutex_
  int relaySocket4_ = -1;  // unbound sockets the relay sends from, one per address family
  int relaySocket6_ = -1;
  std::atomic<uint64_t> relayed_{0};
  std::atomic<uint64_t> relayFailed_{0};
  std::atomic<uint64_t> fromReplicas_{0};
  // Receive-thread scratch for relay(): allocated once, grown to the largest batch.
  std::vector<mmsghdr> relayMessages_;
  std::vector<std::array<iovec, 2>> relayIovs_;

  // Receive-thread state for the rate-limited warning.
  uint64_t unloggedMalformed_ = 0;
  std::string firstUnlogged_;
  core::Clock::time_point lastMalformedLog_{};
};

}  // namespace xmetrics::ingest

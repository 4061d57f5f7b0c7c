#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backend_health.hpp"
#include "core/sample.hpp"

namespace xmetrics::store {

// The poller's own state, as it last published it.
// One backend's refresh loop. The poller runs one per backend, on a thread of its own, so a backend
// that hangs stalls only its own metrics; liveness asks each loop.
struct RefreshLoopStatus {
  std::string backend;
  uint64_t cycles = 0;                     // completed refresh cycles of this backend's metrics
  core::Clock::time_point lastCycleStart;  // wall time its last full refresh began
  std::chrono::microseconds lastCycleDuration{0};
  std::size_t metrics = 0;  // entries it refreshed in its last cycle
  std::size_t queries = 0;  // distinct queries it sent in its last cycle
  std::chrono::steady_clock::time_point lastTick;
  std::optional<std::chrono::steady_clock::time_point> fetchingSince;
};

// Every loop together: counts are sums, `cycles` the rounds every loop completed, times the
// oldest (the loop furthest behind), `lastCycleDuration` the longest.
struct PollerStatus {
  uint64_t cycles = 0;                     // completed refresh cycles
  core::Clock::time_point lastCycleStart;  // wall time the last full refresh began
  std::chrono::microseconds lastCycleDuration{0};
  std::size_t metrics = 0;                         // entries refreshed in the last cycle
  std::size_t queries = 0;                         // distinct queries sent in the last cycle
  uint64_t backendCalls = 0;                       // fetch() calls since start
  uint64_t firstFetches = 0;                       // synchronous first fetches for new metrics
  std::chrono::steady_clock::time_point lastTick;  // for liveness
  // When the backend call now in progress began; nullopt between calls. A paced or slow backend
  // call is the poller working, not hanging.
  std::optional<std::chrono::steady_clock::time_point> fetchingSince;
  // Follower side of high availability.
  bool following = false;
  uint64_t followExchanges = 0;
  std::string followError;               // the last exchange's error; empty when it worked
  core::Clock::time_point lastFollow;    // last successful exchange with the leader
  std::vector<RefreshLoopStatus> loops;  // one per backend, the default first
};

// A running backend as the poller last saw it (the default backend first in ServiceStatus).
struct BackendStatus {
  std::string name;
  core::BackendHealth health;
};

// What the request path knows of the refresh loop and the backends: published by the poller each
// time either changes (every tick, every backend call), read by /healthz, /readyz, /metrics and
// /xmetrics/v1/status without touching a live backend or the poller's lock.
struct ServiceStatus {
  PollerStatus poller;
  std::vector<BackendStatus> backends;  // the default backend first
};
using ServiceStatusPtr = std::shared_ptr<const ServiceStatus>;

}  // namespace xmetrics::store

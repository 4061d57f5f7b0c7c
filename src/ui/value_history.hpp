#pragma once

// ui/: the status page at /xmetrics/v1/ui — its HTML, rendered on the server from the status
// report (core::StatusReport, the type `xmetrics status` prints), and the recent history it draws
// sparklines from. May include core/ and store/ only; server/ routes to it.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/sample.hpp"
#include "store/value_store.hpp"

namespace xmetrics::ui {

// What a metric was at one sample, for the validity strip.
enum class Validity : uint8_t {
  kNone,   // no value yet and no error: not fetched yet
  kValid,  // a value no older than max-age
  kGrace,  // older than max-age, still served within query-validity-period
  kStale,  // older than both: served as an error
  kError,  // no value; the fetch or the resolution failed
};
std::string_view validityName(Validity v);  // "valid", "grace", "stale", "error", "none"

// The validity of a published value at `now`, as the request path judges it.
Validity validityOf(const store::MetricValue& value, core::Clock::time_point now);

// A bounded ring of recent samples per published metric and per backend, taken from the store's
// snapshots (what the poller published; never a backend). Every metric is sampled at the same
// ticks, so the ticks' times are kept once and a metric's sample is 5 bytes (the value as a float,
// its validity); `capacity` samples are kept per metric: 10,000 metrics at the default 120 cost
// about 7 MB with their keys. Thread-safe.
class ValueHistory {
 public:
  struct Point {
    core::Clock::time_point at;
    double value = 0;  // NaN when there was no value
    Validity validity = Validity::kNone;
  };
  struct BackendPoint {
    core::Clock::time_point at;
    uint64_t calls = 0;   // calls since start, as the backend counts them
    uint64_t errors = 0;  // of which did not end "ok"
  };

  explicit ValueHistory(std::size_t capacity);
  ValueHistory(const ValueHistory&) = delete;
  ValueHistory& operator=(const ValueHistory&) = delete;

  // One sample of every published value and backend at `now`; metrics and backends no longer
  // published are forgotten.
  void sample(const store::ValueSnapshot& values, const store::ServiceStatus& status,
              core::Clock::time_point now);

  // The samples of one metric (by core::metricKey) or backend, oldest first; empty when unknown.
  std::vector<Point> metric(std::string_view key) const;
  std::vector<BackendPoint> backend(std::string_view name) const;

  std::size_t capacity() const { return capacity_; }
  std::size_t metrics() const;
  // What the rings and their keys hold, in bytes (allocator overhead excluded).
  std::size_t approxBytes() const;

 private:
  // One metric's samples: `capacity` floats, then `capacity` validities, in one block. Its newest
  // sample is always of the newest tick (a metric not published at a tick is forgotten), so its
  // i-th newest is of the i-th newest tick.
  struct Ring {
    std::unique_ptr<std::byte[]> data;
    uint32_t next = 0, size = 0;
    uint64_t seen = 0;  // the tick that last touched it, to forget the unpublished
  };
  void push(Ring& ring, float value, Validity validity);

  // Heterogeneous look-up: the snapshot's keys are views.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept {
      return std::hash<std::string_view>{}(key);
    }
  };
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  uint64_t samples_ = 0;             // ticks taken
  std::vector<uint32_t> tickTimes_;  // ring of the ticks' times, seconds since the epoch
  std::unordered_map<std::string, Ring, KeyHash, std::equal_to<>> metrics_;
  std::unordered_map<std::string, std::vector<BackendPoint>> backends_;
};

// Samples the store into a history every `interval` on a thread of its own, until destroyed.
class HistorySampler {
 public:
  HistorySampler(ValueHistory& history, const store::ValueStore& values,
                 std::chrono::milliseconds interval);
  ~HistorySampler();
  HistorySampler(const HistorySampler&) = delete;
  HistorySampler& operator=(const HistorySampler&) = delete;

 private:
  void run();
  ValueHistory& history_;
  const store::ValueStore& values_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace xmetrics::ui

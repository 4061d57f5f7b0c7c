#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "telemetry/exposition.hpp"

namespace xmetrics::telemetry {

// Requests by path class and status code, and their durations, for
// xmetrics_http_requests_total{path,code} and xmetrics_http_request_duration_seconds{path}.
//
// record() runs once per response on the server threads, the hottest path there is: it takes no
// lock, makes no locked instruction and allocates nothing after a thread's first request. Each
// thread counts into a block of its own (one writer per block: relaxed loads and stores), and a
// scrape adds the blocks up. Path classes are a short fixed list given by the caller, never raw
// paths, so the label sets stay bounded.
class HttpRequestMetrics {
 public:
  static constexpr std::size_t kMaxPathClasses = 12;
  // Upper bounds in seconds. Answers from memory take tens of microseconds; the top buckets catch
  // first fetches (bounded by first-fetch-timeout, 5 s) and reviews by the cluster.
  static constexpr std::array<double, 15> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

  // `pathClasses`: the label values, at most kMaxPathClasses; record() takes an index into them.
  explicit HttpRequestMetrics(std::vector<std::string> pathClasses);
  ~HttpRequestMetrics();
  HttpRequestMetrics(const HttpRequestMetrics&) = delete;
  HttpRequestMetrics& operator=(const HttpRequestMetrics&) = delete;

  // Thread-safe. An out-of-range class counts as the last one.
  void record(std::size_t pathClass, unsigned status, std::chrono::nanoseconds elapsed);

  void write(ExpositionWriter& out) const;

  // Totals over all threads (for tests and write()).
  uint64_t requests(std::size_t pathClass, unsigned status) const;
  struct Durations {
    std::array<uint64_t, kBuckets.size() + 1> counts{};  // per bucket, not cumulative; last: > 5 s
    uint64_t sumNanoseconds = 0;
  };
  Durations durations(std::size_t pathClass) const;

 private:
  struct Shard;
  Shard& shard();

  std::vector<std::string> pathClasses_;
  uint64_t id_;  // tells this instance apart in the per-thread cache, even at a reused address
  mutable std::mutex mutex_;
  std::vector<std::pair<std::thread::id, std::unique_ptr<Shard>>> shards_;
  // Status codes outside the usual list: counted under the lock (never seen in practice).
  std::map<std::pair<std::size_t, unsigned>, uint64_t> unusualCodes_;
};

}  // namespace xmetrics::telemetry

#include "telemetry/http_request_metrics.hpp"

#include <algorithm>

namespace xmetrics::telemetry {
namespace {

// The status codes with a counter slot of their own in every thread's block.
constexpr std::array<uint16_t, 30> kCodes = {200, 201, 204, 206, 301, 302, 304, 307, 308, 400,
                                             401, 403, 404, 405, 406, 408, 409, 410, 411, 413,
                                             414, 415, 422, 429, 431, 500, 501, 502, 503, 504};
constexpr uint8_t kNoSlot = 0xff;

constexpr auto kSlotOfCode = [] {
  std::array<uint8_t, 600> slots{};
  slots.fill(kNoSlot);
  for (std::size_t i = 0; i < kCodes.size(); ++i) slots[kCodes[i]] = static_cast<uint8_t>(i);
  return slots;
}();

// Upper bounds in nanoseconds, so the hot path compares integers.
constexpr auto kBucketNanos = [] {
  std::array<int64_t, HttpRequestMetrics::kBuckets.size()> nanos{};
  for (std::size_t i = 0; i < nanos.size(); ++i) {
    nanos[i] = static_cast<int64_t>(HttpRequestMetrics::kBuckets[i] * 1e9 + 0.5);
  }
  return nanos;
}();

// Only the owning thread writes a block, so a plain load and store suffice (no lock prefix);
// readers on other threads see a value at most one request old.
inline void bump(std::atomic<uint64_t>& counter, uint64_t by) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

std::atomic<uint64_t> nextId{1};

struct ThreadCache {
  uint64_t owner = 0;
  void* shard = nullptr;
};
thread_local ThreadCache cache;

}  // namespace

// Cache-line aligned so two threads' blocks never share a line.
struct alignas(64) HttpRequestMetrics::Shard {
  using Row = std::array<std::atomic<uint64_t>, kCodes.size()>;
  using Buckets = std::array<std::atomic<uint64_t>, kBuckets.size() + 1>;
  std::array<Row, kMaxPathClasses> requests{};
  std::array<Buckets, kMaxPathClasses> buckets{};
  std::array<std::atomic<uint64_t>, kMaxPathClasses> sumNanoseconds{};
};

HttpRequestMetrics::HttpRequestMetrics(std::vector<std::string> pathClasses)
    : pathClasses_(std::move(pathClasses)), id_(nextId.fetch_add(1)) {
  if (pathClasses_.empty()) pathClasses_.push_back("other");
  if (pathClasses_.size() > kMaxPathClasses) pathClasses_.resize(kMaxPathClasses);
}

HttpRequestMetrics::~HttpRequestMetrics() = default;

HttpRequestMetrics::Shard& HttpRequestMetrics::shard() {
  if (cache.owner == id_) return *static_cast<Shard*>(cache.shard);
  // A thread's first request here (or the thread served another instance in between: tests).
  std::lock_guard lock(mutex_);
  auto self = std::this_thread::get_id();
  auto it = std::ranges::find(shards_, self, [](const auto& entry) { return entry.first; });
  if (it == shards_.end()) {
    shards_.emplace_back(self, std::make_unique<Shard>());
    it = std::prev(shards_.end());
  }
  cache = {id_, it->second.get()};
  return *it->second;
}

void HttpRequestMetrics::record(std::size_t pathClass, unsigned status,
                                std::chrono::nanoseconds elapsed) {
  pathClass = std::min(pathClass, pathClasses_.size() - 1);
  Shard& s = shard();
  uint8_t slot = status < kSlotOfCode.size() ? kSlotOfCode[status] : kNoSlot;
  if (slot != kNoSlot) {
    bump(s.requests[pathClass][slot], 1);
  } else {
    std::lock_guard lock(mutex_);
    ++unusualCodes_[{pathClass, status}];
  }
  int64_t nanos = std::max<int64_t>(elapsed.count(), 0);
  std::size_t bucket = 0;
  while (bucket < kBucketNanos.size() && nanos > kBucketNanos[bucket]) ++bucket;
  bump(s.buckets[pathClass][bucket], 1);
  bump(s.sumNanoseconds[pathClass], static_cast<uint64_t>(nanos));
}

uint64_t HttpRequestMetrics::requests(std::size_t pathClass, unsigned status) const {
  if (pathClass >= pathClasses_.size()) return 0;
  std::lock_guard lock(mutex_);
  uint8_t slot = status < kSlotOfCode.size() ? kSlotOfCode[status] : kNoSlot;
  if (slot == kNoSlot) {
    auto it = unusualCodes_.find({pathClass, status});
    return it == unusualCodes_.end() ? 0 : it->second;
  }
  uint64_t total = 0;
  for (const auto& [thread, s] : shards_) {
    total += s->requests[pathClass][slot].load(std::memory_order_relaxed);
  }
  return total;
}

HttpRequestMetrics::Durations HttpRequestMetrics::durations(std::size_t pathClass) const {
  Durations d;
  if (pathClass >= pathClasses_.size()) return d;
  std::lock_guard lock(mutex_);
  for (const auto& [thread, s] : shards_) {
    for (std::size_t b = 0; b < d.counts.size(); ++b) {
      d.counts[b] += s->buckets[pathClass][b].load(std::memory_order_relaxed);
    }
    d.sumNanoseconds += s->sumNanoseconds[pathClass].load(std::memory_order_relaxed);
  }
  return d;
}

void HttpRequestMetrics::write(ExpositionWriter& out) const {
  auto& requests = out.family("xmetrics_http_requests_total", MetricType::kCounter,
                              "HTTP requests answered, by path class and status code.");
  for (std::size_t c = 0; c < pathClasses_.size(); ++c) {
    std::vector<std::pair<unsigned, uint64_t>> byCode;
    for (unsigned code : kCodes) {
      if (uint64_t n = this->requests(c, code)) byCode.emplace_back(code, n);
    }
    {
      std::lock_guard lock(mutex_);
      for (const auto& [key, n] : unusualCodes_) {
        if (key.first == c) byCode.emplace_back(key.second, n);
      }
    }
    std::ranges::sort(byCode);
    for (const auto& [code, n] : byCode) {
      std::string codeText = std::to_string(code);
      requests.sample({{"path", pathClasses_[c]}, {"code", codeText}}, n);
    }
  }
  auto& durationFamily = out.family(
      "xmetrics_http_request_duration_seconds", MetricType::kHistogram,
      "Time from a request being read to its response being handed to the connection, by path "
      "class.");
  for (std::size_t c = 0; c < pathClasses_.size(); ++c) {
    auto d = durations(c);
    uint64_t count = 0;
    for (auto n : d.counts) count += n;
    if (count == 0) continue;
    Label path{"path", pathClasses_[c]};
    durationFamily.histogram(std::span<const Label>(&path, 1), kBuckets, d.counts,
                             static_cast<double>(d.sumNanoseconds) / 1e9);
  }
}

}  // namespace xmetrics::telemetry

#include "ui/value_history.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/thread_name.hpp"

namespace xmetrics::ui {

std::string_view validityName(Validity v) {
  switch (v) {
    case Validity::kValid:
      return "valid";
    case Validity::kGrace:
      return "grace";
    case Validity::kStale:
      return "stale";
    case Validity::kError:
      return "error";
    case Validity::kNone:
      break;
  }
  return "none";
}

Validity validityOf(const store::MetricValue& value, core::Clock::time_point now) {
  if (!value.sample) return value.error.empty() ? Validity::kNone : Validity::kError;
  if (store::isFresh(value, now)) return Validity::kValid;
  return store::isServable(value, now) ? Validity::kGrace : Validity::kStale;
}

namespace {

uint32_t secondsOf(core::Clock::time_point t) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return s < 0 ? 0 : static_cast<uint32_t>(std::min<int64_t>(s, UINT32_MAX));
}

}  // namespace

ValueHistory::ValueHistory(std::size_t capacity) : capacity_(capacity), tickTimes_(capacity) {}

void ValueHistory::push(Ring& ring, float value, Validity validity) {
  if (!ring.data) ring.data = std::make_unique<std::byte[]>(capacity_ * (sizeof(float) + 1));
  std::memcpy(ring.data.get() + ring.next * sizeof(float), &value, sizeof(float));
  ring.data[capacity_ * sizeof(float) + ring.next] = static_cast<std::byte>(validity);
  ring.next = static_cast<uint32_t>((ring.next + 1) % capacity_);
  if (ring.size < capacity_) ++ring.size;
}

void ValueHistory::sample(const store::ValueSnapshot& values, const store::ServiceStatus& status,
                          core::Clock::time_point now) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mutex_);
  tickTimes_[samples_ % capacity_] = secondsOf(now);
  ++samples_;
  values.forEach([&](std::string_view key, const store::MetricValuePtr& value) {
    auto it = metrics_.find(key);
    if (it == metrics_.end()) it = metrics_.emplace(std::string(key), Ring{}).first;
    push(it->second,
         value->sample ? static_cast<float>(value->sample->value)
                       : std::numeric_limits<float>::quiet_NaN(),
         validityOf(*value, now));
    it->second.seen = samples_;
  });
  std::erase_if(metrics_, [this](const auto& entry) { return entry.second.seen != samples_; });

  std::unordered_map<std::string, std::vector<BackendPoint>> backends;
  for (const auto& b : status.backends) {
    uint64_t errors = 0;
    for (const auto& [outcome, n] : b.health.callsByOutcome) {
      if (outcome != "ok") errors += n;
    }
    auto& points = backends[b.name];
    if (auto old = backends_.find(b.name); old != backends_.end()) points = std::move(old->second);
    points.push_back({.at = now, .calls = b.health.calls, .errors = errors});
    if (points.size() > capacity_) points.erase(points.begin());
  }
  backends_ = std::move(backends);
}

std::vector<ValueHistory::Point> ValueHistory::metric(std::string_view key) const {
  std::vector<Point> out;
  std::lock_guard lock(mutex_);
  auto it = metrics_.find(key);
  if (it == metrics_.end()) return out;
  const Ring& ring = it->second;
  out.reserve(ring.size);
  std::size_t first = (ring.next + capacity_ - ring.size) % capacity_;
  for (std::size_t i = 0; i < ring.size; ++i) {
    std::size_t slot = (first + i) % capacity_;
    float value = 0;
    std::memcpy(&value, ring.data.get() + slot * sizeof(float), sizeof(float));
    // Its tick: the newest sample is of tick samples_ - 1 (0-based), the oldest size - 1 before.
    uint64_t tick = samples_ - ring.size + i;
    out.push_back(
        {.at = core::Clock::time_point(std::chrono::seconds(tickTimes_[tick % capacity_])),
         .value = static_cast<double>(value),
         .validity = static_cast<Validity>(ring.data[capacity_ * sizeof(float) + slot])});
  }
  return out;
}

std::vector<ValueHistory::BackendPoint> ValueHistory::backend(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = backends_.find(std::string(name));
  return it == backends_.end() ? std::vector<BackendPoint>{} : it->second;
}

std::size_t ValueHistory::metrics() const {
  std::lock_guard lock(mutex_);
  return metrics_.size();
}

std::size_t ValueHistory::approxBytes() const {
  std::lock_guard lock(mutex_);
  std::size_t bytes = 0;
  for (const auto& [key, ring] : metrics_) {
    bytes += sizeof(key) + sizeof(ring) + key.capacity() +
             (ring.data ? capacity_ * (sizeof(float) + 1) : 0);
  }
  return bytes + tickTimes_.size() * sizeof(uint32_t);
}

HistorySampler::HistorySampler(ValueHistory& history, const store::ValueStore& values,
                               std::chrono::milliseconds interval)
    : history_(history), values_(values), interval_(interval), thread_([this] { run(); }) {}

HistorySampler::~HistorySampler() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HistorySampler::run() {
  core::nameThisThread("xm-ui-history");
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    history_.sample(*values_.snapshot(), *values_.status(), core::Clock::now());
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace xmetrics::ui

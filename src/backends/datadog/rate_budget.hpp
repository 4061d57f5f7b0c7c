#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "http/http_client.hpp"

namespace xmetrics::backends::datadog {

// What Datadog announces on every answer (`X-RateLimit-*`).
struct RateLimitHeaders {
  std::optional<int64_t> limit;      // calls allowed per period
  std::optional<int64_t> period;     // seconds
  std::optional<int64_t> remaining;  // calls left in the current period
  std::optional<int64_t> reset;      // seconds until the period ends
  std::string name;                  // X-RateLimit-Name, e.g. "query"
};
RateLimitHeaders parseRateLimitHeaders(const http::Headers& headers);

struct RateBudgetSnapshot {
  bool known = false;  // false until an answer carried the headers
  int64_t limit = 0, period = 0, remaining = 0;
  int64_t resetInSeconds = 0;
  int64_t blockedForSeconds = 0;  // > 0 after a 429, until the announced reset
  std::string name;
};

// Paces calls to the budget one endpoint announces. The calls left in the period are spread evenly
// over the time left, so a refresh of many batches runs at the rate the budget sustains instead of
// bursting into 429s and then going dark until the reset. Not time-aware by itself: every method
// takes `now` (steady time), so tests drive it with a fake clock. Thread-safe.
class RateBudget {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  // Books the next call: how long to wait before sending it. When the budget is spent (or a 429
  // said to wait) until further away than `maxWait`, books nothing and returns why.
  // `urgent` (a first fetch someone waits for): the first slot after the last urgent call, ahead
  // of the slots a refresh has booked, which the calls booked later then follow. A spent budget or
  // a 429 holds urgent calls back alike.
  std::expected<Duration, std::string> reserve(TimePoint now, Duration maxWait,
                                               bool urgent = false);

  // The booked call got an answer with these headers (any status; 429 blocks until the reset).
  // `slot`: the one reserve() booked for it (now + the wait it returned); without it, the
  // earliest booking goes.
  void observe(const RateLimitHeaders& headers, long status, TimePoint now,
               std::optional<TimePoint> slot = std::nullopt);
  // The booked call got no answer (transport failure), or was never sent (shutdown, booked again).
  void release(std::optional<TimePoint> slot = std::nullopt);

  RateBudgetSnapshot snapshot(TimePoint now) const;
  // The spacing calls get now: what is left of the period over the calls left (zero while
  // nothing is known after an answer without headers).
  Duration spacing(TimePoint now) const;
  // Whether any answer came yet: a call booked before one (a second apart) books again once it
  // does, instead of sleeping out a spacing the answer may have made needless.
  bool answered() const {
    std::lock_guard lock(mutex_);
    return answered_;
  }

 private:
  mutable std::mutex mutex_;
  bool known_ = false;
  bool answered_ = false;  // any answer yet, with headers or without
  // remaining_/resetAt_ are our guess after a rollover (a full budget for a period), not what an
  // answer said: the next answer replaces them whatever window it tells.
  bool assumed_ = false;
  int64_t limit_ = 0;
  std::chrono::seconds period_{0};
  int64_t remaining_ = 0;  // as last announced (or assumed after a reset)
  // The slots of calls booked and not answered yet. Only those before resetAt_ are spent from
  // remaining_: a worker that booked a slot in the next period (the current one being spent) does
  // not also take one from this period's rest, which would leave each period with fewer calls the
  // more workers wait (with as many workers as the limit, one call per period).
  std::multiset<TimePoint> booked_;
  int64_t bookedIn(TimePoint from, TimePoint to) const;  // booked slots in [from, to)
  void answeredOne(std::optional<TimePoint> slot);       // a booked call ended: its booking goes
  TimePoint resetAt_{};
  TimePoint nextSlot_{};
  TimePoint urgentNext_{};
  TimePoint blockedUntil_{};
  std::string name_;
};

}  // namespace xmetrics::backends::datadog

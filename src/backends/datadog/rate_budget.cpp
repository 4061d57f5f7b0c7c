#include "backends/datadog/rate_budget.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

namespace xmetrics::backends::datadog {
namespace {

std::optional<int64_t> integer(const http::Headers& headers, std::string_view name) {
  auto it = headers.find(name);
  if (it == headers.end()) return std::nullopt;
  int64_t v = 0;
  const std::string& s = it->second;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || v < 0) return std::nullopt;
  return v;
}

int64_t ceilSeconds(std::chrono::steady_clock::duration d) {
  if (d <= d.zero()) return 0;
  return std::chrono::ceil<std::chrono::seconds>(d).count();
}

}  // namespace

RateLimitHeaders parseRateLimitHeaders(const http::Headers& headers) {
  RateLimitHeaders h;
  h.limit = integer(headers, "X-RateLimit-Limit");
  h.period = integer(headers, "X-RateLimit-Period");
  h.remaining = integer(headers, "X-RateLimit-Remaining");
  h.reset = integer(headers, "X-RateLimit-Reset");
  if (auto it = headers.find("X-RateLimit-Name"); it != headers.end()) h.name = it->second;
  return h;
}

std::expected<RateBudget::Duration, std::string> RateBudget::reserve(TimePoint now,
                                                                     Duration maxWait,
                                                                     bool urgent) {
  std::lock_guard lock(mutex_);
  // An urgent call takes the first slot after the last urgent one rather than queueing behind
  // every slot a refresh has booked; the refresh's later slots move back by one spacing.
  TimePoint slot = std::max(now, urgent ? std::min(nextSlot_, urgentNext_) : nextSlot_);
  bool waitingForReset = false;
  if (blockedUntil_ > slot) {
    slot = blockedUntil_;
    waitingForReset = true;
  }
  Duration spacing{0};
  // Worked out on copies and kept only when a call is booked: a refused call must leave the budget
  // as announced (status shows "0 of N calls left", not the next period's full budget).
  int64_t remaining = remaining_;
  TimePoint resetAt = resetAt_;
  bool assumed = assumed_;
  if (known_) {
    if (assumed && slot < resetAt - period_) {
      // The budget held is one we assumed for a period that has not begun (a refresh spent the
      // current one and booked its next call at the reset). An urgent call is counted in it, so
      // it goes no earlier than that period does: sent now, it would be one call past the spent
      // one (a 429).
      slot = resetAt - period_;
      waitingForReset = true;
    }
    // Periods follow each other from the announced end (the windows are fixed): one assumed
    // from the slot instead would drift later with every rollover, and leave calls unsent.
    auto periodAfter = [&](TimePoint end, TimePoint at) {
      auto passed = period_.count() > 0 ? (at - end) / period_ : 0;
      return end + (passed + 1) * period_;
    };
    if (slot >= resetAt) {
      assumed = true;
      // The period rolled over since the last answer: assume a full budget until told otherwise.
      remaining = limit_;
      resetAt = periodAfter(resetAt, slot);
    }
    // Every booking the server may not have counted yet is spent from this period's rest, up
    // to its end: bookings in the next period are not.
    int64_t spent = bookedIn(TimePoint::min(), resetAt);
    if (remaining - spent <= 0) {
      auto periodStart = std::max(slot, resetAt);
      slot = periodStart;
      waitingForReset = true;
      assumed = true;
      remaining = limit_;
      resetAt = periodAfter(resetAt, periodStart);
      spent = bookedIn(resetAt - period_, resetAt);
    }
    int64_t available = std::max<int64_t>(1, remaining - spent);
    spacing = (resetAt - slot) / available;
  } else if (!answered_) {
    // Nothing announced yet: one call a second until the first answer says what the budget is,
    // rather than a whole refresh's parallel calls at once into a budget of a few.
    spacing = std::chrono::seconds(1);
  }
  if (waitingForReset && slot - now > maxWait) {
    return std::unexpected("Datadog's rate limit" + (name_.empty() ? "" : " \"" + name_ + "\"") +
                           (known_ ? " (" + std::to_string(limit_) + " calls per " +
                                         std::to_string(period_.count()) + "s)"
                                   : "") +
                           " is spent; calls resume in " + std::to_string(ceilSeconds(slot - now)) +
                           "s");
  }
  remaining_ = remaining;
  resetAt_ = resetAt;
  assumed_ = assumed;
  if (urgent) {
    urgentNext_ = slot + spacing;
    nextSlot_ = std::max(nextSlot_, slot) + spacing;
  } else {
    nextSlot_ = slot + spacing;
  }
  booked_.insert(slot);
  return slot - now;
}

void RateBudget::observe(const RateLimitHeaders& headers, long status, TimePoint now,
                         std::optional<TimePoint> slot) {
  std::lock_guard lock(mutex_);
  answeredOne(slot);
  // The first answer ends the one-a-second start: pacing follows what it announced from now.
  if (!answered_) nextSlot_ = std::min(nextSlot_, now);
  answered_ = true;
  if (headers.limit && headers.period && headers.remaining && headers.reset &&
      *headers.period > 0) {
    // The header counts whole seconds and is truncated: the window really ends up to a second
    // later. Assuming the earliest end sends the next window's first calls into this one (429s
    // under load), so assume the latest.
    // Answers of parallel calls arrive out of order under load, and one sent late in a window may
    // be read after calls of the next were sent: its "calls left" must not undo what newer
    // answers said. Its window is told by where it ends: within the slack of ours, the same
    // window (what is left only ever goes down); well before ours, an older one (ignored).
    auto announcedReset = now + std::chrono::seconds(*headers.reset + 1);
    constexpr auto kSameWindow = std::chrono::milliseconds(1500);
    if (!known_ || assumed_ || announcedReset > resetAt_ + kSameWindow) {
      // The first answer, one after a rollover we only assumed, or a newer window.
      remaining_ = *headers.remaining;
      resetAt_ = announcedReset;
      assumed_ = false;
    } else if (announcedReset + kSameWindow >= resetAt_) {
      remaining_ = std::min(remaining_, *headers.remaining);
      resetAt_ = std::max(resetAt_, announcedReset);
    }
    known_ = true;
    limit_ = *headers.limit;
    period_ = std::chrono::seconds(*headers.period);
    if (!headers.name.empty()) name_ = headers.name;
  } else if (known_ && remaining_ > 0) {
    --remaining_;  // an answer without headers still counted against the budget
  }
  if (status == 429) {
    // Wait for the announced reset; without one, a period (or 10 s when nothing is known).
    auto wait = headers.reset ? std::chrono::seconds(std::max<int64_t>(1, *headers.reset + 1))
                : period_.count() > 0 ? period_
                                      : std::chrono::seconds(10);
    blockedUntil_ = std::max(blockedUntil_, now + wait);
    if (known_) {
      // Spent until the reset the 429 announces (the server's word on where this window ends,
      // whatever earlier answers said); without one, at least until the block lifts.
      remaining_ = 0;
      resetAt_ = headers.reset ? blockedUntil_ : std::max(resetAt_, blockedUntil_);
      assumed_ = !headers.reset;
    }
  }
}

void RateBudget::release(std::optional<TimePoint> slot) {
  std::lock_guard lock(mutex_);
  answeredOne(slot);
}

int64_t RateBudget::bookedIn(TimePoint from, TimePoint to) const {
  if (to <= from) return 0;
  return static_cast<int64_t>(std::distance(booked_.lower_bound(from), booked_.lower_bound(to)));
}

void RateBudget::answeredOne(std::optional<TimePoint> slot) {
  if (slot) {
    if (auto it = booked_.find(*slot); it != booked_.end()) {
      booked_.erase(it);  // that one booking, not every one at the same slot
      return;
    }
  }
  // Not told which: the earliest slot is the oldest call sent (every one sent has a slot no later
  // than the calls still waiting for theirs), so the bookings left are the likeliest still ahead.
  if (!booked_.empty()) booked_.erase(booked_.begin());
}

RateBudget::Duration RateBudget::spacing(TimePoint now) const {
  std::lock_guard lock(mutex_);
  if (!known_) return answered_ ? Duration::zero() : Duration(std::chrono::seconds(1));
  if (now >= resetAt_) return period_ / std::max<int64_t>(1, limit_);
  return (resetAt_ - now) / std::max<int64_t>(1, remaining_ - bookedIn(TimePoint::min(), resetAt_));
}

RateBudgetSnapshot RateBudget::snapshot(TimePoint now) const {
  std::lock_guard lock(mutex_);
  RateBudgetSnapshot s;
  s.known = known_;
  s.limit = limit_;
  s.period = period_.count();
  bool rolled = known_ && now >= resetAt_;
  s.remaining = rolled ? limit_ : std::max<int64_t>(0, remaining_);
  s.resetInSeconds = rolled ? 0 : ceilSeconds(resetAt_ - now);
  s.blockedForSeconds = ceilSeconds(blockedUntil_ - now);
  s.name = name_;
  return s;
}

}  // namespace xmetrics::backends::datadog

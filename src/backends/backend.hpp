#pragma once

// backends/: the Backend interface (this header), the registry, and one folder per backend
// (datadog/, prometheus/, embedded/). A backend never sees server or poller types. May include
// core/, query/, http/ and tsdb/ (embedded only).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/backend_health.hpp"
#include "core/label_selector.hpp"
#include "core/sample.hpp"

namespace xmetrics::backends {

// One query the poller wants answered.
struct BackendQuery {
  std::string query;            // in the backend's language (Datadog syntax for datadog/embedded)
  std::chrono::seconds window;  // look back this far from `now`
  // An HPA names it, or it has no value yet. When a refresh cannot afford every query, a backend
  // may defer the others (deferredResult()), least recently refreshed last.
  bool urgent = true;
};

// The answer to one query: the chosen data point, or why there is none. The error text is shown to
// users as is (HPA events, status), so it names the query and the cause.
using BackendResult = std::expected<core::Sample, std::string>;

// "Not asked this refresh, to stay within the budget": the metric keeps the value it has, which
// ages (and goes stale past its max age) as any value does. Only for queries that are not urgent.
inline constexpr std::string_view kDeferred = "\x1e deferred to a later refresh (budget)";
inline BackendResult deferredResult() { return std::unexpected(std::string(kDeferred)); }
inline bool isDeferred(const BackendResult& r) { return !r && r.error() == kDeferred; }

// What a backend reports of itself (core/, so the published status can hold it).
using BackendHealth = core::BackendHealth;

// Remote calls by outcome, counted by the backends that make them. Thread-safe, lock-free.
class CallCounts {
 public:
  enum Outcome : std::size_t {
    kOk,           // answered
    kRejected,     // the backend refused the query itself (400/422): only that query fails
    kRateLimited,  // 429
    kTimeout,      // no answer within the call's timeout
    kError,        // anything else: transport, 5xx, 401/403, an answer that does not parse
    kOutcomes
  };
  static constexpr std::array<std::string_view, kOutcomes> names = {
      "ok", "rejected", "rate_limited", "timeout", "error"};
  void add(Outcome outcome) { counts_[outcome].fetch_add(1, std::memory_order_relaxed); }
  std::vector<std::pair<std::string_view, uint64_t>> snapshot() const {
    std::vector<std::pair<std::string_view, uint64_t>> out;
    for (std::size_t i = 0; i < kOutcomes; ++i) {
      out.emplace_back(names[i], counts_[i].load(std::memory_order_relaxed));
    }
    return out;
  }

 private:
  std::array<std::atomic<uint64_t>, kOutcomes> counts_{};
};

// The only thing the poller knows of a backend.
class Backend {
 public:
  virtual ~Backend() = default;

  // Answers a batch; the result has one entry per query, in order. Called on the poller thread; may
  // block on I/O, but never holds anything the request path needs.
  virtual std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                           core::Clock::time_point now) = 0;

  // The first fetch of metrics nobody has a value of yet (and their early retries): someone
  // waits for the answer. Called from another thread than fetch(), possibly while a fetch() is in
  // progress; a backend whose calls are paced may let these queries join a call already waiting.
  virtual std::vector<BackendResult> fetchFirst(std::span<const BackendQuery> batch,
                                                core::Clock::time_point now) {
    return fetch(batch, now);
  }

  virtual std::string_view name() const = 0;
  virtual BackendHealth health() const = 0;

  // True when fetch() packs queries into calls itself (size, length and rate limits of its API):
  // the poller then hands it every query of a refresh at once instead of chunks of batchSize.
  virtual bool batchesItself() const { return false; }
  // Makes a fetch() in progress (e.g. waiting for a rate-limit budget) return promptly; the rest
  // of its queries fail. Called from any thread when shutting down; the backend stays unusable.
  virtual void cancel() {}
  // The query an inline metric (the HPA's metric name, lowercased, and label selector) becomes in
  // this backend's language; nullopt: the Datadog form (query::inlineQuery), which the datadog and
  // embedded backends speak. Called from any thread.
  virtual std::optional<std::string> translateInline(
      std::string_view /*metric*/, const core::LabelSelector& /*selector*/) const {
    return std::nullopt;
  }

  // Who hears of each change of health() (the poller, which publishes it for the request path).
  // Set once before the first fetch(); called from the threads fetch() makes its calls on, with
  // none of the backend's locks held.
  void onHealthChange(std::function<void()> listener) { healthListener_ = std::move(listener); }

 protected:
  void healthChanged() const {
    if (healthListener_) healthListener_();
  }

 private:
  std::function<void()> healthListener_;
};

using BackendPtr = std::unique_ptr<Backend>;

}  // namespace xmetrics::backends

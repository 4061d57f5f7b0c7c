#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/label_selector.hpp"
#include "core/sample.hpp"

namespace xmetrics::backends {

// One query the poller wants answered.
struct BackendQuery {
  std::string query;            // in the backend's language (Datadog syntax for datadog/embedded)
  std::chrono::seconds window;  // look back this far from `now`
};

// The answer to one query: the chosen data point, or why there is none. The error text is shown to
// users as is (HPA events, status), so it names the query and the cause.
using BackendResult = std::expected<core::Sample, std::string>;

struct BackendHealth {
  bool reachable = true;
  std::string lastError;  // empty when the last call succeeded
  core::Clock::time_point lastSuccess;
  core::Clock::time_point lastFailure;
  uint64_t calls = 0;  // requests sent to a remote backend since start (0 for in-process ones)
  // Facts for `xmetrics status`, in display order, e.g. {"endpoint https://api.datadoghq.com",
  // "ok; 1187 of 1200 calls left per 3600s, resets in 3500s"}. Never holds secrets.
  std::vector<std::pair<std::string, std::string>> details;
};

// The only thing the poller knows of a backend.
class Backend {
 public:
  virtual ~Backend() = default;

  // Answers a batch; the result has one entry per query, in order. Called on the poller thread; may
  // block on I/O, but never holds anything the request path needs.
  virtual std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                           core::Clock::time_point now) = 0;

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
};

using BackendPtr = std::unique_ptr<Backend>;

}  // namespace xmetrics::backends

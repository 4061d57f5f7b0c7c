#pragma once

#include <condition_variable>
#include <map>
#include <mutex>

#include "backends/backend.hpp"

namespace xmetrics::testing {

// A backend told what to answer per query; records every call. Unknown queries get an error.
class FakeBackend final : public backends::Backend {
 public:
  explicit FakeBackend(std::string name = "fake") : name_(std::move(name)) {}
  void set(const std::string& query, backends::BackendResult result) {
    std::lock_guard lock(mutex_);
    answers_[query] = std::move(result);
  }
  std::vector<std::vector<std::string>> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  // While hung, fetch() blocks (as a backend whose process was SIGSTOPped) until hang(false) or
  // cancel(), which make it answer errors.
  void hang(bool hung) {
    {
      std::lock_guard lock(mutex_);
      hung_ = hung;
    }
    released_.notify_all();
  }
  bool inFetch() const {
    std::lock_guard lock(mutex_);
    return inFetch_;
  }
  // As a paced backend that batches itself (datadog): fetch() (the refresh) waits while held, then
  // answers as usual; fetchFirst() answers at once.
  void batchItself(bool batches) { batches_ = batches; }
  void holdRefresh(bool held) {
    {
      std::lock_guard lock(mutex_);
      held_ = held;
    }
    released_.notify_all();
  }
  std::vector<backends::BackendResult> fetchFirst(std::span<const backends::BackendQuery> batch,
                                                  core::Clock::time_point) override {
    std::lock_guard lock(mutex_);
    return answer(batch);
  }
  bool batchesItself() const override { return batches_; }

  // backends::Backend
  std::vector<backends::BackendResult> fetch(std::span<const backends::BackendQuery> batch,
                                             core::Clock::time_point) override {
    std::unique_lock lock(mutex_);
    std::vector<backends::BackendResult> out;
    if (hung_) {
      inFetch_ = true;
      released_.wait(lock, [&] { return !hung_ || cancelled_; });
      inFetch_ = false;
      for (const auto& q : batch) out.push_back(std::unexpected("timed out asking for " + q.query));
      return out;
    }
    if (held_) {
      inFetch_ = true;
      released_.wait(lock, [&] { return !held_ || cancelled_; });
      inFetch_ = false;
    }
    return answer(batch);
  }
  std::vector<backends::BackendResult> answer(std::span<const backends::BackendQuery> batch) {
    std::vector<backends::BackendResult> out;
    calls_.emplace_back();
    for (const auto& q : batch) {
      calls_.back().push_back(q.query);
      auto it = answers_.find(q.query);
      out.push_back(it == answers_.end()
                        ? backends::BackendResult(std::unexpected("no series for " + q.query))
                        : it->second);
    }
    return out;
  }
  std::string_view name() const override { return name_; }
  backends::BackendHealth health() const override { return {}; }
  void cancel() override {
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
    }
    released_.notify_all();
  }

 private:
  std::string name_;
  mutable std::mutex mutex_;
  std::map<std::string, backends::BackendResult> answers_;
  std::vector<std::vector<std::string>> calls_;
  std::condition_variable released_;
  bool hung_ = false;
  bool held_ = false;
  bool batches_ = false;
  bool inFetch_ = false;
  bool cancelled_ = false;
};

}  // namespace xmetrics::testing

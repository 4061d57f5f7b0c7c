#include "app/self_check.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "core/thread_name.hpp"
#include "core/time_format.hpp"

namespace xmetrics::app {

SelfCheck::SelfCheck(doctor::Options options, std::function<core::StatusReport()> report,
                     std::chrono::seconds interval)
    : options_(std::move(options)), report_(std::move(report)), interval_(interval) {}

void SelfCheck::start(std::string server) {
  options_.server = std::move(server);
  thread_ = std::thread([this] { run(); });
}

SelfCheck::~SelfCheck() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void SelfCheck::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

std::optional<core::StatusReport::SelfCheck> SelfCheck::last() const {
  std::lock_guard lock(mutex_);
  return last_;
}

void SelfCheck::run() {
  core::nameThisThread("xm-self-check");
  std::unique_lock lock(mutex_);
  // Not at once: the watches, the first refresh and the APIService settle first.
  auto wait = std::min(interval_, std::chrono::seconds(30));
  while (!wake_.wait_for(lock, wait, [this] { return stop_; })) {
    lock.unlock();
    auto options = options_;
    options.status = report_();
    auto started = std::chrono::steady_clock::now();
    auto outcome = doctor::run(options, doctor::OutputFormat::kJson);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count();
    boost::system::error_code ec;
    auto parsed = boost::json::parse(outcome.out, ec);
    core::StatusReport::SelfCheck result;
    if (!ec && parsed.is_object()) {
      result =
          core::selfCheckFromDoctor(parsed.as_object(), core::rfc3339(core::Clock::now()), took);
    } else {
      result.ran = core::rfc3339(core::Clock::now());
      result.tookMilliseconds = took;
      result.error = outcome.error.empty() ? "doctor printed no report" : outcome.error;
      while (!result.error.empty() && result.error.back() == '\n') result.error.pop_back();
    }
    spdlog::info("component=self_check event=ran ok={} warn={} fail={} took_ms={}{}", result.ok,
                 result.warn, result.fail, took,
                 result.error.empty() ? "" : " error=\"" + result.error + "\"");
    lock.lock();
    if (stop_) break;  // stopped meanwhile: its server may be gone, the result means nothing
    last_ = std::move(result);
    wait = interval_;
  }
}

}  // namespace xmetrics::app

#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "core/status_report.hpp"
#include "doctor/doctor.hpp"

namespace xmetrics::app {

// xmetrics' doctor, run in process on itself in cluster mode: the same walk `xmetrics doctor`
// makes (APIService, Service, certificate, discovery, RBAC, leader, backends, each HPA's metrics),
// with xmetrics' own credentials, every `interval` (the first after min(interval, 30 s)). It takes
// the status report from the process instead of asking for it over HTTPS (which would need RBAC
// on xmetrics' own status path); the rest of the walk dials xmetrics' port and reads each HPA's
// metrics through kube-apiserver, as doctor does from outside. Its counts and the checks that were
// not OK go into the status report (`selfCheck`), which the status page shows. A link its service
// account may not read says so as a WARN "not checked", as for any user.
class SelfCheck {
 public:
  // Nothing runs until start(): the object exists before the server answers, so request threads
  // can always read last().
  SelfCheck(doctor::Options options, std::function<core::StatusReport()> report,
            std::chrono::seconds interval);
  // Begins the runs against `server` (where xmetrics now listens, https://host:port).
  void start(std::string server);
  ~SelfCheck();
  SelfCheck(const SelfCheck&) = delete;
  SelfCheck& operator=(const SelfCheck&) = delete;

  // The last run; nullopt before the first ended. Still answers once stopped.
  std::optional<core::StatusReport::SelfCheck> last() const;
  // Asks the runs to end and returns at once: a walk in flight (its calls bounded one by one by
  // their timeouts, not as a whole) is not waited for, so SIGTERM is not held up by it. The
  // destructor waits for it.
  void stop();

 private:
  void run();
  doctor::Options options_;
  std::function<core::StatusReport()> report_;
  std::chrono::seconds interval_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::optional<core::StatusReport::SelfCheck> last_;
  std::thread thread_;
};

}  // namespace xmetrics::app

#include <spdlog/spdlog.h>

#include <csignal>
#include <memory>

#include "app/service.hpp"
#include "cli/commands.hpp"
#include "core/build_info.hpp"

namespace xmetrics::cli {

namespace {

// After stop() every thread has ended, the Lease is released and every connection answered: what
// remains is memory. Freeing it block by block (some 25 per metric) took 40-60 ms at 10,000
// metrics, most of the time from SIGTERM to exit; the kernel takes the pages back at once. The
// sanitizer builds (`make sanitize`, GCC's macros as in the tests) still destroy everything, so
// that teardown stays checked.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kFreeOnExit = true;
#else
constexpr bool kFreeOnExit = false;
#endif

void leaveToTheKernel(std::unique_ptr<app::Service> service) {
  if (kFreeOnExit) return;  // destroyed here, as any object
  (void)service.release();
}

}  // namespace

int runServe(const config::ServeOptions& options, const config::SettingSources& sources) {
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // re-read --config, as daemons do; never the default (exit)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // First, before anything can fail: what serves and why, and what was changed or ignored of
  // what the user set. A migrating user reads this line first.
  spdlog::info("xmetrics {} starting: backend={} ({})", core::buildInfo().version, options.backend,
               options.backendReason);
  for (const auto& w : options.warnings) spdlog::warn("setting: {}", w);
  for (const auto& n : options.environment) {
    auto level = n.level == "warn" ? spdlog::level::warn : spdlog::level::info;
    if (n.variable.empty()) {
      spdlog::log(level, "{}", n.text);
    } else {
      spdlog::log(level, "{}: {}", n.variable, n.text);
    }
  }
  auto service = app::Service::start(options, sources);
  if (!service) {
    spdlog::error("{}", service.error());
    return 1;
  }
  std::string moreBackends;
  for (const auto& b : options.backends) moreBackends += (moreBackends.empty() ? "" : ",") + b;
  spdlog::info(
      "xmetrics serving url={} backend={} more_backends={} dogstatsd={} threads={} "
      "refresh_period={}s max_age={}s cluster={} write_kubeconfig={}",
      (*service)->url(), options.backend, moreBackends.empty() ? "-" : moreBackends,
      (*service)->dogstatsdAddress(), options.threads, options.refreshPeriod.count(),
      options.maxAge.count(), (*service)->clusterServer(),
      options.writeKubeconfig.empty() ? "-" : options.writeKubeconfig);

  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    spdlog::info("received SIGHUP, re-reading the configuration file");
    (*service)->reloadConfiguration();
  }
  spdlog::info("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
  (*service)->stop();
  spdlog::info("stopped");
  leaveToTheKernel(std::move(*service));
  return 0;
}

}  // namespace xmetrics::cli

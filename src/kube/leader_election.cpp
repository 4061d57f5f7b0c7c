#include "kube/leader_election.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <ctime>

#include "core/json_fields.hpp"

namespace xmetrics::kube {
namespace {

using core::json::objectAt;
using core::json::str;

// metav1.MicroTime: RFC 3339 with microseconds.
std::string microTime(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(us / 1'000'000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[48];
  std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buffer + n, sizeof buffer - n, ".%06lldZ", static_cast<long long>(us % 1'000'000));
  return buffer;
}

}  // namespace

LeaderElector::LeaderElector(KubeClient& client, LeaderElectionOptions options, OnChange onChange)
    : client_(client), options_(std::move(options)), onChange_(std::move(onChange)) {}

LeaderElector::~LeaderElector() { stop(); }

std::string LeaderElector::leasePath() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + options_.ns + "/leases/" + options_.leaseName;
}

void LeaderElector::start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      tryAcquireOrRenew();
      lock.lock();
      wake_.wait_for(lock, options_.retryPeriod, [this] { return stopping_; });
    }
  });
}

void LeaderElector::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (isLeader()) release();
}

bool LeaderElector::isLeader() const {
  if (!leading_.load(std::memory_order_acquire)) return false;
  auto renewed = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(lastRenew_.load(std::memory_order_acquire)));
  return std::chrono::steady_clock::now() - renewed < options_.renewDeadline;
}

LeaderStatus LeaderElector::status() const {
  std::lock_guard lock(mutex_);
  auto s = status_;
  s.isLeader = isLeader();
  return s;
}

void LeaderElector::setLeading(bool leading) {
  if (leading_.exchange(leading) == leading) return;
  spdlog::info("component=leader event={} identity={} lease={}/{}",
               leading ? "started_leading" : "stopped_leading", options_.identity, options_.ns,
               options_.leaseName);
  if (onChange_) onChange_(leading);
}

boost::json::object LeaderElector::leaseBody(const boost::json::object* current,
                                             bool takeOver) const {
  auto now = microTime(std::chrono::system_clock::now());
  const auto* currentSpec = objectAt(current, "spec");
  boost::json::object spec{{"holderIdentity", options_.identity},
                           {"leaseDurationSeconds", options_.leaseDuration.count()},
                           {"renewTime", now}};
  int64_t transitions = 0;
  if (currentSpec) {
    if (auto* t = currentSpec->if_contains("leaseTransitions"); t && t->is_int64()) {
      transitions = t->as_int64();
    }
  }
  if (takeOver || !currentSpec) {
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = currentSpec ? transitions + 1 : 0;
  } else {
    spec["acquireTime"] =
        str(currentSpec, "acquireTime").empty() ? now : str(currentSpec, "acquireTime");
    spec["leaseTransitions"] = transitions;
  }
  boost::json::object metadata{{"name", options_.leaseName}, {"namespace", options_.ns}};
  if (!options_.peerUrl.empty()) {
    metadata["annotations"] = boost::json::object{{kPeerUrlAnnotation, options_.peerUrl}};
  }
  if (const auto* meta = objectAt(current, "metadata")) {
    // Optimistic concurrency: the write fails with 409 if anyone wrote since we read.
    metadata["resourceVersion"] = str(meta, "resourceVersion");
  }
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", std::move(metadata)},
          {"spec", std::move(spec)}};
}

bool LeaderElector::tryAcquireOrRenew() {
  auto steadyNow = std::chrono::steady_clock::now();
  auto fail = [&](const std::string& error) {
    {
      std::lock_guard lock(mutex_);
      status_.lastError = error;
    }
    // A leader that could not renew for renewDeadline steps down before its lease can expire for
    // the others (renewDeadline < leaseDuration), so two replicas never both poll for long.
    if (leading_ && !isLeader()) {
      spdlog::warn("component=leader event=renew_failed identity={} error=\"{}\"",
                   options_.identity, error);
      setLeading(false);
      std::lock_guard lock(mutex_);
      status_.holder.clear();  // not known any more; never "us"
      status_.peerUrl.clear();
    }
    return isLeader();
  };

  auto current = client_.get(leasePath());
  if (!current && current.error().status == 404) {
    auto created =
        client_.post("/apis/coordination.k8s.io/v1/namespaces/" + options_.ns + "/leases",
                     leaseBody(nullptr, true));
    if (!created) {
      if (created.error().status == 409) return false;  // another replica created it first
      return fail("creating Lease: " + created.error().describe());
    }
    lastRenew_ = steadyNow.time_since_epoch().count();
    {
      std::lock_guard lock(mutex_);
      status_.holder = options_.identity;
      status_.peerUrl = options_.peerUrl;
      status_.lastError.clear();
    }
    setLeading(true);
    return true;
  }
  if (!current) return fail("reading Lease: " + current.error().describe());
  if (!current->is_object()) return fail("reading Lease: not an object");
  const auto& lease = current->as_object();
  const auto* spec = objectAt(&lease, "spec");
  std::string holder = str(spec, "holderIdentity");
  std::string renewTime = str(spec, "renewTime");
  int64_t durationSeconds = options_.leaseDuration.count();
  if (spec) {
    if (auto* d = spec->if_contains("leaseDurationSeconds"); d && d->is_int64()) {
      durationSeconds = d->as_int64();
    }
  }
  if (holder != observedHolder_ || renewTime != observedRenewTime_) {
    observedHolder_ = holder;
    observedRenewTime_ = renewTime;
    observedAt_ = steadyNow;
  }
  std::string peerUrl;
  if (const auto* annotations = objectAt(objectAt(&lease, "metadata"), "annotations")) {
    peerUrl = str(annotations, kPeerUrlAnnotation);
  }
  {
    std::lock_guard lock(mutex_);
    status_.holder = holder;
    status_.peerUrl = peerUrl;
  }

  bool mine = holder == options_.identity;
  bool expired = holder.empty() || steadyNow - observedAt_ > std::chrono::seconds(durationSeconds);
  if (!mine && !expired) {
    setLeading(false);
    std::lock_guard lock(mutex_);
    status_.lastError.clear();
    return false;
  }
  auto written = client_.put(leasePath(), leaseBody(&lease, !mine));
  if (!written) {
    if (written.error().status == 409) {
      // Someone else wrote first: they lead (or renewed); we read again next time.
      if (!mine) return false;
    }
    return fail("writing Lease: " + written.error().describe());
  }
  lastRenew_ = steadyNow.time_since_epoch().count();
  if (written->is_object()) {
    const auto* newSpec = objectAt(&written->as_object(), "spec");
    observedHolder_ = options_.identity;
    observedRenewTime_ = str(newSpec, "renewTime");
    observedAt_ = steadyNow;
  }
  {
    std::lock_guard lock(mutex_);
    status_.holder = options_.identity;
    status_.peerUrl = options_.peerUrl;
    status_.lastError.clear();
    if (!mine) ++status_.transitions;
  }
  setLeading(true);
  return true;
}

void LeaderElector::release() {
  auto current = client_.get(leasePath());
  if (!current || !current->is_object()) return;
  const auto& lease = current->as_object();
  if (str(objectAt(&lease, "spec"), "holderIdentity") != options_.identity) return;
  auto body = leaseBody(&lease, false);
  auto& spec = body["spec"].as_object();
  // An empty holder with a 1 s lease: the next candidate takes over on its next try.
  spec["holderIdentity"] = "";
  spec["leaseDurationSeconds"] = 1;
  auto released = client_.put(leasePath(), body);
  setLeading(false);
  {
    std::lock_guard lock(mutex_);
    status_.holder.clear();
    status_.peerUrl.clear();
  }
  spdlog::info("component=leader event=released identity={} ok={}", options_.identity,
               released.has_value());
}

}  // namespace xmetrics::kube

// Leader election (the `leader-election` contract): what the replica reached says against the
// Lease itself.

#include "core/json_fields.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"
#include "doctor/checks.hpp"
#include "doctor/wording.hpp"

namespace xmetrics::doctor {
namespace {

using core::json::objectAt;
using core::json::str;

// A number field of the Lease; -1 when absent.
double numberOrMinusOne(const boost::json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_number() ? v->to_number<double>() : -1;
}

}  // namespace

std::pair<std::string, std::string> leaseOf(const std::optional<core::StatusReport>& status,
                                            const std::string& ns) {
  const auto* leader = status && status->leader ? &*status->leader : nullptr;
  std::string id = leader && leader->election ? leader->election->lease : "";
  if (auto slash = id.find('/'); slash != std::string::npos) {
    return {id.substr(0, slash), id.substr(slash + 1)};
  }
  return {ns, std::string(kLeaseName)};
}

Finding classifyLeader(const core::StatusReport::Leader* leader, const boost::json::object* lease,
                       const std::string& leaseName, core::Clock::time_point now) {
  Finding f;
  const std::string fix =
      "check xmetrics' logs for leader election errors and that its service account may get, "
      "create and update leases (coordination.k8s.io) in its namespace: without a leader no "
      "replica polls the backends (values go stale) and no DatadogMetric status is written";
  bool enabled = leader && leader->enabled;
  if (enabled) {
    std::string identity = leader->election ? leader->election->identity : "";
    std::string holder = leader->election ? leader->election->holder : "";
    f.evidence.push_back("replica reached: identity " + identity + ", leader " +
                         (leader->isLeader ? "yes" : "no") +
                         (holder.empty() ? "" : ", sees holder " + holder));
  }
  if (!leader && !lease) {
    f.summary = "leader election not in use (single replica)";
    return f;
  }
  if (leader && !enabled) {
    f.summary = "leader election off (single replica)";
    return f;
  }
  if (!lease) {
    f.verdict = Verdict::kFail;
    f.problem = "leader-not-elected";
    f.summary =
        "leader not elected: leader election is on but Lease " + leaseName + " does not exist";
    f.fix = fix;
    return f;
  }
  const auto* spec = objectAt(*lease, "spec");
  std::string holder = spec ? str(*spec, "holderIdentity") : "";
  std::string renew = spec ? str(*spec, "renewTime") : "";
  // A plain number (-1: none) rather than an optional: GCC 12 warns about a maybe-uninitialized
  // optional<double> here.
  double duration = -1;
  if (spec) duration = numberOrMinusOne(*spec, "leaseDurationSeconds");
  auto renewed = core::parseRfc3339(renew);
  f.evidence.push_back("Lease " + leaseName + ": holder " + (holder.empty() ? "<none>" : holder) +
                       ", renewed " + (renew.empty() ? "never" : renew) + ", duration " +
                       (duration >= 0 ? detail::decimal(duration) + "s" : "<none>"));
  auto expiry = renewed ? *renewed + std::chrono::seconds(static_cast<int64_t>(duration))
                        : core::Clock::time_point{};
  bool expired = holder.empty() || !renewed || duration < 0 || expiry < now;
  if (expired) {
    // A Lease without a running holder on a server that does not report leader election may be a
    // leftover of another version: worth a look, not a failure.
    f.verdict = leader ? Verdict::kFail : Verdict::kWarn;
    f.problem = "leader-not-elected";
    std::string since;
    if (renewed && duration >= 0) {
      auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - expiry).count();
      since = " (" + std::to_string(ago) + "s ago)";
    }
    f.summary = "leader not elected: Lease " + leaseName +
                (holder.empty() ? " has no holder" : " held by " + holder + " expired" + since);
    if (!leader) f.summary += "; the replica reached does not report leader election";
    f.fix = fix;
    return f;
  }
  f.summary = "leader " + holder + " (Lease " + leaseName + " renewed " + renew + ")";
  return f;
}

Check checkLeader(const Evidence& e) {
  Check c{.name = "leader"};
  std::string leaseName = e.leaseNs + "/" + e.leaseName;
  if (!e.lease && e.lease.error().status != 404) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "cannot read Lease " + leaseName + ": " + core::oneLine(e.lease.error().describe());
    c.fix = "the kubeconfig's user must be allowed to get leases in " + e.leaseNs;
    return c;
  }
  const auto* leader = e.status && e.status->leader ? &*e.status->leader : nullptr;
  const auto* lease = e.lease && e.lease->is_object() ? &e.lease->as_object() : nullptr;
  apply(c, classifyLeader(leader, lease, leaseName, e.now));
  return c;
}

}  // namespace xmetrics::doctor

// The backend link: each backend's health as xmetrics' status reports it.

#include "doctor/checks.hpp"
#include "doctor/wording.hpp"

namespace xmetrics::doctor {

using detail::contains;
using detail::decimal;
using detail::isInvalidKeys;
using detail::isRateLimited;
using detail::kKeysFix;
using detail::kRateFix;

Finding classifyBackend(const StatusBackend& backend) {
  Finding f;
  const std::string& name = backend.name;
  bool reachable = backend.reachable;
  const std::string& lastError = backend.lastError;
  std::string budget, stretched;
  bool spent = false;
  for (const auto& [k, text] : backend.details) {
    f.evidence.push_back(k + ": " + text);
    if (k == "refresh stretched") stretched = text;  // DatadogBackend::health
    if (k.starts_with("endpoint ")) {
      budget += (budget.empty() ? "" : "; ") + text;
      // "<state>; <remaining> of <limit> calls left per <period>s, resets in <n>s[, rate limited
      // for <n>s]" (DatadogBackend::health).
      spent = spent || contains(text, "; 0 of ") || contains(text, "rate limited for");
    }
  }
  if (!lastError.empty()) f.evidence.insert(f.evidence.begin(), "last error: " + lastError);
  if (backend.calls > 0)
    f.evidence.push_back("calls: " + decimal(static_cast<double>(backend.calls)));
  if (isInvalidKeys(lastError)) {
    f.verdict = Verdict::kFail;
    f.problem = "invalid-keys";
    f.summary = name + ": invalid keys: the backend refuses xmetrics' credentials (" +
                (contains(lastError, "401") ? "401 Unauthorized" : "403 Forbidden") + ")";
    f.fix = kKeysFix;
    return f;
  }
  if (isRateLimited(lastError) || spent) {
    f.verdict = Verdict::kFail;
    f.problem = "rate-limited";
    // The endpoint's state ("ok; ") says nothing here; the budget does.
    std::string shown = budget.starts_with("ok; ") ? budget.substr(4) : budget;
    f.summary = name + ": rate limited" + (shown.empty() ? "" : " (" + shown + ")");
    f.fix = kRateFix;
    return f;
  }
  if (!reachable) {
    f.verdict = Verdict::kFail;
    f.problem = "backend-unreachable";
    f.summary = name + ": unreachable" + (lastError.empty() ? "" : ": " + lastError);
    f.fix =
        "check the backend's address and the network path from xmetrics to it "
        "(proxy, DNS, egress rules); `xmetrics status` shows each endpoint";
    return f;
  }
  if (!lastError.empty()) {
    f.verdict = Verdict::kWarn;
    f.problem = "backend-error";
    f.summary = name + ": reachable, but the last call failed: " + lastError;
    f.fix = "see the error; the metrics it affects show it too";
    return f;
  }
  if (!stretched.empty()) {
    f.verdict = Verdict::kWarn;
    f.problem = "refresh-stretched";
    f.summary = name + ": refresh stretched: " + stretched;
    f.fix =
        "raise the org's rate limit, lengthen --refresh-period, or let more metrics coalesce (HPAs "
        "whose queries differ in one tag's value share a query); metrics an HPA names are never "
        "deferred, and a deferred value past its max age is served as stale, never as fresh";
    return f;
  }
  f.summary = name + ": reachable" + (budget.empty() ? "" : "; " + budget);
  return f;
}

std::vector<Check> checkBackends(const Evidence& e) {
  std::vector<Check> checks;
  if (!e.status) return checks;
  for (const auto& b : e.status->allBackends()) {
    Check c{.name = "backend", .subject = b.name};
    apply(c, classifyBackend(b));
    // The subject already names it.
    if (c.summary.starts_with(c.subject + ": ")) c.summary = c.summary.substr(c.subject.size() + 2);
    checks.push_back(std::move(c));
  }
  return checks;
}

}  // namespace xmetrics::doctor

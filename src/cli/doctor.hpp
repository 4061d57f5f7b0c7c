#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sample.hpp"

// The pure half of `xmetrics doctor`: the report model, its text and JSON forms, and everything
// that turns evidence (status JSON, Kubernetes objects, certificates) into verdicts.
// doctor_command.cpp gathers the evidence; nothing here does I/O, so every failure mode is
// unit-tested from fixtures.
namespace xmetrics::cli::doctor {

enum class Verdict { kOk, kWarn, kFail };
std::string_view verdictText(Verdict verdict);  // "OK", "WARN", "FAIL"

// One link of the chain (or one HPA metric, one backend): what was found, why, and the fix.
struct Check {
  std::string name;     // short and stable, for scripts: "apiservice", "rbac-hpa", "hpa", ...
  std::string subject;  // what it is about when there are several: "shop/web checkout.requests"
  Verdict verdict = Verdict::kOk;
  std::string summary;  // one line
  std::string problem;  // the failure mode when not OK: "wrong-rbac", "stale-value", ...
  std::vector<std::string> evidence;
  std::string fix;  // empty when OK
};

// One line per check — `OK   apiservice  v1beta1.external.metrics.k8s.io is Available` — the
// evidence indented below it, a `fix:` line for anything not OK, and a closing count.
std::string renderText(const std::vector<Check>& checks);
boost::json::object renderJson(const std::vector<Check>& checks);
// 0 when everything is OK, 1 when anything FAILs, 2 when the worst is a WARN.
int exitCode(const std::vector<Check>& checks);

// What a classifier concluded; becomes (part of) a Check.
struct Finding {
  Verdict verdict = Verdict::kOk;
  std::string problem;
  std::string summary;
  std::string fix;
  std::vector<std::string> evidence;
};

// ---------------------------------------------------------------------------------------------
// The HPA's arithmetic for one External metric (kube-controller-manager's replica calculator).

enum class TargetType { kValue, kAverageValue };

struct HpaMathInput {
  TargetType type = TargetType::kValue;
  double target = 0;       // the target quantity (spec ... target.value / target.averageValue)
  std::string targetText;  // as written in the HPA, e.g. "9"
  double value = 0;        // what xmetrics serves: the sum of the items' values
  int currentReplicas = 0;
  int minReplicas = 1;
  int maxReplicas = 1;
};

struct HpaMath {
  std::string shown;  // as `kubectl get hpa` shows it: "824/9 (avg)", "2472/3k"
  double ratio = 0;   // usage / target (per pod for AverageValue)
  bool withinTolerance = false;
  int desired = 0;          // the replicas this metric asks for, clamped to min/max
  std::string explanation;  // the whole computation in words and numbers
};

inline constexpr double kHpaTolerance = 0.1;  // kube-controller-manager's default

HpaMath explainHpa(const HpaMathInput& input);

// ---------------------------------------------------------------------------------------------
// Classifiers over xmetrics' status report (/xmetrics/v1/status).

// One entry of `backends[]`: reachable, lastError, details (the Datadog rate-limit budget).
// 401/403 → invalid-keys; 429 or a spent budget → rate-limited; unreachable → backend-unreachable.
Finding classifyBackend(const boost::json::object& backend);

// One entry of `metrics[]`. A valid metric is OK; otherwise the error names the mode:
// datadogmetric-missing, datadogmetric-invalid, stale-value, no-series (refined by probes into
// metric-missing or tag-typo), no-data, invalid-keys, rate-limited, rejected-query, metric-error.
Finding classifyMetric(const boost::json::object& metric);

// The resolution of a metric in words: "inline", "autogen xmetrics/dcaautogen-…",
// "DatadogMetric shop/x (rule 2: named like the metric)".
std::string describeResolution(const boost::json::object& metric);

// A no-series metric refined by probes through the external metrics API: the same metric with no
// selector, and with each selector requirement alone. `tags` are the requirements as selector text
// ("app=web"); `alone[i]` whether that requirement alone finds data.
struct TagProbe {
  std::string requirement;  // "app=web"
  bool hasData = false;
  std::string message;  // the answer when not
};
Finding classifyNoSeries(const std::string& metricName, bool metricHasData,
                         const std::string& metricMessage, const std::vector<TagProbe>& probes);

// Leader election (the `leader-election` contract): `leader` is the status report's object (null on
// servers without it: a single replica, OK); `lease` the coordination.k8s.io/v1 Lease
// `xmetrics-leader` in xmetrics' namespace (null when it does not exist).
Finding classifyLeader(const boost::json::object* leader, const boost::json::object* lease,
                       const std::string& leaseName, core::Clock::time_point now);

// The serving certificate xmetrics presents, checked the way the aggregator checks it: the chain
// must verify against the APIService's caBundle for the name <service>.<namespace>.svc at `now`.
struct CertificateFacts {
  std::string subject, issuer;
  std::vector<std::string> names;  // DNS and IP SANs
  std::string notAfter;            // RFC 3339
  int64_t secondsLeft = 0;
  int64_t lifetimeSeconds = 0;              // notBefore to notAfter
  std::vector<std::string> bundleSubjects;  // the CAs in the caBundle
  std::string error;                        // empty when it verifies
};
// Expiring = less than a third of its lifetime and less than 30 days left: short-lived certificates
// that are renewed on time (cert-manager renews at two thirds) never warn.
bool certificateExpiring(const CertificateFacts& facts);
CertificateFacts inspectServingCertificate(const std::vector<std::string>& chainPem,
                                           const std::string& caBundlePem, const std::string& name,
                                           core::Clock::time_point now);

// Autogen shadowing (CRD mode): an autogen DatadogMetric and a manual one for the same metric.
// `metrics` is the status report's `metrics[]`, `objects` every DatadogMetric (Kubernetes JSON).
// One finding per shadowed autogen object (WARN, the manual object serves), and one per metric an
// autogen object serves although a manual object names the same metric but cannot take over.
std::vector<Finding> findAutogenShadowing(const boost::json::array& metrics,
                                          const std::vector<boost::json::object>& objects);

}  // namespace xmetrics::cli::doctor

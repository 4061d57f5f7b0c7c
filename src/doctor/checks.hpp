#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "core/hpa_math.hpp"
#include "core/sample.hpp"
#include "core/status_report.hpp"
#include "doctor/evidence.hpp"
#include "doctor/report.hpp"

// The verdicts: each check is a function of the gathered Evidence (or of one piece of it), with
// no I/O, grouped by link — one file each: apiservice_checks.cpp (APIService, Service, discovery,
// xmetrics itself), tls_checks.cpp, rbac_checks.cpp, leader_checks.cpp, backend_checks.cpp,
// resolution_checks.cpp (DatadogMetric and autogen), hpa_checks.cpp (the HPA's arithmetic).
namespace xmetrics::doctor {

using StatusMetric = core::StatusReport::Metric;
using StatusBackend = core::StatusReport::Backend;

// Every check, in the order doctor reports them: the walk's verdict on what was gathered.
std::vector<Check> judge(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// APIService → Service → xmetrics (apiservice_checks.cpp)

Check checkApiService(const Evidence& e);
// Where the aggregator dials xmetrics for this Service (the first) and, for an ExternalName
// Service, the Service's other ports (to tell a wrong APIService port from xmetrics being down).
std::vector<std::string> serviceCandidates(const Evidence& e);
// The APIService's port is not among an ExternalName Service's ports (the aggregator does not
// consult them; a difference usually means one of the two was edited alone).
bool externalNamePortUndeclared(const Evidence& e);
Check checkService(const Evidence& e);
Check checkDiscovery(const Evidence& e);
Check checkXmetrics(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// The serving certificate (tls_checks.cpp)

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
Check checkCertificate(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// RBAC (rbac_checks.cpp)

// The requests the HPA controller must be allowed: get and list external metrics.
std::vector<auth::AccessRequest> hpaNeeds();
// Every permission xmetrics uses, given what its status says it runs (CRD mode, leader election).
std::vector<Need> xmetricsNeeds(const Evidence& e);
auth::UserInfo serviceAccountUser(const std::string& ns, const std::string& name);
inline constexpr std::string_view kHpaUser =
    "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
Check checkHpaRbac(const Evidence& e);
Check checkXmetricsRbac(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// Leader election (leader_checks.cpp)

// The Lease the server says it elects with (namespace, name); older servers do not say: the
// contract's default in --namespace.
std::pair<std::string, std::string> leaseOf(const std::optional<core::StatusReport>& status,
                                            const std::string& ns);
// `leader` is the status report's (null on servers without it: a single replica, OK); `lease` the
// coordination.k8s.io/v1 Lease (null when it does not exist).
Finding classifyLeader(const core::StatusReport::Leader* leader, const boost::json::object* lease,
                       const std::string& leaseName, core::Clock::time_point now);
Check checkLeader(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// Backends (backend_checks.cpp)

// 401/403 → invalid-keys; 429 or a spent budget → rate-limited; unreachable → backend-unreachable.
Finding classifyBackend(const StatusBackend& backend);
std::vector<Check> checkBackends(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// Resolution: DatadogMetric and autogen (resolution_checks.cpp)

// A valid metric is OK; otherwise the error names the mode: datadogmetric-missing,
// datadogmetric-invalid, stale-value, no-series (refined by probes into metric-missing or
// tag-typo), no-data, invalid-keys, rate-limited, rejected-query, metric-error.
Finding classifyMetric(const StatusMetric& metric);
// The resolution of a metric in words: "inline", "autogen xmetrics/dcaautogen-…",
// "DatadogMetric shop/x (rule 2: named like the metric)".
std::string describeResolution(const StatusMetric& metric);
// A no-series metric refined by probes through the external metrics API: the same metric with no
// selector, and with each selector requirement alone.
Finding classifyNoSeries(const std::string& metricName, bool metricHasData,
                         const std::string& metricMessage, const std::vector<TagProbe>& probes);
// Autogen shadowing (CRD mode): an autogen DatadogMetric and a manual one for the same metric.
// `objects` is every DatadogMetric (Kubernetes JSON). One finding per shadowed autogen object
// (WARN, the manual object serves), and one per metric an autogen object serves although a manual
// object names the same metric but cannot take over.
std::vector<Finding> findAutogenShadowing(const std::vector<StatusMetric>& metrics,
                                          const std::vector<boost::json::object>& objects);
std::vector<Check> checkAutogen(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// Each HPA's External metrics and the HPA's arithmetic (hpa_checks.cpp)

// The arithmetic itself is core's (core/hpa_math.hpp): the status page shows it too.
using core::explainHpa;
using core::HpaMath;
using core::HpaMathInput;
using core::kHpaTolerance;
using core::TargetType;

// What the status entry (or, without one, the API's answer) says of one HPA metric, before any
// probe refines it. The gatherer asks it too, to know which probes to make.
Finding classifyHpaMetric(const StatusMetric* entry, const MetricRead& read,
                          const std::string& metricName);
// Whether a no-series finding is refined by probes (not for a DatadogMetric's own query).
bool needsProbes(const StatusMetric* entry, const Finding& finding);
std::vector<Check> checkHpas(const Evidence& e);

// ---------------------------------------------------------------------------------------------
// Moving from the Datadog Cluster Agent (migration_checks.cpp)

// migration-settings: the backend and why, values changed to be accepted, DD_* variables that do
// not apply or are unknown. migration-apiservice: the APIService still belongs to another Helm
// release (its uninstall deletes it). migration-cluster-agent: a Cluster Agent still runs its
// external metrics provider. migration-crd: the DatadogMetric CRD goes with another release's
// uninstall, and every DatadogMetric with it.
std::vector<Check> checkMigration(const Evidence& e);

}  // namespace xmetrics::doctor

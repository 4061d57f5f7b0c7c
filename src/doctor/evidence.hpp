#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "auth/authorizer.hpp"
#include "core/label_selector.hpp"
#include "core/status_report.hpp"
#include "doctor/doctor.hpp"
#include "kube/kube_client.hpp"
#include "kube/kube_config.hpp"

// Everything doctor learns from the cluster and from xmetrics, gathered before any verdict: the
// checks in checks.hpp read this and nothing else, so each is a function of fixtures in tests.
namespace xmetrics::doctor {

inline constexpr std::string_view kApiServiceName = "v1beta1.external.metrics.k8s.io";
inline constexpr std::string_view kExternalPrefix = "/apis/external.metrics.k8s.io/v1beta1";
inline constexpr std::string_view kLeaseName = "xmetrics-leader";

// The external metric as the HPA asks for it, through kube-apiserver.
struct MetricRead {
  long status = 0;  // HTTP status; 0 transport error
  std::string message;
  std::optional<double> value;  // the sum of the items, when 200 with items
  std::size_t items = 0;
};

// A permission xmetrics needs, and why.
struct Need {
  auth::AccessRequest request;
  std::string why;
};

// The answers of SubjectAccessReviews in the order asked; the walk stops at the first that fails.
using Reviews = std::vector<std::expected<auth::AccessDecision, std::string>>;

// A selector requirement alone, probed through the external metrics API.
struct TagProbe {
  std::string requirement;  // "app=web"
  bool hasData = false;
  std::string message;  // the answer when not
};

// One External metric of one HPA, with the reads made for it.
struct HpaMetricEvidence {
  std::string ns, hpaName;
  std::string name;                                      // as the HPA writes it
  std::string metricName;                                // lowercased, as the HPA asks for it
  std::expected<std::string, std::string> selectorText;  // the metric.selector as text
  std::expected<core::LabelSelector, core::SelectorError> selector;
  std::optional<boost::json::object> target;  // spec.metrics[].external.target
  int minReplicas = 1, maxReplicas = 1, currentReplicas = 0, desiredReplicas = 0;
  std::string scalingActive;  // "reason: message" when the HPA's ScalingActive is not True
  MetricRead read;            // with the HPA's selector
  // A no-series answer refined by probes: the metric without a selector, and each requirement
  // alone. Empty when no refinement was needed.
  std::optional<MetricRead> whole;
  std::vector<TagProbe> probes;
  // The DatadogMetric object named by a missing or invalid resolution, when one is named.
  std::string datadogMetricId;
  std::optional<kube::KubeResult<boost::json::value>> datadogMetric;
};

// A read that was never made holds an error with status 0; an optional<> read is one that is made
// only when an earlier answer calls for it.
struct Evidence {
  Options options;
  core::Clock::time_point now;  // when the gathering ended: certificates and Leases are judged then

  // The APIService and what it says.
  kube::KubeResult<boost::json::value> apiService = std::unexpected(kube::KubeError{});
  std::string serviceNs, serviceName;  // what it points at (else what --service expects)
  int servicePort = 443;
  bool hasServiceRef = false;  // spec.service is set
  std::string caBundle;        // decoded PEM
  bool insecureSkipTlsVerify = false;
  bool apiServiceAvailable = false;
  std::string availableReason, availableMessage;

  // The Service it points at (not read without an APIService to follow).
  std::optional<kube::KubeResult<boost::json::value>> service;
  // Its EndpointSlices (read for a Service that is not ExternalName).
  std::optional<kube::KubeResult<boost::json::value>> endpointSlices;

  // Reaching xmetrics: where it should answer as the aggregator dials (or --server), where it did.
  std::vector<std::string> candidates;
  std::string address;             // the candidate that answered; empty when none
  std::vector<std::string> chain;  // the certificate chain it presented, leaf first
  std::string reachError;          // every failed attempt, "; "-separated
  std::optional<core::StatusReport> status;
  std::string statusError;  // why there is no status
  std::string statusNote;   // how it was read, when unusually
  std::string readyz;       // the /readyz answer
  bool ready = false;

  kube::KubeResult<boost::json::value> discovery = std::unexpected(kube::KubeError{});

  Reviews hpaReviews;  // the HPA controller: get, list external metrics
  // Who xmetrics runs as, and how that was found; name empty when it could not be told.
  std::string identityNs, identityName, identitySource;
  std::vector<Need> xmetricsNeeds;
  Reviews xmetricsReviews;

  std::string leaseNs, leaseName;
  kube::KubeResult<boost::json::value> lease = std::unexpected(kube::KubeError{});

  kube::KubeResult<boost::json::value> hpas = std::unexpected(kube::KubeError{});
  std::vector<HpaMetricEvidence> hpaMetrics;

  // CRD mode only.
  std::optional<kube::KubeResult<boost::json::value>> datadogMetrics;

  // Leftovers of a Cluster Agent install (migration_checks.cpp): the DatadogMetric CRD, and the
  // Deployments labelled as a Datadog Cluster Agent in any namespace.
  kube::KubeResult<boost::json::value> datadogMetricCrd = std::unexpected(kube::KubeError{});
  kube::KubeResult<boost::json::value> clusterAgents = std::unexpected(kube::KubeError{});
};

// The walk's I/O, in the order the checks report. `cluster` must reach kube-apiserver.
Evidence gatherEvidence(const Options& options, const kube::KubeConfig& cluster);

// Where xmetrics answers for the cluster (the APIService's Service, as the aggregator dials it, or
// options.server) and how to ask it: the cluster's credentials (or options' own) and its
// certificate checked against the APIService's caBundle. What `xmetrics status` and flare use when
// they are given a cluster's kubeconfig instead of xmetrics' own.
std::expected<client::Endpoint, std::string> locateXmetrics(const Options& options,
                                                            const kube::KubeConfig& cluster);

// Parts of it (gather_hpas.cpp): one external metric as the HPA reads it, and every HPA's External
// metrics with the reads each needs (after e.status, which says how each resolved).
MetricRead readExternalMetric(kube::KubeClient& kube, const std::string& ns,
                              const std::string& metric, const std::string& selector);
void gatherHpas(kube::KubeClient& kube, Evidence& e);

}  // namespace xmetrics::doctor

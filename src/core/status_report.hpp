#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// The report at /xmetrics/v1/status: one type for the server that writes it and the commands that
// read it back (status, doctor, flare), so a key renamed on one side cannot silently read as
// absent on the other. toJson() writes exactly the JSON the server has always served (same keys,
// types and order); parseStatusReport() reads it, and reports from older servers that lack a
// section (`backends`, `leader`, `kubernetes`, ...) parse with that section absent.
namespace xmetrics::core {

struct StatusReport {
  // One served metric (`metrics[]`), sorted by name, selector, namespace.
  struct Metric {
    // The last value fetched; absent before the first successful fetch.
    struct Sample {
      std::string value;       // as a Kubernetes quantity, e.g. "824" or "1500m"
      double valueNumber = 0;  // the same as a number
      std::string unit;        // e.g. "per second"; empty (and left out) when unknown
      std::string timestamp;   // RFC 3339, when the data point was taken
      int64_t ageSeconds = 0;  // seconds between the data point and the report's time
    };
    std::string ns;  // "namespace": the namespace the HPA asked in
    std::string metricName;
    std::string selector;       // canonical label selector, "" for none
    std::string query;          // the backend query it resolved to, "" when unresolved
    std::string resolution;     // "inline", "autogen xmetrics/dcaautogen-…", "datadogmetric …"
    std::string backend;        // the backend that answers the query
    std::string datadogMetric;  // "ns/name" of the DatadogMetric object; "" (left out) when none
    std::vector<std::string> references;  // the HPAs that use it, "ns/name"
    std::optional<Sample> sample;
    bool valid = false;     // a value no older than max-age
    bool inGrace = false;   // not valid, but within query-validity-period: still served
    std::string error;      // why it is not valid; written only when !valid
    std::string lastFetch;  // RFC 3339
    int64_t lastFetchAgeSeconds = 0;
  };

  struct Backend {
    std::string name;
    bool reachable = true;  // a report that does not say reads as reachable: no sign of failure
    std::string lastError;
    int64_t calls = 0;
    // Backend-specific facts (the Datadog rate-limit budget), in the backend's order; the object
    // is left out when there are none.
    std::vector<std::pair<std::string, std::string>> details;
    // The budget each endpoint last announced (`rateLimits`), and remote calls by how they ended
    // (`callsByOutcome`: ok, rejected, rate_limited, timeout, error); each left out when empty (an
    // in-process backend has neither).
    struct RateLimit {
      std::string endpoint;
      int64_t limit = 0;         // calls per period
      int64_t remaining = 0;     // calls left in it
      int64_t resetSeconds = 0;  // until it ends
    };
    std::vector<RateLimit> rateLimits;
    std::vector<std::pair<std::string, int64_t>> callsByOutcome;
    // Its last full refresh (`lastRefresh`, left out before one): metrics refreshed and the
    // distinct queries that took, so metrics per query is how much coalescing saved.
    std::optional<std::pair<int64_t, int64_t>> lastRefresh;  // {metrics, queries}
  };

  struct Poller {
    int64_t refreshPeriodSeconds = 0;
    int64_t maxAgeSeconds = 0;
    int64_t cycles = 0;
    std::string lastCycle;  // RFC 3339 start of the last refresh cycle
    int64_t lastCycleDurationMicroseconds = 0;
    int64_t queries = 0;
    int64_t backendCalls = 0;
    int64_t firstFetches = 0;
    bool following = false;  // a follower mirroring the leader's values
    int64_t followExchanges = 0;
    std::string followError;
    std::string lastFollow;  // RFC 3339; "" when it never followed
  };

  // The embedded time-series store.
  struct Embedded {
    int64_t series = 0;
    int64_t points = 0;
    int64_t refusedSeries = 0;
    int64_t approxBytes = 0;
  };

  struct Dogstatsd {
    std::string address;  // host:port it listens on
    int64_t packets = 0;
    int64_t metrics = 0;
    int64_t malformed = 0;
    int64_t skipped = 0;
    int64_t dropped = 0;
  };

  // One informer (list + watch) of the cluster link.
  struct Watch {
    bool synced = false;
    int64_t objects = 0;
    int64_t lists = 0;
    int64_t watchRestarts = 0;
    int64_t events = 0;
    std::string lastError;
  };

  struct DatadogMetricController {
    int64_t statusWrites = 0;
    int64_t statusWriteErrors = 0;
    int64_t autogenCreated = 0;
    int64_t autogenDeleted = 0;
    std::string lastError;
  };

  // Present in cluster mode only. A watch or the controller that does not run is written as {}
  // (nullopt here): the DatadogMetric ones run only with the CRD, so their presence is CRD mode.
  struct Kubernetes {
    // The APIService as the aggregator last judged it: its Available condition, read every 30 s.
    struct ApiService {
      std::string name;       // v1beta1.external.metrics.k8s.io
      std::string available;  // the condition's status: "True", "False", "Unknown"; "" unread
      std::string reason, message;
      std::string checked;  // RFC 3339, when it was read
      std::string error;    // why it could not be read; empty when it was
    };
    std::string server;  // kube-apiserver's URL
    bool authenticationLoaded = false;
    std::optional<Watch> hpaWatch;
    std::optional<Watch> authenticationWatch;
    std::optional<Watch> datadogMetricWatch;
    std::optional<DatadogMetricController> datadogMetricController;
    std::optional<ApiService> apiService;  // "apiService", left out by servers that do not read it
  };

  struct Leader {
    // Written only while an elector runs (--leader-election in a cluster).
    struct Election {
      std::string identity;
      std::string holder;
      std::string peerUrl;
      std::string lease;  // "namespace/name"
      int64_t leaseDurationSeconds = 0;
      int64_t takeovers = 0;
      std::string lastError;
    };
    bool enabled = false;
    bool isLeader = true;
    std::optional<Election> election;
  };

  // How the server was configured, as far as a migrating user must see it: which backend serves
  // and why, the values it changed to accept them, and what became of each DD_* variable.
  struct Configuration {
    struct Note {
      std::string variable, level, text;  // level "info" | "warn"
    };
    std::string backend;
    std::string backendReason;
    std::vector<std::string> warnings;
    std::vector<Note> environment;
  };

  // An autoscaling/v2 HPA with External metrics, as the cluster last showed it (cluster mode only):
  // what the status page puts beside the metrics it names, with the HPA's arithmetic.
  struct Hpa {
    struct Metric {
      std::string name;
      std::string selector;    // canonical label selector, as the metric's entry has it
      std::string targetType;  // "Value" | "AverageValue"
      std::string target;      // the target quantity as written, e.g. "9"
      std::string current;     // the HPA's status.currentMetrics value; "" before it read one
    };
    std::string ns, name;
    std::string scaleTarget;  // "Deployment/web"
    int64_t minReplicas = 1, maxReplicas = 1, currentReplicas = 0, desiredReplicas = 0;
    std::vector<Metric> metrics;  // its External metrics only
  };

  // xmetrics' doctor run on itself in cluster mode (the self-check): its counts, and the checks
  // that were not OK. What the status page's header shows and links to.
  struct SelfCheck {
    struct Finding {
      std::string name, subject, verdict, summary, fix;
    };
    std::string ran;  // RFC 3339, when it finished
    int64_t ok = 0, warn = 0, fail = 0;
    int64_t tookMilliseconds = 0;
    std::string error;  // why it could not run; empty when it did
    std::vector<Finding> findings;
  };

  std::string time;  // RFC 3339, when the report was made
  std::vector<Metric> metrics;
  Backend backend;                // the default backend
  std::vector<Backend> backends;  // every running backend, the default first
  bool hasBackends = true;        // false for older servers that wrote only "backend"
  Poller poller;
  std::optional<Embedded> embedded;
  std::optional<Dogstatsd> dogstatsd;
  std::optional<Kubernetes> kubernetes;
  std::optional<Leader> leader;
  std::optional<Configuration> configuration;
  std::vector<Hpa> hpas;               // "hpas", left out when empty
  std::optional<SelfCheck> selfCheck;  // "selfCheck", cluster mode once it ran
  // Top-level keys this type does not know (a newer server), written back last, in order.
  boost::json::object unknown;

  // Every running backend: `backends`, or the one `backend` of older servers.
  std::vector<Backend> allBackends() const;
  // The entry for one metric as the HPA asks for it; nullptr when the server holds none.
  const Metric* findMetric(const std::string& ns, const std::string& metricName,
                           const std::string& selector) const;
  // Whether xmetrics watches DatadogMetric objects (the CRD is installed and used).
  bool crdMode() const;
  // The HPA "ns/name" (as in a metric's references, without "hpa:"); nullptr when not listed.
  const Hpa* findHpa(std::string_view nsName) const;
};

boost::json::object toJson(const StatusReport::Metric& metric);
boost::json::object toJson(const StatusReport::Backend& backend);
boost::json::object toJson(const StatusReport& report);
boost::json::array toJson(const std::vector<StatusReport::Hpa>& hpas);
boost::json::object apiServiceJson(const StatusReport::Kubernetes::ApiService& a);
boost::json::object toJson(const StatusReport::SelfCheck& s);
// A self-check from doctor's JSON report (renderJson) and when it ran.
StatusReport::SelfCheck selfCheckFromDoctor(const boost::json::object& report, std::string ran,
                                            int64_t tookMilliseconds);

// A metric entry alone (what doctor's classifiers read). Fails when it is not an object.
std::expected<StatusReport::Metric, std::string> parseStatusMetric(const boost::json::value& json);
std::expected<StatusReport::Backend, std::string> parseStatusBackend(
    const boost::json::value& json);
// Fails only when `json` is not an object: a field that is missing or of another type reads as
// empty, zero or absent, as every reader of the report always has.
std::expected<StatusReport, std::string> parseStatusReport(const boost::json::value& json);

}  // namespace xmetrics::core

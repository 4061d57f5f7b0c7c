#pragma once

// server/: HTTPS (sessions, deadlines, TLS), the route table, the handlers and health. Reads only
// store/ snapshots; reaches demand through metric_demand.hpp. May include core/, auth/, store/,
// replication/ (the codec), telemetry/, ui/ (the status page) and catalog/datadog_metric.hpp —
// never poller/ or backends/ (scripts/check-layering enforces it).

#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>

#include "auth/authenticator.hpp"
#include "auth/authorizer.hpp"
#include "core/status_report.hpp"
#include "server/https_server.hpp"
#include "server/metric_demand.hpp"
#include "server/metrics_endpoint.hpp"
#include "server/router.hpp"
#include "store/value_store.hpp"
#include "telemetry/exposition.hpp"
#include "telemetry/http_request_metrics.hpp"
#include "ui/value_history.hpp"

namespace xmetrics::server {

struct ApiHandlerOptions {
  std::chrono::seconds maxAge{120};
  std::chrono::seconds firstFetchTimeout{5};
  std::chrono::seconds refreshPeriod{30};
  std::size_t discoveryLimit = 100;  // metric names listed in the APIResourceList at most
  // Beyond the poller: what else must be in place before serving (e.g. the cluster's authentication
  // settings were read). Returns why not, or empty when ready.
  std::function<std::string()> notReadyReason;
  // High availability: only the leader answers followers' /xmetrics/v1/replicate. Empty: always.
  std::function<bool()> isLeader;
  // High availability: a follower's exchange names where it receives DogStatsD; this returns
  // every replica's address for the answer (ingest relays between them). Empty: none.
  std::function<std::vector<std::string>(const std::string& followerDogstatsd)> dogstatsdPeers;
  // /xmetrics/v1/config (effective settings, secrets redacted) and /xmetrics/v1/logs (recent
  // lines): what `xmetrics flare` collects. Empty: 404.
  std::function<boost::json::value()> configReport;
  std::function<std::vector<std::string>()> recentLogs;
  // The status report's `configuration` section; absent when not given.
  std::optional<core::StatusReport::Configuration> configuration;
  // Families /metrics adds to the handler's own (requests, values, poller, backend).
  telemetry::MetricsSource extraMetrics;
  // The status page: the history it draws from (null: none), how often that samples, and what its
  // header says of the process.
  const ui::ValueHistory* history = nullptr;
  std::chrono::milliseconds historyInterval{0};
  std::string versionText;
  core::Clock::time_point startedAt = core::Clock::now();
};

// Routes every request (server/router.hpp). Reads only the published snapshots (values, the
// poller's status and the backends' health); never calls a backend. A metric with no value yet
// goes through MetricDemand. Paths:
//   /healthz /livez /readyz                              open, no authentication
//   /apis, /apis/external.metrics.k8s.io[/v1beta1]       discovery
//   /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...
//   /openapi/v2, /openapi/v3                             documents without paths
//   /xmetrics/v1/status                                  what `xmetrics status` prints
//   /xmetrics/v1/ui                                      the same as an HTML page (ui/page.hpp)
//   /metrics                                             self-metrics, Prometheus text format
class ApiHandler final : public RequestHandler {
 public:
  // What /readyz says, minus liveness: the first refresh is done and the cluster link is in
  // place. (--take-over-apiservice waits for it.)
  bool ready() const;
  using ExtraStatus = std::function<boost::json::object()>;
  ApiHandler(ApiHandlerOptions options, auth::Authenticator& authenticator,
             auth::Authorizer& authorizer, store::ValueStore& values, MetricDemand& demand,
             ExtraStatus extraStatus = {});
  ~ApiHandler() override;

  // RequestHandler
  void handle(const HttpRequest& request, const PeerCertificate& peer,
              ResponseSlotPtr slot) override;
  void responded(const HttpRequest& request, unsigned status,
                 std::chrono::steady_clock::duration elapsed) override;

  // Stops taking review work (later requests needing a TokenReview/SubjectAccessReview get 503) and
  // waits for the queued reviews to answer. Call while the server still runs, before stopping it.
  void shutdown();

  // The JSON behind /xmetrics/v1/status.
  boost::json::object statusReport() const;
  // The same report as its type, with the process's sections: what the status page renders.
  core::StatusReport fullStatus(core::Clock::time_point now) const;
  // The text behind /metrics (metrics_endpoint.cpp).
  std::string metricsExposition() const;
  const telemetry::HttpRequestMetrics& requestMetrics() const { return requests_; }

 private:
  struct Parsed;  // what routing needs of a request, copyable into continuations
  void authorized(std::shared_ptr<const Parsed> request, const auth::UserInfo& user,
                  ResponseSlotPtr slot);
  void route(const Parsed& request, const std::string& user, ResponseSlotPtr slot);
  static RouteMatch routeOf(const Parsed& request);
  HttpResponse health(std::string_view path, unsigned version) const;
  // The request path's part of the report (metrics, backends, poller, configuration).
  core::StatusReport statusData(core::Clock::time_point now) const;
  // /xmetrics/v1/ui: the HTML status page for the query string's filters and page.
  HttpResponse statusPage(const std::string& query, unsigned version) const;
  bool readyExceptLiveness(const std::string& notReady) const;
  HttpResponse discovery(std::string_view path, unsigned version) const;
  HttpResponse metricsResponse(unsigned version) const;
  // `user`: who asks (the authenticated name), for its share of directly requested metrics.
  void externalMetric(std::string_view ns, std::string_view metric, std::string_view selectorText,
                      const std::string& user, unsigned version, ResponseSlotPtr slot);
  HttpResponse replicate(const std::string& body, unsigned version);
  HttpResponse answer(const std::string& key, std::string_view ns, std::string_view metric,
                      std::string_view selector, unsigned version) const;

  ApiHandlerOptions options_;
  auth::Authenticator& authenticator_;
  auth::Authorizer& authorizer_;
  store::ValueStore& values_;
  MetricDemand& demand_;
  ExtraStatus extraStatus_;
  telemetry::HttpRequestMetrics requests_{requestPathClasses()};
  // TokenReview and SubjectAccessReview calls block on the network: they run here, never on the
  // server threads.
  boost::asio::thread_pool reviews_{2};
  std::mutex reviewsMutex_;
  bool shuttingDown_ = false;
  // Queues a review; false once shutdown() began.
  bool postReview(std::function<void()> task);
};

}  // namespace xmetrics::server

#include "server/api_handler.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <set>

#include "catalog/datadog_metric.hpp"
#include "core/quantity.hpp"
#include "core/status_report.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"
#include "replication/value_replication.hpp"
#include "server/status_error.hpp"
#include "ui/page.hpp"

namespace xmetrics::server {
namespace {

namespace http = boost::beast::http;
constexpr std::string_view kGroup = "external.metrics.k8s.io";
constexpr std::string_view kGroupVersion = "external.metrics.k8s.io/v1beta1";

int64_t ageSeconds(core::Clock::time_point now, core::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(now - t).count();
}

std::string describe(std::string_view ns, std::string_view metric, std::string_view selector) {
  std::string s = "external metric \"" + std::string(metric) + "\"";
  if (!selector.empty()) s += " with selector \"" + std::string(selector) + "\"";
  s += " in namespace \"" + std::string(ns) + "\"";
  return s;
}

boost::json::object groupVersionFor() {
  return {{"groupVersion", kGroupVersion}, {"version", "v1beta1"}};
}

boost::json::object apiGroup() {
  return {{"name", kGroup},
          {"versions", boost::json::array{groupVersionFor()}},
          {"preferredVersion", groupVersionFor()}};
}

}  // namespace

struct ApiHandler::Parsed {
  unsigned version = 11;
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string methodText;
  std::string path;
  std::vector<std::string> parts;  // decoded path segments
  std::string selector;            // labelSelector, decoded
  std::string query;               // the query string as sent (the status page's filters)
  std::string body;                // POST /xmetrics/v1/replicate only
};

RouteMatch ApiHandler::routeOf(const Parsed& request) {
  // The match's views point into request.parts, which outlive it.
  std::vector<std::string_view> segments(request.parts.begin(), request.parts.end());
  return server::route(request.path, segments);
}

namespace {

// Beast headers seen through the auth interface, without copies.
class BeastHeaders final : public auth::RequestHeaders {
 public:
  explicit BeastHeaders(const HttpRequest& request) : request_(request) {}
  std::vector<std::string_view> values(std::string_view name) const override {
    std::vector<std::string_view> out;
    auto [begin, end] = request_.equal_range(name);
    for (auto it = begin; it != end; ++it) out.push_back(it->value());
    return out;
  }
  void forEach(const std::function<void(std::string_view, std::string_view)>& fn) const override {
    for (const auto& field : request_) fn(field.name_string(), field.value());
  }

 private:
  const HttpRequest& request_;
};

// Datadog metric names are letters, digits, '_' and '.'; ':' (Prometheus recording rules), '@' and
// '-' (datadogmetric@ns:name) are let through. Anything else — ',' '{' '(' spaces, control
// characters — would change the meaning of the query the name is spliced into.
bool isValidMetricName(std::string_view name) {
  if (name.empty() || name.size() > 250 || !std::isalpha(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::ranges::all_of(name, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
           c == '@' || c == '-';
  });
}

// Bounds of a request's label selector: every metric registered keeps its selector, so a caller
// inventing huge ones would make the catalog, the status and each refresh grow without end.
constexpr std::size_t kMaxSelectorBytes = 4096;
constexpr std::size_t kMaxSelectorRequirements = 64;

// A DNS-1123 label, as Kubernetes validates a namespace: `..`, `%00` or bytes that are not ASCII
// never reach the catalog, the status or a log line.
bool isValidNamespace(std::string_view ns) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return !ns.empty() && ns.size() <= 63 && alnum(ns.front()) && alnum(ns.back()) &&
         std::ranges::all_of(ns, [&](char c) { return alnum(c) || c == '-'; });
}

// For messages: control characters and non-ASCII bytes escaped, at most 100 characters.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 100)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  if (text.size() > 100) out += "...";
  return out;
}

HttpResponse shuttingDownError(unsigned version) {
  return statusError(503, "ServiceUnavailable", "xmetrics is shutting down; retry", version);
}

// The attributes kube-apiserver's RequestInfo would give this request.
auth::AccessRequest accessRequestFor(const RouteMatch& match, const std::string& path,
                                     std::string_view method) {
  auth::AccessRequest r;
  std::string verb = core::lowercase(method);
  if (match.route == Route::kExternalMetric) {
    r.resourceRequest = true;
    r.verb = verb == "get" ? "list" : verb;  // a GET on a collection
    r.group = std::string(kGroup);
    r.version = "v1beta1";
    r.namespace_ = std::string(match.ns);
    r.resource = std::string(match.metric);
    return r;
  }
  r.verb = verb;
  r.path = path;
  return r;
}

}  // namespace

ApiHandler::ApiHandler(ApiHandlerOptions options, auth::Authenticator& authenticator,
                       auth::Authorizer& authorizer, store::ValueStore& values,
                       MetricDemand& demand, ExtraStatus extraStatus)
    : options_(options),
      authenticator_(authenticator),
      authorizer_(authorizer),
      values_(values),
      demand_(demand),
      extraStatus_(std::move(extraStatus)) {}

ApiHandler::~ApiHandler() { shutdown(); }

void ApiHandler::shutdown() {
  {
    std::lock_guard lock(reviewsMutex_);
    if (shuttingDown_) return;
    shuttingDown_ = true;
  }
  reviews_.join();
}

bool ApiHandler::postReview(std::function<void()> task) {
  std::lock_guard lock(reviewsMutex_);
  if (shuttingDown_) return false;
  boost::asio::post(reviews_, std::move(task));
  return true;
}

void ApiHandler::handle(const HttpRequest& request, const PeerCertificate& peer,
                        ResponseSlotPtr slot) {
  auto parsed = std::make_shared<Parsed>();
  parsed->version = request.version();
  parsed->method = request.method();
  parsed->methodText = std::string(request.method_string());
  if (request.method() == http::verb::post) parsed->body = request.body();
  auto target = parseRequestTarget(request.target());
  if (!target)
    return slot->respond(statusError(400, "BadRequest", target.error(), parsed->version));
  parsed->path = std::move(target->path);
  parsed->parts = std::move(target->parts);
  parsed->selector = std::move(target->selector);
  parsed->query = std::move(target->query);

  if (routeOf(*parsed).route == Route::kHealth) {
    return slot->respond(health(parsed->path, parsed->version));
  }

  auto local = authenticator_.authenticateLocally(peer, BeastHeaders(request));
  if (local.user) return authorized(parsed, *local.user, std::move(slot));
  if (local.tokenToReview.empty()) {
    spdlog::debug("component=server event=unauthorized path={} reason=\"{}\"", parsed->path,
                  local.error);
    return slot->respond(
        statusError(401, "Unauthorized", "Unauthorized: " + local.error, parsed->version));
  }
  auto reviewed = [this, parsed](const std::expected<auth::UserInfo, std::string>& user,
                                 ResponseSlotPtr slot) {
    if (!user) {
      return slot->respond(
          statusError(401, "Unauthorized", "Unauthorized: " + user.error(), parsed->version));
    }
    authorized(parsed, *user, std::move(slot));
  };
  // A token reviewed in the last ~10 s is answered here; only a miss waits for the cluster.
  if (auto cached = authenticator_.cachedTokenReview(local.tokenToReview)) {
    return reviewed(*cached, std::move(slot));
  }
  bool queued = postReview([this, slot, reviewed, token = std::move(local.tokenToReview)] {
    reviewed(authenticator_.reviewToken(token), slot);
  });
  if (!queued) slot->respond(shuttingDownError(parsed->version));
}

void ApiHandler::authorized(std::shared_ptr<const Parsed> request, const auth::UserInfo& user,
                            ResponseSlotPtr slot) {
  // Replication hands out every value and takes demand that spends the backends' budget: only
  // the replicas themselves, by the client certificate of xmetrics' own CA, whatever RBAC says.
  if (routeOf(*request).route == Route::kReplicate && user.method != "x509-replica") {
    return slot->respond(statusError(
        403, "Forbidden",
        "forbidden: user \"" + user.name + "\" (" + user.method +
            ") cannot use /xmetrics/v1/replicate: only xmetrics' replicas may, with the client "
            "certificate of xmetrics' own CA (client-admin.crt of the serving-cert Secret)",
        request->version));
  }
  auto access = accessRequestFor(routeOf(*request), request->path, request->methodText);
  auto decide = [this, request, slot, user, access](const auth::AccessDecision& decision) {
    if (decision.allowed) return route(*request, user.name, slot);
    std::string message = "forbidden: user \"" + user.name + "\" cannot " + access.describe();
    if (!decision.reason.empty()) message += ": " + decision.reason;
    slot->respond(statusError(403, "Forbidden", message, request->version));
  };
  if (auto local = authorizer_.decideLocally(user, access)) return decide(*local);
  bool queued =
      postReview([this, user, access, decide] { decide(authorizer_.review(user, access)); });
  if (!queued) slot->respond(shuttingDownError(request->version));
}

void ApiHandler::route(const Parsed& request, const std::string& user, ResponseSlotPtr slot) {
  const unsigned version = request.version;
  const std::string& path = request.path;
  auto match = routeOf(request);
  if (match.route == Route::kReplicate && request.method == http::verb::post) {
    return slot->respond(replicate(request.body, version));
  }
  if (request.method != http::verb::get && request.method != http::verb::head) {
    auto response = statusError(405, "MethodNotAllowed",
                                request.methodText + " is not supported on " + path +
                                    ": the external metrics API is read-only (GET)",
                                version);
    response.set(http::field::allow, "GET");
    return slot->respond(std::move(response));
  }
  switch (match.route) {
    // kube-apiserver's aggregator downloads both; a 404 is logged and retried with backoff, a 5xx
    // forever. Valid documents without paths end it: the external metrics types are not published
    // (kubectl explain does not cover them for any adapter).
    case Route::kOpenapiV2:
      return slot->respond(jsonResponse(
          200, R"({"swagger":"2.0","info":{"title":"xmetrics","version":"v1beta1"},"paths":{}})",
          version));
    case Route::kOpenapiV3:
      return slot->respond(jsonResponse(200, R"({"paths":{}})", version));
    case Route::kOpenapiOther:
      return slot->respond(statusError(
          404, "NotFound", "xmetrics publishes no OpenAPI document at " + path, version));
    case Route::kStatus: {
      std::string body = boost::json::serialize(statusReport());
      bool large = body.size() > (1u << 20);
      slot->respond(jsonResponse(200, std::move(body), version));
      // Over thousands of metrics the report's JSON tree is tens of MB of small blocks that glibc
      // would otherwise keep: hand them back, so one status call does not raise RSS for good.
      if (large) ::malloc_trim(0);
      return;
    }
    case Route::kUi:
      return slot->respond(statusPage(request.query, version));
    case Route::kConfig:
      if (!options_.configReport) break;
      return slot->respond(
          jsonResponse(200, boost::json::serialize(options_.configReport()), version));
    case Route::kLogs: {
      if (!options_.recentLogs) break;
      std::string text;
      for (const auto& line : options_.recentLogs()) {
        text += line;
        if (!line.ends_with('\n')) text += '\n';
      }
      HttpResponse response{http::status::ok, version};
      response.set(http::field::content_type, "text/plain; charset=utf-8");
      response.body() = std::move(text);
      response.prepare_payload();
      return slot->respond(std::move(response));
    }
    case Route::kMetrics:
      return slot->respond(metricsResponse(version));
    case Route::kExternalMetric:
      return externalMetric(match.ns, match.metric, request.selector, user, version,
                            std::move(slot));
    case Route::kDiscovery:
      return slot->respond(discovery(path, version));
    case Route::kUnknownInGroup:
      return slot->respond(statusError(
          404, "NotFound",
          "no such path " + path +
              ": external metrics are read at /apis/external.metrics.k8s.io/v1beta1/namespaces/"
              "{namespace}/{metric}?labelSelector=...",
          version));
    case Route::kHealth:     // answered before authentication
    case Route::kReplicate:  // GET: only POST replicates
    case Route::kOpenapiRoot:
    case Route::kNotFound:
      break;
  }
  slot->respond(statusError(404, "NotFound",
                            "the server could not find the requested resource " + path, version));
}

bool ApiHandler::readyExceptLiveness(const std::string& notReady) const {
  const auto& status = values_.status()->poller;
  // Readiness waits for the first complete refresh, so a fresh replica never serves "not fetched".
  // A follower is ready once it holds the leader's values.
  bool refreshed = status.cycles > 0 || status.lastFollow.time_since_epoch().count() != 0;
  return refreshed && notReady.empty();
}

bool ApiHandler::ready() const {
  return readyExceptLiveness(options_.notReadyReason ? options_.notReadyReason() : "");
}

HttpResponse ApiHandler::health(std::string_view path, unsigned version) const {
  const auto& status = values_.status()->poller;
  // Liveness follows the refresh loop: a poller that stopped ticking is a process to restart.
  auto now = std::chrono::steady_clock::now();
  auto liveLimit =
      std::max<std::chrono::seconds>(options_.refreshPeriod * 3, std::chrono::seconds(60));
  // A backend call in progress (a paced Datadog refresh spreads over the whole period) is work,
  // not a hang, for up to ten times the limit. Each backend's loop is judged on its own.
  std::string stuck;  // why the first loop found hanging is
  auto loopLive = [&](std::string_view backend, std::chrono::steady_clock::time_point lastTick,
                      std::optional<std::chrono::steady_clock::time_point> fetchingSince) {
    bool ok = fetchingSince ? now - *fetchingSince <= liveLimit * 10 : now - lastTick <= liveLimit;
    if (!ok && stuck.empty()) {
      auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                         now - (fetchingSince ? *fetchingSince : lastTick))
                         .count();
      stuck = "the poller" +
              (backend.empty() ? std::string() : " of backend " + std::string(backend)) +
              (fetchingSince ? " has been in one backend call for " : " has not ticked for ") +
              std::to_string(seconds) + "s";
    }
    return ok;
  };
  bool live = status.loops.empty()
                  ? loopLive("", status.lastTick, status.fetchingSince)
                  : std::ranges::all_of(status.loops, [&](const auto& loop) {
                      return loopLive(loop.backend, loop.lastTick, loop.fetchingSince);
                    });
  std::string notReady = options_.notReadyReason ? options_.notReadyReason() : "";
  bool ready = live && readyExceptLiveness(notReady);
  bool ok = path == "/readyz" ? ready : live;
  std::string check =
      path == "/readyz" ? "first refresh cycle complete and poller ticking" : "poller ticking";
  if (ok) {
    return jsonResponse(
        200,
        boost::json::serialize(boost::json::object{{"kind", "Status"},
                                                   {"apiVersion", "v1"},
                                                   {"metadata", boost::json::object{}},
                                                   {"status", "Success"},
                                                   {"message", "ok: " + check},
                                                   {"code", 200}}),
        version);
  }
  return statusError(
      503, "ServiceUnavailable",
      std::string(path) + " failed: " +
          (live ? (notReady.empty() ? "the first refresh cycle has not completed yet" : notReady)
                : stuck),
      version);
}

HttpResponse ApiHandler::discovery(std::string_view path, unsigned version) const {
  if (path == "/apis") {
    // Aggregated discovery (Accept ...;as=APIGroupDiscoveryList) gets this plain list too: clients
    // see application/json without `as=` and fall back to the per-version documents.
    boost::json::object list{
        {"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", boost::json::array{apiGroup()}}};
    return jsonResponse(200, boost::json::serialize(list), version);
  }
  if (path == "/apis/" + std::string(kGroup)) {
    auto group = apiGroup();
    group["kind"] = "APIGroup";
    group["apiVersion"] = "v1";
    return jsonResponse(200, boost::json::serialize(group), version);
  }
  // Bounded and never empty: listing every metric made peers slow and memory-hungry; an empty list
  // makes kubectl warn. HPAs never read this list.
  std::set<std::string> names;
  auto snapshot = values_.snapshot();
  snapshot->forEach([&](std::string_view, const store::MetricValuePtr& value) {
    if (names.size() < options_.discoveryLimit) names.insert(value->metric->metricName);
  });
  if (names.empty()) names.insert("externalmetrics");
  boost::json::array resources;
  for (const auto& name : names) {
    resources.push_back(boost::json::object{{"name", name},
                                            {"singularName", ""},
                                            {"namespaced", true},
                                            {"kind", "ExternalMetricValueList"},
                                            {"verbs", boost::json::array{"get"}}});
  }
  boost::json::object list{{"kind", "APIResourceList"},
                           {"apiVersion", "v1"},
                           {"groupVersion", kGroupVersion},
                           {"resources", std::move(resources)}};
  return jsonResponse(200, boost::json::serialize(list), version);
}

void ApiHandler::externalMetric(std::string_view ns, std::string_view metric,
                                std::string_view selectorText, const std::string& user,
                                unsigned version, ResponseSlotPtr slot) {
  if (!isValidNamespace(ns)) {
    return slot->respond(statusError(
        400, "BadRequest",
        "invalid namespace \"" + printable(ns) + "\" for external metric \"" + printable(metric) +
            "\": a namespace is a DNS label (at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit), as Kubernetes names them",
        version));
  }
  if (!isValidMetricName(metric)) {
    return slot->respond(statusError(
        400, "BadRequest",
        "invalid external metric name \"" + printable(metric) + "\" in namespace \"" +
            std::string(ns) +
            "\": a metric name starts with a letter and holds only letters, digits and . _ : @ - "
            "(at most 250 characters); fix the HPA's metric.name",
        version));
  }
  if (selectorText.size() > kMaxSelectorBytes) {
    return slot->respond(statusError(
        400, "BadRequest",
        "labelSelector for " + describe(ns, metric, "") + " is " +
            std::to_string(selectorText.size()) + " bytes; xmetrics takes at most " +
            std::to_string(kMaxSelectorBytes) +
            " (an HPA's metric selector names a few labels; Kubernetes label values are at most "
            "63 characters)",
        version));
  }
  auto selector = core::LabelSelector::parse(selectorText);
  if (selector && selector->requirements().size() > kMaxSelectorRequirements) {
    return slot->respond(statusError(400, "BadRequest",
                                     "labelSelector for " + describe(ns, metric, "") + " has " +
                                         std::to_string(selector->requirements().size()) +
                                         " requirements; xmetrics takes at "
                                         "most " +
                                         std::to_string(kMaxSelectorRequirements),
                                     version));
  }
  if (!selector) {
    return slot->respond(statusError(
        400, "BadRequest",
        "invalid labelSelector \"" + printable(selectorText) + "\" for " +
            describe(ns, metric, "") + " at position " + std::to_string(selector.error().position) +
            ": " + selector.error().message +
            " (grammar: k=v, k!=v, k in (a,b), k notin (a,b), k, !k, joined by commas)",
        version));
  }
  auto canonical = selector->canonical();
  auto key = core::metricKey(ns, metric, canonical);
  auto now = core::Clock::now();
  auto snapshot = values_.snapshot();
  if (auto value = snapshot->find(key)) {
    core::stampDemand(value->metric->demand, now);  // keeps it wanted, without a lock
    return slot->respond(answer(key, ns, metric, canonical, version));
  }

  // First request for this metric: register it and wait (bounded) for a synchronous first fetch, so
  // the very first answer is a value rather than "unknown".
  // The wait is owned by its deadline: the timer's handler keeps it alive, and the poller's
  // callback holds only a weak reference, so whichever of the two outlives the other (shutdown, a
  // slow backend) never touches a freed session or timer. Timer operations run on the slot's
  // executor (the session's strand), the only place they are safe.
  struct FirstFetchWait {
    boost::asio::steady_timer deadline;
    ResponseSlotPtr slot;
    std::string query;      // what the metric resolved to, for the timeout's message
    bool answered = false;  // the value came before the deadline was armed; strand only
  };
  auto wait = std::make_shared<FirstFetchWait>(
      FirstFetchWait{boost::asio::steady_timer(slot->executor()), slot, {}, false});
  std::weak_ptr<FirstFetchWait> weak = wait;
  std::string nsCopy(ns), metricCopy(metric);
  auto query = demand_.fetchFirst(
      ns, metric, *selector, now, user, [this, weak, key, nsCopy, metricCopy, canonical, version] {
        auto wait = weak.lock();
        if (!wait) return;  // already answered by the deadline, or the server is gone
        boost::asio::post(wait->deadline.get_executor(), [this, wait, key, nsCopy, metricCopy,
                                                          canonical, version] {
          wait->slot->respond(answer(key, nsCopy, metricCopy, canonical, version));
          wait->answered = true;
          wait->deadline.cancel();
        });
      });
  if (!query) {
    return slot->respond(statusError(
        429, "TooManyRequests",
        "cannot start polling " + describe(ns, metric, canonical) + ": " + query.error() +
            ", and every one of them has had a value (one that never had is dropped to make "
            "room); metrics named by HPAs are not limited",
        version));
  }
  wait->query = std::move(*query);
  boost::asio::dispatch(
      wait->deadline.get_executor(),
      [wait, nsCopy, metricCopy, canonical, version, timeout = options_.firstFetchTimeout] {
        if (wait->answered) return;  // a fast first fetch was posted ahead of this
        wait->deadline.expires_after(timeout);
        wait->deadline.async_wait(
            [wait, nsCopy, metricCopy, canonical, version, timeout](boost::system::error_code ec) {
              if (ec) return;  // cancelled: the value came first
              wait->slot->respond(statusError(
                  503, "ServiceUnavailable",
                  "the first fetch of " + describe(nsCopy, metricCopy, canonical) + " (query \"" +
                      wait->query + "\") did not finish within " + std::to_string(timeout.count()) +
                      "s; it goes on in the background, ask again shortly",
                  version));
            });
      });
}

HttpResponse ApiHandler::replicate(const std::string& body, unsigned version) {
  if (options_.isLeader && !options_.isLeader()) {
    return statusError(503, "ServiceUnavailable",
                       "this replica is not the leader; read the Lease for the current one",
                       version);
  }
  auto request = replication::decodeRequest(body);
  if (!request) return statusError(400, "BadRequest", "replicate: " + request.error(), version);
  auto now = core::Clock::now();
  auto snapshot = values_.snapshot();
  // What followers were asked for is wanted here too: registered (and fetched at once when new)
  // exactly as a request to this replica would be.
  for (const auto& d : request->demand) {
    // Forwarded demand obeys the bounds a direct request does.
    if (d.selector.size() > kMaxSelectorBytes || !isValidNamespace(d.ns)) continue;
    auto selector = core::LabelSelector::parse(d.selector);
    if (!selector || !isValidMetricName(d.metricName) ||
        selector->requirements().size() > kMaxSelectorRequirements) {
      continue;
    }
    demand_.want(d.ns, d.metricName, *selector, now);
  }
  auto peers = options_.dogstatsdPeers ? options_.dogstatsdPeers(request->dogstatsdAddress)
                                       : std::vector<std::string>{};
  return jsonResponse(200, replication::encodeSnapshot(*snapshot, request->generation, peers),
                      version);
}

HttpResponse ApiHandler::answer(const std::string& key, std::string_view ns,
                                std::string_view metric, std::string_view selector,
                                unsigned version) const {
  auto value = values_.snapshot()->find(key);
  if (!value) {
    return statusError(
        503, "ServiceUnavailable",
        describe(ns, metric, selector) + " has not been fetched yet; ask again shortly", version);
  }
  auto now = core::Clock::now();
  if (value->errorCode) {
    // The name resolved to no usable DatadogMetric: the error names the object and the fix.
    const char* reason = value->errorCode == 404   ? "NotFound"
                         : value->errorCode == 400 ? "BadRequest"
                                                   : "Invalid";
    return statusError(value->errorCode, reason,
                       "unable to get " + describe(ns, metric, selector) + ": " + value->error,
                       version);
  }
  std::string where =
      " (query \"" + value->metric->query + "\", backend " + value->metric->backend +
      (value->metric->object.empty() ? "" : ", DatadogMetric " + value->metric->object) + ")";
  if (!value->sample) {
    std::string hint = "; check that the metric name and tags match what is sent";
    // In CRD mode an object named like the metric would take over at once (rule 2).
    if (value->metric->resolution.starts_with("autogen") &&
        catalog::isObjectName(value->metric->metricName)) {
      hint += ", or create a DatadogMetric named \"" + value->metric->metricName +
              "\" in namespace \"" + value->metric->ns + "\" to serve it from that object's query";
    }
    return statusError(
        404, "NotFound",
        "unable to get " + describe(ns, metric, selector) + where + ": " + value->error + hint,
        version);
  }
  if (!store::isServable(*value, now)) {
    auto age = ageSeconds(now, value->sample->time);
    auto fetched = ageSeconds(now, value->lastSuccess);
    std::string cause = value->error.empty() ? "the backend has no newer point"
                                             : "last fetch failed: " + value->error;
    std::string howOld = age >= fetched || value->lastSuccess == core::Clock::time_point{}
                             ? "the newest data point is " + std::to_string(age) + "s old (" +
                                   core::rfc3339(value->sample->time) + ")"
                             : "the newest data point (" + core::rfc3339(value->sample->time) +
                                   ") was fetched " + std::to_string(fetched) + "s ago";
    return statusError(503, "ServiceUnavailable",
                       "stale value for " + describe(ns, metric, selector) + where + ": " + howOld +
                           ", older than max-age " + std::to_string(value->metric->maxAge.count()) +
                           "s" +
                           (value->metric->grace.count() > 0
                                ? " and its query-validity-period " +
                                      std::to_string(value->metric->grace.count()) + "s"
                                : "") +
                           "; " + cause,
                       version);
  }
  return jsonResponse(200, value->body ? *value->body : std::string(), version);
}

boost::json::object ApiHandler::statusReport() const {
  auto json = core::toJson(statusData(core::Clock::now()));
  // What the process adds beyond the request path (embedded store, DogStatsD, the cluster link,
  // leadership), in the same report.
  if (extraStatus_) {
    for (auto& [k, v] : extraStatus_()) json[k] = v;
  }
  return json;
}

core::StatusReport ApiHandler::fullStatus(core::Clock::time_point now) const {
  auto report = statusData(now);
  if (extraStatus_) {
    // The process's sections as the report's readers parse them: one type for both.
    if (auto extras = core::parseStatusReport(extraStatus_())) {
      report.embedded = std::move(extras->embedded);
      report.dogstatsd = std::move(extras->dogstatsd);
      report.kubernetes = std::move(extras->kubernetes);
      report.leader = std::move(extras->leader);
      report.hpas = std::move(extras->hpas);
      report.selfCheck = std::move(extras->selfCheck);
    }
  }
  return report;
}

HttpResponse ApiHandler::statusPage(const std::string& query, unsigned version) const {
  auto now = core::Clock::now();
  auto html = ui::renderPage(fullStatus(now), options_.history, ui::parsePageQuery(query),
                             {.version = options_.versionText,
                              .startedAt = options_.startedAt,
                              .now = now,
                              .historyInterval = options_.historyInterval});
  HttpResponse response{http::status::ok, version};
  response.set(http::field::content_type, "text/html; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  // Nothing but the page itself: its inline style and script, and reads of its own URL.
  response.set("Content-Security-Policy",
               "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'");
  response.set("X-Content-Type-Options", "nosniff");
  response.body() = std::move(html);
  response.prepare_payload();
  return response;
}

core::StatusReport ApiHandler::statusData(core::Clock::time_point now) const {
  auto snapshot = values_.snapshot();
  auto service = values_.status();
  const auto& poller = service->poller;
  core::StatusReport report;
  report.time = core::rfc3339(now);
  std::vector<store::MetricValuePtr> sorted;
  snapshot->forEach(
      [&](std::string_view, const store::MetricValuePtr& value) { sorted.push_back(value); });
  std::ranges::sort(sorted, [](const auto& a, const auto& b) {
    return std::tie(a->metric->metricName, a->metric->selector, a->metric->ns) <
           std::tie(b->metric->metricName, b->metric->selector, b->metric->ns);
  });
  report.metrics.reserve(sorted.size());
  for (const auto& v : sorted) {
    core::StatusReport::Metric m{.ns = v->metric->ns,
                                 .metricName = v->metric->metricName,
                                 .selector = v->metric->selector,
                                 .query = v->metric->query,
                                 .resolution = v->metric->resolution,
                                 .backend = v->metric->backend,
                                 .datadogMetric = v->metric->object};
    m.references = demand_.referencesOf(v->key());
    if (v->sample) {
      auto age = ageSeconds(now, v->sample->time);
      m.valid = store::isFresh(*v, now);
      m.inGrace = !m.valid && store::isServable(*v, now);
      m.sample = core::StatusReport::Metric::Sample{.value = core::formatQuantity(v->sample->value),
                                                    .valueNumber = v->sample->value,
                                                    .unit = v->sample->unit,
                                                    .timestamp = core::rfc3339(v->sample->time),
                                                    .ageSeconds = age};
    }
    if (!m.valid) {
      m.error = v->sample
                    ? (m.inGrace ? "in grace: older than max-age " +
                                       std::to_string(v->metric->maxAge.count()) +
                                       "s, still served for query-validity-period " +
                                       std::to_string(v->metric->grace.count()) + "s"
                       : v->error.empty() ? "stale: older than max-age " +
                                                std::to_string(v->metric->maxAge.count()) + "s"
                                          : v->error)
                    : v->error;
    }
    m.lastFetch = core::rfc3339(v->lastFetch);
    m.lastFetchAgeSeconds = ageSeconds(now, v->lastFetch);
    report.metrics.push_back(std::move(m));
  }
  // "backend" is the default one; "backends" every running one, the default first.
  for (const auto& b : service->backends) {
    report.backends.push_back({.name = b.name,
                               .reachable = b.health.reachable,
                               .lastError = b.health.lastError,
                               .calls = static_cast<int64_t>(b.health.calls),
                               .details = b.health.details});
    for (const auto& r : b.health.rateLimits) {
      report.backends.back().rateLimits.push_back({.endpoint = r.endpoint,
                                                   .limit = r.limit,
                                                   .remaining = r.remaining,
                                                   .resetSeconds = r.resetSeconds});
    }
    for (const auto& [outcome, n] : b.health.callsByOutcome) {
      report.backends.back().callsByOutcome.emplace_back(std::string(outcome),
                                                         static_cast<int64_t>(n));
    }
    for (const auto& loop : poller.loops) {
      if (loop.backend == b.name && loop.cycles > 0) {
        report.backends.back().lastRefresh =
            std::pair{static_cast<int64_t>(loop.metrics), static_cast<int64_t>(loop.queries)};
      }
    }
  }
  if (!report.backends.empty()) report.backend = report.backends.front();
  report.poller = {
      .refreshPeriodSeconds = options_.refreshPeriod.count(),
      .maxAgeSeconds = options_.maxAge.count(),
      .cycles = static_cast<int64_t>(poller.cycles),
      .lastCycle = core::rfc3339(poller.lastCycleStart),
      .lastCycleDurationMicroseconds = poller.lastCycleDuration.count(),
      .queries = static_cast<int64_t>(poller.queries),
      .backendCalls = static_cast<int64_t>(poller.backendCalls),
      .firstFetches = static_cast<int64_t>(poller.firstFetches),
      .following = poller.following,
      .followExchanges = static_cast<int64_t>(poller.followExchanges),
      .followError = poller.followError,
      .lastFollow = poller.lastFollow.time_since_epoch().count() == 0
                        ? std::string()
                        : core::rfc3339(poller.lastFollow),
  };
  report.configuration = options_.configuration;
  return report;
}

}  // namespace xmetrics::server

#include "server/api_handler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <set>

#include "core/quantity.hpp"
#include "core/time_format.hpp"
#include "server/status_error.hpp"

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

ApiHandler::ApiHandler(ApiHandlerOptions options, const auth::Authenticator& authenticator,
                       store::ValueStore& values, catalog::Catalog& catalog, poller::Poller& poller,
                       ExtraStatus extraStatus)
    : options_(options),
      authenticator_(authenticator),
      values_(values),
      catalog_(catalog),
      poller_(poller),
      extraStatus_(std::move(extraStatus)) {}

void ApiHandler::handle(const HttpRequest& request, const PeerCertificate& peer,
                        ResponseSlotPtr slot) {
  const unsigned version = request.version();
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) {
    return slot->respond(statusError(
        400, "BadRequest", "malformed request target: " + url.error().message(), version));
  }
  std::string path = url->path();
  if (path.size() > 1 && path.back() == '/') path.pop_back();

  if (path == "/healthz" || path == "/livez" || path == "/readyz") {
    return slot->respond(health(path, version));
  }

  auto user = authenticator_.authenticate(peer, request[http::field::authorization]);
  if (!user) {
    spdlog::debug("component=server event=unauthorized path={} reason=\"{}\"", path, user.error());
    return slot->respond(
        statusError(401, "Unauthorized", "Unauthorized: " + user.error(), version));
  }
  if (request.method() != http::verb::get) {
    auto response = statusError(405, "MethodNotAllowed",
                                std::string(request.method_string()) + " is not supported on " +
                                    path + ": the external metrics API is read-only (GET)",
                                version);
    response.set(http::field::allow, "GET");
    return slot->respond(std::move(response));
  }

  if (path == "/openapi/v2" || path == "/openapi/v3" || path.starts_with("/openapi/v3/")) {
    // The aggregator treats 404 as "no spec" and stops asking; anything 5xx would be retried and
    // logged forever.
    return slot->respond(statusError(
        404, "NotFound", "xmetrics does not publish an OpenAPI spec at " + path, version));
  }
  if (path == "/xmetrics/v1/status") {
    return slot->respond(jsonResponse(200, boost::json::serialize(statusReport()), version));
  }

  auto segments = url->segments();
  std::vector<std::string> parts(segments.begin(), segments.end());
  // /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}
  if (parts.size() == 6 && parts[0] == "apis" && parts[1] == kGroup && parts[2] == "v1beta1" &&
      parts[3] == "namespaces") {
    std::string selector;
    if (auto it = url->params().find("labelSelector"); it != url->params().end()) {
      selector = (*it).value;
    }
    return externalMetric(parts[4], parts[5], selector, version, std::move(slot));
  }
  if (path == "/apis" || path == "/apis/" + std::string(kGroup) ||
      path == "/apis/" + std::string(kGroupVersion)) {
    return slot->respond(discovery(path, version));
  }
  if (parts.size() >= 3 && parts[0] == "apis" && parts[1] == kGroup && parts[2] == "v1beta1") {
    return slot->respond(statusError(
        404, "NotFound",
        "no such path " + path +
            ": external metrics are read at /apis/external.metrics.k8s.io/v1beta1/namespaces/"
            "{namespace}/{metric}?labelSelector=...",
        version));
  }
  slot->respond(statusError(404, "NotFound",
                            "the server could not find the requested resource " + path, version));
}

HttpResponse ApiHandler::health(std::string_view path, unsigned version) const {
  auto status = poller_.status();
  // Liveness follows the refresh loop: a poller that stopped ticking is a process to restart.
  auto sinceTick = std::chrono::steady_clock::now() - status.lastTick;
  auto liveLimit =
      std::max<std::chrono::seconds>(options_.refreshPeriod * 3, std::chrono::seconds(60));
  bool live = sinceTick <= liveLimit;
  // Readiness waits for the first complete refresh, so a fresh replica never serves "not fetched".
  bool ready = live && status.cycles > 0;
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
          (live ? "the first refresh cycle has not completed yet"
                : "the poller has not ticked for " +
                      std::to_string(
                          std::chrono::duration_cast<std::chrono::seconds>(sinceTick).count()) +
                      "s"),
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
  for (const auto& [key, value] : snapshot->values) {
    if (names.size() >= options_.discoveryLimit) break;
    names.insert(value->metricName);
  }
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
                                std::string_view selectorText, unsigned version,
                                ResponseSlotPtr slot) {
  auto selector = core::LabelSelector::parse(selectorText);
  if (!selector) {
    return slot->respond(statusError(
        400, "BadRequest",
        "invalid labelSelector \"" + std::string(selectorText) + "\" for " +
            describe(ns, metric, "") + " at position " + std::to_string(selector.error().position) +
            ": " + selector.error().message +
            " (grammar: k=v, k!=v, k in (a,b), k notin (a,b), k, !k, joined by commas)",
        version));
  }
  auto canonical = selector->canonical();
  auto key = store::metricKey(metric, canonical);
  auto now = core::Clock::now();
  auto snapshot = values_.snapshot();
  if (auto value = snapshot->find(key)) {
    store::stampDemand(value->demand, now);  // keeps it wanted, without a lock
    return slot->respond(answer(key, ns, metric, canonical, version));
  }

  // First request for this metric: register it and wait (bounded) for a synchronous first fetch, so
  // the very first answer is a value rather than "unknown".
  auto entry = catalog_.ensureInline(metric, *selector, now);
  auto timer =
      std::make_shared<boost::asio::steady_timer>(slot->executor(), options_.firstFetchTimeout);
  std::string nsCopy(ns), metricCopy(metric);
  poller_.fetchNow(entry, [this, slot, timer, key, nsCopy, metricCopy, canonical, version] {
    slot->respond(answer(key, nsCopy, metricCopy, canonical, version));
    boost::asio::post(timer->get_executor(), [timer] { timer->cancel(); });
  });
  timer->async_wait([slot, entry, nsCopy, metricCopy, canonical, version,
                     timeout = options_.firstFetchTimeout](boost::system::error_code ec) {
    if (ec) return;
    slot->respond(statusError(503, "ServiceUnavailable",
                              "the first fetch of " + describe(nsCopy, metricCopy, canonical) +
                                  " (query \"" + entry->query + "\") did not finish within " +
                                  std::to_string(timeout.count()) +
                                  "s; it goes on in the background, ask again shortly",
                              version));
  });
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
  std::string where = " (query \"" + value->query + "\", backend " + value->backend + ")";
  if (!value->sample) {
    return statusError(404, "NotFound",
                       "unable to get " + describe(ns, metric, selector) + where + ": " +
                           value->error +
                           "; check that the metric name and tags match what is sent",
                       version);
  }
  auto age = ageSeconds(now, value->sample->time);
  if (age > options_.maxAge.count()) {
    std::string cause = value->error.empty() ? "the backend has no newer point"
                                             : "last fetch failed: " + value->error;
    return statusError(503, "ServiceUnavailable",
                       "stale value for " + describe(ns, metric, selector) + where +
                           ": the newest data point is " + std::to_string(age) + "s old (" +
                           core::rfc3339(value->sample->time) + "), older than max-age " +
                           std::to_string(options_.maxAge.count()) + "s; " + cause,
                       version);
  }
  return jsonResponse(200, value->body, version);
}

boost::json::object ApiHandler::statusReport() const {
  auto now = core::Clock::now();
  auto snapshot = values_.snapshot();
  auto poller = poller_.status();
  boost::json::array metrics;
  std::vector<store::MetricValuePtr> sorted;
  for (const auto& [key, value] : snapshot->values) sorted.push_back(value);
  std::ranges::sort(sorted, [](const auto& a, const auto& b) {
    return std::tie(a->metricName, a->selector) < std::tie(b->metricName, b->selector);
  });
  for (const auto& v : sorted) {
    boost::json::object m{{"metricName", v->metricName},
                          {"selector", v->selector},
                          {"query", v->query},
                          {"resolution", "inline"},
                          {"backend", v->backend}};
    bool valid = false;
    if (v->sample) {
      auto age = ageSeconds(now, v->sample->time);
      valid = age <= options_.maxAge.count();
      m["value"] = core::formatQuantity(v->sample->value);
      m["valueNumber"] = v->sample->value;
      if (!v->sample->unit.empty()) m["unit"] = v->sample->unit;
      m["timestamp"] = core::rfc3339(v->sample->time);
      m["ageSeconds"] = age;
    }
    m["valid"] = valid;
    if (!valid) {
      m["error"] = v->sample ? (v->error.empty() ? "stale: older than max-age " +
                                                       std::to_string(options_.maxAge.count()) + "s"
                                                 : v->error)
                             : v->error;
    }
    m["lastFetch"] = core::rfc3339(v->lastFetch);
    m["lastFetchAgeSeconds"] = ageSeconds(now, v->lastFetch);
    metrics.push_back(std::move(m));
  }
  auto health = poller_.backend().health();
  boost::json::object backend{{"name", poller_.backend().name()},
                              {"reachable", health.reachable},
                              {"lastError", health.lastError}};
  boost::json::object report{
      {"time", core::rfc3339(now)},
      {"metrics", std::move(metrics)},
      {"backend", std::move(backend)},
      {"poller",
       boost::json::object{
           {"refreshPeriodSeconds", options_.refreshPeriod.count()},
           {"maxAgeSeconds", options_.maxAge.count()},
           {"cycles", poller.cycles},
           {"lastCycle", core::rfc3339(poller.lastCycleStart)},
           {"lastCycleDurationMicroseconds", poller.lastCycleDuration.count()},
           {"queries", poller.queries},
           {"backendCalls", poller.backendCalls},
           {"firstFetches", poller.firstFetches},
       }},
  };
  if (extraStatus_) {
    for (auto& [k, v] : extraStatus_()) report[k] = v;
  }
  return report;
}

}  // namespace xmetrics::server

#include "core/status_report.hpp"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <string_view>

#include "core/json_fields.hpp"

namespace xmetrics::core {
namespace {

using json::arrayAt;
using json::boolAt;
using json::intAt;
using json::objectAt;
using json::str;

boost::json::object watchJson(const std::optional<StatusReport::Watch>& w) {
  if (!w) return {};
  return {{"synced", w->synced}, {"objects", w->objects},
          {"lists", w->lists},   {"watchRestarts", w->watchRestarts},
          {"events", w->events}, {"lastError", w->lastError}};
}

// A watch that does not run is written as {}; one that runs always says whether it synced.
std::optional<StatusReport::Watch> parseWatch(const boost::json::object* o) {
  if (!o || !o->contains("synced")) return std::nullopt;
  return StatusReport::Watch{.synced = boolAt(*o, "synced"),
                             .objects = intAt(*o, "objects"),
                             .lists = intAt(*o, "lists"),
                             .watchRestarts = intAt(*o, "watchRestarts"),
                             .events = intAt(*o, "events"),
                             .lastError = str(*o, "lastError")};
}

boost::json::object kubernetesJson(const StatusReport::Kubernetes& k) {
  boost::json::object controller;
  if (const auto& c = k.datadogMetricController) {
    controller = {{"statusWrites", c->statusWrites},
                  {"statusWriteErrors", c->statusWriteErrors},
                  {"autogenCreated", c->autogenCreated},
                  {"autogenDeleted", c->autogenDeleted},
                  {"lastError", c->lastError}};
  }
  boost::json::object o{{"server", k.server},
                        {"authenticationLoaded", k.authenticationLoaded},
                        {"hpaWatch", watchJson(k.hpaWatch)},
                        {"authenticationWatch", watchJson(k.authenticationWatch)},
                        {"datadogMetricWatch", watchJson(k.datadogMetricWatch)},
                        {"datadogMetricController", std::move(controller)}};
  if (const auto& a = k.apiService) o["apiService"] = apiServiceJson(*a);
  return o;
}

StatusReport::Kubernetes parseKubernetes(const boost::json::object& o) {
  std::optional<StatusReport::Kubernetes::ApiService> apiService;
  if (const auto* a = objectAt(o, "apiService")) {
    apiService = StatusReport::Kubernetes::ApiService{.name = str(*a, "name"),
                                                      .available = str(*a, "available"),
                                                      .reason = str(*a, "reason"),
                                                      .message = str(*a, "message"),
                                                      .checked = str(*a, "checked"),
                                                      .error = str(*a, "error")};
  }
  StatusReport::Kubernetes k{.server = str(o, "server"),
                             .authenticationLoaded = boolAt(o, "authenticationLoaded"),
                             .hpaWatch = parseWatch(objectAt(o, "hpaWatch")),
                             .authenticationWatch = parseWatch(objectAt(o, "authenticationWatch")),
                             .datadogMetricWatch = parseWatch(objectAt(o, "datadogMetricWatch")),
                             .apiService = std::move(apiService)};
  if (const auto* c = objectAt(o, "datadogMetricController"); c && !c->empty()) {
    k.datadogMetricController =
        StatusReport::DatadogMetricController{.statusWrites = intAt(*c, "statusWrites"),
                                              .statusWriteErrors = intAt(*c, "statusWriteErrors"),
                                              .autogenCreated = intAt(*c, "autogenCreated"),
                                              .autogenDeleted = intAt(*c, "autogenDeleted"),
                                              .lastError = str(*c, "lastError")};
  }
  return k;
}

boost::json::object leaderJson(const StatusReport::Leader& l) {
  boost::json::object o{{"enabled", l.enabled}, {"isLeader", l.isLeader}};
  if (const auto& e = l.election) {
    o["identity"] = e->identity;
    o["holder"] = e->holder;
    o["peerUrl"] = e->peerUrl;
    o["lease"] = e->lease;
    o["leaseDurationSeconds"] = e->leaseDurationSeconds;
    o["takeovers"] = e->takeovers;
    o["lastError"] = e->lastError;
  }
  return o;
}

StatusReport::Leader parseLeader(const boost::json::object& o) {
  StatusReport::Leader l{.enabled = boolAt(o, "enabled"), .isLeader = boolAt(o, "isLeader", true)};
  // The elector's facts come together; a server without a running elector writes none of them.
  if (o.contains("identity") || o.contains("holder") || o.contains("lease")) {
    l.election =
        StatusReport::Leader::Election{.identity = str(o, "identity"),
                                       .holder = str(o, "holder"),
                                       .peerUrl = str(o, "peerUrl"),
                                       .lease = str(o, "lease"),
                                       .leaseDurationSeconds = intAt(o, "leaseDurationSeconds"),
                                       .takeovers = intAt(o, "takeovers"),
                                       .lastError = str(o, "lastError")};
  }
  return l;
}

boost::json::object configurationJson(const StatusReport::Configuration& c) {
  boost::json::array warnings, environment;
  for (const auto& w : c.warnings) warnings.emplace_back(w);
  for (const auto& n : c.environment) {
    environment.push_back({{"variable", n.variable}, {"level", n.level}, {"text", n.text}});
  }
  return {{"backend", c.backend},
          {"backendReason", c.backendReason},
          {"warnings", std::move(warnings)},
          {"environment", std::move(environment)}};
}

StatusReport::Configuration parseConfiguration(const boost::json::object& o) {
  StatusReport::Configuration c{.backend = str(o, "backend"),
                                .backendReason = str(o, "backendReason")};
  if (const auto* w = arrayAt(o, "warnings")) {
    for (const auto& item : *w) {
      if (item.is_string()) c.warnings.emplace_back(item.as_string());
    }
  }
  if (const auto* e = arrayAt(o, "environment")) {
    for (const auto& item : *e) {
      if (!item.is_object()) continue;
      const auto& n = item.as_object();
      c.environment.push_back({str(n, "variable"), str(n, "level"), str(n, "text")});
    }
  }
  return c;
}

constexpr std::array<std::string_view, 12> kKnownKeys = {
    "time",      "metrics",    "backend", "backends",      "poller", "embedded",
    "dogstatsd", "kubernetes", "leader",  "configuration", "hpas",   "selfCheck"};

std::vector<StatusReport::Hpa> parseHpas(const boost::json::array& hpas) {
  std::vector<StatusReport::Hpa> out;
  for (const auto& h : hpas) {
    if (!h.is_object()) continue;
    const auto& o = h.as_object();
    StatusReport::Hpa hpa{.ns = str(o, "namespace"),
                          .name = str(o, "name"),
                          .scaleTarget = str(o, "scaleTarget"),
                          .minReplicas = intAt(o, "minReplicas", 1),
                          .maxReplicas = intAt(o, "maxReplicas", 1),
                          .currentReplicas = intAt(o, "currentReplicas"),
                          .desiredReplicas = intAt(o, "desiredReplicas")};
    if (const auto* metrics = arrayAt(o, "metrics")) {
      for (const auto& m : *metrics) {
        if (!m.is_object()) continue;
        const auto& mo = m.as_object();
        hpa.metrics.push_back({.name = str(mo, "name"),
                               .selector = str(mo, "selector"),
                               .targetType = str(mo, "targetType"),
                               .target = str(mo, "target"),
                               .current = str(mo, "current")});
      }
    }
    out.push_back(std::move(hpa));
  }
  return out;
}

}  // namespace

boost::json::object toJson(const StatusReport::SelfCheck& s) {
  boost::json::array findings;
  for (const auto& f : s.findings) {
    findings.push_back({{"name", f.name},
                        {"subject", f.subject},
                        {"verdict", f.verdict},
                        {"summary", f.summary},
                        {"fix", f.fix}});
  }
  return {{"ran", s.ran},
          {"ok", s.ok},
          {"warn", s.warn},
          {"fail", s.fail},
          {"tookMilliseconds", s.tookMilliseconds},
          {"error", s.error},
          {"findings", std::move(findings)}};
}

StatusReport::SelfCheck selfCheckFromDoctor(const boost::json::object& report, std::string ran,
                                            int64_t tookMilliseconds) {
  StatusReport::SelfCheck s{.ran = std::move(ran),
                            .ok = intAt(report, "ok"),
                            .warn = intAt(report, "warn"),
                            .fail = intAt(report, "fail"),
                            .tookMilliseconds = tookMilliseconds,
                            .error = str(report, "error")};
  // doctor's report lists every check ("checks"); the status report only those not OK.
  const auto* checks = arrayAt(report, "checks");
  if (!checks) checks = arrayAt(report, "findings");
  static const boost::json::array kNone;
  for (const auto& c : checks ? *checks : kNone) {
    if (!c.is_object()) continue;
    const auto& o = c.as_object();
    if (str(o, "verdict") == "OK") continue;
    s.findings.push_back({.name = str(o, "name"),
                          .subject = str(o, "subject"),
                          .verdict = str(o, "verdict"),
                          .summary = str(o, "summary"),
                          .fix = str(o, "fix")});
  }
  return s;
}

boost::json::object apiServiceJson(const StatusReport::Kubernetes::ApiService& a) {
  return {{"name", a.name},       {"available", a.available}, {"reason", a.reason},
          {"message", a.message}, {"checked", a.checked},     {"error", a.error}};
}

boost::json::array toJson(const std::vector<StatusReport::Hpa>& hpas) {
  boost::json::array out;
  for (const auto& h : hpas) {
    boost::json::array metrics;
    for (const auto& m : h.metrics) {
      metrics.push_back({{"name", m.name},
                         {"selector", m.selector},
                         {"targetType", m.targetType},
                         {"target", m.target},
                         {"current", m.current}});
    }
    out.push_back({{"namespace", h.ns},
                   {"name", h.name},
                   {"scaleTarget", h.scaleTarget},
                   {"minReplicas", h.minReplicas},
                   {"maxReplicas", h.maxReplicas},
                   {"currentReplicas", h.currentReplicas},
                   {"desiredReplicas", h.desiredReplicas},
                   {"metrics", std::move(metrics)}});
  }
  return out;
}

const StatusReport::Hpa* StatusReport::findHpa(std::string_view nsName) const {
  for (const auto& h : hpas) {
    if (nsName.size() == h.ns.size() + 1 + h.name.size() && nsName.starts_with(h.ns) &&
        nsName[h.ns.size()] == '/' && nsName.ends_with(h.name)) {
      return &h;
    }
  }
  return nullptr;
}

std::vector<StatusReport::Backend> StatusReport::allBackends() const {
  return hasBackends ? backends : std::vector<Backend>{backend};
}

const StatusReport::Metric* StatusReport::findMetric(const std::string& ns,
                                                     const std::string& metricName,
                                                     const std::string& selector) const {
  for (const auto& m : metrics) {
    if (m.ns == ns && m.metricName == metricName && m.selector == selector) return &m;
  }
  return nullptr;
}

bool StatusReport::crdMode() const {
  return kubernetes && kubernetes->datadogMetricWatch.has_value();
}

boost::json::object toJson(const StatusReport::Metric& metric) {
  boost::json::object m{{"namespace", metric.ns},          {"metricName", metric.metricName},
                        {"selector", metric.selector},     {"query", metric.query},
                        {"resolution", metric.resolution}, {"backend", metric.backend}};
  if (!metric.datadogMetric.empty()) m["datadogMetric"] = metric.datadogMetric;
  boost::json::array references;
  for (const auto& r : metric.references) references.emplace_back(r);
  m["references"] = std::move(references);
  if (const auto& s = metric.sample) {
    m["value"] = s->value;
    m["valueNumber"] = s->valueNumber;
    if (!s->unit.empty()) m["unit"] = s->unit;
    m["timestamp"] = s->timestamp;
    m["ageSeconds"] = s->ageSeconds;
  }
  m["valid"] = metric.valid;
  if (metric.inGrace) m["inGrace"] = true;  // written only when so: older readers see no change
  if (!metric.valid) m["error"] = metric.error;
  m["lastFetch"] = metric.lastFetch;
  m["lastFetchAgeSeconds"] = metric.lastFetchAgeSeconds;
  return m;
}

boost::json::object toJson(const StatusReport::Backend& backend) {
  boost::json::object o{{"name", backend.name},
                        {"reachable", backend.reachable},
                        {"lastError", backend.lastError},
                        {"calls", backend.calls}};
  if (!backend.details.empty()) {
    boost::json::object details;
    for (const auto& [k, v] : backend.details) details[k] = v;
    o["details"] = std::move(details);
  }
  if (!backend.rateLimits.empty()) {
    boost::json::array limits;
    for (const auto& r : backend.rateLimits) {
      limits.push_back({{"endpoint", r.endpoint},
                        {"limit", r.limit},
                        {"remaining", r.remaining},
                        {"resetSeconds", r.resetSeconds}});
    }
    o["rateLimits"] = std::move(limits);
  }
  if (!backend.callsByOutcome.empty()) {
    boost::json::object outcomes;
    for (const auto& [k, v] : backend.callsByOutcome) outcomes[k] = v;
    o["callsByOutcome"] = std::move(outcomes);
  }
  if (const auto& r = backend.lastRefresh) {
    o["lastRefresh"] = {{"metrics", r->first}, {"queries", r->second}};
  }
  return o;
}

boost::json::object toJson(const StatusReport& report) {
  boost::json::array metrics;
  for (const auto& m : report.metrics) metrics.push_back(toJson(m));
  boost::json::object o{
      {"time", report.time}, {"metrics", std::move(metrics)}, {"backend", toJson(report.backend)}};
  if (report.hasBackends) {
    boost::json::array backends;
    for (const auto& b : report.backends) backends.push_back(toJson(b));
    o["backends"] = std::move(backends);
  }
  const auto& p = report.poller;
  o["poller"] = {{"refreshPeriodSeconds", p.refreshPeriodSeconds},
                 {"maxAgeSeconds", p.maxAgeSeconds},
                 {"cycles", p.cycles},
                 {"lastCycle", p.lastCycle},
                 {"lastCycleDurationMicroseconds", p.lastCycleDurationMicroseconds},
                 {"queries", p.queries},
                 {"backendCalls", p.backendCalls},
                 {"firstFetches", p.firstFetches},
                 {"following", p.following},
                 {"followExchanges", p.followExchanges},
                 {"followError", p.followError},
                 {"lastFollow", p.lastFollow}};
  if (const auto& e = report.embedded) {
    o["embedded"] = {{"series", e->series},
                     {"points", e->points},
                     {"refusedSeries", e->refusedSeries},
                     {"approxBytes", e->approxBytes}};
  }
  if (const auto& d = report.dogstatsd) {
    o["dogstatsd"] = {{"address", d->address}, {"packets", d->packets},
                      {"metrics", d->metrics}, {"malformed", d->malformed},
                      {"skipped", d->skipped}, {"dropped", d->dropped}};
  }
  if (report.kubernetes) o["kubernetes"] = kubernetesJson(*report.kubernetes);
  if (report.leader) o["leader"] = leaderJson(*report.leader);
  if (report.configuration) o["configuration"] = configurationJson(*report.configuration);
  if (!report.hpas.empty()) o["hpas"] = toJson(report.hpas);
  if (report.selfCheck) o["selfCheck"] = toJson(*report.selfCheck);
  for (const auto& [k, v] : report.unknown) o[k] = v;
  return o;
}

std::expected<StatusReport::Metric, std::string> parseStatusMetric(const boost::json::value& json) {
  if (!json.is_object()) return std::unexpected(std::string("a metric entry is not an object"));
  const auto& o = json.as_object();
  StatusReport::Metric m{.ns = str(o, "namespace"),
                         .metricName = str(o, "metricName"),
                         .selector = str(o, "selector"),
                         .query = str(o, "query"),
                         .resolution = str(o, "resolution"),
                         .backend = str(o, "backend"),
                         .datadogMetric = str(o, "datadogMetric"),
                         .valid = boolAt(o, "valid"),
                         .inGrace = boolAt(o, "inGrace"),
                         .error = str(o, "error"),
                         .lastFetch = str(o, "lastFetch"),
                         .lastFetchAgeSeconds = intAt(o, "lastFetchAgeSeconds")};
  if (const auto* refs = arrayAt(o, "references")) {
    for (const auto& r : *refs) {
      if (r.is_string()) m.references.emplace_back(r.as_string());
    }
  }
  if (o.contains("value")) {
    const auto* number = o.if_contains("valueNumber");
    m.sample = StatusReport::Metric::Sample{
        .value = str(o, "value"),
        .valueNumber = number && number->is_number() ? number->to_number<double>() : 0,
        .unit = str(o, "unit"),
        .timestamp = str(o, "timestamp"),
        .ageSeconds = intAt(o, "ageSeconds")};
  }
  return m;
}

std::expected<StatusReport::Backend, std::string> parseStatusBackend(
    const boost::json::value& json) {
  if (!json.is_object()) return std::unexpected(std::string("a backend entry is not an object"));
  const auto& o = json.as_object();
  StatusReport::Backend b{.name = str(o, "name"),
                          .reachable = boolAt(o, "reachable", true),
                          .lastError = str(o, "lastError"),
                          .calls = intAt(o, "calls")};
  if (const auto* details = objectAt(o, "details")) {
    for (const auto& [k, v] : *details) {
      b.details.emplace_back(
          std::string(k), v.is_string() ? std::string(v.as_string()) : boost::json::serialize(v));
    }
  }
  if (const auto* limits = arrayAt(o, "rateLimits")) {
    for (const auto& l : *limits) {
      if (!l.is_object()) continue;
      const auto& r = l.as_object();
      b.rateLimits.push_back({.endpoint = str(r, "endpoint"),
                              .limit = intAt(r, "limit"),
                              .remaining = intAt(r, "remaining"),
                              .resetSeconds = intAt(r, "resetSeconds")});
    }
  }
  if (const auto* r = objectAt(o, "lastRefresh")) {
    b.lastRefresh = std::pair{intAt(*r, "metrics"), intAt(*r, "queries")};
  }
  if (const auto* outcomes = objectAt(o, "callsByOutcome")) {
    for (const auto& [k, v] : *outcomes) {
      b.callsByOutcome.emplace_back(std::string(k), v.is_int64() ? v.as_int64() : 0);
    }
  }
  return b;
}

std::expected<StatusReport, std::string> parseStatusReport(const boost::json::value& json) {
  if (!json.is_object()) return std::unexpected(std::string("the status report is not an object"));
  const auto& o = json.as_object();
  StatusReport r;
  r.time = str(o, "time");
  if (const auto* metrics = arrayAt(o, "metrics")) {
    for (const auto& m : *metrics) {
      if (auto parsed = parseStatusMetric(m)) r.metrics.push_back(std::move(*parsed));
    }
  }
  if (const auto* backend = o.if_contains("backend")) {
    if (auto parsed = parseStatusBackend(*backend)) r.backend = std::move(*parsed);
  }
  const auto* backends = arrayAt(o, "backends");
  r.hasBackends = backends != nullptr;
  if (backends) {
    for (const auto& b : *backends) {
      if (auto parsed = parseStatusBackend(b)) r.backends.push_back(std::move(*parsed));
    }
  }
  if (const auto* p = objectAt(o, "poller")) {
    r.poller = {.refreshPeriodSeconds = intAt(*p, "refreshPeriodSeconds"),
                .maxAgeSeconds = intAt(*p, "maxAgeSeconds"),
                .cycles = intAt(*p, "cycles"),
                .lastCycle = str(*p, "lastCycle"),
                .lastCycleDurationMicroseconds = intAt(*p, "lastCycleDurationMicroseconds"),
                .queries = intAt(*p, "queries"),
                .backendCalls = intAt(*p, "backendCalls"),
                .firstFetches = intAt(*p, "firstFetches"),
                .following = boolAt(*p, "following"),
                .followExchanges = intAt(*p, "followExchanges"),
                .followError = str(*p, "followError"),
                .lastFollow = str(*p, "lastFollow")};
  }
  if (const auto* e = objectAt(o, "embedded")) {
    r.embedded = StatusReport::Embedded{.series = intAt(*e, "series"),
                                        .points = intAt(*e, "points"),
                                        .refusedSeries = intAt(*e, "refusedSeries"),
                                        .approxBytes = intAt(*e, "approxBytes")};
  }
  if (const auto* d = objectAt(o, "dogstatsd")) {
    r.dogstatsd = StatusReport::Dogstatsd{.address = str(*d, "address"),
                                          .packets = intAt(*d, "packets"),
                                          .metrics = intAt(*d, "metrics"),
                                          .malformed = intAt(*d, "malformed"),
                                          .skipped = intAt(*d, "skipped"),
                                          .dropped = intAt(*d, "dropped")};
  }
  if (const auto* k = objectAt(o, "kubernetes")) r.kubernetes = parseKubernetes(*k);
  if (const auto* l = objectAt(o, "leader")) r.leader = parseLeader(*l);
  if (const auto* c = objectAt(o, "configuration")) r.configuration = parseConfiguration(*c);
  if (const auto* h = arrayAt(o, "hpas")) r.hpas = parseHpas(*h);
  if (const auto* s = objectAt(o, "selfCheck")) {
    r.selfCheck = selfCheckFromDoctor(*s, str(*s, "ran"), intAt(*s, "tookMilliseconds"));
  }
  for (const auto& [k, v] : o) {
    if (std::ranges::find(kKnownKeys, std::string_view(k)) == kKnownKeys.end()) r.unknown[k] = v;
  }
  return r;
}

}  // namespace xmetrics::core

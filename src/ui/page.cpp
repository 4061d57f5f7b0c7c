#include "ui/page.hpp"

#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "core/hpa_math.hpp"
#include "core/metric_key.hpp"
#include "core/quantity.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"

namespace xmetrics::ui {
namespace {

constexpr std::size_t kMaxParameter = 256;

std::string number(double v) { return core::shortestDecimal(v); }

// 10000 -> "10,000": counts a person reads at a glance.
std::string grouped(std::size_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// "3h 4m", "12m 5s", "40s".
std::string duration(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  int64_t d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m) + "m";
  if (m > 0) return std::to_string(m) + "m " + std::to_string(s) + "s";
  return std::to_string(s) + "s";
}

std::string clockTime(core::Clock::time_point t) {
  std::string text = core::rfc3339(t);  // 2026-12-07T12:00:00Z
  return text.size() >= 19 ? text.substr(11, 8) : text;
}

std::string urlValue(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

// The query string of this page with one parameter changed (page, or a filter), relative, so
// links work wherever the page is served (directly, kubectl proxy, port-forward).
std::string linkTo(const PageQuery& q, std::size_t page) {
  std::string out = "?";
  auto add = [&](std::string_view k, const std::string& v) {
    if (v.empty()) return;
    if (out.size() > 1) out += "&";
    out += std::string(k) + "=" + urlValue(v);
  };
  add("ns", q.ns);
  add("validity", q.validity);
  add("backend", q.backend);
  add("q", q.text);
  if (q.perPage != PageQuery::kDefaultPerPage) add("per_page", std::to_string(q.perPage));
  add("page", std::to_string(page));
  return escapeHtml(out);
}

// A metric's validity as the report says it now, in the history's words (validityName): what the
// row is marked with and what the validity filter matches.
std::string_view stateOf(const core::StatusReport::Metric& m) {
  if (m.valid) return validityName(Validity::kValid);
  if (m.inGrace) return validityName(Validity::kGrace);
  if (m.sample) return validityName(Validity::kStale);
  return validityName(m.error.empty() ? Validity::kNone : Validity::kError);
}

bool matches(const core::StatusReport::Metric& m, const PageQuery& q) {
  if (!q.ns.empty() && m.ns != q.ns) return false;
  if (!q.backend.empty() && m.backend != q.backend) return false;
  if (!q.validity.empty()) {
    auto state = stateOf(m);
    if (q.validity == "invalid" ? state == "valid" : state != q.validity) return false;
  }
  if (!q.text.empty()) {
    auto has = [&](const std::string& s) { return s.find(q.text) != std::string::npos; };
    if (!has(m.metricName) && !has(m.selector) && !has(m.query)) return false;
  }
  return true;
}

constexpr int kSparkWidth = 160, kSparkHeight = 28;

// The values of the window as a polyline; data-values/data-times carry them exactly (for people
// who copy them, and for the browser test).
void sparkline(std::string& out, const std::vector<ValueHistory::Point>& points,
               core::Clock::time_point from, core::Clock::time_point to) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& p : points) {
    if (std::isnan(p.value)) continue;
    lo = std::min(lo, p.value);
    hi = std::max(hi, p.value);
  }
  if (!std::isfinite(lo)) {
    out += "<span class=\"muted\">no values yet</span>";
    return;
  }
  double span = std::chrono::duration<double>(to - from).count();
  std::string coords, values, times, cx, cy;
  for (const auto& p : points) {
    if (std::isnan(p.value)) continue;
    double x = span > 0 ? std::chrono::duration<double>(p.at - from).count() / span : 1.0;
    double y = hi > lo ? (p.value - lo) / (hi - lo) : 0.5;
    cx = number(std::round(std::clamp(x, 0.0, 1.0) * (kSparkWidth - 4) * 10) / 10 + 2);
    cy = number(std::round((1 - y) * (kSparkHeight - 6) * 10) / 10 + 3);
    coords += cx + "," + cy + " ";
    values += (values.empty() ? "" : " ") + number(p.value);
    times += (times.empty() ? "" : " ") + core::rfc3339(p.at);
  }
  // The newest point marked: the value served now (and a lone first sample shows at all).
  std::string lastPoint = "<circle cx=\"" + cx + "\" cy=\"" + cy + "\" r=\"2\"/>";
  out += "<svg class=\"spark\" width=\"" + std::to_string(kSparkWidth) + "\" height=\"" +
         std::to_string(kSparkHeight) + "\" viewBox=\"0 0 " + std::to_string(kSparkWidth) + " " +
         std::to_string(kSparkHeight) + "\" data-values=\"" + values + "\" data-times=\"" + times +
         "\" role=\"img\"><title>" +
         escapeHtml("min " + number(lo) + ", max " + number(hi) + " from " + clockTime(from) +
                    " to " + clockTime(to) + " UTC") +
         "</title><polyline points=\"" + coords + "\"/>" + lastPoint + "</svg>";
}

// One rectangle per sample, coloured by validity, across the sparkline's width (the samples are
// evenly spaced); the last carries the current error.
void validityStrip(std::string& out, const std::vector<ValueHistory::Point>& points,
                   const std::string& currentError) {
  if (points.empty()) return;
  double w = static_cast<double>(kSparkWidth) / static_cast<double>(points.size());
  out += "<svg class=\"strip\" width=\"" + std::to_string(kSparkWidth) +
         "\" height=\"8\" viewBox=\"0 0 " + std::to_string(kSparkWidth) + " 8\">";
  for (std::size_t i = 0; i < points.size(); ++i) {
    auto name = validityName(points[i].validity);
    std::string title = std::string(name) + " at " + clockTime(points[i].at) + " UTC";
    if (i + 1 == points.size() && !currentError.empty()) title += ": " + currentError;
    out += "<rect x=\"" + number(std::round(w * static_cast<double>(i) * 100) / 100) +
           "\" y=\"0\" width=\"" + number(std::round(w * 100) / 100) +
           "\" height=\"8\" class=\"v-" + std::string(name) + "\"><title>" + escapeHtml(title) +
           "</title></rect>";
  }
  out += "</svg>";
}

void header(std::string& out, const core::StatusReport& report, const PageContext& context) {
  out += "<header><h1>xmetrics <span class=\"muted\">" + escapeHtml(context.version) +
         "</span></h1><dl>";
  auto item = [&](std::string_view k, const std::string& v) {
    out += "<div><dt>" + std::string(k) + "</dt><dd>" + v + "</dd></div>";
  };
  std::string role = "single replica";
  if (report.leader && report.leader->enabled) {
    role = report.leader->isLeader ? "leader" : "follower";
    if (report.leader->election && !report.leader->isLeader) {
      role +=
          " (leader: " +
          escapeHtml(report.leader->election->holder.empty() ? std::string("none yet")
                                                             : report.leader->election->holder) +
          ")";
    }
  }
  item("role", role);
  item("mode", report.kubernetes ? "cluster " + escapeHtml(report.kubernetes->server)
                                 : std::string("standalone"));
  // The APIService as the aggregator judges it: xmetrics may answer while the HPA's path fails.
  if (!report.kubernetes) {
    item("APIService", "none (standalone)");
  } else if (const auto& a = report.kubernetes->apiService) {
    bool ok = a->error.empty() && a->available == "True";
    std::string text =
        !a->error.empty() ? "cannot read " + a->name + ": " + a->error
        : a->available.empty()
            ? a->name + ": no Available condition yet"
            : "Available=" + a->available + (a->reason.empty() ? "" : " (" + a->reason + ")");
    auto checked = core::parseRfc3339(a->checked);
    out +=
        "<div class=\"apiservice\" data-available=\"" + escapeHtml(a->available) +
        "\"><dt>APIService</dt><dd><span class=\"" + (ok ? "ok" : "bad") + "\">" +
        escapeHtml(text) + "</span>" +
        (!ok && !a->message.empty() ? "<div class=\"error\">" + escapeHtml(a->message) + "</div>"
                                    : "") +
        (checked
             ? " <span class=\"muted\">read " +
                   duration(std::chrono::duration_cast<std::chrono::seconds>(context.now - *checked)
                                .count()) +
                   " ago</span>"
             : "") +
        "</dd></div>";
  }
  item("uptime",
       duration(std::chrono::duration_cast<std::chrono::seconds>(context.now - context.startedAt)
                    .count()));
  const auto& p = report.poller;
  item("refresh", "every " + std::to_string(p.refreshPeriodSeconds) + " s, max-age " +
                      std::to_string(p.maxAgeSeconds) + " s");
  auto lastCycle = core::parseRfc3339(p.lastCycle);
  item("last refresh",
       lastCycle && p.cycles > 0
           ? duration(std::chrono::duration_cast<std::chrono::seconds>(context.now - *lastCycle)
                          .count()) +
                 " ago, " + number(static_cast<double>(p.lastCycleDurationMicroseconds) / 1000) +
                 " ms, " + grouped(static_cast<std::size_t>(p.queries)) + " queries for " +
                 grouped(report.metrics.size()) + " metrics"
           : std::string("not yet"));
  std::size_t invalid = static_cast<std::size_t>(
      std::ranges::count_if(report.metrics, [](const auto& m) { return !m.valid; }));
  item("metrics", grouped(report.metrics.size()) + " (" + grouped(invalid) + " not valid)");
  out += "</dl>";
  if (const auto& check = report.selfCheck) {
    auto ran = core::parseRfc3339(check->ran);
    out += "<p class=\"selfcheck\" data-ok=\"" + std::to_string(check->ok) + "\" data-warn=\"" +
           std::to_string(check->warn) + "\" data-fail=\"" + std::to_string(check->fail) +
           "\">doctor, run by xmetrics on itself" +
           (ran ? " " +
                      duration(std::chrono::duration_cast<std::chrono::seconds>(context.now - *ran)
                                   .count()) +
                      " ago"
                : std::string()) +
           ": ";
    if (!check->error.empty()) {
      out += "<span class=\"bad\">could not run: " + escapeHtml(check->error) + "</span>";
    } else {
      out += "<span class=\"ok\">" + std::to_string(check->ok) + " OK</span> · <span class=\"" +
             (check->warn ? "warn" : "muted") + "\">" + std::to_string(check->warn) +
             " WARN</span> · <span class=\"" + (check->fail ? "bad" : "muted") + "\">" +
             std::to_string(check->fail) + " FAIL</span>" +
             (check->findings.empty() ? "" : " — <a href=\"#findings\">findings</a>");
    }
    out += "</p>";
  } else {
    out +=
        "<p class=\"muted\">Checks of every link from the APIService to each HPA: "
        "<code>kubectl xmetrics doctor</code>" +
        std::string(report.kubernetes ? " (xmetrics runs them on itself too; not yet)" : "") +
        ".</p>";
  }
  out += "</header>";
}

void backends(std::string& out, const core::StatusReport& report, const ValueHistory* history) {
  out += "<section id=\"backends\"><h2>Backends</h2><div class=\"cards\">";
  for (const auto& b : report.allBackends()) {
    std::size_t metrics = static_cast<std::size_t>(
        std::ranges::count_if(report.metrics, [&](const auto& m) { return m.backend == b.name; }));
    int64_t errors = 0;
    for (const auto& [outcome, n] : b.callsByOutcome) {
      if (outcome != "ok") errors += n;
    }
    out += "<div class=\"card backend\" data-backend=\"" + escapeHtml(b.name) + "\"><h3>" +
           escapeHtml(b.name) + " <span class=\"" +
           (b.reachable ? "ok\">reachable" : "bad\">UNREACHABLE") + "</span></h3>";
    if (!b.lastError.empty()) out += "<p class=\"error\">" + escapeHtml(b.lastError) + "</p>";
    // An in-process backend (embedded) makes no calls: nothing to count or budget.
    bool remote = !b.callsByOutcome.empty();
    out += "<p>" + grouped(metrics) + " metrics; " +
           (remote ? grouped(static_cast<std::size_t>(b.calls)) + " calls since start, " +
                         grouped(static_cast<std::size_t>(errors)) + " not ok"
                   : std::string("in process, no remote calls")) +
           "</p>";
    // Its last full refresh: metrics refreshed and the distinct queries asked of the backend
    // (identical queries once). Coalescing into grouped queries happens inside the backend and
    // shows in its calls.
    if (const auto& r = b.lastRefresh; r && r->second > 0) {
      out += "<p class=\"refresh\" data-metrics=\"" + std::to_string(r->first) +
             "\" data-queries=\"" + std::to_string(r->second) +
             "\">last refresh: " + grouped(static_cast<std::size_t>(r->first)) + " metrics, " +
             grouped(static_cast<std::size_t>(r->second)) + " distinct queries</p>";
    }
    if (history && remote) {
      // Calls and errors per sample interval, from the counters' differences.
      auto points = history->backend(b.name);
      if (points.size() >= 2) {
        std::vector<ValueHistory::Point> calls, failed;
        // A counter that went down was a new backend (a reload): its count since then.
        auto delta = [](uint64_t now, uint64_t before) {
          return static_cast<double>(now >= before ? now - before : now);
        };
        for (std::size_t i = 1; i < points.size(); ++i) {
          calls.push_back(
              {.at = points[i].at, .value = delta(points[i].calls, points[i - 1].calls)});
          failed.push_back(
              {.at = points[i].at, .value = delta(points[i].errors, points[i - 1].errors)});
        }
        out += "<div class=\"series\"><span>calls</span>";
        sparkline(out, calls, points.front().at, points.back().at);
        out += "</div><div class=\"series\"><span>not ok</span>";
        sparkline(out, failed, points.front().at, points.back().at);
        out += "</div>";
      }
    }
    for (const auto& r : b.rateLimits) {
      out += "<div class=\"budget\"><span>rate limit " + escapeHtml(r.endpoint) +
             "</span><meter min=\"0\" max=\"" + std::to_string(std::max<int64_t>(r.limit, 1)) +
             "\" value=\"" + std::to_string(r.remaining) + "\"></meter><span>" +
             grouped(static_cast<std::size_t>(std::max<int64_t>(r.remaining, 0))) + " of " +
             grouped(static_cast<std::size_t>(std::max<int64_t>(r.limit, 0))) +
             " calls left, resets in " + duration(r.resetSeconds) + "</span></div>";
    }
    if (!b.details.empty()) {
      out += "<dl class=\"details\">";
      for (const auto& [k, v] : b.details) {
        out += "<div><dt>" + escapeHtml(k) + "</dt><dd>" + escapeHtml(v) + "</dd></div>";
      }
      out += "</dl>";
    }
    out += "</div>";
  }
  out += "</div></section>";
}

void filters(std::string& out, const core::StatusReport& report, const PageQuery& q) {
  std::set<std::string> namespaces, backendNames;
  for (const auto& m : report.metrics) {
    namespaces.insert(m.ns);
    backendNames.insert(m.backend);
  }
  auto select = [&](std::string_view name, std::string_view label, const std::string& current,
                    const std::vector<std::string>& options) {
    out += "<label>" + std::string(label) + " <select name=\"" + std::string(name) +
           "\"><option value=\"\">all</option>";
    for (const auto& o : options) {
      out += "<option value=\"" + escapeHtml(o) + "\"" + (o == current ? " selected" : "") + ">" +
             escapeHtml(o) + "</option>";
    }
    out += "</select></label> ";
  };
  out += "<form id=\"filters\" method=\"get\" action=\"\">";
  select("ns", "namespace", q.ns, {namespaces.begin(), namespaces.end()});
  select("validity", "validity", q.validity,
         {"valid", "invalid", "grace", "stale", "error", "none"});
  select("backend", "backend", q.backend, {backendNames.begin(), backendNames.end()});
  out += "<label>name, selector or query <input name=\"q\" value=\"" + escapeHtml(q.text) +
         "\" size=\"24\"></label> <button type=\"submit\">filter</button></form>";
}

// An HPA that names the metric: its target, replicas, and what the value served now makes of
// them (kube-controller-manager's arithmetic, core/hpa_math.hpp).
void hpaUse(std::string& out, const core::StatusReport::Metric& m, const std::string& reference,
            const core::StatusReport& report) {
  std::string_view nsName = reference;
  if (nsName.starts_with("hpa:")) nsName.remove_prefix(4);
  const auto* hpa = report.findHpa(nsName);
  const core::StatusReport::Hpa::Metric* used = nullptr;
  if (hpa) {
    for (const auto& hm : hpa->metrics) {
      if (hm.name == m.metricName && hm.selector == m.selector) used = &hm;
    }
  }
  if (!used) {
    out += "<div>" + escapeHtml(reference) + "</div>";
    return;
  }
  bool average = used->targetType == "AverageValue";
  out += "<div class=\"hpa\" data-hpa=\"" + escapeHtml(std::string(nsName)) + "\" data-desired=\"" +
         std::to_string(hpa->desiredReplicas) + "\"><b>" + escapeHtml(std::string(nsName)) +
         "</b> <span class=\"muted\">" + escapeHtml(hpa->scaleTarget) + "</span><div>target " +
         escapeHtml(used->target) + (average ? " per pod" : "") + " · replicas " +
         std::to_string(hpa->currentReplicas) + " (min " + std::to_string(hpa->minReplicas) +
         ", max " + std::to_string(hpa->maxReplicas) + "), desired " +
         std::to_string(hpa->desiredReplicas) +
         (used->current.empty() ? "" : " · it read " + escapeHtml(used->current)) + "</div>";
  auto target = core::parseQuantity(used->target);
  if (m.sample && target) {
    auto math = core::explainHpa(
        {.type = average ? core::TargetType::kAverageValue : core::TargetType::kValue,
         .target = *target,
         .targetText = used->target,
         .value = m.sample->valueNumber,
         .currentReplicas = static_cast<int>(hpa->currentReplicas),
         .minReplicas = static_cast<int>(hpa->minReplicas),
         .maxReplicas = static_cast<int>(hpa->maxReplicas)});
    out += "<div class=\"math\" data-wants=\"" + std::to_string(math.desired) + "\">" +
           escapeHtml(math.shown) + ": " + escapeHtml(math.explanation) + " → " +
           std::to_string(math.desired) + " replicas</div>";
  }
  out += "</div>";
}

void metricRow(std::string& out, const core::StatusReport::Metric& m, const ValueHistory* history,
               const core::StatusReport& report, const PageContext& context) {
  std::string key = core::metricKey(m.ns, m.metricName, m.selector);
  std::string_view state = stateOf(m);
  out += "<tr class=\"metric\" data-metric=\"" + escapeHtml(m.metricName) + "\" data-namespace=\"" +
         escapeHtml(m.ns) + "\" data-selector=\"" + escapeHtml(m.selector) + "\" data-validity=\"" +
         std::string(state) + "\"><td><b>" + escapeHtml(m.metricName) +
         "</b><div class=\"muted\">" +
         escapeHtml(m.selector.empty() ? "<no selector>" : m.selector) + "</div></td><td>" +
         escapeHtml(m.ns) + "</td><td>" + escapeHtml(m.resolution) + "</td><td>" +
         escapeHtml(m.backend) + "</td><td><code>" + escapeHtml(m.query.empty() ? "-" : m.query) +
         "</code></td><td class=\"value\">";
  if (m.sample) {
    out += "<b>" + escapeHtml(m.sample->value) + "</b> <span class=\"muted\">(" +
           number(m.sample->valueNumber) +
           (m.sample->unit.empty() ? "" : " " + escapeHtml(m.sample->unit)) + ")</span><div>" +
           duration(m.sample->ageSeconds) + " old</div>";
  } else {
    out += "-";
  }
  if (!m.valid && !m.error.empty()) out += "<div class=\"error\">" + escapeHtml(m.error) + "</div>";
  out += "</td><td>";
  if (history && history->capacity() > 0) {
    auto points = history->metric(key);
    // The window the ring covers once full; until then, the time since its first sample.
    auto window = std::chrono::duration_cast<core::Clock::duration>(
        context.historyInterval * static_cast<int64_t>(history->capacity()));
    auto from = context.now - window;
    if (!points.empty()) from = std::max(from, points.front().at);
    sparkline(out, points, from, context.now);
    validityStrip(out, points, m.valid ? "" : m.error);
  } else {
    out += "<span class=\"muted\">history off</span>";
  }
  out += "</td><td>";
  for (const auto& r : m.references) hpaUse(out, m, r, report);
  if (m.references.empty()) out += "<span class=\"muted\">-</span>";
  out += "</td></tr>";
}

constexpr std::string_view kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{padding:12px 20px}h1{font-size:20px;margin:4px 0}h2{font-size:16px;margin:16px 0 6px}
h3{font-size:14px;margin:0 0 4px}.muted{color:#6b7280;font-weight:normal}
header dl{display:flex;flex-wrap:wrap;gap:4px 24px;margin:6px 0}dt{color:#6b7280;font-size:12px}
dd{margin:0}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px;min-width:280px}
.ok{color:#13795b}.warn{color:#b45309}.bad,.error{color:#b42318}.error{font-size:12px;max-width:420px}
.series,.budget{display:flex;align-items:center;gap:8px;font-size:12px}
.details{font-size:12px;margin:4px 0 0}.details div{display:flex;gap:6px}
table{border-collapse:collapse;width:100%;background:#fff;margin-top:8px}
th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{font-size:12px;color:#6b7280;background:#fafbfc}code{font-size:12px;word-break:break-all}
.spark polyline{fill:none;stroke:#2563eb;stroke-width:1.5}.spark circle{fill:#2563eb}.strip{display:block;margin-top:2px}
.v-valid{fill:#16a34a}.v-grace{fill:#f59e0b}.v-stale{fill:#ea580c}.v-error{fill:#dc2626}
.v-none{fill:#d1d5db}nav.pages{margin:8px 0;display:flex;gap:12px}.live{font-size:12px;color:#6b7280;padding:0 20px}
form label{margin-right:8px;font-size:12px}.hpa{font-size:12px;margin-bottom:6px;min-width:220px}
.math{color:#374151;max-width:360px}
)";

// Re-reads this same URL every 5 s while the tab is visible and swaps the <main> it renders; a
// failed read says so and the page keeps what it shows.
constexpr std::string_view kScript = R"(
(function(){
  var live=document.getElementById('live'),busy=false;
  live.textContent='updates every 5 s';
  function tick(){
    if(document.hidden||busy)return;busy=true;
    fetch(location.href,{credentials:'same-origin',headers:{'Accept':'text/html'}})
      .then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();})
      .then(function(t){
        var next=new DOMParser().parseFromString(t,'text/html').getElementById('xm');
        if(next){document.getElementById('xm').replaceWith(next);
          live.textContent='updated '+new Date().toLocaleTimeString();}
      })
      .catch(function(e){live.textContent='update failed: '+e.message;})
      .then(function(){busy=false;});
  }
  setInterval(tick,5000);
})();
)";

}  // namespace

std::string escapeHtml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

PageQuery parsePageQuery(std::string_view query) {
  PageQuery q;
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);
  auto params = boost::urls::parse_query(query);
  if (!params) return q;
  // A form sends spaces as '+'; a literal '+' arrives as %2B.
  boost::urls::encoding_opts form;
  form.space_as_plus = true;
  auto number = [](const std::string& text, std::size_t fallback) {
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    return ec == std::errc() && end == text.data() + text.size() ? n : fallback;
  };
  for (const auto& p : *params) {
    std::string key = p.key.decode(form);
    std::string value = p.has_value ? p.value.decode(form) : std::string();
    if (value.size() > kMaxParameter) value.resize(kMaxParameter);
    if (key == "ns") q.ns = value;
    if (key == "validity") q.validity = value;
    if (key == "backend") q.backend = value;
    if (key == "q") q.text = value;
    if (key == "page") q.page = std::max<std::size_t>(1, number(value, 1));
    if (key == "per_page") {
      q.perPage = std::clamp<std::size_t>(number(value, PageQuery::kDefaultPerPage), 1,
                                          PageQuery::kMaxPerPage);
    }
  }
  return q;
}

std::string renderPage(const core::StatusReport& report, const ValueHistory* history,
                       const PageQuery& query, const PageContext& context) {
  std::string out;
  out.reserve(64 * 1024);
  out +=
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
      "content=\"width=device-width,initial-scale=1\"><title>xmetrics</title><style>";
  out += kStyle;
  out += "</style></head><body><main id=\"xm\">";
  header(out, report, context);
  backends(out, report, history);

  out += "<section id=\"metrics-section\"><h2>Metrics</h2>";
  filters(out, report, query);
  std::vector<const core::StatusReport::Metric*> shown;
  for (const auto& m : report.metrics) {
    if (matches(m, query)) shown.push_back(&m);
  }
  std::size_t pages = std::max<std::size_t>(1, (shown.size() + query.perPage - 1) / query.perPage);
  std::size_t page = std::min(query.page, pages);
  std::size_t first = (page - 1) * query.perPage;
  std::size_t last = std::min(shown.size(), first + query.perPage);
  out += "<p class=\"count\">";
  if (shown.empty()) {
    out += report.metrics.empty() ? "No metrics requested yet: an HPA (or a GET of the external "
                                    "metrics API) registers one."
                                  : "No metric matches the filter.";
  } else {
    out += "metrics " + grouped(first + 1) + "–" + grouped(last) + " of " + grouped(shown.size());
    if (shown.size() != report.metrics.size()) {
      out += " (filtered from " + grouped(report.metrics.size()) + ")";
    }
  }
  out += "</p>";
  if (!shown.empty()) {
    out +=
        "<table id=\"metrics\"><thead><tr><th>metric</th><th>namespace</th><th>resolution</th>"
        "<th>backend</th><th>query</th><th>value</th><th>history</th><th>used by</th></tr>"
        "</thead><tbody>";
    for (std::size_t i = first; i < last; ++i) metricRow(out, *shown[i], history, report, context);
    out += "</tbody></table>";
  }
  if (pages > 1) {
    out += "<nav class=\"pages\">";
    if (page > 1) out += "<a rel=\"prev\" href=\"" + linkTo(query, page - 1) + "\">previous</a>";
    out += "<span>page " + grouped(page) + " of " + grouped(pages) + "</span>";
    if (page < pages) out += "<a rel=\"next\" href=\"" + linkTo(query, page + 1) + "\">next</a>";
    out += "</nav>";
  }
  out += "</section>";
  if (report.selfCheck && !report.selfCheck->findings.empty()) {
    out +=
        "<section id=\"findings\"><h2>Doctor's findings</h2><table><thead><tr><th>verdict</th>"
        "<th>check</th><th>what it found</th><th>fix</th></tr></thead><tbody>";
    for (const auto& f : report.selfCheck->findings) {
      out +=
          "<tr class=\"finding\" data-verdict=\"" + escapeHtml(f.verdict) + "\"><td class=\"" +
          (f.verdict == "FAIL" ? "bad" : "warn") + "\">" + escapeHtml(f.verdict) + "</td><td>" +
          escapeHtml(f.name) +
          (f.subject.empty() ? "" : " <span class=\"muted\">" + escapeHtml(f.subject) + "</span>") +
          "</td><td>" + escapeHtml(f.summary) + "</td><td>" + escapeHtml(f.fix) + "</td></tr>";
    }
    out +=
        "</tbody></table><p class=\"muted\">The whole walk with its evidence: <code>kubectl "
        "xmetrics doctor</code> (as you, with your permissions).</p></section>";
  }
  out += "<footer class=\"muted\"><p>";
  if (history && history->capacity() > 0) {
    out += "History: " + std::to_string(history->capacity()) + " samples per metric, one every " +
           number(static_cast<double>(context.historyInterval.count()) / 1000) + " s (" +
           grouped(history->metrics()) + " metrics, about " +
           number(std::round(static_cast<double>(history->approxBytes()) / 1e5) / 10) + " MB). ";
  }
  out += "Rendered at " + core::rfc3339(context.now) + ".</p></footer></main>";
  out +=
      "<p class=\"live\"><span id=\"live\">JavaScript is off: reload to update.</span></p><script>";
  out += kScript;
  out += "</script></body></html>";
  return out;
}

}  // namespace xmetrics::ui

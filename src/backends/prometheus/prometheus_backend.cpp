#include "backends/prometheus/prometheus_backend.hpp"

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "backends/prometheus/promql.hpp"
#include "core/strings.hpp"

namespace xmetrics::backends::prometheus {
namespace {

namespace json = boost::json;

std::string clip(std::string_view s, std::size_t n) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n)) + "…";
}

std::string formTime(core::Clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
}

// A sample value `[<unix seconds>, "<value>"]`.
std::expected<core::Sample, std::string> sampleOf(const json::value& v) {
  if (!v.is_array() || v.as_array().size() != 2 || !v.as_array()[1].is_string()) {
    return std::unexpected("a malformed sample");
  }
  const auto& a = v.as_array();
  if (!a[0].is_number()) return std::unexpected("a sample without a timestamp");
  // Unix seconds from the epoch to the clock's end (year 2262); outside, no conversion is defined.
  static const double kLastSecond =
      std::chrono::duration<double>(core::Clock::time_point::max().time_since_epoch()).count();
  double ts = a[0].to_number<double>();
  if (!(ts >= 0 && ts < kLastSecond)) {
    return std::unexpected("a sample whose timestamp is out of range");
  }
  std::string text(a[1].as_string());
  double value = 0;
  if (text == "NaN") {
    value = std::nan("");
  } else if (text == "+Inf" || text == "-Inf") {
    value = text[0] == '+' ? INFINITY : -INFINITY;
  } else {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size())
      return std::unexpected("a sample value \"" + text + "\" is not a number");
  }
  core::Sample s;
  s.value = value;
  s.time = core::Clock::time_point(
      std::chrono::duration_cast<core::Clock::duration>(std::chrono::duration<double>(ts)));
  return s;
}

BackendResult redacted(BackendResult r, const std::string& bearerToken) {
  if (!r) return std::unexpected(core::redactSecrets(r.error(), {bearerToken}));
  return r;
}

BackendResult checkedSample(std::expected<core::Sample, std::string> sample) {
  if (!sample) return std::unexpected("Prometheus returned " + sample.error());
  if (std::isnan(sample->value)) {
    return std::unexpected(
        "Prometheus returned NaN (a division by zero, or a rate over too few samples?)");
  }
  if (std::isinf(sample->value)) return std::unexpected("Prometheus returned an infinite value");
  return *sample;
}

const std::string kNoSeries =
    "Prometheus returned no series (is the metric scraped, and do its labels match the "
    "selector?)";

// One series of a vector, as an external metric: its sample, or why not.
BackendResult seriesSample(const json::value& series) {
  if (!series.is_object() || !series.as_object().contains("value")) {
    return std::unexpected("Prometheus returned a series without a value");
  }
  return checkedSample(sampleOf(series.as_object().at("value")));
}

std::string severalSeries(std::size_t n) {
  return "Prometheus returned " + std::to_string(n) +
         " series; an external metric needs exactly one (aggregate them, e.g. sum(...))";
}

}  // namespace

PrometheusBackend::PrometheusBackend(PrometheusOptions options, Transport transport)
    : options_(std::move(options)), transport_(std::move(transport)) {
  while (!options_.url.empty() && options_.url.back() == '/') options_.url.pop_back();
}

std::optional<std::string> PrometheusBackend::translateInline(
    std::string_view metric, const core::LabelSelector& selector) const {
  return inlinePromql(metric, selector, options_.aggregation);
}

std::vector<BackendResult> PrometheusBackend::fetch(std::span<const BackendQuery> batch,
                                                    core::Clock::time_point now) {
  CoalescePlan plan;
  if (options_.coalesceQueries) {
    plan = planCoalescing(batch, options_.coalesceLimits);
  } else {
    for (std::size_t i = 0; i < batch.size(); ++i) plan.alone.push_back(i);
  }
  // Calls go in the order of the batch: a group where its first member stands.
  constexpr std::size_t kAlone = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> groupAt(batch.size(), kAlone);
  for (std::size_t g = 0; g < plan.groups.size(); ++g) groupAt[plan.groups[g].members[0]] = g;
  std::vector<std::optional<BackendResult>> results(batch.size());
  // Queries go one at a time; once one found Prometheus timing out, the rest of the batch is not
  // sent: a stopped Prometheus costs one timeout per batch, not one per query.
  std::optional<std::string> timedOut;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (results[i]) continue;  // answered with its group
    if (timedOut) {
      results[i] = std::unexpected("not asked: " + *timedOut + " (an earlier query of this batch)");
      continue;
    }
    if (groupAt[i] != kAlone) {
      queryGroup(plan.groups[groupAt[i]], batch, now, results, timedOut);
      continue;
    }
    bool timeout = false;
    results[i] = query(batch[i].query, now, timeout);
    if (timeout) timedOut = results[i]->error();
    healthChanged();  // each call moves the counters `xmetrics status` shows
  }
  std::vector<BackendResult> out;
  out.reserve(batch.size());
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

std::expected<PrometheusBackend::Answer, PrometheusBackend::CallError> PrometheusBackend::call(
    const std::string& promql, core::Clock::time_point now) {
  std::string form = "query=" + boost::urls::encode(promql, boost::urls::unreserved_chars) +
                     "&time=" + formTime(now);
  http::Request request;
  request.timeout = options_.timeout;
  request.headers["Accept"] = "application/json";
  if (options_.url.size() + 15 + form.size() > options_.maxGetUrl) {
    request.method = "POST";
    request.url = options_.url + "/api/v1/query";
    request.body = form;
    request.headers["Content-Type"] = "application/x-www-form-urlencoded";
  } else {
    request.url = options_.url + "/api/v1/query?" + form;
  }
  std::string bearerToken;
  // An answer may echo the request (a proxy's 400 quoting its Authorization header, an error
  // quoting a URL with credentials): scrubbed before it is stored, logged or served.
  auto fail = [&](std::string error, bool backendDown,
                  CallError how = {}) -> std::expected<Answer, CallError> {
    how.message = core::redactSecrets(error, {bearerToken});
    std::lock_guard lock(mutex_);
    if (backendDown) {
      lastError_ = how.message;
      lastFailure_ = core::Clock::now();
      reachable_ = false;
    }
    return std::unexpected(std::move(how));
  };
  if (!options_.bearerTokenFile.empty()) {
    std::ifstream in(options_.bearerTokenFile);
    if (!in) return fail("cannot read the bearer token file " + options_.bearerTokenFile, true);
    std::ostringstream token;
    token << in.rdbuf();
    std::string t = token.str();
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    request.headers["Authorization"] = "Bearer " + t;
    bearerToken = std::move(t);
  }
  auto response = transport_(request);
  {
    std::lock_guard lock(mutex_);
    ++calls_;
  }
  if (!response) {
    bool timeout = http::isTimeoutError(response.error());
    callCounts_.add(timeout ? CallCounts::kTimeout : CallCounts::kError);
    return fail("Prometheus " + response.error(), true, {.timedOut = timeout});
  }
  boost::system::error_code ec;
  auto root = json::parse(response->body, ec);
  if (ec || !root.is_object()) {
    callCounts_.add(CallCounts::kError);
    return fail("Prometheus " + options_.url + " answered " + std::to_string(response->status) +
                    " with something that is not its API's JSON: " + clip(response->body, 120),
                true);
  }
  const auto& o = root.as_object();
  auto str = [&](const json::object& obj, std::string_view k) -> std::string {
    auto it = obj.find(k);
    return it != obj.end() && it->value().is_string() ? std::string(it->value().as_string()) : "";
  };
  if (str(o, "status") != "success") {
    // 400/422: the query is wrong (only this metric fails); other codes: Prometheus is.
    bool queryError = response->status == 400 || response->status == 422;
    callCounts_.add(queryError                ? CallCounts::kRejected
                    : response->status == 429 ? CallCounts::kRateLimited
                                              : CallCounts::kError);
    return fail("Prometheus rejected the query (" + std::to_string(response->status) + " " +
                    str(o, "errorType") + "): " + str(o, "error"),
                !queryError, {.rejected = queryError});
  }
  callCounts_.add(CallCounts::kOk);
  {
    std::lock_guard lock(mutex_);
    reachable_ = true;
    lastError_.clear();
    lastSuccess_ = core::Clock::now();
  }
  auto data = o.find("data");
  if (data == o.end() || !data->value().is_object())
    return fail("Prometheus answered no data", false);
  const auto& d = data->value().as_object();
  auto result = d.find("result");
  if (result == d.end()) return fail("Prometheus answered no result", false);
  return Answer{str(d, "resultType"), result->value(), std::move(bearerToken)};
}

BackendResult PrometheusBackend::query(const std::string& promql, core::Clock::time_point now,
                                       bool& timedOut) {
  auto answer = call(promql, now);
  if (!answer) {
    timedOut = answer.error().timedOut;
    return std::unexpected(std::move(answer.error().message));
  }
  auto interpret = [&]() -> BackendResult {
    if (answer->type == "scalar") return checkedSample(sampleOf(answer->result));
    if (answer->type == "vector" && answer->result.is_array()) {
      const auto& series = answer->result.as_array();
      if (series.empty()) return std::unexpected(kNoSeries);
      if (series.size() > 1) return std::unexpected(severalSeries(series.size()));
      return seriesSample(series[0]);
    }
    return std::unexpected("Prometheus returned a " + answer->type +
                           " result; an external metric needs an instant vector of one series or "
                           "a scalar");
  };
  return redacted(interpret(), answer->bearerToken);
}

void PrometheusBackend::queryGroup(const QueryGroup& group, std::span<const BackendQuery> batch,
                                   core::Clock::time_point now,
                                   std::vector<std::optional<BackendResult>>& out,
                                   std::optional<std::string>& timedOut) {
  auto answer = call(group.promql, now);
  healthChanged();
  if (!answer && !answer.error().rejected) {
    // Prometheus is down, slow or refusing calls: each member's own call would have met the same.
    if (answer.error().timedOut) timedOut = answer.error().message;
    for (std::size_t i : group.members) out[i] = std::unexpected(answer.error().message);
    return;
  }
  if (!answer || answer->type != "vector" || !answer->result.is_array()) {
    // Refused (a limit on samples per query?) or answered unlike a `by` aggregation: the members
    // are asked one by one, as without coalescing, so each gets exactly its own query's answer.
    for (std::size_t i : group.members) {
      if (timedOut) {
        out[i] = std::unexpected("not asked: " + *timedOut + " (an earlier query of this batch)");
        continue;
      }
      bool timeout = false;
      out[i] = query(batch[i].query, now, timeout);
      if (timeout) timedOut = out[i]->error();
      healthChanged();
    }
    return;
  }
  // `<agg> by (key)` gives one series per value of the key; a member's value without a series is
  // what its own query answers as no series at all.
  std::map<std::string, std::vector<const json::value*>, std::less<>> byValue;
  for (const auto& series : answer->result.as_array()) {
    std::string value;
    if (series.is_object()) {
      auto metric = series.as_object().find("metric");
      if (metric != series.as_object().end() && metric->value().is_object()) {
        auto label = metric->value().as_object().find(group.key);
        if (label != metric->value().as_object().end() && label->value().is_string()) {
          value = label->value().as_string();
        }
      }
    }
    byValue[value].push_back(&series);
  }
  for (std::size_t m = 0; m < group.members.size(); ++m) {
    auto it = byValue.find(group.values[m]);
    BackendResult r = it == byValue.end()     ? std::unexpected(kNoSeries)
                      : it->second.size() > 1 ? std::unexpected(severalSeries(it->second.size()))
                                              : seriesSample(*it->second[0]);
    out[group.members[m]] = redacted(std::move(r), answer->bearerToken);
  }
}

BackendHealth PrometheusBackend::health() const {
  std::lock_guard lock(mutex_);
  BackendHealth h;
  h.reachable = reachable_;
  h.lastError = lastError_;
  h.lastSuccess = lastSuccess_;
  h.lastFailure = lastFailure_;
  h.calls = calls_;
  h.details.emplace_back("url", core::redactUrlCredentials(options_.url));
  h.details.emplace_back("inline aggregation", options_.aggregation);
  h.details.emplace_back("coalescing", options_.coalesceQueries ? "on" : "off");
  h.callsByOutcome = callCounts_.snapshot();
  return h;
}

}  // namespace xmetrics::backends::prometheus

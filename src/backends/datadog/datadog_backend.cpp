#include "backends/datadog/datadog_backend.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <thread>

#include "backends/datadog/query_response.hpp"
#include "backends/datadog/v2_query.hpp"
#include "core/strings.hpp"
#include "core/thread_name.hpp"
#include "query/coalesce.hpp"

namespace xmetrics::backends::datadog {
namespace {

using SteadyClock = std::chrono::steady_clock;

// When calls are this far apart, a first fetch whose slot is free waits a tenth of the spacing
// (at most kMaxGather) for others of the same burst to join it: a little latency for one call
// instead of a slot each.
constexpr auto kScarce = std::chrono::milliseconds(200);
constexpr auto kMaxGather = std::chrono::milliseconds(250);

std::string trimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string statusText(long status) {
  switch (status) {
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 403:
      return "403 Forbidden";
    case 422:
      return "422 Unprocessable Entity";
    case 429:
      return "429 Too Many Requests";
    case 500:
      return "500 Internal Server Error";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Unavailable";
    case 504:
      return "504 Gateway Timeout";
    default:
      return std::to_string(status);
  }
}

// 2300 -> "2,300": the numbers of the stretch message, read at a glance.
std::string withThousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

std::string siteUrl(std::string_view site) { return "https://api." + std::string(site); }

std::expected<std::vector<Endpoint>, std::string> parseEndpointList(std::string_view text,
                                                                    const Secret& apiKey,
                                                                    const Secret& appKey) {
  std::vector<Endpoint> out;
  auto trimmed = text;
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front())))
    trimmed.remove_prefix(1);
  if (trimmed.empty()) return out;
  if (trimmed.front() != '[') {
    std::size_t start = 0;
    while (start <= text.size()) {
      auto end = text.find(',', start);
      std::string url(text.substr(start, end == std::string_view::npos ? end : end - start));
      std::erase_if(url, [](unsigned char c) { return std::isspace(c); });
      if (!url.empty()) out.push_back({trimSlash(url), apiKey, appKey});
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    return out;
  }
  boost::system::error_code ec;
  auto root = boost::json::parse(trimmed, ec);
  // The text may hold keys: errors describe its shape, never quote it.
  if (ec || !root.is_array()) {
    return std::unexpected(
        "expected a JSON list of {\"url\" or \"site\", \"api_key\", \"app_key\"}");
  }
  std::size_t i = 0;
  for (const auto& item : root.as_array()) {
    ++i;
    if (!item.is_object())
      return std::unexpected("entry " + std::to_string(i) + " is not an object");
    const auto& o = item.as_object();
    auto str = [&](std::string_view key) -> std::string {
      auto it = o.find(key);
      return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : "";
    };
    Endpoint e;
    e.url = !str("url").empty()    ? trimSlash(str("url"))
            : !str("site").empty() ? siteUrl(str("site"))
                                   : "";
    if (e.url.empty()) return std::unexpected("entry " + std::to_string(i) + " has no url or site");
    e.apiKey = str("api_key").empty() ? apiKey : Secret::fromValue(str("api_key"));
    e.appKey = str("app_key").empty() ? appKey : Secret::fromValue(str("app_key"));
    out.push_back(std::move(e));
  }
  return out;
}

struct DatadogBackend::EndpointState {
  Endpoint endpoint;
  std::string shownUrl;  // endpoint.url without user:password@, for every message and log line
  RateBudget budget;
  // Guarded by DatadogBackend::mutex_.
  int failures = 0;
  SteadyClock::time_point retryAt{};
  std::string lastError;
};

struct DatadogBackend::CallOutcome {
  enum class Kind { kOk, kRejected, kFailed } kind = Kind::kFailed;
  std::vector<QueryAnswer> answers;  // kOk: one per query of the call
  std::string message;               // kRejected: the API's words; kFailed: why
};

DatadogBackend::DatadogBackend(DatadogOptions options, Transport transport, Timing timing)
    : options_(std::move(options)), transport_(std::move(transport)), timing_(std::move(timing)) {
  if (!timing_.now) timing_.now = [] { return SteadyClock::now(); };
  for (auto& e : options_.endpoints) {
    auto state = std::make_unique<EndpointState>();
    state->endpoint = e;
    state->endpoint.url = trimSlash(state->endpoint.url);
    state->shownUrl = core::redactUrlCredentials(state->endpoint.url);
    endpoints_.push_back(std::move(state));
  }
  options_.maxParallelCalls = std::max<std::size_t>(1, options_.maxParallelCalls);
}

DatadogBackend::~DatadogBackend() { cancel(); }

void DatadogBackend::cancel() {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  cancelled_cv_.notify_all();
  if (options_.cancelTransport) options_.cancelTransport();
}

bool DatadogBackend::sleepFor(SteadyClock::duration d) {
  if (timing_.sleep) {
    if (d > d.zero()) timing_.sleep(d);
    std::lock_guard lock(mutex_);
    return !cancelled_;
  }
  std::unique_lock lock(mutex_);
  // No wait booked (the usual case under a roomy budget): no timed wait, which is a system call.
  if (d > d.zero()) cancelled_cv_.wait_for(lock, d, [&] { return cancelled_; });
  return !cancelled_;
}

std::shared_ptr<const DatadogBackend::WirePlan> DatadogBackend::wirePlan(
    std::span<const BackendQuery> batch, const std::vector<bool>& skip) {
  {
    std::lock_guard lock(mutex_);
    if (lastPlan_ && lastPlan_->skip == skip &&
        std::equal(batch.begin(), batch.end(), lastPlan_->batch.begin(), lastPlan_->batch.end(),
                   [](const BackendQuery& a, const BackendQuery& b) {
                     return a.window == b.window && a.query == b.query;
                   })) {
      return lastPlan_;
    }
  }
  auto plan = makeWirePlan(batch, skip);
  std::lock_guard lock(mutex_);
  // When each query was last sent carries over to the new plan by its text; a query new to it
  // was never sent.
  std::unordered_map<std::string_view, uint64_t> sentBefore;
  if (lastPlan_) {
    for (std::size_t i = 0; i < lastPlan_->wire.size() && i < lastSent_.size(); ++i) {
      sentBefore.emplace(lastPlan_->wire[i].query.query, lastSent_[i]);
    }
  }
  std::vector<uint64_t> sent(plan->wire.size(), 0);
  for (std::size_t i = 0; i < plan->wire.size(); ++i) {
    if (auto it = sentBefore.find(plan->wire[i].query.query); it != sentBefore.end()) {
      sent[i] = it->second;
    }
  }
  lastSent_ = std::move(sent);
  lastPlan_ = plan;
  return plan;
}

std::shared_ptr<DatadogBackend::WirePlan> DatadogBackend::makeWirePlan(
    std::span<const BackendQuery> batch, const std::vector<bool>& skip) const {
  auto plan = std::make_shared<WirePlan>();
  plan->batch.assign(batch.begin(), batch.end());
  plan->skip = skip;
  plan->copyOf.assign(batch.size(), batch.size());
  // Queries equal once normalised (a DatadogMetric's and an inline metric's spelling of the same
  // query: spaces, order of tags) are fetched once.
  std::unordered_map<std::string, std::size_t> seen;
  std::vector<std::size_t> distinct;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (skip[i]) continue;
    std::string key = query::normalisedQuery(batch[i].query);
    key += '\x1f';
    key += std::to_string(batch[i].window.count());
    auto [it, fresh] = seen.emplace(std::move(key), i);
    if (fresh) {
      distinct.push_back(i);
    } else {
      plan->copyOf[i] = it->second;
    }
  }
  auto single = [&](std::size_t i) { plan->wire.push_back({batch[i], {i}, {}, {}}); };
  if (!options_.coalesce) {
    for (auto i : distinct) single(i);
  } else {
    std::vector<query::CoalesceInput> inputs;
    inputs.reserve(distinct.size());
    for (auto i : distinct) inputs.push_back({batch[i].query, batch[i].window.count()});
    query::CoalesceLimits limits{
        .maxValues = options_.maxCoalescedValues,
        .maxLength = options_.limits.maxEscapedChars,
        .length = [](std::string_view text) { return escapeQuery(text).size(); }};
    auto grouped = query::coalesce(inputs, limits);
    for (auto& g : grouped.groups) {
      WireQuery w;
      w.query = {std::move(g.query), batch[distinct[g.members.front()]].window};
      for (auto m : g.members) w.members.push_back(distinct[m]);
      w.splitKey = std::move(g.key);
      w.values = std::move(g.values);
      plan->wire.push_back(std::move(w));
    }
    for (auto a : grouped.alone) single(distinct[a]);
  }
  plan->escapedChars.reserve(plan->wire.size());
  for (const auto& w : plan->wire) plan->escapedChars.push_back(escapeQuery(w.query.query).size());
  return plan;
}

std::vector<bool> DatadogBackend::rejectedQueries(std::span<const BackendQuery> batch,
                                                  std::vector<BackendResult>& results) {
  std::vector<bool> skip(batch.size(), false);
  std::lock_guard lock(mutex_);
  if (rejected_.empty()) return skip;
  auto steady = timing_.now();
  std::erase_if(rejected_, [&](const auto& kv) { return kv.second.until <= steady; });
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (auto it = rejected_.find(batch[i].query); it != rejected_.end()) {
      results[i] = std::unexpected(it->second.message);
      skip[i] = true;
    }
  }
  return skip;
}

void DatadogBackend::failTooLong(std::span<const BackendQuery> batch,
                                 std::span<const WireQuery> wire,
                                 const std::vector<std::size_t>& tooLong,
                                 std::vector<BackendResult>& results) {
  for (auto i : tooLong) {
    for (auto m : wire[i].members) {
      results[m] =
          std::unexpected("the query is " + std::to_string(escapeQuery(batch[m].query).size()) +
                          " characters once URL-escaped; Datadog takes at most " +
                          std::to_string(options_.limits.maxEscapedChars) +
                          ": shorten it (fewer filters or tag values), or split it into several "
                          "metrics");
    }
  }
}

// The members' results from a query's answer: its one series, or the groups split by tag.
void applyAnswer(const auto& w, QueryAnswer answer, std::vector<BackendResult>& results) {
  if (w.splitKey.empty()) {
    results[w.members.front()] = singleResult(std::move(answer));
    return;
  }
  auto split = splitByTag(std::move(answer), w.splitKey, w.values);
  for (std::size_t m = 0; m < w.members.size(); ++m) results[w.members[m]] = std::move(split[m]);
}

std::vector<BackendResult> DatadogBackend::fetch(std::span<const BackendQuery> batch,
                                                 core::Clock::time_point now) {
  std::vector<BackendResult> results(batch.size(), std::unexpected(std::string("not fetched")));
  auto skip = rejectedQueries(batch, results);
  auto plan = wirePlan(batch, skip);
  std::span<const WireQuery> wire = plan->wire;
  // Urgent queries first, then the others least recently sent first: when the budget cannot
  // cover the refresh, the calls at the end are the ones deferred.
  // A normalised copy of a member (copyOf) is answered from it: its urgency is the member's too.
  std::vector<bool> memberUrgent(batch.size(), false);
  for (std::size_t j = 0; j < batch.size(); ++j) {
    if (!batch[j].urgent) continue;
    memberUrgent[j] = true;
    if (plan->copyOf[j] < batch.size()) memberUrgent[plan->copyOf[j]] = true;
  }
  auto urgent = [&](const WireQuery& w) {
    return std::any_of(w.members.begin(), w.members.end(), [&](auto m) { return memberUrgent[m]; });
  };
  std::vector<std::size_t> order(wire.size());
  std::vector<uint64_t> sentAt(wire.size(), 0);
  std::vector<bool> isUrgent(wire.size());
  {
    std::lock_guard lock(mutex_);
    bool current = plan == lastPlan_ && lastSent_.size() == wire.size();
    for (std::size_t i = 0; i < wire.size(); ++i) {
      order[i] = i;
      isUrgent[i] = urgent(wire[i]);
      if (current) sentAt[i] = lastSent_[i];
    }
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (isUrgent[a] != isUrgent[b]) return static_cast<bool>(isUrgent[a]);
    return !isUrgent[a] && sentAt[a] < sentAt[b];
  });
  std::vector<BackendQuery> wireQueries;
  std::vector<std::size_t> escapedChars;
  wireQueries.reserve(wire.size());
  escapedChars.reserve(wire.size());
  for (auto i : order) {
    wireQueries.push_back(wire[i].query);
    escapedChars.push_back(plan->escapedChars[i]);
  }
  auto calls = planBatches(wireQueries, options_.limits, {}, escapedChars);
  for (auto& c : calls.calls) {
    for (auto& q : c.queries) q = order[q];
  }
  for (auto& t : calls.tooLong) t = order[t];
  failTooLong(batch, wire, calls.tooLong, results);
  deferCalls(wire, isUrgent, calls.calls, results);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t c = next++; c < calls.calls.size(); c = next++) {
      execute(batch, wire, calls.calls[c].queries, calls.calls[c].window, now, results);
    }
  };
  std::size_t workers = std::min(options_.maxParallelCalls, calls.calls.size());
  if (workers <= 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (std::size_t w = 0; w < workers; ++w) {
      threads.emplace_back([&] {
        core::nameThisThread("xm-datadog-call");
        worker();
      });
    }
    for (auto& t : threads) t.join();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (plan->copyOf[i] < batch.size()) results[i] = results[plan->copyOf[i]];
  }
  return results;
}

void DatadogBackend::execute(std::span<const BackendQuery> batch, std::span<const WireQuery> wire,
                             const std::vector<std::size_t>& indices, std::chrono::seconds window,
                             core::Clock::time_point now, std::vector<BackendResult>& results,
                             bool urgent) {
  auto outcome = send(wire, indices, window, now, urgent);
  // A paced refresh spends the whole period in fetch(): the budget and call counts it shows are
  // published after each call, not once at the end.
  healthChanged();
  switch (outcome.kind) {
    case CallOutcome::Kind::kOk:
      for (std::size_t k = 0; k < indices.size(); ++k) {
        applyAnswer(wire[indices[k]], std::move(outcome.answers[k]), results);
      }
      return;
    case CallOutcome::Kind::kFailed:
      for (auto i : indices) {
        for (auto m : wire[i].members) results[m] = std::unexpected(outcome.message);
      }
      return;
    case CallOutcome::Kind::kRejected:
      break;
  }
  if (indices.size() == 1 && !wire[indices[0]].splitKey.empty()) {
    // A grouped query is refused only if a member's own text is (the grouping is plain syntax):
    // its members go one by one, chunked as any batch, to find which.
    const WireQuery& group = wire[indices[0]];
    std::vector<WireQuery> alone;
    std::vector<BackendQuery> texts;
    for (auto m : group.members) {
      alone.push_back({batch[m], {m}, {}, {}});
      texts.push_back(batch[m]);
    }
    auto calls = planBatches(texts, options_.limits);  // by count and by escaped length
    for (const auto& call : calls.calls) {
      execute(batch, alone, call.queries, window, now, results, urgent);
    }
    failTooLong(batch, alone, calls.tooLong, results);
    return;
  }
  if (indices.size() == 1) {
    // Found it: only this query is invalid; remembered so later refreshes don't pay for it again.
    const auto& q = wire[indices[0]].query.query;
    std::string message = "Datadog rejected the query: " + outcome.message;
    spdlog::warn("datadog rejected query=\"{}\" error=\"{}\"", q, outcome.message);
    results[wire[indices[0]].members.front()] = std::unexpected(message);
    std::lock_guard lock(mutex_);
    rejected_[q] = {message, timing_.now() + options_.rejectedQueryTtl};
    return;
  }
  // One of them is bad; halve until it is alone so its neighbours still get their values.
  auto middle = indices.begin() + static_cast<std::ptrdiff_t>(indices.size() / 2);
  execute(batch, wire, std::vector<std::size_t>(indices.begin(), middle), window, now, results,
          urgent);
  execute(batch, wire, std::vector<std::size_t>(middle, indices.end()), window, now, results,
          urgent);
}

std::optional<std::size_t> DatadogBackend::refreshAllowance() {
  if (options_.refreshPeriod.count() <= 0) return std::nullopt;
  auto steady = timing_.now();
  EndpointState* ep = nullptr;
  {
    std::lock_guard lock(mutex_);
    for (auto& e : endpoints_) {
      if (e->retryAt <= steady) {
        ep = e.get();
        break;
      }
    }
  }
  if (!ep) return std::nullopt;
  auto b = ep->budget.snapshot(steady);
  if (!b.known) return std::nullopt;
  // Other clients of the org spend the same budget: what is left over what is left of the period,
  // as announced, not the nominal limit.
  double remaining = static_cast<double>(b.resetInSeconds > 0 ? b.remaining : b.limit);
  double window = static_cast<double>(b.resetInSeconds > 0 ? b.resetInSeconds : b.period);
  double rate = remaining / std::max(1.0, window);  // calls per second, as announced
  {
    std::lock_guard lock(mutex_);
    announcedRate_ = rate;
  }
  // A period that ends within the refresh gives its rest and then a new period's share of the
  // limit; one that ends later, its rest at the rate it can be spread.
  double refresh = static_cast<double>(options_.refreshPeriod.count());
  // A next period's share: the limit, or less when other clients leave us less than that rate.
  double nextShare = std::min(static_cast<double>(b.limit), rate * static_cast<double>(b.period));
  double perRefresh = (b.resetInSeconds > 0 && b.resetInSeconds < refresh && b.period > 0
                           ? remaining + nextShare * (refresh - b.resetInSeconds) / b.period
                           : rate * refresh) *
                      0.9;
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(perRefresh)));
}

void DatadogBackend::deferCalls(std::span<const WireQuery> wire, const std::vector<bool>& isUrgent,
                                std::vector<PlannedCall>& calls,
                                std::vector<BackendResult>& results) {
  auto allowance = refreshAllowance();
  std::size_t deferredMetrics = 0, deferrableCalls = 0, deferredCalls = 0;
  for (const auto& c : calls) {
    bool allDeferrable =
        std::none_of(c.queries.begin(), c.queries.end(), [&](auto i) { return isUrgent[i]; });
    deferrableCalls += allDeferrable;
  }
  std::size_t wanted = calls.size();
  while (allowance && calls.size() > *allowance && !calls.empty()) {
    const auto& last = calls.back();
    if (std::any_of(last.queries.begin(), last.queries.end(), [&](auto i) { return isUrgent[i]; }))
      break;  // only urgent calls left: those are paced, never deferred
    for (auto i : last.queries) {
      for (auto m : wire[i].members) {
        results[m] = deferredResult();
        ++deferredMetrics;
      }
    }
    ++deferredCalls;
    calls.pop_back();
  }
  std::lock_guard lock(mutex_);
  ++refreshes_;
  // `wire` is lastPlan_'s unless a newer plan replaced it meanwhile (then its times start anew).
  if (lastPlan_ && wire.data() == lastPlan_->wire.data() && lastSent_.size() == wire.size()) {
    for (const auto& c : calls) {
      for (auto i : c.queries) lastSent_[i] = refreshes_;
    }
  }
  if (deferredCalls == 0) {
    stretch_.reset();
    return;
  }
  double period = static_cast<double>(options_.refreshPeriod.count());
  Stretch s;
  s.wantPerHour = static_cast<double>(wanted) * 3600 / period;
  s.budgetPerHour = announcedRate_ * 3600;  // what the API announced, not the rounded allowance
  s.metrics = deferredMetrics;
  // Each refresh sends deferrable - deferred of the deferrable calls, oldest first: a deferrable
  // metric comes round every deferrable / sent refreshes.
  std::size_t sent = deferrableCalls - deferredCalls;
  // A refresh lasts the period, or longer when its calls are paced further apart than that.
  double cycle = std::max(
      period, announcedRate_ > 0 ? static_cast<double>(calls.size()) / announcedRate_ : period);
  s.intervalSeconds = sent == 0 ? 0 : cycle * static_cast<double>(deferrableCalls) / sent;
  if (!stretch_) {
    spdlog::warn(
        "datadog budget {:.0f} calls/h, want {:.0f}/h: {} metrics no HPA names refreshed every {} "
        "instead of {}s",
        s.budgetPerHour, s.wantPerHour, s.metrics,
        sent == 0 ? std::string("(never, until the budget allows)")
                  : std::to_string(static_cast<long long>(s.intervalSeconds)) + "s",
        options_.refreshPeriod.count());
  }
  stretch_ = s;
}

std::vector<BackendResult> DatadogBackend::fetchFirst(std::span<const BackendQuery> batch,
                                                      core::Clock::time_point now) {
  std::vector<BackendResult> results(batch.size(), std::unexpected(std::string("not fetched")));
  auto skip = rejectedQueries(batch, results);
  auto plan = makeWirePlan(batch, skip);  // not the refresh's: that one stays cached
  std::vector<BackendQuery> wireQueries;
  for (const auto& w : plan->wire) wireQueries.push_back(w.query);
  auto calls = planBatches(wireQueries, options_.limits, {}, plan->escapedChars);
  failTooLong(batch, plan->wire, calls.tooLong, results);

  std::vector<RiderPtr> mine;
  for (const auto& call : calls.calls) {
    for (auto i : call.queries) {
      auto rider = std::make_shared<Rider>();
      rider->wire = plan->wire[i];
      rider->escapedChars = plan->escapedChars[i];
      mine.push_back(std::move(rider));
    }
  }
  std::unique_lock lock(ridersMutex_);
  for (const auto& r : mine) riders_.push_back(r);
  ridersChanged_.notify_all();
  for (;;) {
    std::vector<RiderPtr> unclaimed;
    bool answered = true;
    for (const auto& r : mine) {
      if (!r->answer) answered = false;
      if (!r->claimed) unclaimed.push_back(r);
    }
    if (answered) break;
    if (!unclaimed.empty()) {
      auto window = unclaimed.front()->wire.query.window;
      const auto& text = unclaimed.front()->wire.query.query;
      std::size_t textChars = unclaimed.front()->escapedChars;
      bool room =
          !unclaimed.front()->mustDrive &&
          std::any_of(waitingCalls_.begin(), waitingCalls_.end(), [&](const auto& c) {
            return c.window == window &&
                   ((c.room > 0 && c.chars + 3 + textChars <= options_.limits.maxEscapedChars) ||
                    std::find(c.texts.begin(), c.texts.end(), text) != c.texts.end());
          });
      if (!room) {
        // No call waiting could take them: this fetch makes one, which others may join.
        // Bounded as planBatches bounds a call: by count and by escaped length.
        std::vector<WireQuery> own;
        std::vector<RiderPtr> driven;
        std::size_t chars = 0;
        for (const auto& r : unclaimed) {
          if (r->wire.query.window != window || own.size() == options_.limits.maxQueries) continue;
          std::size_t cost = r->escapedChars + (own.empty() ? 0 : 3);
          if (!own.empty() && chars + cost > options_.limits.maxEscapedChars) continue;
          chars += cost;
          r->claimed = true;
          own.push_back(r->wire);
          driven.push_back(r);
        }
        std::erase_if(riders_, [](const RiderPtr& r) { return r->claimed; });
        lock.unlock();
        std::vector<std::size_t> indices(own.size());
        for (std::size_t k = 0; k < own.size(); ++k) indices[k] = k;
        execute(batch, own, indices, window, now, results, /*urgent=*/true);
        lock.lock();
        // Only those this drive took: others may have been taken by another call meanwhile.
        for (const auto& r : driven) {
          if (!r->answer) r->answer = std::unexpected(std::string());  // answered in results
        }
        continue;
      }
    }
    // Bounded, so a shutdown (the call that holds them fails them too) is never missed.
    ridersChanged_.wait_for(lock, std::chrono::milliseconds(100));
    {
      std::lock_guard cancelled(mutex_);
      if (cancelled_) break;
    }
  }
  for (const auto& r : mine) {
    if (!r->answer) {
      for (auto m : r->wire.members) results[m] = std::unexpected("xmetrics is shutting down");
    } else if (*r->answer) {
      applyAnswer(r->wire, std::move(**r->answer), results);
    } else if (!r->answer->error().empty()) {
      for (auto m : r->wire.members) results[m] = std::unexpected(r->answer->error());
    }
  }
  std::erase_if(riders_, [&](const RiderPtr& r) {
    return std::find(mine.begin(), mine.end(), r) != mine.end();
  });
  lock.unlock();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (plan->copyOf[i] < batch.size()) results[i] = results[plan->copyOf[i]];
  }
  return results;
}

std::list<DatadogBackend::WaitingCall>::iterator DatadogBackend::waitForRiders(
    std::chrono::seconds window, std::size_t room, std::vector<std::string> texts,
    std::size_t chars) {
  std::lock_guard lock(ridersMutex_);
  auto it =
      waitingCalls_.insert(waitingCalls_.end(), WaitingCall{window, room, std::move(texts), chars});
  ridersChanged_.notify_all();  // riders waiting for a call with room may now ride this one
  return it;
}

std::vector<DatadogBackend::RiderPtr> DatadogBackend::takeRiders(
    std::list<WaitingCall>::iterator call, std::size_t usedChars, std::vector<std::string>& texts) {
  constexpr std::size_t kSeparator = 3;  // "," escaped
  std::vector<RiderPtr> taken;
  std::size_t room = call->room;
  std::lock_guard lock(ridersMutex_);
  for (auto& r : riders_) {
    if (r->claimed || r->mustDrive || r->wire.query.window != call->window) continue;
    const auto& text = r->wire.query.query;
    if (auto same = std::find(texts.begin(), texts.end(), text); same != texts.end()) {
      // The call asks it already (a refresh holding a metric just registered): one answer, both.
      r->answerIndex = static_cast<std::size_t>(same - texts.begin());
    } else {
      auto chars = r->escapedChars;
      if (room == 0 || usedChars + kSeparator + chars > options_.limits.maxEscapedChars) continue;
      usedChars += kSeparator + chars;
      --room;
      r->answerIndex = texts.size();
      texts.push_back(text);
    }
    r->claimed = true;
    taken.push_back(r);
  }
  std::erase_if(riders_, [](const RiderPtr& r) { return r->claimed; });
  waitingCalls_.erase(call);
  ridersChanged_.notify_all();  // those left must find another call or drive
  return taken;
}

void DatadogBackend::answerRiders(std::vector<RiderPtr>& riders, CallOutcome& outcome,
                                  std::size_t own) {
  if (riders.empty()) return;
  std::lock_guard lock(ridersMutex_);
  for (std::size_t k = 0; k < riders.size(); ++k) {
    auto& r = riders[k];
    switch (outcome.kind) {
      case CallOutcome::Kind::kOk:
        r->answer = outcome.answers[r->answerIndex];  // copied: a rider may share its query
        break;
      case CallOutcome::Kind::kFailed:
        r->answer =
            std::unexpected(outcome.message.empty() ? std::string("call failed") : outcome.message);
        break;
      case CallOutcome::Kind::kRejected:
        // It may be theirs: they go again in a call of their own, where halving finds it.
        r->claimed = false;
        r->mustDrive = true;
        riders_.push_back(r);
        break;
    }
  }
  if (outcome.kind == CallOutcome::Kind::kOk) outcome.answers.resize(own);
  ridersChanged_.notify_all();
}

DatadogBackend::CallOutcome DatadogBackend::send(std::span<const WireQuery> wire,
                                                 const std::vector<std::size_t>& indices,
                                                 std::chrono::seconds window,
                                                 core::Clock::time_point now, bool urgent) {
  std::vector<RiderPtr> riders;
  auto outcome = sendWithRiders(wire, indices, window, now, riders, urgent);
  answerRiders(riders, outcome, indices.size());
  return outcome;
}

DatadogBackend::EndpointState* DatadogBackend::pickEndpoint(std::string& whyNone) {
  std::lock_guard lock(mutex_);
  if (cancelled_) {
    whyNone = "xmetrics is shutting down";
    return nullptr;
  }
  auto steady = timing_.now();
  for (auto& e : endpoints_) {
    if (e->retryAt <= steady) return e.get();
  }
  whyNone.clear();
  for (auto& e : endpoints_) {
    auto left = std::chrono::ceil<std::chrono::seconds>(e->retryAt - steady).count();
    whyNone += (whyNone.empty() ? "" : "; ") + e->lastError + " (next try in " +
               std::to_string(left) + "s)";
  }
  return nullptr;
}

void DatadogBackend::markFailure(EndpointState& endpoint, const std::string& error) {
  std::lock_guard lock(mutex_);
  auto steady = timing_.now();
  lastError_ = error;
  lastFailure_ = core::Clock::now();
  endpoint.lastError = error;
  if (endpoint.retryAt > steady) return;  // a parallel call already failed it
  auto backoff = options_.endpointBackoff * (1LL << std::min(endpoint.failures, 16));
  backoff = std::min<std::chrono::seconds>(backoff, options_.maxEndpointBackoff);
  ++endpoint.failures;
  endpoint.retryAt = steady + backoff;
  spdlog::warn("datadog endpoint={} failing error=\"{}\" failures={} retry_in={}s",
               endpoint.shownUrl, error, endpoint.failures, backoff.count());
}

void DatadogBackend::markSuccess(EndpointState& endpoint) {
  std::lock_guard lock(mutex_);
  if (endpoint.failures > 0) {
    spdlog::info("datadog endpoint={} recovered after {} failures", endpoint.shownUrl,
                 endpoint.failures);
  }
  endpoint.failures = 0;
  endpoint.retryAt = {};
  endpoint.lastError.clear();
  lastError_.clear();
  lastSuccess_ = core::Clock::now();
}

DatadogBackend::CallOutcome DatadogBackend::sendWithRiders(std::span<const WireQuery> wire,
                                                           const std::vector<std::size_t>& indices,
                                                           std::chrono::seconds window,
                                                           core::Clock::time_point now,
                                                           std::vector<RiderPtr>& riders,
                                                           bool urgent) {
  using Kind = CallOutcome::Kind;
  std::string joined;
  std::vector<std::string> texts;  // the call's queries in order; riders' new ones appended
  for (auto i : indices) {
    if (!joined.empty()) joined += "%2C";
    joined += escapeQuery(wire[i].query.query);
    texts.push_back(wire[i].query.query);
  }
  auto to = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  auto from = to - std::min(window, options_.maxWindow).count();
  std::string target = "/api/v1/query?from=" + std::to_string(from) + "&to=" + std::to_string(to) +
                       "&query=" + joined;
  bool rode = false;  // riders are taken once, when the call first leaves

  int rateLimited = 0;
  for (;;) {
    std::string whyNone;
    EndpointState* ep = pickEndpoint(whyNone);
    if (!ep) return {Kind::kFailed, {}, whyNone};
    auto apiKey = ep->endpoint.apiKey.get();
    auto appKey = ep->endpoint.appKey.get();
    if (!apiKey || !appKey) {
      markFailure(*ep, "Datadog " + std::string(!apiKey ? "API" : "application") +
                           " key: " + (!apiKey ? apiKey.error() : appKey.error()));
      continue;
    }
    auto reservedAt = timing_.now();
    auto wait = ep->budget.reserve(reservedAt, options_.maxRateLimitWait, urgent);
    if (!wait) return {Kind::kFailed, {}, wait.error()};
    RateBudget::TimePoint slot =
        reservedAt + *wait;  // the booking this call ends, whatever it does
    if (auto spacing = ep->budget.spacing(timing_.now()); urgent && !rode && spacing >= kScarce) {
      // Calls are scarce and this first fetch's slot may be free now: it waits a moment for the
      // first fetches of the same burst (an HPA rollout, a restart) to join it.
      *wait = std::max<SteadyClock::duration>(
          *wait, std::min<SteadyClock::duration>(spacing / 10, kMaxGather));
    }
    // While it waits for its slot, first fetches may join it (fetchFirst): into its room, or onto
    // a query it holds already.
    std::optional<std::list<WaitingCall>::iterator> waiting;
    if (!rode) {
      waiting =
          waitForRiders(window, options_.limits.maxQueries - indices.size(), texts, joined.size());
    }
    auto leave = [&] {
      if (!waiting) return;
      std::size_t before = texts.size();
      auto taken = takeRiders(*waiting, joined.size(), texts);
      waiting.reset();
      rode = true;
      for (std::size_t k = before; k < texts.size(); ++k) {
        auto escaped = "%2C" + escapeQuery(texts[k]);
        joined += escaped;
        target += escaped;
      }
      for (auto& r : taken) riders.push_back(std::move(r));
    };
    // Booked before the budget was known (one a second): once the first answer tells it, book
    // again rather than sleep out the rest of the spacing.
    while (*wait > SteadyClock::duration::zero() && !ep->budget.answered()) {
      auto slice = std::min<SteadyClock::duration>(*wait, std::chrono::milliseconds(100));
      if (!sleepFor(slice)) {
        leave();
        ep->budget.release(slot);
        return {Kind::kFailed, {}, "xmetrics is shutting down"};
      }
      *wait -= slice;
      if (ep->budget.answered()) {
        ep->budget.release(slot);
        reservedAt = timing_.now();
        wait = ep->budget.reserve(reservedAt, options_.maxRateLimitWait, urgent);
        if (!wait) {
          leave();
          return {Kind::kFailed, {}, wait.error()};
        }
        slot = reservedAt + *wait;
      }
    }
    bool slept = sleepFor(*wait);
    leave();
    if (!slept) {
      ep->budget.release(slot);
      return {Kind::kFailed, {}, "xmetrics is shutting down"};
    }
    http::Request request;
    request.url = ep->endpoint.url + target;
    request.headers = {{"DD-API-KEY", *apiKey},
                       {"DD-APPLICATION-KEY", *appKey},
                       {"Accept", "application/json"},
                       {"User-Agent", "xmetrics"}};
    if (options_.api == Api::kV2) {
      // The same queries, riders last as in the URL, in a body: query_index k is the k-th.
      std::vector<std::string_view> views(texts.begin(), texts.end());
      request.method = "POST";
      request.url = ep->endpoint.url + std::string(kV2TimeseriesPath);
      request.body = timeseriesRequestBody(views, from * 1000, to * 1000);
      request.headers["Content-Type"] = "application/json";
    }
    request.timeout = options_.timeout;
    request.connectTimeout = std::min(options_.timeout, std::chrono::milliseconds(5'000));
    request.proxy = request.url.starts_with("http://") ? options_.proxyHttp : options_.proxy;
    request.noProxy = options_.noProxy;
    auto response = transport_(request);
    ++calls_;
    // What comes back may echo the request — a proxy's or the API's 400 quoting its headers, a
    // transport error quoting the proxy URL — and is stored, logged and served from here on.
    auto scrub = [&](std::string_view text) {
      return core::redactSecrets(text, {*apiKey, *appKey});
    };
    if (!response) {
      callCounts_.add(http::isTimeoutError(response.error()) ? CallCounts::kTimeout
                                                             : CallCounts::kError);
      ep->budget.release(slot);
      markFailure(*ep, scrub(response.error()));
      continue;
    }
    ep->budget.observe(parseRateLimitHeaders(response->headers), response->status, timing_.now(),
                       slot);
    std::string where = "Datadog " + ep->shownUrl + " answered ";
    long status = response->status;
    if (status == 200) {
      auto parsed = options_.api == Api::kV2 ? parseTimeseriesAnswers(response->body, texts.size())
                                             : parseQueryAnswers(response->body, texts.size());
      callCounts_.add(parsed ? CallCounts::kOk : CallCounts::kError);
      if (!parsed) {
        markFailure(*ep, ep->shownUrl + ": " + scrub(parsed.error()));
        continue;
      }
      markSuccess(*ep);
      return {Kind::kOk, std::move(*parsed), {}};
    }
    // Scrubbed whole, before errorMessage clips it: a key cut in two would not match.
    std::string message = errorMessage(scrub(response->body));
    callCounts_.add(status == 400 || status == 422 ? CallCounts::kRejected
                    : status == 429                ? CallCounts::kRateLimited
                                                   : CallCounts::kError);
    if (status == 400 || status == 422) {
      markSuccess(*ep);  // the endpoint works; the query does not
      return {Kind::kRejected, {}, message.empty() ? statusText(status) : message};
    }
    if (status == 429) {
      // The budget now waits for the announced reset; one more try if that is soon enough.
      if (++rateLimited <= 1) continue;
      std::lock_guard lock(mutex_);
      lastError_ = where + statusText(status);
      lastFailure_ = core::Clock::now();
      return {Kind::kFailed, {}, "rate limited: " + where + statusText(status)};
    }
    std::string error = where + statusText(status) + (message.empty() ? "" : ": " + message);
    if (status == 401 || status == 403) {
      error += " (check the API and application keys: DD_API_KEY / DD_APP_KEY or their files)";
    }
    if (status >= 500 || status == 401 || status == 403 || status == 408) {
      markFailure(*ep, error);
      continue;
    }
    std::lock_guard lock(mutex_);
    lastError_ = error;
    lastFailure_ = core::Clock::now();
    return {Kind::kFailed, {}, error};
  }
}

BackendHealth DatadogBackend::health() const {
  BackendHealth h;
  auto steady = timing_.now();
  std::lock_guard lock(mutex_);
  h.reachable = std::any_of(endpoints_.begin(), endpoints_.end(), [&](const auto& e) {
    return e->failures == 0 || e->retryAt <= steady;
  });
  h.lastError = lastError_;
  h.lastSuccess = lastSuccess_;
  h.lastFailure = lastFailure_;
  h.calls = calls_.load();
  for (const auto& e : endpoints_) {
    std::string state = e->failures == 0 ? "ok" : "failing (" + e->lastError + ")";
    auto b = e->budget.snapshot(steady);
    std::string budget = !b.known ? "rate limit not announced yet"
                                  : std::to_string(b.remaining) + " of " + std::to_string(b.limit) +
                                        " calls left per " + std::to_string(b.period) +
                                        "s, resets in " + std::to_string(b.resetInSeconds) + "s";
    if (b.blockedForSeconds > 0)
      budget += ", rate limited for " + std::to_string(b.blockedForSeconds) + "s";
    h.details.emplace_back("endpoint " + e->shownUrl, state + "; " + budget);
    if (b.known) h.rateLimits.push_back({e->shownUrl, b.limit, b.remaining, b.resetInSeconds});
  }
  h.callsByOutcome = callCounts_.snapshot();
  h.details.emplace_back("rejected queries", std::to_string(rejected_.size()));
  if (stretch_) {
    auto n = [](double v) { return withThousands(static_cast<int64_t>(v + 0.5)); };
    std::string every = stretch_->intervalSeconds > 0
                            ? "every " + n(stretch_->intervalSeconds) + " s"
                            : "only as the budget allows";
    h.details.emplace_back(
        "refresh stretched",
        "budget " + n(stretch_->budgetPerHour) + "/h, want " + n(stretch_->wantPerHour) + "/h: " +
            n(static_cast<double>(stretch_->metrics)) + " metrics no HPA names refreshed " + every +
            " instead of " + std::to_string(options_.refreshPeriod.count()) + " s");
    h.stretch = core::BackendHealth::Stretch{stretch_->budgetPerHour, stretch_->wantPerHour,
                                             stretch_->metrics, stretch_->intervalSeconds};
  }
  return h;
}

}  // namespace xmetrics::backends::datadog

#include "backends/datadog/datadog_backend.hpp"

#include <gtest/gtest.h>

#include <boost/url.hpp>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

namespace xmetrics::backends::datadog {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const core::Clock::time_point kNow{std::chrono::seconds(1'700'000'000)};
const std::string kApiKey = "api-0123456789abcdef";
const std::string kAppKey = "app-fedcba9876543210";

// Splits Datadog's comma-joined query list on commas outside braces and parentheses.
std::vector<std::string> splitQueries(std::string_view text) {
  std::vector<std::string> out;
  int depth = 0;
  std::string current;
  for (char c : text) {
    if (c == '{' || c == '(') ++depth;
    if (c == '}' || c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  out.push_back(current);
  return out;
}

// A fake query API on a fake clock: answers per query_index from `values`, rejects a call holding
// any query in `bad` with 400, and plays `script` (status or transport failure) first.
struct FakeDatadog {
  struct Scripted {
    long status = 0;  // 0: transport failure
    std::string body;
    http::Headers headers;
  };
  struct Call {
    std::string url;
    std::vector<std::string> queries;
    int64_t from = 0, to = 0;
    http::Headers headers;
  };

  std::mutex mutex;
  std::map<std::string, double> values;
  // A grouped query's answer: one series per (`key:value` tag, value), in the v1 shape.
  std::map<std::string, std::vector<std::pair<std::string, double>>> groups;
  std::set<std::string> bad;
  std::deque<Scripted> script;
  std::vector<Call> calls;
  std::optional<std::pair<int64_t, int64_t>> rateLimit;  // (limit, period) announced
  int64_t windowStart = 0, usedInWindow = 0;
  std::atomic<int64_t> clockNs{0};

  SteadyClock::time_point now() const {
    return SteadyClock::time_point(std::chrono::nanoseconds(clockNs.load()));
  }
  Timing timing() {
    return {[this] { return now(); },
            [this](SteadyClock::duration d) {
              clockNs += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
            }};
  }
  Transport transport() {
    return [this](const http::Request& r) -> std::expected<http::Response, std::string> {
      std::lock_guard lock(mutex);
      auto url = boost::urls::parse_uri(r.url);
      Call call{r.url, {}, 0, 0, r.headers};
      for (auto param : url->params()) {
        if (param.key == "query") call.queries = splitQueries(param.value);
        if (param.key == "from") call.from = std::stoll(param.value);
        if (param.key == "to") call.to = std::stoll(param.value);
      }
      calls.push_back(call);
      http::Response res;
      if (rateLimit) {
        auto [limit, period] = *rateLimit;
        int64_t t =
            std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
        if (t >= windowStart + period) {
          windowStart = t - t % period;
          usedInWindow = 0;
        }
        ++usedInWindow;
        res.headers = {
            {"X-RateLimit-Limit", std::to_string(limit)},
            {"X-RateLimit-Period", std::to_string(period)},
            {"X-RateLimit-Remaining", std::to_string(std::max<int64_t>(0, limit - usedInWindow))},
            {"X-RateLimit-Reset", std::to_string(windowStart + period - t)}};
        if (usedInWindow > limit) {
          res.status = 429;
          res.body = R"({"errors":["Rate limit exceeded"]})";
          return res;
        }
      }
      if (!script.empty()) {
        auto s = script.front();
        script.pop_front();
        if (s.status == 0)
          return std::unexpected("GET " + r.url.substr(0, r.url.find('/', 8)) +
                                 " failed: Timeout was reached");
        res.status = s.status;
        res.body = s.body;
        for (auto& [k, v] : s.headers) res.headers[k] = v;
        return res;
      }
      for (const auto& q : call.queries) {
        if (bad.contains(q)) {
          res.status = 400;
          res.body = R"({"errors":["Error parsing query: unexpected token in )" + q + "\"]}";
          return res;
        }
      }
      std::string series;
      for (std::size_t i = 0; i < call.queries.size(); ++i) {
        if (auto g = groups.find(call.queries[i]); g != groups.end()) {
          for (const auto& [tag, value] : g->second) {
            if (!series.empty()) series += ",";
            series += R"({"query_index":)" + std::to_string(i) + R"(,"scope":"env:prod,)" + tag +
                      R"(","tag_set":[")" + tag + R"("],"pointlist":[[)" +
                      std::to_string(call.to * 1000 - 60000) + "," + std::to_string(value) + "]]}";
          }
          continue;
        }
        auto it = values.find(call.queries[i]);
        if (it == values.end()) continue;
        if (!series.empty()) series += ",";
        series += R"({"query_index":)" + std::to_string(i) + R"(,"pointlist":[[)" +
                  std::to_string(call.to * 1000 - 60000) + "," + std::to_string(it->second) +
                  "],[" + std::to_string(call.to * 1000 - 30000) + ",null]]}";
      }
      res.status = 200;
      res.body = R"({"status":"ok","series":[)" + series + "]}";
      return res;
    };
  }
};

DatadogOptions options(std::vector<std::string> urls = {"https://api.datadoghq.com"}) {
  DatadogOptions o;
  for (auto& u : urls)
    o.endpoints.push_back({u, Secret::fromValue(kApiKey), Secret::fromValue(kAppKey)});
  o.maxParallelCalls = 1;
  return o;
}

std::vector<BackendQuery> queries(std::size_t n) {
  std::vector<BackendQuery> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back({"avg:m" + std::to_string(i) + "{env:prod,app:a}", 300s});
  return out;
}

void expectNoSecrets(const std::vector<BackendResult>& results, const BackendHealth& health) {
  for (const auto& r : results) {
    if (r) continue;
    EXPECT_EQ(r.error().find(kApiKey), std::string::npos);
    EXPECT_EQ(r.error().find(kAppKey), std::string::npos);
  }
  EXPECT_EQ(health.lastError.find(kApiKey), std::string::npos);
  for (const auto& [k, v] : health.details) {
    EXPECT_EQ(v.find(kApiKey), std::string::npos);
    EXPECT_EQ(v.find(kAppKey), std::string::npos);
  }
}

TEST(DatadogBackend, OneCallAnswersABatchWithTheKeysAsHeadersAndTheWindowAsFromTo) {
  FakeDatadog dd;
  auto qs = queries(3);
  dd.values[qs[0].query] = 1.5;
  dd.values[qs[2].query] = 3.5;
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_EQ(dd.calls.size(), 1u);
  const auto& call = dd.calls[0];
  EXPECT_TRUE(call.url.starts_with(
      "https://api.datadoghq.com/api/v1/"
      "query?from=1699999700&to=1700000000&query=avg%3Am0%7Benv%3Aprod%2Capp%3Aa%7D%2Cavg%3Am1"))
      << call.url;
  EXPECT_EQ(call.headers.at("DD-API-KEY"), kApiKey);
  EXPECT_EQ(call.headers.at("dd-application-key"), kAppKey);
  EXPECT_EQ(call.queries.size(), 3u);
  ASSERT_TRUE(results[0]);
  EXPECT_EQ(results[0]->value, 1.5);
  EXPECT_EQ(results[0]->time, kNow - 60s);  // the newest non-null point here; ms timestamps
  ASSERT_FALSE(results[1]);
  EXPECT_EQ(results[1].error(), "no serie was found for this query");
  EXPECT_EQ(results[2]->value, 3.5);
  EXPECT_EQ(backend.health().calls, 1u);
}

TEST(DatadogBackend, QueriesDifferingInOneTagValueShareOneGroupedQuery) {
  FakeDatadog dd;
  std::vector<BackendQuery> qs = {{"avg:q{env:prod,queue:b}", 300s},
                                  {"avg:q{env:prod,queue:a}", 300s},
                                  {"avg:q{env:prod,queue:c}", 300s},
                                  {"avg:other{*}", 300s}};
  const std::string grouped = "avg:q{env:prod AND queue IN (a,b,c)} by {queue}";
  dd.groups[grouped] = {{"queue:a", 1}, {"queue:b", 2}};
  dd.values["avg:other{*}"] = 9;
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_EQ(dd.calls.size(), 1u);
  EXPECT_EQ(dd.calls[0].queries, (std::vector<std::string>{grouped, "avg:other{*}"}));
  ASSERT_TRUE(results[0]) << results[0].error();
  EXPECT_EQ(results[0]->value, 2);
  EXPECT_EQ(results[0]->time, kNow - 60s);
  ASSERT_TRUE(results[1]) << results[1].error();
  EXPECT_EQ(results[1]->value, 1);
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(results[2].error(), "no serie was found for this query");
  ASSERT_TRUE(results[3]);
  EXPECT_EQ(results[3]->value, 9);

  // Off, each goes as written.
  FakeDatadog plain;
  auto o = options();
  o.coalesce = false;
  DatadogBackend uncoalesced(o, plain.transport(), plain.timing());
  uncoalesced.fetch(qs, kNow);
  ASSERT_EQ(plain.calls.size(), 1u);
  EXPECT_EQ(plain.calls[0].queries.size(), 4u);
}

TEST(DatadogBackend, QueriesEqualOnceNormalisedAreSentOnce) {
  FakeDatadog dd;
  std::vector<BackendQuery> qs = {{"avg:m{env:prod,app:a}", 300s},
                                  {"avg:m{app:a,env:prod}", 300s},
                                  {"avg:m{env:prod , app:a}", 300s},
                                  {"avg:m{env:prod,app:a}", 600s}};
  dd.values["avg:m{env:prod,app:a}"] = 4;
  auto o = options();
  o.coalesce = false;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_EQ(dd.calls.size(), 2u);  // two windows: two calls, one query each
  EXPECT_EQ(dd.calls[0].queries.size(), 1u);
  EXPECT_EQ(dd.calls[1].queries.size(), 1u);
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->value, 4);
  }
}

TEST(DatadogBackend, ARejectedGroupIsAskedMemberByMemberToFindTheBadOne) {
  FakeDatadog dd;
  std::vector<BackendQuery> qs;
  for (int i = 0; i < 40; ++i) {
    qs.push_back({"avg:q{queue:v" + std::to_string(i) + "}", 300s});
    dd.values[qs.back().query] = i;
  }
  // Datadog refusing the group can only mean a member's text: here v7's, say.
  dd.bad.insert(qs[7].query);
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  // ... so the grouped text holding it is refused as a whole.
  dd.bad.insert(
      "avg:q{queue IN (v0,v1,v10,v11,v12,v13,v14,v15,v16,v17,v18,v19,v2,v20,v21,v22,"
      "v23,v24,v25,v26,v27,v28,v29,v3,v30,v31,v32,v33,v34,v35,v36,v37,v38,v39,v4,v5,v6,"
      "v7,v8,v9)} by {queue}");
  auto results = backend.fetch(qs, kNow);
  for (int i = 0; i < 40; ++i) {
    if (i == 7) {
      ASSERT_FALSE(results[i]);
      EXPECT_NE(results[i].error().find("Datadog rejected the query"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error();
    EXPECT_EQ(results[i]->value, i);
  }
  // One grouped call, then the members in chunks of 35, halved where v7 is.
  EXPECT_EQ(dd.calls.front().queries.size(), 1u);
  EXPECT_LE(dd.calls.size(), 1u + 2u + 2u * 6u);
}

// Real time here: the point is threads meeting while one waits for its pacing slot.
TEST(DatadogBackend, FirstFetchesJoinACallWaitingForItsSlot) {
  FakeDatadog dd;
  dd.rateLimit = {{20, 10}};  // once known: 19 calls left for 10 s, about one per 0.5 s
  for (int i = 0; i < 8; ++i) dd.values["avg:m" + std::to_string(i) + "{*}"] = i;
  DatadogBackend backend(options(), dd.transport(), Timing{});
  std::vector<BackendQuery> prime = {{"avg:m0{*}", 300s}};
  // The budget is known from here on, and the next call's slot is about 0.5 s away.
  ASSERT_TRUE(backend.fetch(prime, kNow)[0]);
  ASSERT_TRUE(backend.fetch(prime, kNow)[0]);

  std::vector<BackendResult> refreshed;
  std::thread refresh([&] { refreshed = backend.fetch(prime, kNow); });
  std::this_thread::sleep_for(100ms);  // the refresh's call now waits for its slot
  std::vector<BackendQuery> fresh;
  for (int i = 1; i < 6; ++i) fresh.push_back({"avg:m" + std::to_string(i) + "{*}", 300s});
  auto first = backend.fetchFirst(fresh, kNow);
  refresh.join();
  ASSERT_EQ(dd.calls.size(), 3u);
  EXPECT_EQ(dd.calls[2].queries.size(), 6u);  // the refresh's query and the five first fetches
  ASSERT_TRUE(refreshed[0]);
  EXPECT_EQ(refreshed[0]->value, 0);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(first[i]) << first[i].error();
    EXPECT_EQ(first[i]->value, i + 1);
  }
}

TEST(DatadogBackend, FirstFetchesArrivingTogetherShareTheCallTheFirstOneBooks) {
  FakeDatadog dd;
  dd.rateLimit = {{20, 10}};
  for (int i = 0; i < 21; ++i) dd.values["avg:n" + std::to_string(i) + "{*}"] = i;
  DatadogBackend backend(options(), dd.transport(), Timing{});
  std::vector<BackendQuery> prime = {{"avg:n20{*}", 300s}};
  ASSERT_TRUE(backend.fetch(prime, kNow)[0]);
  std::vector<std::thread> threads;
  std::vector<BackendResult> results(20, std::unexpected(std::string("not run")));
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 * i));  // one after another
      std::vector<BackendQuery> q = {{"avg:n" + std::to_string(i) + "{*}", 300s}};
      results[i] = backend.fetchFirst(q, kNow)[0];
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error();
    EXPECT_EQ(results[i]->value, i);
  }
  // 20 first fetches within 100 ms, calls 0.5 s apart: the first goes at once (its slot is free),
  // the next books the following slot and every later one rides that call.
  EXPECT_LE(dd.calls.size() - 1, 2u);
}

TEST(DatadogBackend, ARiderInARefusedCallIsFoundByACallOfItsOwn) {
  FakeDatadog dd;
  dd.rateLimit = {{20, 10}};
  dd.values["avg:good{*}"] = 1;
  dd.values["avg:fine{*}"] = 2;
  dd.bad.insert("avg:broken{*}");
  DatadogBackend backend(options(), dd.transport(), Timing{});
  std::vector<BackendQuery> prime = {{"avg:good{*}", 300s}};
  ASSERT_TRUE(backend.fetch(prime, kNow)[0]);
  std::vector<BackendResult> refreshed;
  std::thread refresh([&] { refreshed = backend.fetch(prime, kNow); });
  std::this_thread::sleep_for(100ms);
  std::vector<BackendQuery> fresh = {{"avg:broken{*}", 300s}, {"avg:fine{*}", 300s}};
  auto first = backend.fetchFirst(fresh, kNow);
  refresh.join();
  ASSERT_TRUE(refreshed[0]) << refreshed[0].error();
  EXPECT_EQ(refreshed[0]->value, 1);
  ASSERT_FALSE(first[0]);
  EXPECT_NE(first[0].error().find("Datadog rejected the query"), std::string::npos);
  ASSERT_TRUE(first[1]) << first[1].error();
  EXPECT_EQ(first[1]->value, 2);
}

// 20 calls left for 100 s, refresh 30 s: a refresh may spend 0.9 x 20/100 x 30 = 5 calls.
TEST(DatadogBackend, ABudgetTooSmallDefersTheCallsOfMetricsNoHpaNamesInTurn) {
  FakeDatadog dd;
  dd.rateLimit = {{21, 100}};
  auto o = options();
  o.refreshPeriod = 30s;
  o.limits.maxQueries = 2;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  ASSERT_TRUE(backend.fetch(std::vector<BackendQuery>{{"avg:prime{*}", 300s}}, kNow)[0]
                  .error()
                  .size());  // learns the budget: 20 left, reset in 100 s
  std::vector<BackendQuery> qs;
  for (int i = 0; i < 20; ++i) {
    qs.push_back({"avg:m" + std::to_string(i) + "{*}", 300s, i < 4});  // m0..m3 named by HPAs
    dd.values[qs.back().query] = i;
  }
  std::map<int, int> sent;   // metric -> refreshes it was asked in
  std::size_t deferred = 0;  // in the last refresh
  for (int refresh = 0; refresh < 4; ++refresh) {
    auto before = dd.calls.size();
    auto results = backend.fetch(qs, kNow);
    deferred = 0;
    EXPECT_LE(dd.calls.size() - before, 5u) << "refresh " << refresh;
    for (int i = 0; i < 20; ++i) {
      if (i < 4) {
        ASSERT_TRUE(results[i]) << "an urgent metric was deferred: " << results[i].error();
      }
      if (results[i]) {
        ++sent[i];
        EXPECT_EQ(results[i]->value, i);
      } else {
        EXPECT_TRUE(isDeferred(results[i])) << results[i].error();
        ++deferred;
      }
    }
  }
  // 16 deferrable metrics, 3 calls of 2 each per refresh: each comes round within 3 refreshes.
  for (int i = 4; i < 20; ++i) EXPECT_GE(sent[i], 1) << "m" << i << " was never refreshed";
  auto health = backend.health();
  ASSERT_TRUE(health.stretch);
  EXPECT_GT(health.stretch->wantPerHour, health.stretch->budgetPerHour);
  EXPECT_EQ(health.stretch->wantPerHour, 1200);  // 10 calls a refresh, 120 refreshes an hour
  EXPECT_EQ(health.stretch->metrics, deferred);
  EXPECT_GT(health.stretch->intervalSeconds, 30);
  bool shown = false;
  for (const auto& [k, v] : health.details) {
    if (k != "refresh stretched") continue;
    shown = true;
    std::regex said(
        "budget [0-9,]+/h, want 1,200/h: ([0-9]+) metrics no HPA names refreshed every [0-9,]+ s "
        "instead of 30 s");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(v, m, said)) << v;
    EXPECT_EQ(m[1], std::to_string(deferred));
  }
  EXPECT_TRUE(shown);
}

// The turn each deferred metric has waited for survives a change of the refresh's queries: the ones
// left out last time go first, not those that happen to come first in the new plan.
TEST(DatadogBackend, DeferredMetricsKeepTheirTurnWhenTheRefreshGainsAQuery) {
  FakeDatadog dd;
  dd.rateLimit = {{21, 100}};
  auto o = options();
  o.refreshPeriod = 30s;
  o.limits.maxQueries = 2;
  o.coalesce = false;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  backend.fetch(std::vector<BackendQuery>{{"avg:prime{*}", 300s}}, kNow);  // learns the budget
  std::vector<BackendQuery> qs;
  for (int i = 0; i < 20; ++i) {
    qs.push_back({"avg:m" + std::to_string(i) + "{*}", 300s, i < 4});  // m0..m3 named by HPAs
    dd.values[qs.back().query] = i;
  }
  auto sentIn = [&](const std::vector<BackendResult>& results) {
    std::set<std::string> sent;
    for (std::size_t i = 4; i < results.size(); ++i) {
      if (results[i]) sent.insert(qs[i].query);
    }
    return sent;
  };
  auto first = sentIn(backend.fetch(qs, kNow));
  auto second = sentIn(backend.fetch(qs, kNow));
  // 5 calls a refresh, 2 for the HPAs' metrics: 6 of the 16 others a refresh, 4 never sent yet.
  std::set<std::string> waiting;
  for (std::size_t i = 4; i < qs.size(); ++i) {
    if (!first.contains(qs[i].query) && !second.contains(qs[i].query)) waiting.insert(qs[i].query);
  }
  ASSERT_FALSE(waiting.empty()) << "the budget covered every metric: nothing was deferred";
  qs.push_back({"avg:m20{*}", 300s, false});  // the plan changes
  dd.values[qs.back().query] = 20;
  waiting.insert(qs.back().query);
  ASSERT_LE(waiting.size(), 6u);
  auto after = sentIn(backend.fetch(qs, kNow));
  for (const auto& q : waiting) {
    EXPECT_TRUE(after.contains(q)) << q << " waited longest and was deferred again";
  }
  for (const auto& q : after) {
    EXPECT_FALSE(second.contains(q))
        << q << " was sent again before the metrics deferred last time";
  }
}

// A rate-limit period shorter than the refresh: a refresh may spend what is left of this period
// and then the next periods' share of the limit, not the rest spread over the seconds left (here
// 9 calls over 3 s would allow 0.9 x 3/s x 30 s = 81, more than the 36 the next 30 s hold).
TEST(DatadogBackend, ARefreshLongerThanTheRateLimitPeriodGetsTheRestAndTheNextPeriodsShare) {
  FakeDatadog dd;
  dd.rateLimit = {{10, 10}};
  dd.clockNs = std::chrono::duration_cast<std::chrono::nanoseconds>(8s).count();
  auto o = options();
  o.refreshPeriod = 30s;
  o.limits.maxQueries = 1;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  // Learns the budget 8 s into a 10 s window: 9 left, reset announced as 2 s (3 s, to be safe).
  backend.fetch(std::vector<BackendQuery>{{"avg:prime{*}", 300s}}, kNow);
  std::vector<BackendQuery> qs;
  for (int i = 0; i < 40; ++i) {
    qs.push_back({"avg:m" + std::to_string(i) + "{*}", 300s, false});
    dd.values[qs.back().query] = i;
  }
  auto before = dd.calls.size();
  auto results = backend.fetch(qs, kNow);
  // 0.9 x (9 + 10 x (30 - 3) / 10) = 32.4: 32 calls, the other 8 metrics deferred.
  EXPECT_EQ(dd.calls.size() - before, 32u);
  EXPECT_EQ(
      std::count_if(results.begin(), results.end(), [](const auto& r) { return isDeferred(r); }),
      8);
  for (const auto& r : results) {
    if (!isDeferred(r)) {
      EXPECT_TRUE(r) << r.error();  // sent within the budget: answered, no 429
    }
  }
}

TEST(DatadogBackend, AQueryTooLongForAUrlIsNeverSentAndSaysHowToFixIt) {
  FakeDatadog dd;
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  std::string tags;
  for (int i = 0; i < 800; ++i) tags += (i ? "," : "") + std::string("host:h") + std::to_string(i);
  std::vector<BackendQuery> qs = {{"avg:a{" + tags + "}", 300s}, {"avg:b{*}", 300s}};
  dd.values["avg:b{*}"] = 2;
  auto results = backend.fetch(qs, kNow);
  ASSERT_FALSE(results[0]);
  EXPECT_NE(results[0].error().find("characters once URL-escaped; Datadog takes at most 7000"),
            std::string::npos)
      << results[0].error();
  EXPECT_NE(results[0].error().find("shorten it"), std::string::npos) << results[0].error();
  ASSERT_TRUE(results[1]) << results[1].error();  // its neighbour is fetched as ever
  for (const auto& c : dd.calls) EXPECT_EQ(c.queries, std::vector<std::string>{"avg:b{*}"});
}

TEST(DatadogBackend, WindowsAreCappedAtOneDay) {
  FakeDatadog dd;
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  std::vector<BackendQuery> qs = {{"avg:a{*}", std::chrono::hours(72)}};
  backend.fetch(qs, kNow);
  ASSERT_EQ(dd.calls.size(), 1u);
  EXPECT_EQ(dd.calls[0].to - dd.calls[0].from, 86400);
}

TEST(DatadogBackend, PacksAHundredQueriesIntoThreeCallsInParallel) {
  FakeDatadog dd;
  auto qs = queries(100);
  for (auto& q : qs) dd.values[q.query] = 7;
  auto o = options();
  o.maxParallelCalls = 4;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  EXPECT_EQ(dd.calls.size(), 3u);
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error();
    EXPECT_EQ(r->value, 7);
  }
}

TEST(DatadogBackend, ARejectedQueryFailsAloneWithTheApisMessageAndIsNotSentAgain) {
  FakeDatadog dd;
  auto qs = queries(20);
  for (auto& q : qs) dd.values[q.query] = 1;
  qs[13].query = "avg:broken{env:prod AND !region:us}";  // mixes the two filter forms
  dd.bad.insert(qs[13].query);
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  for (std::size_t i = 0; i < qs.size(); ++i) {
    if (i == 13) continue;
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error();
  }
  ASSERT_FALSE(results[13]);
  EXPECT_EQ(results[13].error(),
            "Datadog rejected the query: Error parsing query: unexpected token in "
            "avg:broken{env:prod AND !region:us}");
  // 1 full call + halving down to the one query: at most 2 calls per level of a 20-query batch.
  EXPECT_LE(dd.calls.size(), 1u + 2u * 5u);
  dd.calls.clear();
  auto again = backend.fetch(qs, kNow + 30s);
  ASSERT_EQ(dd.calls.size(), 1u);  // the known-bad query is answered from memory
  EXPECT_EQ(dd.calls[0].queries.size(), 19u);
  EXPECT_EQ(again[13].error(), results[13].error());
}

TEST(DatadogBackend, On429WaitsForTheResetThenRetries) {
  FakeDatadog dd;
  auto qs = queries(1);
  dd.values[qs[0].query] = 4;
  dd.script.push_back({429,
                       R"({"errors":["Rate limit exceeded"]})",
                       {{"x-ratelimit-limit", "10"},
                        {"x-ratelimit-period", "10"},
                        {"x-ratelimit-remaining", "9"},
                        {"x-ratelimit-reset", "3"}}});
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_TRUE(results[0]) << results[0].error();
  EXPECT_EQ(dd.calls.size(), 2u);
  EXPECT_GE(dd.now() - SteadyClock::time_point{}, 3s);
}

TEST(DatadogBackend, ASpentBudgetFailsFastInsteadOfWaitingAnHour) {
  FakeDatadog dd;
  auto qs = queries(70);
  dd.script.push_back({429,
                       R"({"errors":["Rate limit exceeded"]})",
                       {{"x-ratelimit-limit", "1600"},
                        {"x-ratelimit-period", "3600"},
                        {"x-ratelimit-remaining", "0"},
                        {"x-ratelimit-reset", "1800"}}});
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  EXPECT_EQ(dd.calls.size(), 1u);
  for (const auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find("rate limit"), std::string::npos) << r.error();
  }
  auto health = backend.health();
  ASSERT_FALSE(health.details.empty());
  EXPECT_NE(health.details[0].second.find("0 of 1600 calls left per 3600s"), std::string::npos)
      << health.details[0].second;
}

TEST(DatadogBackend, PacesARefreshToTheAnnouncedLimit) {
  FakeDatadog dd;
  dd.rateLimit = {{5, 60}};  // 5 calls a minute
  auto qs = queries(35 * 12);
  for (auto& q : qs) dd.values[q.query] = 2;
  auto o = options();
  o.maxRateLimitWait = 120s;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  EXPECT_EQ(dd.calls.size(), 12u);  // no 429 was provoked, so no retry
  for (const auto& r : results) ASSERT_TRUE(r) << r.error();
  // 12 calls at 5 a minute take at least two minutes of (fake) time.
  EXPECT_GE(dd.now() - SteadyClock::time_point{}, 120s);
}

TEST(DatadogBackend, ServerErrorsFailOverToTheNextEndpointAndBackOff) {
  FakeDatadog dd;
  auto qs = queries(2);
  dd.values[qs[0].query] = 1;
  dd.values[qs[1].query] = 2;
  dd.script.push_back({503, R"({"errors":["upstream down"]})", {}});
  auto o = options({"https://api.datadoghq.com", "https://api.datadoghq.eu"});
  o.endpointBackoff = 30s;
  DatadogBackend backend(o, dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_TRUE(results[0]) << results[0].error();
  ASSERT_EQ(dd.calls.size(), 2u);
  EXPECT_TRUE(dd.calls[1].url.starts_with("https://api.datadoghq.eu/"));
  // The failed endpoint sits out its backoff...
  backend.fetch(qs, kNow);
  EXPECT_TRUE(dd.calls[2].url.starts_with("https://api.datadoghq.eu/"));
  // ... and is first again once it is over.
  dd.clockNs += std::chrono::duration_cast<std::chrono::nanoseconds>(31s).count();
  backend.fetch(qs, kNow);
  EXPECT_TRUE(dd.calls[3].url.starts_with("https://api.datadoghq.com/"));
}

TEST(DatadogBackend, TimeoutsAndForbiddenNameTheCauseButNeverTheKeys) {
  FakeDatadog dd;
  auto qs = queries(2);
  dd.script.push_back({0, "", {}});
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_FALSE(results[0]);
  EXPECT_NE(results[0].error().find("Timeout was reached"), std::string::npos)
      << results[0].error();
  EXPECT_FALSE(backend.health().reachable);
  expectNoSecrets(results, backend.health());

  FakeDatadog forbidden;
  forbidden.script.push_back({403, R"({"errors":["Forbidden"]})", {}});
  DatadogBackend b2(options(), forbidden.transport(), forbidden.timing());
  auto r2 = b2.fetch(qs, kNow);
  ASSERT_FALSE(r2[0]);
  EXPECT_NE(r2[0].error().find("403 Forbidden: Forbidden"), std::string::npos) << r2[0].error();
  EXPECT_NE(r2[0].error().find("DD_API_KEY"), std::string::npos);
  expectNoSecrets(r2, b2.health());
}

std::map<std::string, uint64_t> outcomes(const DatadogBackend& backend) {
  std::map<std::string, uint64_t> out;
  for (const auto& [name, n] : backend.health().callsByOutcome) out[std::string(name)] = n;
  return out;
}

TEST(DatadogBackend, CountsCallsByOutcomeAndReportsTheAnnouncedBudget) {
  FakeDatadog dd;
  auto qs = queries(1);
  dd.values[qs[0].query] = 4;
  dd.script.push_back({429,
                       R"({"errors":["Rate limit exceeded"]})",
                       {{"x-ratelimit-limit", "10"},
                        {"x-ratelimit-period", "10"},
                        {"x-ratelimit-remaining", "0"},
                        {"x-ratelimit-reset", "3"}}});
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  EXPECT_TRUE(backend.health().rateLimits.empty());  // nothing announced yet
  ASSERT_TRUE(backend.fetch(qs, kNow)[0]);
  std::vector<BackendQuery> broken = {{"avg:broken{env:prod AND !region:us}", 300s}};
  dd.bad.insert(broken[0].query);
  ASSERT_FALSE(backend.fetch(broken, kNow)[0]);
  dd.script.push_back({200, "<html>maintenance</html>", {}});
  ASSERT_FALSE(backend.fetch(qs, kNow)[0]);
  auto counted = outcomes(backend);
  EXPECT_EQ(counted["ok"], 1u);
  EXPECT_EQ(counted["rate_limited"], 1u);
  EXPECT_EQ(counted["rejected"], 1u);
  EXPECT_EQ(counted["error"], 1u);
  EXPECT_EQ(counted["timeout"], 0u);
  auto health = backend.health();
  ASSERT_EQ(health.rateLimits.size(), 1u);
  EXPECT_EQ(health.rateLimits[0].endpoint, "https://api.datadoghq.com");
  EXPECT_EQ(health.rateLimits[0].limit, 10);

  FakeDatadog slow;
  slow.script.push_back({0, "", {}});  // "Timeout was reached"
  DatadogBackend timingOut(options(), slow.transport(), slow.timing());
  ASSERT_FALSE(timingOut.fetch(qs, kNow)[0]);
  EXPECT_EQ(outcomes(timingOut)["timeout"], 1u);
  EXPECT_EQ(outcomes(timingOut)["error"], 0u);
}

TEST(DatadogBackend, GarbageIsAnErrorForTheWholeCall) {
  FakeDatadog dd;
  auto qs = queries(2);
  dd.script.push_back({200, "<html>maintenance</html>", {}});
  DatadogBackend backend(options(), dd.transport(), dd.timing());
  auto results = backend.fetch(qs, kNow);
  ASSERT_FALSE(results[1]);
  EXPECT_NE(results[1].error().find("not a query response"), std::string::npos)
      << results[1].error();
}

TEST(DatadogBackend, KeyFilesAreReadAgainWhenTheyChange) {
  std::string path = ::testing::TempDir() + "/dd-api-key";
  std::ofstream(path) << "first-key\n";
  FakeDatadog dd;
  auto o = options();
  o.endpoints[0].apiKey = Secret::fromFile(path);
  DatadogBackend backend(o, dd.transport(), dd.timing());
  backend.fetch(queries(1), kNow);
  std::ofstream(path) << "second-key-longer\n";
  backend.fetch(queries(1), kNow);
  ASSERT_EQ(dd.calls.size(), 2u);
  EXPECT_EQ(dd.calls[0].headers.at("DD-API-KEY"), "first-key");
  EXPECT_EQ(dd.calls[1].headers.at("DD-API-KEY"), "second-key-longer");
  std::remove(path.c_str());
}

TEST(DatadogBackend, CancelEndsAPacedRefreshPromptly) {
  FakeDatadog dd;
  auto qs = queries(35 * 3);
  auto o = options();
  DatadogBackend backend(o, dd.transport(), Timing{});  // real clock, interruptible waits
  backend.cancel();
  auto results = backend.fetch(qs, kNow);
  EXPECT_TRUE(dd.calls.empty());
  EXPECT_EQ(results[0].error(), "xmetrics is shutting down");
}

TEST(ParseEndpointList, JsonListOrCommaSeparatedUrls) {
  auto api = Secret::fromValue("a"), app = Secret::fromValue("b");
  auto list = parseEndpointList(
      R"([{"url":"https://proxy.local/"},{"site":"datadoghq.eu","api_key":"k2","app_key":"p2"}])",
      api, app);
  ASSERT_TRUE(list) << list.error();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].url, "https://proxy.local");
  EXPECT_EQ(*(*list)[0].apiKey.get(), "a");
  EXPECT_EQ((*list)[1].url, "https://api.datadoghq.eu");
  EXPECT_EQ(*(*list)[1].apiKey.get(), "k2");
  auto urls = parseEndpointList("https://a.example, https://b.example", api, app);
  ASSERT_TRUE(urls);
  EXPECT_EQ(urls->size(), 2u);
  auto bad = parseEndpointList(R"([{"api_key":"super-secret"}])", api, app);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().find("super-secret"), std::string::npos);
  EXPECT_TRUE(parseEndpointList("", api, app)->empty());
}

}  // namespace
}  // namespace xmetrics::backends::datadog

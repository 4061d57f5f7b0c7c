#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backends/backend.hpp"
#include "backends/datadog/batch_planner.hpp"
#include "backends/datadog/query_response.hpp"
#include "backends/datadog/rate_budget.hpp"
#include "backends/datadog/secret.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::datadog {

// One place the query API is reached, with its own keys (failover endpoints may be other orgs).
struct Endpoint {
  std::string url;  // base URL without a trailing slash: https://api.datadoghq.com
  Secret apiKey;    // DD-API-KEY
  Secret appKey;    // DD-APPLICATION-KEY
};

// The query API a backend calls (--datadog-api).
enum class Api {
  kV1,  // GET /api/v1/query, queries in the URL: the Cluster Agent's
  kV2,  // POST /api/v2/query/timeseries, queries in a JSON body (v2_query.hpp)
};

struct DatadogOptions {
  std::vector<Endpoint> endpoints;  // tried in order; the first healthy one is used
  std::string proxy;                // HTTPS proxy URL; empty: libcurl's HTTPS_PROXY / NO_PROXY
  std::string proxyHttp;            // proxy of http:// endpoints; empty: libcurl's HTTP_PROXY
  std::string noProxy;              // comma-separated hosts never proxied (libcurl NOPROXY)
  BatchLimits limits;
  // v2 carries no URL: pair it with limits.maxEscapedChars = kV2MaxQueryChars (register.cpp does).
  Api api = Api::kV1;
  // Queries that differ only in one tag's value are sent as one query grouped by that tag
  // (query::coalesce), at most this many values in one.
  bool coalesce = true;
  std::size_t maxCoalescedValues = 100;
  std::size_t maxParallelCalls = 10;          // DD_EXTERNAL_METRICS_PROVIDER_MAX_PARALLEL_QUERIES
  std::chrono::milliseconds timeout{10'000};  // one call, connect to last byte
  // A failing endpoint (transport error, timeout, 5xx, 401/403, garbage) is skipped for this long,
  // doubling per consecutive failure up to maxEndpointBackoff (the Cluster Agent's 30 s → 30 min).
  std::chrono::seconds endpointBackoff{30};
  std::chrono::seconds maxEndpointBackoff{1800};
  // A call waits at most this long for a spent budget (or a 429) to reset; beyond, it fails at
  // once.
  std::chrono::seconds maxRateLimitWait{30};
  std::chrono::seconds maxWindow{86400};  // max_time_window: windows are capped to it
  // The poller's refresh period: when the announced budget cannot cover a whole refresh at it,
  // calls holding only queries that are not urgent are deferred, least recently sent first.
  // Zero: never deferred (calls are only paced).
  std::chrono::seconds refreshPeriod{0};
  // A query Datadog rejected (400/422) is answered from memory, without a call, for this long.
  std::chrono::seconds rejectedQueryTtl{600};
  // Fails the calls in flight and every later one (HttpClient::cancel): shutdown.
  std::function<void()> cancelTransport;
};

// "datadoghq.eu" -> "https://api.datadoghq.eu".
std::string siteUrl(std::string_view site);

// The failover list (DD_EXTERNAL_METRICS_PROVIDER_ENDPOINTS): a JSON list of objects with `url` or
// `site`, and optional `api_key` / `app_key` (default: `apiKey` / `appKey`); or a comma-separated
// list of URLs sharing the default keys. Errors never quote key values.
std::expected<std::vector<Endpoint>, std::string> parseEndpointList(std::string_view text,
                                                                    const Secret& apiKey,
                                                                    const Secret& appKey);

// Sends one HTTP request; HttpClient::send in production, a fake in tests.
using Transport = std::function<std::expected<http::Response, std::string>(const http::Request&)>;

// Steady time and sleeping, injectable so pacing is tested without waiting.
struct Timing {
  std::function<std::chrono::steady_clock::time_point()> now;
  std::function<void(std::chrono::steady_clock::duration)> sleep;  // empty: interruptible wait
};

// The Datadog query API (GET /api/v1/query). Packs the poller's queries into calls as the Cluster
// Agent does (chunk size, escaped length, one window per call) and sends up to maxParallelCalls at
// once, paced to the announced X-RateLimit budget. A query the API rejects is found by splitting
// its call in halves and fails alone with the API's message; a failing endpoint backs off and the
// next one in the list takes over. Keys are sent as headers only and never appear in logs, errors
// or status.
class DatadogBackend final : public Backend {
 public:
  // @param options endpoints must not be empty.
  DatadogBackend(DatadogOptions options, Transport transport, Timing timing = {});
  ~DatadogBackend() override;

  // Backend
  std::vector<BackendResult> fetch(std::span<const BackendQuery> batch,
                                   core::Clock::time_point now) override;
  // First fetches ride along: their queries join a call that is waiting for its pacing slot and
  // has room (same window, under the chunk size), instead of each booking a slot of its own. With
  // none waiting, this fetch books one, and the first fetches that come meanwhile join it.
  std::vector<BackendResult> fetchFirst(std::span<const BackendQuery> batch,
                                        core::Clock::time_point now) override;
  std::string_view name() const override { return "datadog"; }
  BackendHealth health() const override;
  bool batchesItself() const override { return true; }
  void cancel() override;

  uint64_t calls() const { return calls_.load(); }

 private:
  struct EndpointState;
  struct CallOutcome;
  // One query as it travels: a query of the batch, or a coalesced group standing for several.
  struct WireQuery {
    BackendQuery query;
    std::vector<std::size_t> members;  // indices into the fetched batch
    std::string splitKey;              // grouped: the tag its answer is split by
    std::vector<std::string> values;   // grouped: the value each member wants
  };
  struct WirePlan {
    std::vector<BackendQuery> batch;  // what it was made for
    std::vector<bool> skip;
    std::vector<WireQuery> wire;
    std::vector<std::size_t> copyOf;  // a query equal to an earlier one once normalised: its index
    std::vector<std::size_t> escapedChars;  // of each wire query's text, for planBatches
  };

  // A first fetch's query, waiting for a call to take it (or for its own fetchFirst to drive).
  struct Rider {
    WireQuery wire;                // members: indices into the batch of the fetchFirst that made it
    std::size_t escapedChars = 0;  // of its query's text, from the wire plan
    bool claimed = false;
    bool mustDrive = false;       // its call was refused: it goes in a call of its own kind
    std::size_t answerIndex = 0;  // its query's place in the call that took it
    std::optional<std::expected<QueryAnswer, std::string>> answer;
  };
  using RiderPtr = std::shared_ptr<Rider>;
  struct WaitingCall {
    std::chrono::seconds window;
    std::size_t room;                // queries it can still take
    std::vector<std::string> texts;  // what it holds: a rider asking the same needs no room
    std::size_t chars = 0;  // their escaped, comma-joined length: a rider must fit the URL too
  };

  // How many calls a refresh may make now: what the announced budget sustains over a refresh
  // period, with a tenth kept for first fetches; nullopt while no budget is known.
  std::optional<std::size_t> refreshAllowance();
  // Drops calls from the end of a refresh's plan (only calls of queries that are not urgent)
  // until it fits refreshAllowance(); their metrics get deferredResult(). Records the stretch.
  void deferCalls(std::span<const WireQuery> wire, const std::vector<bool>& isUrgent,
                  std::vector<PlannedCall>& calls, std::vector<BackendResult>& results);
  std::shared_ptr<WirePlan> makeWirePlan(std::span<const BackendQuery> batch,
                                         const std::vector<bool>& skip) const;
  std::shared_ptr<const WirePlan> wirePlan(std::span<const BackendQuery> batch,
                                           const std::vector<bool>& skip);
  std::vector<bool> rejectedQueries(std::span<const BackendQuery> batch,
                                    std::vector<BackendResult>& results);
  void failTooLong(std::span<const BackendQuery> batch, std::span<const WireQuery> wire,
                   const std::vector<std::size_t>& tooLong, std::vector<BackendResult>& results);
  // Registers a call about to wait for its slot; takes riders when it leaves (takeRiders).
  // `chars`: the escaped, comma-joined length of `texts`, as the call's URL holds them.
  std::list<WaitingCall>::iterator waitForRiders(std::chrono::seconds window, std::size_t room,
                                                 std::vector<std::string> texts, std::size_t chars);
  // Riders of the call's window: one asking a query the call holds shares its answer; others
  // are appended to `texts` while room and the URL length allow.
  std::vector<RiderPtr> takeRiders(std::list<WaitingCall>::iterator call, std::size_t usedChars,
                                   std::vector<std::string>& texts);
  void answerRiders(std::vector<RiderPtr>& riders, CallOutcome& outcome, std::size_t own);
  void execute(std::span<const BackendQuery> batch, std::span<const WireQuery> wire,
               const std::vector<std::size_t>& indices, std::chrono::seconds window,
               core::Clock::time_point now, std::vector<BackendResult>& results,
               bool urgent = false);
  CallOutcome send(std::span<const WireQuery> wire, const std::vector<std::size_t>& indices,
                   std::chrono::seconds window, core::Clock::time_point now, bool urgent);
  CallOutcome sendWithRiders(std::span<const WireQuery> wire,
                             const std::vector<std::size_t>& indices, std::chrono::seconds window,
                             core::Clock::time_point now, std::vector<RiderPtr>& riders,
                             bool urgent);
  EndpointState* pickEndpoint(std::string& whyNone);
  void markFailure(EndpointState& endpoint, const std::string& error);
  void markSuccess(EndpointState& endpoint);
  bool sleepFor(std::chrono::steady_clock::duration d);  // false when cancelled

  DatadogOptions options_;
  Transport transport_;
  Timing timing_;
  std::vector<std::unique_ptr<EndpointState>> endpoints_;

  mutable std::mutex mutex_;  // endpoint backoff, rejected queries, health
  std::condition_variable cancelled_cv_;
  bool cancelled_ = false;
  struct Rejected {
    std::string message;
    std::chrono::steady_clock::time_point until;
  };
  std::unordered_map<std::string, Rejected> rejected_;
  // The last refresh's plan: the same batch (the usual case) is not parsed and grouped again.
  std::shared_ptr<const WirePlan> lastPlan_;

  // Deferral (guarded by mutex_): when each wire query of lastPlan_ was last sent, in refreshes
  // (by its index in lastPlan_->wire: a refresh of the same plan looks no query text up), and what
  // the last refresh had to stretch (shown in health()).
  std::vector<uint64_t> lastSent_;
  uint64_t refreshes_ = 0;
  struct Stretch {
    double budgetPerHour = 0, wantPerHour = 0;
    std::size_t metrics = 0;     // deferred in the last refresh
    double intervalSeconds = 0;  // how often a deferrable metric is refreshed at this rate
  };
  std::optional<Stretch> stretch_;
  double announcedRate_ = 0;  // calls per second the budget sustains, as last computed

  std::mutex ridersMutex_;  // riders_, waitingCalls_, every Rider's fields
  std::condition_variable ridersChanged_;
  std::vector<RiderPtr> riders_;  // not yet claimed, in arrival order
  std::list<WaitingCall> waitingCalls_;
  std::string lastError_;
  core::Clock::time_point lastSuccess_, lastFailure_;
  std::atomic<uint64_t> calls_{0};
  CallCounts callCounts_;
};

}  // namespace xmetrics::backends::datadog

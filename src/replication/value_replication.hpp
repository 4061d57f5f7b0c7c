#pragma once

// replication/: the leader <-> follower exchange of published values (codec and client). May
// include core/, http/ and store/.

#include <boost/json/object.hpp>
#include <chrono>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "http/http_client.hpp"
#include "store/value_store.hpp"

namespace xmetrics::replication {

// How followers serve what the leader fetched (docs/high-availability.md): every replica watches
// the same HPAs and DatadogMetrics, so every replica resolves metrics alike; only the leader asks
// backends. Each second a follower POSTs to the leader's /xmetrics/v1/replicate the metrics it was
// asked for (so the leader polls them too) and the generation of the values it holds; the leader
// answers with its published values when they changed. This costs no Kubernetes API writes.

inline constexpr std::string_view kReplicatePath = "/xmetrics/v1/replicate";

// A metric a follower was asked for.
struct Demand {
  std::string ns;
  std::string metricName;
  std::string selector;  // canonical
};

struct ReplicateRequest {
  uint64_t generation = 0;  // of the values the follower holds; 0: none yet
  std::vector<Demand> demand;
  // Where the follower receives DogStatsD (numeric host:port), so the leader and the other
  // followers relay their clients' datagrams to it; empty: it does not take relayed DogStatsD.
  std::string dogstatsdAddress;
};

std::string encodeRequest(const ReplicateRequest& request);
std::expected<ReplicateRequest, std::string> decodeRequest(std::string_view body);

// The leader's answer: its values when its snapshot's generation differs from the follower's,
// and every replica's DogStatsD address (the leader's and its live followers').
std::string encodeSnapshot(const store::ValueSnapshot& snapshot, uint64_t followerGeneration,
                           const std::vector<std::string>& dogstatsdPeers = {});

struct ReplicatedValues {
  uint64_t generation = 0;
  std::optional<std::vector<store::MetricValue>> values;  // nullopt: unchanged
  std::vector<std::string> dogstatsdPeers;
};

// Who receives DogStatsD, for the relay between replicas (ingest::DogStatsdListener's
// setRelayTargets): the leader learns each follower's address from its exchanges (a follower not
// heard from for `expiry` is dropped), and hands the whole list to every follower in its answer.
// Thread-safe.
class DogStatsdPeers {
 public:
  // `self`: this replica's address ("" when it takes no relayed DogStatsD).
  explicit DogStatsdPeers(std::string self, std::chrono::seconds expiry = std::chrono::seconds(10));
  const std::string& self() const { return self_; }
  // Leader: a follower exchanged now. Returns every live replica's address, this one first.
  std::vector<std::string> followerSeen(const std::string& address,
                                        std::chrono::steady_clock::time_point now);
  // Follower: the leader's answer.
  void leaderSaid(std::vector<std::string> all);
  // Where this replica relays to now: every other live replica.
  std::vector<std::string> targets(bool leading, std::chrono::steady_clock::time_point now);

 private:
  std::vector<std::string> liveLocked(std::chrono::steady_clock::time_point now);
  std::string self_;
  std::chrono::seconds expiry_;
  std::mutex mutex_;
  std::map<std::string, std::chrono::steady_clock::time_point> followers_;  // leader's view
  std::vector<std::string> fromLeader_;                                     // follower's view
};
std::expected<ReplicatedValues, std::string> decodeSnapshot(std::string_view body);

// The follower's side: one exchange with the leader at `leaderUrl`. Authenticates with the
// replicas' shared client certificate (same cert dir, i.e. the same Secret) and trusts their
// shared CA. Thread-compatible (the poller thread uses it).
//
// The leader is recognised by its certificate's chain to that CA alone (only the replicas hold its
// key), not by host name: its URL holds its pod IP, which the shared serving certificate (issued
// for the Service's names) does not name.
class LeaderClient {
 public:
  explicit LeaderClient(http::TlsOptions tls);
  std::expected<ReplicatedValues, std::string> exchange(const std::string& leaderUrl,
                                                        const ReplicateRequest& request);

 private:
  http::HttpClient http_;
};

}  // namespace xmetrics::replication

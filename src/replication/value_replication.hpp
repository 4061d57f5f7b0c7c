#pragma once

// replication/: the leader <-> follower exchange of published values (codec and client). May
// include core/, http/ and store/.

#include <boost/json/object.hpp>
#include <expected>
#include <memory>
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
};

std::string encodeRequest(const ReplicateRequest& request);
std::expected<ReplicateRequest, std::string> decodeRequest(std::string_view body);

// The leader's answer: its values when its snapshot's generation differs from the follower's.
std::string encodeSnapshot(const store::ValueSnapshot& snapshot, uint64_t followerGeneration);

struct ReplicatedValues {
  uint64_t generation = 0;
  std::optional<std::vector<store::MetricValue>> values;  // nullopt: unchanged
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

#include "replication/value_replication.hpp"

#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "core/json_fields.hpp"
#include "core/time_format.hpp"

namespace xmetrics::replication {
namespace {

using core::json::str;

int64_t integer(const boost::json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}

// Times travel as nanoseconds since the epoch: exact, and both sides use the system clock.
int64_t nanos(core::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
core::Clock::time_point fromNanos(int64_t n) {
  return core::Clock::time_point(
      std::chrono::duration_cast<core::Clock::duration>(std::chrono::nanoseconds(n)));
}

// What a leader sends is checked as a backend's answer is: a time before the epoch or a duration
// past core::kMaxDuration would overflow `now - time` or `time + maxAge` in the follower's clock.
std::optional<core::Clock::time_point> timeField(const boost::json::object& o,
                                                 std::string_view key) {
  int64_t n = integer(o, key);
  if (n < 0) return std::nullopt;
  return fromNanos(n);
}
std::optional<std::chrono::seconds> durationField(const boost::json::object& o,
                                                  std::string_view key) {
  int64_t n = integer(o, key);
  if (n < 0 || n > core::kMaxDuration.count()) return std::nullopt;
  return std::chrono::seconds(n);
}

// A sample's value travels twice: as a number ("value", what every version reads) and as the
// shortest text that reads back to the same double ("valueText", read first when present).
// Boost.JSON 1.81 parses numbers fast, not exactly: "3.0000000000000004E-2" comes back one unit in
// the last place off, so a follower would serve a value its leader never had.
std::string exactText(double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : std::string();
}
std::optional<double> exactValue(const boost::json::object& sample) {
  if (auto* text = sample.if_contains("valueText"); text && text->is_string()) {
    const auto& t = text->as_string();
    double value = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (ec == std::errc() && end == t.data() + t.size()) return value;
    return std::nullopt;
  }
  auto* value = sample.if_contains("value");
  if (!value || !value->is_number()) return std::nullopt;
  return value->to_number<double>();
}

boost::json::object encodeValue(const store::MetricValue& v) {
  const auto& m = *v.metric;
  boost::json::object o{{"namespace", m.ns},
                        {"metricName", m.metricName},
                        {"selector", m.selector},
                        {"query", m.query},
                        {"backend", m.backend},
                        {"resolution", m.resolution},
                        {"object", m.object},
                        {"maxAgeSeconds", m.maxAge.count()},
                        {"graceSeconds", m.grace.count()},
                        {"errorCode", v.errorCode},
                        {"error", v.error},
                        {"lastFetch", nanos(v.lastFetch)},
                        {"lastSuccess", nanos(v.lastSuccess)}};
  boost::json::object labels;
  for (const auto& [k, val] : m.labels) labels[k] = val;
  o["labels"] = std::move(labels);
  if (v.sample) {
    o["sample"] = {{"value", v.sample->value},
                   {"valueText", exactText(v.sample->value)},
                   {"time", nanos(v.sample->time)},
                   {"unit", v.sample->unit}};
  }
  return o;
}

std::expected<store::MetricValue, std::string> decodeValue(const boost::json::value& item) {
  if (!item.is_object()) return std::unexpected("a value is not an object");
  const auto& o = item.as_object();
  store::MetricValue v;
  store::MetricIdentity m;
  m.ns = str(o, "namespace");
  m.metricName = str(o, "metricName");
  m.selector = str(o, "selector");
  m.query = str(o, "query");
  m.backend = str(o, "backend");
  m.resolution = str(o, "resolution");
  m.object = str(o, "object");
  if (m.metricName.empty()) return std::unexpected("a value has no metricName");
  // Which value is wrong, for the operator comparing the leader's status with the follower's log.
  auto bad = [&](std::string_view what) {
    return std::unexpected("the value of " + m.metricName +
                           (m.selector.empty() ? "" : "{" + m.selector + "}") + " in namespace \"" +
                           m.ns + "\": " + std::string(what));
  };
  auto maxAge = durationField(o, "maxAgeSeconds");
  auto grace = durationField(o, "graceSeconds");  // 0 from an older leader
  if (!maxAge || !grace) return bad("maxAgeSeconds or graceSeconds is out of range");
  m.maxAge = *maxAge;
  m.grace = *grace;
  v.errorCode = static_cast<int>(integer(o, "errorCode"));
  v.error = str(o, "error");
  auto lastFetch = timeField(o, "lastFetch");
  auto lastSuccess = timeField(o, "lastSuccess");
  if (!lastFetch || !lastSuccess) return bad("lastFetch or lastSuccess is before 1970");
  v.lastFetch = *lastFetch;
  v.lastSuccess = *lastSuccess;
  if (auto* labels = o.if_contains("labels"); labels && labels->is_object()) {
    for (const auto& [k, val] : labels->as_object()) {
      if (val.is_string()) m.labels[k] = std::string(val.as_string());
    }
  }
  if (auto* s = o.if_contains("sample"); s && s->is_object()) {
    const auto& so = s->as_object();
    auto value = exactValue(so);
    if (!value) return bad("its sample has no numeric value");
    double number = *value;
    if (!std::isfinite(number)) return bad("its sample is not finite");
    auto time = timeField(so, "time");
    if (!time) return bad("its sample's time is before 1970");
    v.sample = core::Sample{number, *time, str(so, "unit")};
  }
  v.metric = store::shareIdentity(std::move(m));
  return v;
}

}  // namespace

std::string encodeRequest(const ReplicateRequest& request) {
  boost::json::array demand;
  for (const auto& d : request.demand) {
    demand.push_back({{"namespace", d.ns}, {"metricName", d.metricName}, {"selector", d.selector}});
  }
  boost::json::object out{{"generation", request.generation}, {"demand", std::move(demand)}};
  if (!request.dogstatsdAddress.empty()) out["dogstatsdAddress"] = request.dogstatsdAddress;
  return boost::json::serialize(out);
}

std::expected<ReplicateRequest, std::string> decodeRequest(std::string_view body) {
  boost::system::error_code ec;
  auto parsed = boost::json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::unexpected("the body is not a JSON object");
  const auto& o = parsed.as_object();
  ReplicateRequest r;
  r.generation = static_cast<uint64_t>(integer(o, "generation"));
  r.dogstatsdAddress = str(o, "dogstatsdAddress");
  if (auto* demand = o.if_contains("demand"); demand && demand->is_array()) {
    for (const auto& d : demand->as_array()) {
      if (!d.is_object()) return std::unexpected("a demand item is not an object");
      const auto& dobj = d.as_object();
      r.demand.push_back({str(dobj, "namespace"), str(dobj, "metricName"), str(dobj, "selector")});
    }
  }
  return r;
}

std::string encodeSnapshot(const store::ValueSnapshot& snapshot, uint64_t followerGeneration,
                           const std::vector<std::string>& dogstatsdPeers) {
  boost::json::object out{{"generation", snapshot.generation}};
  if (!dogstatsdPeers.empty()) {
    boost::json::array peers;
    for (const auto& p : dogstatsdPeers) peers.emplace_back(p);
    out["dogstatsdPeers"] = std::move(peers);
  }
  if (snapshot.generation != followerGeneration) {
    boost::json::array values;
    values.reserve(snapshot.size());
    snapshot.forEach([&](std::string_view, const store::MetricValuePtr& v) {
      values.push_back(encodeValue(*v));
    });
    out["values"] = std::move(values);
  }
  return boost::json::serialize(out);
}

std::expected<ReplicatedValues, std::string> decodeSnapshot(std::string_view body) {
  boost::system::error_code ec;
  auto parsed = boost::json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::unexpected("the leader's answer is not a JSON object");
  const auto& o = parsed.as_object();
  ReplicatedValues r;
  r.generation = static_cast<uint64_t>(integer(o, "generation"));
  if (auto* peers = o.if_contains("dogstatsdPeers"); peers && peers->is_array()) {
    for (const auto& p : peers->as_array()) {
      if (p.is_string()) r.dogstatsdPeers.emplace_back(p.as_string());
    }
  }
  if (auto* values = o.if_contains("values")) {
    if (!values->is_array()) return std::unexpected("the leader's values are not a list");
    std::vector<store::MetricValue> list;
    list.reserve(values->as_array().size());
    for (const auto& item : values->as_array()) {
      auto v = decodeValue(item);
      if (!v) return std::unexpected("the leader sent a bad value: " + v.error());
      list.push_back(std::move(*v));
    }
    r.values = std::move(list);
  }
  return r;
}

LeaderClient::LeaderClient(http::TlsOptions tls)
    : http_([&tls] {
        tls.verifyHostname = false;
        return std::move(tls);
      }()) {}

std::expected<ReplicatedValues, std::string> LeaderClient::exchange(
    const std::string& leaderUrl, const ReplicateRequest& request) {
  http::Request r{.method = "POST",
                  .url = leaderUrl + std::string(kReplicatePath),
                  .headers = {{"Content-Type", "application/json"}},
                  .body = encodeRequest(request),
                  .timeout = std::chrono::milliseconds(5000),
                  .connectTimeout = std::chrono::milliseconds(2000)};
  auto response = http_.send(r);
  if (!response) return std::unexpected("leader " + leaderUrl + ": " + response.error());
  if (response->status != 200) {
    return std::unexpected("leader " + leaderUrl + " answered " + std::to_string(response->status) +
                           ": " + response->body.substr(0, 300));
  }
  return decodeSnapshot(response->body);
}

DogStatsdPeers::DogStatsdPeers(std::string self, std::chrono::seconds expiry)
    : self_(std::move(self)), expiry_(expiry) {}

std::vector<std::string> DogStatsdPeers::liveLocked(std::chrono::steady_clock::time_point now) {
  std::erase_if(followers_, [&](const auto& kv) { return now - kv.second > expiry_; });
  std::vector<std::string> all;
  if (!self_.empty()) all.push_back(self_);
  for (const auto& [address, seen] : followers_) {
    if (address != self_) all.push_back(address);
  }
  return all;
}

std::vector<std::string> DogStatsdPeers::followerSeen(const std::string& address,
                                                      std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!address.empty()) followers_[address] = now;
  return liveLocked(now);
}

void DogStatsdPeers::leaderSaid(std::vector<std::string> all) {
  std::lock_guard lock(mutex_);
  fromLeader_ = std::move(all);
}

std::vector<std::string> DogStatsdPeers::targets(bool leading,
                                                 std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto all = leading ? liveLocked(now) : fromLeader_;
  std::erase(all, self_);
  return all;
}

}  // namespace xmetrics::replication

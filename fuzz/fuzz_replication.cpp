// libFuzzer target: the bodies replicas exchange on /xmetrics/v1/replicate. The first byte picks
// the side: even, a follower's request as the leader decodes it; odd, the leader's answer as a
// follower decodes it. Whatever decodes must survive encoding and decoding again unchanged, since
// a follower serves exactly what it decoded.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "replication/value_replication.hpp"

namespace {

using namespace xmetrics;
using xmetrics::fuzz::check;

bool sameValue(const store::MetricValue& a, const store::MetricValue& b) {
  const auto& x = *a.metric;
  const auto& y = *b.metric;
  bool sameSample =
      a.sample.has_value() == b.sample.has_value() &&
      (!a.sample || (a.sample->value == b.sample->value && a.sample->time == b.sample->time &&
                     a.sample->unit == b.sample->unit));
  return x.ns == y.ns && x.metricName == y.metricName && x.selector == y.selector &&
         x.query == y.query && x.backend == y.backend && x.resolution == y.resolution &&
         x.object == y.object && x.maxAge == y.maxAge && x.grace == y.grace &&
         x.labels == y.labels && a.errorCode == b.errorCode && a.error == b.error &&
         a.lastFetch == b.lastFetch && a.lastSuccess == b.lastSuccess && sameSample;
}

void request(std::string_view body) {
  auto decoded = replication::decodeRequest(body);
  if (!decoded) {
    check(!decoded.error().empty());
    return;
  }
  auto again = replication::decodeRequest(replication::encodeRequest(*decoded));
  check(again.has_value());
  check(again->generation == decoded->generation &&
        again->dogstatsdAddress == decoded->dogstatsdAddress &&
        again->demand.size() == decoded->demand.size());
  for (std::size_t i = 0; i < decoded->demand.size(); ++i) {
    const auto& a = decoded->demand[i];
    const auto& b = again->demand[i];
    check(a.ns == b.ns && a.metricName == b.metricName && a.selector == b.selector);
  }
}

void answer(std::string_view body) {
  auto decoded = replication::decodeSnapshot(body);
  if (!decoded) {
    check(!decoded.error().empty());
    return;
  }
  if (!decoded->values) return;
  // A follower serves what it decoded: deciding freshness must be defined for every value (UBSan
  // reports an overflow in `now - time` or `time + maxAge + grace`).
  auto now = core::Clock::now();
  for (const auto& v : *decoded->values) {
    (void)store::isFresh(v, now);
    (void)store::isServable(v, now);
  }
  // A follower files the values by key, the last of a repeated key standing.
  auto map = std::make_shared<store::ValueMap>();
  std::map<std::string, const store::MetricValue*> byKey;
  for (const auto& v : *decoded->values) {
    map->put(std::make_shared<store::MetricValue>(v));
    byKey[v.key()] = &v;
  }
  store::ValueSnapshot snapshot;
  snapshot.base = map;
  snapshot.generation = decoded->generation;
  auto again = replication::decodeSnapshot(
      replication::encodeSnapshot(snapshot, decoded->generation + 1, decoded->dogstatsdPeers));
  check(again.has_value() && again->values.has_value());
  check(again->generation == decoded->generation &&
        again->dogstatsdPeers == decoded->dogstatsdPeers);
  check(again->values->size() == byKey.size());
  for (const auto& v : *again->values) {
    auto it = byKey.find(v.key());
    check(it != byKey.end() && sameValue(v, *it->second));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    request(body);
  } else {
    answer(body);
  }
  return 0;
}

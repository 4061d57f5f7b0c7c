// libFuzzer target: the DogStatsD parser reads whatever arrives on a UDP port.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ingest/dogstatsd_parser.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xmetrics::ingest;
  std::string_view datagram(reinterpret_cast<const char*>(data), size);
  uint64_t delivered = 0;
  ParseStats stats = parseDatagram(datagram, [&](const DogStatsdMetric& metric) {
    ++delivered;
    check(!metric.name.empty());
    check(metric.sampleRate > 0 && metric.sampleRate <= 1);
    check(!metric.timestamp || *metric.timestamp > 0);
    if (metric.type == MetricType::kSet) {
      check(metric.values.empty() && !metric.setValue.empty());
    } else {
      check(!metric.values.empty());
    }
    for (double value : metric.values) check(std::isfinite(value));
    // Every view points into the datagram, so the store may copy them while it is alive.
    auto inside = [&](std::string_view view) {
      return view.empty() || (view.data() >= datagram.data() &&
                              view.data() + view.size() <= datagram.data() + datagram.size());
    };
    check(inside(metric.name) && inside(metric.setValue));
    for (std::string_view tag : metric.tags) check(!tag.empty() && inside(tag));
  });
  check(delivered == stats.metrics);
  check((stats.malformed == 0) == stats.firstMalformed.empty());
  // Each counted line holds at least one byte plus its separator, except the last.
  check(stats.metrics + stats.skipped + stats.malformed <= size / 2 + 1);
  return 0;
}

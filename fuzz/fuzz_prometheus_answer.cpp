// libFuzzer target: whatever a Prometheus (or a proxy in front of it) answers to /api/v1/query,
// read through the backend itself: the single queries, the grouped (coalesced) query and its split,
// and the fallback to single queries when the grouped one is refused.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/prometheus/prometheus_backend.hpp"
#include "core/label_selector.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace xmetrics;
using xmetrics::fuzz::check;

constexpr long kStatuses[] = {200, 200, 200, 400, 422, 429, 500, 503};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte: the HTTP status (low 3 bits) and whether queries are coalesced; the rest is
  // the body of every answer.
  long status = kStatuses[data[0] % 8];
  bool coalesce = data[0] & 8;
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t calls = 0;
  backends::prometheus::PrometheusOptions options;
  options.coalesceQueries = coalesce;
  backends::prometheus::PrometheusBackend backend(
      options, [&](const http::Request&) -> std::expected<http::Response, std::string> {
        ++calls;
        return http::Response{status, {}, body};
      });
  std::vector<backends::BackendQuery> batch;
  for (const char* selector : {"env=a", "env=b", "env=c,team=x"}) {
    auto parsed = core::LabelSelector::parse(selector);
    check(parsed.has_value());
    auto inlined = backend.translateInline("http_requests_total", *parsed);
    check(inlined.has_value());
    batch.push_back({*inlined, std::chrono::seconds(300)});
  }
  batch.push_back({"up", std::chrono::seconds(300)});
  auto results = backend.fetch(batch, core::Clock::now());
  check(results.size() == batch.size());
  for (const auto& result : results) check(result.has_value() || !result.error().empty());
  // One call per query at most, plus the grouped one.
  check(calls >= 1 && calls <= batch.size() + 1);
  return 0;
}

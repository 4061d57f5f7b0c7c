// libFuzzer target: what kube-apiserver streams to a watch (HorizontalPodAutoscalers and
// DatadogMetrics, one JSON event per line, cut into chunks anywhere), read the way the informers
// and the catalog read it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.hpp"
#include "catalog/datadog_metric.hpp"
#include "crd/datadog_metric_status.hpp"
#include "demand/hpa_references.hpp"
#include "fuzz_check.hpp"
#include "kube/informer.hpp"
#include "kube/watch_stream.hpp"

namespace {

using namespace xmetrics;
using xmetrics::fuzz::check;

constexpr std::size_t kMaxLine = 4096;
constexpr std::size_t kMaxEvents = 64;

std::vector<std::string> describeAfter(const std::vector<catalog::DatadogMetric>& metrics,
                                       const std::vector<catalog::Catalog::Reference>& references,
                                       bool metricsFirst, core::Clock::time_point now) {
  catalog::Catalog catalog(catalog::CatalogOptions{.useDatadogMetrics = true});
  if (metricsFirst) catalog.setDatadogMetrics(metrics, now);
  catalog.setReferences(references, now);
  if (!metricsFirst) catalog.setDatadogMetrics(metrics, now);
  return catalog.describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte: the size of the chunks the stream arrives in (1..64 bytes).
  std::size_t chunk = 1 + data[0] % 64;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  kube::WatchStreamReader reader(kMaxLine);
  kube::ObjectMap objects;
  std::vector<catalog::DatadogMetric> metrics;
  catalog::TemplateContext context{.clusterName = "fuzz",
                                   .env = [](const std::string&) { return std::nullopt; }};
  const auto now = core::Clock::now();
  std::size_t events = 0;
  auto onEvent = [&](kube::WatchEvent&& event) {
    ++events;
    auto metric = catalog::parseDatadogMetric(event.object, context);
    // Usable, or says why not: never a metric that silently has no query.
    check(!metric.invalidReason.empty() || !metric.query.empty());
    // The status writer compares what the object has with what it would write.
    crd::StatusInputs inputs{.object = &metric, .now = now};
    auto* status = event.object.if_contains("status");
    inputs.current = status && status->is_object() ? &status->as_object() : nullptr;
    auto desired = crd::desiredStatus(inputs);
    check(crd::compareStatus(&desired, desired) == crd::StatusChange::kNone);
    crd::compareStatus(inputs.current, desired);
    metrics.push_back(std::move(metric));
    objects[kube::objectKey(event.object)] = std::move(event.object);
    return events < kMaxEvents;
  };
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    if (!reader.feed(stream.substr(at, chunk), onEvent)) break;
    check(reader.bufferedBytes() <= kMaxLine);
  }
  std::vector<std::string> problems;
  auto references = demand::hpaReferences(objects, &problems);
  for (const auto& reference : references) check(!reference.metricName.empty());
  // What the catalog derives is a function of the objects, not of the order they arrived in.
  check(describeAfter(metrics, references, true, now) ==
        describeAfter(metrics, references, false, now));
  return 0;
}

// libFuzzer target: the request target (path and query) of every HTTPS request, authenticated
// or not: decoded, routed, counted, and its labelSelector parsed.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/label_selector.hpp"
#include "fuzz_check.hpp"
#include "server/router.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xmetrics;
  using xmetrics::fuzz::check;
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  // The request counter classifies every target as sent, even one that does not parse.
  check(server::requestPathClass(raw) < server::requestPathClasses().size());
  auto target = server::parseRequestTarget(raw);
  if (!target) {
    check(!target.error().empty());
    return 0;
  }
  check(target->path == "/" || !target->path.ends_with('/'));
  std::vector<std::string_view> segments(target->parts.begin(), target->parts.end());
  auto match = server::route(target->path, segments);
  check(server::requestPathClass(match.route) < server::requestPathClasses().size());
  if (match.route == server::Route::kExternalMetric) {
    check(match.ns.data() >= segments[4].data() && match.metric.data() >= segments[5].data());
  }
  auto selector = core::LabelSelector::parse(target->selector);
  if (!selector) check(selector.error().position <= target->selector.size());
  return 0;
}

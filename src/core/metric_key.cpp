#include "core/metric_key.hpp"

#include "core/strings.hpp"

namespace xmetrics::core {

std::string metricKey(std::string_view ns, std::string_view metricName,
                      std::string_view canonicalSelector) {
  std::string key;
  key.reserve(metricName.size() + 2 + canonicalSelector.size() + ns.size());
  for (char c : metricName) key += asciiLower(c);
  key += '\x1f';  // cannot appear in a metric name, a selector or a namespace
  key += canonicalSelector;
  key += '\x1f';
  key += ns;
  return key;
}

}  // namespace xmetrics::core

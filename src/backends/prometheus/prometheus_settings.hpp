#pragma once

#include <string>

namespace xmetrics::backends::prometheus {

// The prometheus backend's settings (rows in register.cpp).
struct PrometheusSettings {
  std::string url = "http://127.0.0.1:9090";
  std::string bearerTokenFile;
  std::string caFile;
  bool insecureSkipVerify = false;
  std::string aggregation = "sum";
  bool coalesce = true;  // PrometheusOptions::coalesceQueries
};

}  // namespace xmetrics::backends::prometheus

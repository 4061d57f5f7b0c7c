#pragma once

#include <chrono>
#include <string>

namespace xmetrics::backends::datadog {

// The datadog backend's settings (rows in register.cpp). Keys are never logged; prefer the
// environment or the *-file settings.
struct DatadogSettings {
  std::string site = "datadoghq.com";
  std::string endpoint;   // base URL; empty: https://api.<site>
  std::string endpoints;  // failover list after endpoint (JSON or comma-separated)
  std::string apiKey, appKey;
  std::string apiKeyFile, appKeyFile;  // re-read when they change
  std::string proxy;                   // empty: HTTPS_PROXY from the environment
  std::string proxyHttp;               // for http:// endpoints; empty: HTTP_PROXY
  std::string noProxy;                 // space- or comma-separated hosts
  bool skipTlsVerify = false;
  bool coalesce = true;    // queries differing in one tag's value go as one grouped query
  std::string api = "v1";  // "v1": GET /api/v1/query; "v2": POST /api/v2/query/timeseries
  unsigned chunkSize = 35;
  unsigned maxParallelQueries = 10;
  std::chrono::seconds timeout{10};
  std::chrono::seconds endpointBackoff{30};
};

}  // namespace xmetrics::backends::datadog

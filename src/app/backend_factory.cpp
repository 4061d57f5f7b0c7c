#include "app/backend_factory.hpp"

#include <spdlog/spdlog.h>

#include <tuple>

#include "backends/datadog/datadog_backend.hpp"
#include "backends/embedded/embedded_backend.hpp"
#include "backends/prometheus/prometheus_backend.hpp"
#include "http/http_client.hpp"

namespace xmetrics::app {
namespace {

std::expected<backends::BackendPtr, std::string> makeDatadogBackend(
    const config::ServeOptions& options) {
  namespace dd = backends::datadog;
  auto secret = [](const std::string& value, const std::string& file) {
    return file.empty() ? dd::Secret::fromValue(value) : dd::Secret::fromFile(file);
  };
  auto apiKey = secret(options.datadogApiKey, options.datadogApiKeyFile);
  auto appKey = secret(options.datadogAppKey, options.datadogAppKeyFile);
  // Checked now so a missing key stops the start with a clear message, not every refresh later.
  for (const auto& [key, what, fix] :
       {std::tuple{&apiKey, "an API key", "DD_API_KEY or --datadog-api-key-file"},
        std::tuple{&appKey, "an application key", "DD_APP_KEY or --datadog-app-key-file"}}) {
    auto value = key->get();
    if (!value || value->empty()) {
      return std::unexpected(std::string("the datadog backend needs ") + what + ": set " + fix +
                             (value ? "" : " (" + value.error() + ")"));
    }
  }
  dd::DatadogOptions dopts;
  dopts.endpoints.push_back(
      {options.datadogEndpoint.empty() ? dd::siteUrl(options.datadogSite) : options.datadogEndpoint,
       apiKey, appKey});
  auto failover = dd::parseEndpointList(options.datadogEndpoints, apiKey, appKey);
  if (!failover) return std::unexpected("--datadog-endpoints: " + failover.error());
  for (auto& e : *failover) dopts.endpoints.push_back(std::move(e));
  for (const auto& e : dopts.endpoints) {
    if (e.url.starts_with("http://")) {
      spdlog::warn(
          "datadog endpoint={} is plain http: keys travel unencrypted (fine for a local proxy or a "
          "test, not across a network)",
          e.url);
    } else if (!e.url.starts_with("https://")) {
      return std::unexpected("Datadog endpoint \"" + e.url +
                             "\" must start with https:// (or http:// for a local proxy)");
    }
  }
  dopts.proxy = options.datadogProxy;
  dopts.limits.maxQueries = options.datadogChunkSize;
  dopts.maxParallelCalls = options.datadogMaxParallelQueries;
  dopts.timeout = options.datadogTimeout;
  dopts.endpointBackoff = options.datadogEndpointBackoff;
  // One kept-alive connection per parallel call.
  auto client = std::make_shared<http::HttpClient>(http::TlsOptions{}, dopts.maxParallelCalls);
  return std::make_unique<dd::DatadogBackend>(
      std::move(dopts), [client](const http::Request& r) { return client->send(r); });
}

}  // namespace

std::expected<backends::BackendPtr, std::string> makeBackend(
    const config::ServeOptions& options, std::string_view name,
    std::shared_ptr<backends::embedded::TimeSeriesStore> timeSeries) {
  if (name == "embedded") {
    return std::make_unique<backends::embedded::EmbeddedBackend>(std::move(timeSeries));
  }
  if (name == "datadog") return makeDatadogBackend(options);
  if (name == "prometheus") {
    if (!options.prometheusUrl.starts_with("http://") &&
        !options.prometheusUrl.starts_with("https://")) {
      return std::unexpected("--prometheus-url \"" + options.prometheusUrl +
                             "\" must start with http:// or https://");
    }
    auto client = std::make_shared<http::HttpClient>(
        http::TlsOptions{.caFile = options.prometheusCaFile,
                         .insecureSkipVerify = options.prometheusInsecureSkipVerify});
    return std::make_unique<backends::prometheus::PrometheusBackend>(
        backends::prometheus::PrometheusOptions{
            .url = options.prometheusUrl,
            .bearerTokenFile = options.prometheusBearerTokenFile,
            .aggregation = options.prometheusAggregation},
        [client](const http::Request& r) { return client->send(r); });
  }
  return std::unexpected("backend \"" + std::string(name) + "\" is not available in this build");
}

}  // namespace xmetrics::app

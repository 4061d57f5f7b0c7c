// The datadog backend's entry in the registry: its settings rows and its factory.
#include <spdlog/spdlog.h>

#include <tuple>

#include "backends/datadog/datadog_backend.hpp"
#include "backends/datadog/datadog_settings.hpp"
#include "backends/registry.hpp"
#include "config/setting_rows.hpp"
#include "core/strings.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::datadog {
namespace {

constexpr std::string_view kName = "datadog";

template <typename T>
config::ApplySetting field(T DatadogSettings::*member, config::ParseSetting<T> parse) {
  return config::backendField(std::string(kName), member, std::move(parse));
}

std::vector<config::SettingRow> settingRows() {
  using S = DatadogSettings;
  using std::chrono::seconds;
  return {
      {{"datadog-site",
        {"DD_SITE"},
        "Datadog site; the API is https://api.<site>",
        "datadoghq.com"},
       field(&S::site, config::anyText())},
      {{"datadog-endpoint",
        {"DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT"},
        "Datadog API base URL, overrides datadog-site (http:// is accepted with a warning)",
        ""},
       field(&S::endpoint, config::anyText())},
      // Secret: the JSON form may carry per-endpoint keys.
      {{"datadog-endpoints",
        {"DD_EXTERNAL_METRICS_PROVIDER_ENDPOINTS"},
        "failover endpoints, in order: JSON [{\"url\"|\"site\", \"api_key\", \"app_key\"}] or "
        "comma-separated URLs",
        "",
        true},
       field(&S::endpoints, config::anyText())},
      {{"datadog-api-key",
        {"DD_EXTERNAL_METRICS_PROVIDER_API_KEY", "DD_API_KEY"},
        "Datadog API key (prefer the environment or datadog-api-key-file)",
        "",
        true},
       field(&S::apiKey, config::anyText())},
      {{"datadog-app-key",
        {"DD_EXTERNAL_METRICS_PROVIDER_APP_KEY", "DD_APP_KEY"},
        "Datadog application key (prefer the environment or datadog-app-key-file)",
        "",
        true},
       field(&S::appKey, config::anyText())},
      {{"datadog-api-key-file",
        {},
        "file holding the Datadog API key, re-read when it changes",
        ""},
       field(&S::apiKeyFile, config::anyText())},
      {{"datadog-app-key-file",
        {},
        "file holding the Datadog application key, re-read when it changes",
        ""},
       field(&S::appKeyFile, config::anyText())},
      {{"datadog-proxy",
        {"DD_PROXY_HTTPS"},
        "HTTPS proxy for Datadog calls (default: HTTPS_PROXY / NO_PROXY)",
        ""},
       field(&S::proxy, config::anyText())},
      {{"datadog-chunk-size",
        {"DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE"},
        "most queries per Datadog call",
        "35"},
       field(&S::chunkSize, config::numberIn(1, 1000))},
      {{"datadog-max-parallel-queries",
        {"DD_EXTERNAL_METRICS_PROVIDER_MAX_PARALLEL_QUERIES"},
        "most Datadog calls in flight at once",
        "10"},
       field(&S::maxParallelQueries, config::numberIn(1, 100))},
      {{"datadog-timeout", {}, "timeout of one Datadog call", "10s"},
       field(&S::timeout, config::durationAtLeast(seconds(1)))},
      {{"datadog-endpoint-backoff",
        {},
        "first pause of a failing Datadog endpoint; doubles per failure up to 30m",
        "30s"},
       field(&S::endpointBackoff, config::durationAtLeast(seconds(1)))},
  };
}

std::expected<BackendPtr, std::string> make(const BackendContext& context) {
  const auto& settings = config::backendSettings<DatadogSettings>(context.options, kName);
  auto secret = [](const std::string& value, const std::string& file) {
    return file.empty() ? Secret::fromValue(value) : Secret::fromFile(file);
  };
  auto apiKey = secret(settings.apiKey, settings.apiKeyFile);
  auto appKey = secret(settings.appKey, settings.appKeyFile);
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
  DatadogOptions options;
  options.endpoints.push_back(
      {settings.endpoint.empty() ? siteUrl(settings.site) : settings.endpoint, apiKey, appKey});
  auto failover = parseEndpointList(settings.endpoints, apiKey, appKey);
  if (!failover) return std::unexpected("--datadog-endpoints: " + failover.error());
  for (auto& e : *failover) options.endpoints.push_back(std::move(e));
  for (const auto& e : options.endpoints) {
    if (e.url.starts_with("http://")) {
      spdlog::warn(
          "datadog endpoint={} is plain http: keys travel unencrypted (fine for a local proxy or a "
          "test, not across a network)",
          core::redactUrlCredentials(e.url));
    } else if (!e.url.starts_with("https://")) {
      return std::unexpected("Datadog endpoint \"" + core::redactUrlCredentials(e.url) +
                             "\" must start with https:// (or http:// for a local proxy)");
    }
  }
  options.proxy = settings.proxy;
  options.limits.maxQueries = settings.chunkSize;
  options.maxParallelCalls = settings.maxParallelQueries;
  options.timeout = settings.timeout;
  options.endpointBackoff = settings.endpointBackoff;
  // One kept-alive connection per parallel call.
  auto client = std::make_shared<http::HttpClient>(http::TlsOptions{}, options.maxParallelCalls);
  return std::make_unique<DatadogBackend>(
      std::move(options), [client](const http::Request& r) { return client->send(r); });
}

}  // namespace

void registerBackend(BackendRegistry& registry) {
  registry.add({.name = std::string(kName),
                .settings = {.defaults = DatadogSettings{}, .rows = settingRows()},
                .make = make});
}

}  // namespace xmetrics::backends::datadog

// The datadog backend's entry in the registry: its settings rows and its factory.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <tuple>

#include "backends/datadog/datadog_backend.hpp"
#include "backends/datadog/datadog_settings.hpp"
#include "backends/datadog/v2_query.hpp"
#include "backends/registry.hpp"
#include "config/setting_rows.hpp"
#include "core/strings.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::datadog {
namespace {

constexpr std::string_view kName = "datadog";
constexpr long long kMaxChunkSize = 35;  // the Cluster Agent's maxExternalMetricsProviderChunkSize

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
      {{"datadog-proxy-http",
        {"DD_PROXY_HTTP"},
        "proxy for Datadog endpoints given as http:// (default: HTTP_PROXY / NO_PROXY)",
        ""},
       field(&S::proxyHttp, config::anyText())},
      {{"datadog-no-proxy",
        {"DD_PROXY_NO_PROXY"},
        "hosts reached without the proxy, space- or comma-separated, as the Agent's "
        "proxy.no_proxy",
        ""},
       field(&S::noProxy, config::anyText())},
      {{"datadog-skip-tls-verify",
        {"DD_SKIP_SSL_VALIDATION"},
        "do not verify the Datadog API's certificate (a TLS-intercepting proxy); warned about",
        "false"},
       field(&S::skipTlsVerify, config::boolean())},
      // As the Cluster Agent: any number is taken, and one outside 1-35 is clamped with a warning.
      {{"datadog-chunk-size",
        {"DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE"},
        "most queries per Datadog call, 1-35 (the Cluster Agent's bounds: others are clamped)",
        "35"},
       [](std::string_view text, config::ServeOptions& options) -> std::optional<std::string> {
         long long n = 0;
         auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
         if (ec != std::errc() || ptr != text.data() + text.size()) return "must be a number";
         unsigned clamped = static_cast<unsigned>(std::clamp<long long>(n, 1, kMaxChunkSize));
         if (clamped != n) {
           options.warnings.push_back(std::string(text) + " is outside 1-" +
                                      std::to_string(kMaxChunkSize) +
                                      " (the queries one Datadog call takes): using " +
                                      std::to_string(clamped) + ", as the Cluster Agent does");
         }
         config::backendSettings<DatadogSettings>(options, kName).chunkSize = clamped;
         return std::nullopt;
       }},
      {{"datadog-max-parallel-queries",
        {"DD_EXTERNAL_METRICS_PROVIDER_MAX_PARALLEL_QUERIES"},
        "most Datadog calls in flight at once",
        "10"},
       field(&S::maxParallelQueries, config::numberIn(1, 100))},
      {{"datadog-coalesce",
        {},
        "fetch queries that differ only in one tag's value as one query grouped by that tag",
        "true"},
       field(&S::coalesce, config::boolean())},
      {{"datadog-api",
        {},
        "query API: v1 (GET /api/v1/query, as the Cluster Agent) or v2 (POST "
        "/api/v2/query/timeseries, queries in a body: no 7000-character URL limit)",
        "v1"},
       field(&S::api, config::oneOf({"v1", "v2"}))},
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
  options.proxyHttp = settings.proxyHttp;
  // The Agent's no_proxy is a space-separated list; libcurl's NOPROXY a comma-separated one.
  for (char c : settings.noProxy) options.noProxy += c == ' ' ? ',' : c;
  if (settings.skipTlsVerify) {
    spdlog::warn(
        "datadog-skip-tls-verify (DD_SKIP_SSL_VALIDATION) is on: the Datadog API's certificate is "
        "not verified, so whoever sits between xmetrics and it reads the keys");
  }
  options.limits.maxQueries = settings.chunkSize;
  if (settings.api == "v2") {
    // Still at most chunk-size queries a call; their text goes in a body, not a URL.
    options.api = Api::kV2;
    options.limits.maxEscapedChars = kV2MaxQueryChars;
  }
  options.coalesce = settings.coalesce;
  options.maxWindow = context.options.maxTimeWindow;
  options.refreshPeriod = context.options.refreshPeriod;
  options.maxParallelCalls = settings.maxParallelQueries;
  options.timeout = settings.timeout;
  options.endpointBackoff = settings.endpointBackoff;
  // One kept-alive connection per parallel call.
  auto client = std::make_shared<http::HttpClient>(
      http::TlsOptions{.insecureSkipVerify = settings.skipTlsVerify}, options.maxParallelCalls);
  options.cancelTransport = [client] { client->cancel(); };
  return std::make_unique<DatadogBackend>(
      std::move(options), [client](const http::Request& r) { return client->send(r); });
}

}  // namespace

void registerBackend(BackendRegistry& registry) {
  registry.add({.name = std::string(kName),
                .settings = {.defaults = DatadogSettings{},
                             .rows = settingRows(),
                             .selectedBy = {"datadog-api-key", "datadog-app-key",
                                            "datadog-api-key-file", "datadog-app-key-file"}},
                .make = make});
}

}  // namespace xmetrics::backends::datadog

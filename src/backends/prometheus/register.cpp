// The prometheus backend's entry in the registry: its settings rows and its factory.
#include "backends/prometheus/prometheus_backend.hpp"
#include "backends/prometheus/prometheus_settings.hpp"
#include "backends/registry.hpp"
#include "config/setting_rows.hpp"
#include "http/http_client.hpp"

namespace xmetrics::backends::prometheus {
namespace {

constexpr std::string_view kName = "prometheus";

template <typename T>
config::ApplySetting field(T PrometheusSettings::*member, config::ParseSetting<T> parse) {
  return config::backendField(std::string(kName), member, std::move(parse));
}

std::vector<config::SettingRow> settingRows() {
  using S = PrometheusSettings;
  return {
      {{"prometheus-url", {}, "base URL of the Prometheus HTTP API", "http://127.0.0.1:9090"},
       field(&S::url, config::anyText())},
      {{"prometheus-bearer-token-file",
        {},
        "file holding a bearer token for Prometheus, read on every call",
        ""},
       field(&S::bearerTokenFile, config::anyText())},
      {{"prometheus-ca-file", {}, "PEM bundle to trust for an https:// Prometheus", ""},
       field(&S::caFile, config::anyText())},
      {{"prometheus-insecure-skip-verify",
        {},
        "do not verify Prometheus's TLS certificate (tests only)",
        "false"},
       field(&S::insecureSkipVerify, config::boolean())},
      {{"prometheus-aggregation",
        {},
        "aggregation of inline metrics in PromQL: sum(metric{selector})",
        "sum"},
       field(&S::aggregation, config::oneOf({"sum", "avg", "min", "max", "count", "none"}))},
      {{"prometheus-coalesce",
        {},
        "fetch inline metrics that differ only in one label's value as one query grouped by that "
        "label",
        "true"},
       field(&S::coalesce, config::boolean())},
  };
}

std::expected<BackendPtr, std::string> make(const BackendContext& context) {
  const auto& settings = config::backendSettings<PrometheusSettings>(context.options, kName);
  if (!settings.url.starts_with("http://") && !settings.url.starts_with("https://")) {
    return std::unexpected("--prometheus-url \"" + settings.url +
                           "\" must start with http:// or https://");
  }
  auto client = std::make_shared<http::HttpClient>(http::TlsOptions{
      .caFile = settings.caFile, .insecureSkipVerify = settings.insecureSkipVerify});
  return std::make_unique<PrometheusBackend>(
      PrometheusOptions{.url = settings.url,
                        .bearerTokenFile = settings.bearerTokenFile,
                        .aggregation = settings.aggregation,
                        .coalesceQueries = settings.coalesce,
                        .cancelTransport = [client] { client->cancel(); }},
      [client](const http::Request& r) { return client->send(r); });
}

}  // namespace

void registerBackend(BackendRegistry& registry) {
  registry.add({.name = std::string(kName),
                .settings = {.defaults = PrometheusSettings{}, .rows = settingRows()},
                .make = make});
}

}  // namespace xmetrics::backends::prometheus

#include "config/serve_options.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "backends/registry.hpp"

namespace xmetrics::config {
namespace {

// The settings as `xmetrics serve` sees them: the general rows and those of this build's backends.
std::expected<ServeOptions, std::vector<std::string>> resolveServeOptions(
    const SettingSources& sources) {
  return config::resolveServeOptions(sources, backends::registeredBackends().settings());
}
std::vector<Setting> serveSettings() {
  return config::serveSettings(backends::registeredBackends().settings());
}

using std::chrono::seconds;

TEST(ParseDuration, AcceptsPlainSecondsAsTheDdVariablesDo) {
  EXPECT_EQ(parseDuration("30"), seconds(30));
  EXPECT_EQ(parseDuration("0"), seconds(0));
}

TEST(ParseDuration, AcceptsGoStyleUnits) {
  EXPECT_EQ(parseDuration("30s"), seconds(30));
  EXPECT_EQ(parseDuration("2m"), seconds(120));
  EXPECT_EQ(parseDuration("1h30m"), seconds(5400));
  EXPECT_EQ(parseDuration("1.5m"), seconds(90));
  EXPECT_EQ(parseDuration("1500ms"), seconds(2));
}

TEST(ParseDuration, RejectsWhatIsNotADuration) {
  for (const char* bad : {"", "soon", "-5", "5x", "m", "1h-3m"}) {
    auto d = parseDuration(bad);
    ASSERT_FALSE(d) << bad;
    EXPECT_NE(d.error().find("not a duration"), std::string::npos);
  }
}

// Past int64 seconds, rounding gave -2^63: a DatadogMetric maxAge of 1e300 made every value stale,
// and ~300 years overflowed `sample time + maxAge` in nanoseconds.
TEST(ParseDuration, RefusesDurationsLongerThanTenYears) {
  EXPECT_EQ(parseDuration("315360000"), seconds(315360000));
  EXPECT_EQ(parseDuration("87600h"), seconds(315360000));
  for (const char* tooLong : {"315360001", "87601h", "1e300", "1e300h", "9223372036854775807s"}) {
    auto d = parseDuration(tooLong);
    ASSERT_FALSE(d.has_value()) << tooLong << " gave " << d->count() << "s";
    EXPECT_NE(d.error().find("longer than 10 years"), std::string::npos) << d.error();
  }
}

TEST(ResolveServeOptions, DefaultsMatchTheClusterAgent) {
  auto o = resolveServeOptions({});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->securePort, 8443);
  EXPECT_EQ(o->refreshPeriod, seconds(30));
  EXPECT_EQ(o->maxAge, seconds(120));
  EXPECT_EQ(o->rollupSeconds, 30);
  EXPECT_EQ(o->aggregator, "avg");
  EXPECT_EQ(o->bindAddress, "127.0.0.1");
  EXPECT_EQ(o->dogstatsdAddress, "127.0.0.1:8125");
  EXPECT_GE(o->threads, 1u);
}

TEST(ResolveServeOptions, ByteSizesTakeBinarySuffixesAndTinyBoundsAreRefused) {
  EXPECT_EQ(resolveServeOptions({})->embeddedMaxBytes, 32u << 20);
  for (auto [text, bytes] : {std::pair{"4Mi", std::size_t{4} << 20},
                             {"2048Ki", std::size_t{2} << 20},
                             {"1Gi", std::size_t{1} << 30},
                             {"1048576", std::size_t{1} << 20}}) {
    auto o = resolveServeOptions({.flags = {{"embedded-max-bytes", text}}});
    ASSERT_TRUE(o) << text;
    EXPECT_EQ(o->embeddedMaxBytes, bytes) << text;
  }
  for (const char* bad : {"512Ki", "32MB", "-1", "", "lots"}) {
    EXPECT_FALSE(resolveServeOptions({.flags = {{"embedded-max-bytes", bad}}})) << bad;
  }
  auto o = resolveServeOptions({.flags = {{"dogstatsd-receive-buffer", "16Mi"}}});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->dogstatsdReceiveBuffer, 16u << 20);
  EXPECT_EQ(resolveServeOptions({})->dogstatsdReceiveBuffer, 4u << 20);
}

TEST(ResolveServeOptions, InAPodTheDefaultBindAddressIsEveryInterface) {
  SettingSources pod;
  pod.inPod = true;
  auto o = resolveServeOptions(pod);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->bindAddress, "0.0.0.0");
  auto shown = std::ranges::find(o->effective, std::string("bind-address"),
                                 &ServeOptions::EffectiveSetting::name);
  ASSERT_NE(shown, o->effective.end());
  EXPECT_EQ(shown->value, "0.0.0.0");
  EXPECT_EQ(shown->source, "default (in a pod)");
  pod.flags["bind-address"] = "10.0.0.7";  // an explicit address wins
  o = resolveServeOptions(pod);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->bindAddress, "10.0.0.7");
}

TEST(ResolveServeOptions, FlagBeatsEnvironmentBeatsFile) {
  std::string path = testing::TempDir() + "/serve_options_test.yaml";
  std::ofstream(path) << "secure-port: 9000\nrollup: 60\nmax-age: 5m\n";
  SettingSources s;
  s.configFile = path;
  s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_PORT", "9100"},
           {"DD_EXTERNAL_METRICS_PROVIDER_ROLLUP", "45"}};
  s.flags = {{"secure-port", "9200"}};
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->securePort, 9200);      // flag
  EXPECT_EQ(o->rollupSeconds, 45);     // env over file
  EXPECT_EQ(o->maxAge, seconds(300));  // file
}

TEST(ResolveServeOptions, BooleansAndLogLevelsAreReadAsTheClusterAgentReadsThem) {
  // Go's strconv.ParseBool: a Cluster Agent deployment's DD_* values must not crash-loop xmetrics.
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    SettingSources s;
    s.env = {{"DD_LEADER_ELECTION", yes}};
    auto o = resolveServeOptions(s);
    ASSERT_TRUE(o) << yes;
    EXPECT_TRUE(o->leaderElection) << yes;
  }
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"}) {
    SettingSources s;
    s.env = {{"DD_LEADER_ELECTION", no}};
    auto o = resolveServeOptions(s);
    ASSERT_TRUE(o) << no;
    EXPECT_FALSE(o->leaderElection) << no;
  }
  SettingSources bad;
  bad.env = {{"DD_LEADER_ELECTION", "yes"}};
  auto refused = resolveServeOptions(bad);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().front().find("DD_LEADER_ELECTION"), std::string::npos);
  for (const char* level : {"critical", "off", "CRITICAL", "warning"}) {
    SettingSources s;
    s.env = {{"DD_LOG_LEVEL", level}};
    EXPECT_TRUE(resolveServeOptions(s)) << level;
  }
}

TEST(ResolveServeOptions, EitherAggregatorVariableWorks) {
  SettingSources s;
  s.env = {{"DD_EXTERNAL_METRICS_AGGREGATOR", "max"}};
  EXPECT_EQ(resolveServeOptions(s)->aggregator, "max");
  s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_AGGREGATOR", "sum"}};
  EXPECT_EQ(resolveServeOptions(s)->aggregator, "sum");
}

TEST(ResolveServeOptions, ReportsEveryErrorAtOnceNamingTheSource) {
  std::string path = testing::TempDir() + "/serve_options_bad.yaml";
  std::ofstream(path) << "refresh-period: soon\nbogus: 1\n";
  SettingSources s;
  s.configFile = path;
  s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_PORT", "99999"}};
  s.flags = {{"aggregator", "median"}};
  auto o = resolveServeOptions(s);
  ASSERT_FALSE(o);
  std::string all;
  for (const auto& e : o.error()) all += e + "\n";
  EXPECT_EQ(o.error().size(), 4u) << all;
  EXPECT_NE(all.find("unknown setting \"bogus\""), std::string::npos) << all;
  EXPECT_NE(all.find("\"refresh-period\" in " + path), std::string::npos) << all;
  EXPECT_NE(all.find("environment variable DD_EXTERNAL_METRICS_PROVIDER_PORT"), std::string::npos);
  EXPECT_NE(all.find("flag --aggregator = \"median\": must be one of avg, sum, min, max"),
            std::string::npos);
}

// The Cluster Agent takes max(max_age, 3 x rollup): a lower max-age is raised, never refused
// (refusing made a Cluster Agent environment crash-loop), and the warning names the change.
TEST(ResolveServeOptions, MaxAgeBelowThreeRollupsIsRaisedWithAWarning) {
  SettingSources s;
  s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE", "10"}};
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->maxAge, seconds(90));
  ASSERT_EQ(o->warnings.size(), 1u);
  EXPECT_NE(o->warnings[0].find("environment variable DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE = 10s "
                                "is below 3 x rollup (90s): using 90s"),
            std::string::npos)
      << o->warnings[0];
}

TEST(ResolveServeOptions, MaxAgeShorterThanTheRefreshIsWarnedAbout) {
  SettingSources s;
  s.flags = {{"max-age", "100s"}, {"refresh-period", "200s"}};
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  ASSERT_EQ(o->warnings.size(), 1u);
  EXPECT_NE(o->warnings[0].find("raise max-age"), std::string::npos);
}

TEST(ResolveServeOptions, ChunkSizeOutsideTheClusterAgentsBoundsIsClamped) {
  for (auto [text, expected] : {std::pair{"0", 1u}, {"-4", 1u}, {"50", 35u}, {"20", 20u}}) {
    SettingSources s;
    s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE", text}};
    auto o = resolveServeOptions(s);
    ASSERT_TRUE(o) << text;
    const auto& e = std::ranges::find_if(
        o->effective, [](const auto& x) { return x.name == "datadog-chunk-size"; });
    EXPECT_EQ(e->value, text);
    bool clamped = expected != static_cast<unsigned>(std::atoi(text));
    ASSERT_EQ(o->warnings.size(), clamped ? 1u : 0u) << text;
    if (clamped) {
      EXPECT_NE(o->warnings[0].find("DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE = " +
                                    std::string(text) + " is outside 1-35"),
                std::string::npos)
          << o->warnings[0];
      EXPECT_NE(o->warnings[0].find("using " + std::to_string(expected)), std::string::npos);
    }
  }
  SettingSources bad;
  bad.env = {{"DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE", "many"}};
  EXPECT_FALSE(resolveServeOptions(bad));
}

TEST(ResolveServeOptions, AShortClusterAgentLeaseIsAcceptedAndTheRenewalFollowsIt) {
  SettingSources s;
  s.env = {{"DD_LEADER_ELECTION", "true"}, {"DD_LEADER_LEASE_DURATION", "6"}};
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->leaderLeaseDuration, seconds(6));
  EXPECT_EQ(o->leaderRenewDeadline, seconds(4));
  EXPECT_EQ(o->leaderRetryPeriod, seconds(1));
  s.env["DD_LEADER_LEASE_DURATION"] = "2";
  o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->leaderLeaseDuration, seconds(4));
  EXPECT_LT(o->leaderRetryPeriod, o->leaderRenewDeadline);
  ASSERT_EQ(o->warnings.size(), 1u);
  EXPECT_NE(o->warnings[0].find("using 4s"), std::string::npos);
  // The Cluster Agent's default lease, 60 s.
  s.env["DD_LEADER_LEASE_DURATION"] = "60";
  o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->leaderRenewDeadline, seconds(40));
  EXPECT_EQ(o->leaderRetryPeriod, seconds(8));
}

TEST(ResolveServeOptions, DatadogKeysChooseTheDatadogBackendAndSaySo) {
  SettingSources s;
  s.env = {{"DD_API_KEY", "k"}, {"DD_APP_KEY", "a"}, {"DD_SITE", "datadoghq.eu"}};
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->backend, "datadog");
  EXPECT_EQ(o->backendReason,
            "datadog-api-key is set (environment variable DD_API_KEY) and no backend setting is "
            "given");
  s.flags = {{"backend", "embedded"}};
  o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->backend, "embedded");
  EXPECT_EQ(o->backendReason, "chosen by flag --backend");
  o = resolveServeOptions({});
  EXPECT_EQ(o->backend, "embedded");
}

TEST(ResolveServeOptions, QueryValidityPeriodAndMaxTimeWindowAreTheClusterAgents) {
  auto o = resolveServeOptions({});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->queryValidityPeriod, seconds(30));
  EXPECT_EQ(o->maxTimeWindow, seconds(86400));
  SettingSources s;
  s.env = {{"DD_EXTERNAL_METRICS_PROVIDER_QUERY_VALIDITY_PERIOD", "45"},
           {"DD_EXTERNAL_METRICS_PROVIDER_MAX_TIME_WINDOW", "3600"}};
  o = resolveServeOptions(s);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->queryValidityPeriod, seconds(45));
  EXPECT_EQ(o->maxTimeWindow, seconds(3600));
}

TEST(ResolveServeOptions, TheClusterAgentsConfigFileIsReadAsItsVariables) {
  std::string path = ::testing::TempDir() + "/datadog-cluster.yaml";
  std::ofstream(path) << "api_key: k-file\n"
                         "app_key: a-file\n"
                         "site: datadoghq.eu\n"
                         "cluster_name: prod-eu\n"
                         "log_format_json: true\n"
                         "external_metrics_provider:\n"
                         "  enabled: true\n"
                         "  refresh_period: 15\n"
                         "  use_datadogmetric_crd: true\n"
                         "  endpoints:\n"
                         "    - {url: 'https://api.datadoghq.com', api_key: k2, app_key: a2}\n"
                         "external_metrics:\n"
                         "  aggregator: max\n"
                         "proxy:\n"
                         "  https: http://proxy:3128\n"
                         "  no_proxy: [a.local, b.local]\n"
                         "apm_config:\n"
                         "  enabled: false\n"
                         "max-metrics: 500\n";
  SettingSources s;
  s.configFile = path;
  s.env = {{"DD_SITE", "datadoghq.com"}};  // the environment still wins over the file
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o) << o.error()[0];
  EXPECT_EQ(o->backend, "datadog");
  EXPECT_EQ(o->refreshPeriod, seconds(15));
  EXPECT_TRUE(o->useDatadogMetricCrd);
  EXPECT_EQ(o->aggregator, "max");
  EXPECT_EQ(o->clusterName, "prod-eu");
  EXPECT_EQ(o->logFormat, "json");
  EXPECT_EQ(o->maxMetrics, 500u);
  auto source = [&](std::string_view name) {
    return std::ranges::find_if(o->effective, [&](const auto& e) { return e.name == name; })
        ->source;
  };
  EXPECT_EQ(source("refresh-period"), "\"external_metrics_provider.refresh_period\" in " + path);
  EXPECT_EQ(source("datadog-site"), "environment variable DD_SITE");
  EXPECT_EQ(source("datadog-no-proxy"), "\"proxy.no_proxy\" in " + path);
  auto value = [&](std::string_view name) {
    return std::ranges::find_if(o->effective, [&](const auto& e) { return e.name == name; })->value;
  };
  EXPECT_EQ(value("datadog-no-proxy"), "a.local b.local");
  EXPECT_EQ(value("datadog-api-key"), "<redacted>");
  // A key of the Agent's that xmetrics has no use for is reported, not refused.
  auto apm = std::ranges::find_if(
      o->environment, [](const auto& n) { return n.variable == "DD_APM_CONFIG_ENABLED"; });
  bool grouped = std::ranges::any_of(o->environment, [](const auto& n) {
    return n.variable.empty() && n.text.find("DD_APM_CONFIG_ENABLED") != std::string::npos;
  });
  EXPECT_TRUE(apm != o->environment.end() || grouped);
}

TEST(ResolveServeOptions, EncValuesGoThroughTheSecretBackend) {
  SettingSources s;
  s.env = {{"DD_API_KEY", "ENC[api]"},
           {"DD_APP_KEY", "ENC[app]"},
           {"DD_SECRET_BACKEND_COMMAND", "/opt/secrets"},
           {"DD_SECRET_BACKEND_ARGUMENTS", "--vault prod"}};
  std::vector<SecretBackendCall> calls;
  s.secretBackend = [&](const SecretBackendCall& c)
      -> std::expected<std::map<std::string, std::string>, std::string> {
    calls.push_back(c);
    return std::map<std::string, std::string>{{"api", "real-api"}, {"app", "real-app"}};
  };
  auto o = resolveServeOptions(s);
  ASSERT_TRUE(o) << o.error()[0];
  ASSERT_EQ(calls.size(), 1u);  // one run for every handle, as the Agent
  EXPECT_EQ(calls[0].command, "/opt/secrets");
  EXPECT_EQ(calls[0].arguments, (std::vector<std::string>{"--vault", "prod"}));
  EXPECT_EQ(calls[0].handles, (std::vector<std::string>{"api", "app"}));
  EXPECT_EQ(o->backend, "datadog");
  for (const auto& e : o->effective) EXPECT_EQ(e.value.find("real-"), std::string::npos) << e.name;

  s.secretBackend = [](const SecretBackendCall&)
      -> std::expected<std::map<std::string, std::string>, std::string> {
    return std::unexpected(std::string("secret-backend-command /opt/secrets: it exited with 1"));
  };
  o = resolveServeOptions(s);
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error()[0], "secret-backend-command /opt/secrets: it exited with 1");

  s.env.erase("DD_SECRET_BACKEND_COMMAND");
  o = resolveServeOptions(s);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error()[0].find("no secret-backend-command"), std::string::npos);
}

TEST(ServeSettings, EverySettingAndVariableIsDocumented) {
  std::ifstream in(std::string(XMETRICS_SOURCE_DIR) + "/docs/configuration.md");
  std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(doc.empty());
  for (const auto& s : serveSettings()) {
    EXPECT_FALSE(s.help.empty()) << s.name;
    EXPECT_NE(doc.find("| `" + s.name + "` |"), std::string::npos)
        << s.name << " is not documented";
    for (const auto& var : s.env) {
      EXPECT_NE(doc.find("`" + var + "`"), std::string::npos) << var << " is not documented";
    }
  }
}

}  // namespace
}  // namespace xmetrics::config

namespace xmetrics::config {
namespace {

TEST(ResolveServeOptions, MetricsAndBackendsFromAFileOrAFlag) {
  std::string path = ::testing::TempDir() + "/xmetrics-metrics.yaml";
  {
    std::ofstream f(path);
    f << "backend: embedded\nbackends: prometheus, datadog\nmetrics:\n"
         "  - {name: Emails, backend: prometheus, query: 'max(q{a=\"b\"})', maxAge: 5m}\n"
         "  - name: queue\n    namespace: shop\n    backend: datadog\n";
  }
  auto o = resolveServeOptions({.env = {{"DD_API_KEY", "x"}}, .configFile = path});
  ASSERT_TRUE(o) << o.error()[0];
  EXPECT_EQ(o->backends, (std::vector<std::string>{"prometheus", "datadog"}));
  ASSERT_EQ(o->metrics.size(), 2u);
  EXPECT_EQ(o->metrics[0].name, "emails");
  EXPECT_EQ(o->metrics[0].query, "max(q{a=\"b\"})");
  EXPECT_EQ(o->metrics[0].maxAge, seconds(300));
  EXPECT_EQ(o->metrics[1].ns, "shop");

  auto flag = resolveServeOptions(
      {.flags = {{"backends", "prometheus"},
                 {"metrics", R"([{"name": "m", "backend": "prometheus", "query": "up"}])"}}});
  ASSERT_TRUE(flag);
  EXPECT_EQ(flag->metrics[0].query, "up");
}

TEST(ResolveServeOptions, MetricsErrorsNameTheItemAndTheFix) {
  auto notRunning =
      resolveServeOptions({.flags = {{"metrics", R"([{"name": "m", "backend": "prometheus"}])"}}});
  ASSERT_FALSE(notRunning);
  EXPECT_NE(notRunning.error()[0].find("not running"), std::string::npos) << notRunning.error()[0];
  for (const char* bad :
       {R"([{"backend": "prometheus"}])", R"([{"name": "m", "colour": "x"}])", R"([{"name": "m"}])",
        R"({"name": "m"})", "[{name: m, backend: graphite}]"}) {
    auto r = resolveServeOptions({.flags = {{"backends", "prometheus"}, {"metrics", bad}}});
    EXPECT_FALSE(r) << bad;
  }
  EXPECT_FALSE(resolveServeOptions({.flags = {{"backends", "embedded,graphite"}}}));
}

// Found by fuzz/fuzz_config_yaml.cpp: a map used as a field name (`{name: q, backend 2m}: x`)
// threw yaml-cpp's BadConversion out of the parser, and xmetrics ended in std::terminate.
TEST(ResolveServeOptions, AMetricsFieldNameThatIsNotAWordIsAnErrorNotACrash) {
  for (const char* bad : {"- {name: queue, backend 2m}:", "[{[a, b]: 1, name: m}]",
                          "[{name: m, {x: 1}: prometheus}]"}) {
    auto r = resolveServeOptions({.flags = {{"backends", "prometheus"}, {"metrics", bad}}});
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error()[0].find("metrics"), std::string::npos) << r.error()[0];
  }
}

}  // namespace
}  // namespace xmetrics::config

namespace xmetrics::config {
namespace {

TEST(EffectiveSettings, SecretsAndUrlPasswordsAreRedactedButChangesStillShow) {
  auto a = resolveServeOptions({.flags = {{"datadog-proxy", "http://bob:hunter2@proxy:3128"}},
                                .env = {{"DD_API_KEY", "0f1e2d3c"}}});
  auto b = resolveServeOptions({.env = {{"DD_API_KEY", "ffffffff"}}});
  ASSERT_TRUE(a && b);
  auto find = [](const ServeOptions& o, const std::string& name) {
    for (const auto& e : o.effective) {
      if (e.name == name) return e;
    }
    return ServeOptions::EffectiveSetting{};
  };
  EXPECT_EQ(find(*a, "datadog-api-key").value, "<redacted>");
  EXPECT_EQ(find(*a, "datadog-api-key").source, "environment variable DD_API_KEY");
  EXPECT_EQ(find(*a, "datadog-proxy").value, "http://<redacted>@proxy:3128");
  EXPECT_NE(find(*a, "datadog-api-key").rawHash, find(*b, "datadog-api-key").rawHash);
  for (const auto& e : a->effective) {
    EXPECT_EQ(e.value.find("0f1e2d3c"), std::string::npos) << e.name;
    EXPECT_EQ(e.value.find("hunter2"), std::string::npos) << e.name;
  }
}

}  // namespace
}  // namespace xmetrics::config

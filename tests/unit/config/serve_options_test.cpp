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

TEST(ResolveServeOptions, MaxAgeShorterThanTheRefreshIsRefused) {
  SettingSources s;
  s.flags = {{"max-age", "10s"}, {"refresh-period", "30s"}};
  auto o = resolveServeOptions(s);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error()[0].find("raise max-age"), std::string::npos);
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

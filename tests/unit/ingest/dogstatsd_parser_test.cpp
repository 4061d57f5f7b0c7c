#include "ingest/dogstatsd_parser.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::ingest {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// What a parsed line looked like, with the views copied out so it outlives the callback.
struct Seen {
  std::string name;
  MetricType type;
  std::vector<double> values;
  std::string setValue;
  double sampleRate;
  std::vector<std::string> tags;
  std::optional<int64_t> timestamp;
};

struct Parsed {
  ParseStats stats;
  std::string firstMalformed;
  std::vector<Seen> metrics;
};

Parsed parse(std::string_view datagram) {
  Parsed out;
  out.stats = parseDatagram(datagram, [&](const DogStatsdMetric& m) {
    out.metrics.push_back(Seen{std::string(m.name), m.type, m.values, std::string(m.setValue),
                               m.sampleRate, std::vector<std::string>(m.tags.begin(), m.tags.end()),
                               m.timestamp});
  });
  out.firstMalformed = std::string(out.stats.firstMalformed);
  return out;
}

DogStatsdMetric parseOk(std::string_view line) {
  auto metric = parseLine(line);
  EXPECT_TRUE(metric.has_value()) << line;
  return metric.value_or(DogStatsdMetric{});
}

TEST(DogStatsdParser, ReadsEveryMetricType) {
  struct Case {
    std::string_view line;
    MetricType type;
  };
  for (auto [line, type] :
       {Case{"a:1|c", MetricType::kCount}, Case{"a:1|g", MetricType::kGauge},
        Case{"a:1|ms", MetricType::kTimer}, Case{"a:1|h", MetricType::kHistogram},
        Case{"a:1|d", MetricType::kDistribution}}) {
    auto metric = parseOk(line);
    EXPECT_EQ(metric.name, "a") << line;
    EXPECT_EQ(metric.type, type) << line;
    EXPECT_THAT(metric.values, ElementsAre(1.0)) << line;
    EXPECT_EQ(metric.sampleRate, 1.0) << line;
    EXPECT_THAT(metric.tags, IsEmpty()) << line;
    EXPECT_FALSE(metric.timestamp.has_value()) << line;
  }
}

TEST(DogStatsdParser, SetMemberIsKeptVerbatimAndNeedNotBeNumeric) {
  auto metric = parseOk("users.uniques:user-42|s");
  EXPECT_EQ(metric.type, MetricType::kSet);
  EXPECT_EQ(metric.setValue, "user-42");
  EXPECT_THAT(metric.values, IsEmpty());

  // The Agent does not unpack sets: a member may contain ':'.
  EXPECT_EQ(parseOk("users.uniques:abc:def|s").setValue, "abc:def");
  EXPECT_EQ(parseOk("u:\xe2\x99\xac|s").setValue, "\xe2\x99\xac");
}

TEST(DogStatsdParser, ReadsDecimalIntegerNegativeAndExponentValues) {
  EXPECT_THAT(parseOk("a:0.5|g").values, ElementsAre(0.5));
  EXPECT_THAT(parseOk("a:-7|c").values, ElementsAre(-7.0));
  EXPECT_THAT(parseOk("a:1e3|h").values, ElementsAre(1000.0));
  EXPECT_THAT(parseOk("a:.25|d").values, ElementsAre(0.25));
  EXPECT_THAT(parseOk("a:+4|c").values, ElementsAre(4.0));
}

// The Datadog Agent has no StatsD gauge deltas: a sign is part of the value.
TEST(DogStatsdParser, SignedGaugeIsAPlainValue) {
  EXPECT_THAT(parseOk("queue.depth:+3|g").values, ElementsAre(3.0));
  EXPECT_THAT(parseOk("queue.depth:-3|g").values, ElementsAre(-3.0));
}

TEST(DogStatsdParser, NegativeCountIsJustNegative) {
  EXPECT_THAT(parseOk("jobs:-2|c").values, ElementsAre(-2.0));
}

TEST(DogStatsdParser, UnpacksProtocol11Values) {
  auto metric = parseOk("page.views:1:2:32|d");
  EXPECT_THAT(metric.values, ElementsAre(1.0, 2.0, 32.0));
  EXPECT_THAT(parseOk("song.length:240:234|h|@0.5").values, ElementsAre(240.0, 234.0));
  EXPECT_THAT(parseOk("g:5:6|g").values, ElementsAre(5.0, 6.0));
  // Empty entries are skipped, as the Agent skips them.
  EXPECT_THAT(parseOk("a:21::22:|ms").values, ElementsAre(21.0, 22.0));
}

TEST(DogStatsdParser, ReadsSampleRate) {
  EXPECT_EQ(parseOk("a:1|c|@0.5").sampleRate, 0.5);
  EXPECT_EQ(parseOk("a:1|c|@1").sampleRate, 1.0);
  EXPECT_EQ(parseOk("a:1|h|@1e-3").sampleRate, 0.001);
  EXPECT_EQ(parseOk("a:1|g|@0.21").sampleRate, 0.21);
}

TEST(DogStatsdParser, ReadsTags) {
  auto metric = parseOk("users.online:1|c|@0.5|#country:china,env:prod,canary");
  EXPECT_THAT(metric.tags, ElementsAre("country:china", "env:prod", "canary"));
  EXPECT_EQ(metric.sampleRate, 0.5);
}

TEST(DogStatsdParser, TagValueMayContainColons) {
  EXPECT_THAT(parseOk("a:1|g|#env:staging:east,url:http://x:80/").tags,
              ElementsAre("env:staging:east", "url:http://x:80/"));
}

TEST(DogStatsdParser, EmptyTagListAndEmptyTagsAreDropped) {
  EXPECT_THAT(parseOk("a:1|g|#").tags, IsEmpty());
  EXPECT_THAT(parseOk("a:1|g|#a,,b,").tags, ElementsAre("a", "b"));
}

TEST(DogStatsdParser, LastTagFieldWinsAsInTheAgent) {
  EXPECT_THAT(parseOk("a:1|g|#one|#two,three").tags, ElementsAre("two", "three"));
}

TEST(DogStatsdParser, FieldsMayComeInAnyOrder) {
  auto metric = parseOk("metric:1234|c|T1657100540|@0.25|#atag");
  EXPECT_EQ(metric.timestamp, 1657100540);
  EXPECT_EQ(metric.sampleRate, 0.25);
  EXPECT_THAT(metric.tags, ElementsAre("atag"));
}

TEST(DogStatsdParser, ReadsProtocol13Timestamp) {
  auto metric = parseOk("page.views:15|c|#env:dev|T1656581400");
  EXPECT_EQ(metric.timestamp, 1656581400);
  EXPECT_THAT(metric.tags, ElementsAre("env:dev"));
}

TEST(DogStatsdParser, IgnoresContainerIdExternalDataCardinalityAndUnknownFields) {
  auto metric = parseOk(
      "page.views:1|g|#env:dev|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0c918c8d93df19a9de6f3fe1d"
      "|e:it-false,cn-nginx,pu-75a2b6d5|card:low|x:future|m:test||");
  EXPECT_EQ(metric.name, "page.views");
  EXPECT_THAT(metric.values, ElementsAre(1.0));
  EXPECT_THAT(metric.tags, ElementsAre("env:dev"));
  EXPECT_THAT(parseOk("a:1|c|c:ci-abc,in-42|T1700000000").timestamp, 1700000000);
}

TEST(DogStatsdParser, RecognisesEventsAndServiceChecks) {
  EXPECT_TRUE(isEventOrServiceCheck("_e{21,36}:An exception occurred|Cannot parse CSV file"));
  EXPECT_TRUE(isEventOrServiceCheck("_sc|Redis connection|2|#env:dev|m:timed out"));
  EXPECT_FALSE(isEventOrServiceCheck("_e:1|c"));
  EXPECT_FALSE(isEventOrServiceCheck("page.views:1|c"));
}

TEST(DogStatsdParser, RejectsEachMalformedClass) {
  for (std::string_view line : {
           "page.views",                            // no ':' and no '|'
           "page.views:1",                          // no type
           "page.views:1|",                         // empty type
           "page.views1|c",                         // no ':'
           ":1|c",                                  // empty name
           "page views:1|c",                        // space in the name
           "page-views:1|c",                        // '-' is not a Datadog name character
           "p\xc3\xa4ge:1|c",                       // neither is non-ASCII
           "page.views:|c",                         // no value
           "page.views::|c",                        // only empty packed values
           "page.views:abc|g",                      // not a number
           "page.views:1x|g",                       // trailing junk
           "page.views: 1|g",                       // whitespace
           "page.views:1,5|g",                      // decimal comma
           "page.views:0x10|g",                     // hex
           "page.views:+-1|g",                      // two signs
           "page.views:1:two|h",                    // one bad packed value spoils the line
           "page.views:nan|g",                      // NaN
           "page.views:inf|g",                      // infinity
           "page.views:-infinity|c",                // infinity
           "page.views:1e999|g",                    // overflows a double
           "page.views:1|x",                        // unknown type
           "page.views:1|C",                        // types are lower case
           "page.views:1|cc",                       // unknown type
           "page.views:1|c|@0",                     // sample rate 0 would divide by zero
           "page.views:1|c|@-0.5",                  // negative sample rate
           "page.views:1|c|@1.5",                   // sample rate above 1
           "page.views:1|c|@abc",                   // sample rate not a number
           "page.views:1|c|@",                      // empty sample rate
           "page.views:1|c|@nan",                   // NaN sample rate
           "page.views:1|c|T",                      // empty timestamp
           "page.views:1|c|Tabc",                   // timestamp not a number
           "page.views:1|c|T0",                     // timestamp must be > 0
           "page.views:1|c|T-5",                    // negative timestamp
           "page.views:1|c|T1.5",                   // timestamps are whole seconds
           "page.views:1|c|T99999999999999999999",  // beyond int64
           "page.views:1|c|T4102444801",            // after 2100
       }) {
    EXPECT_FALSE(parseLine(line).has_value()) << line;
  }
}

TEST(DogStatsdParser, SplitsLinesOnNewlineAndCrLf) {
  auto out = parse("a:1|c\nb:2|g\r\nc:3|h\n\n\r\nd:x|s\r\n");
  ASSERT_EQ(out.metrics.size(), 4u);
  EXPECT_EQ(out.metrics[0].name, "a");
  EXPECT_EQ(out.metrics[1].name, "b");
  EXPECT_EQ(out.metrics[2].name, "c");
  EXPECT_EQ(out.metrics[3].setValue, "x");
  EXPECT_EQ(out.stats.metrics, 4u);
  EXPECT_EQ(out.stats.malformed, 0u);
  EXPECT_EQ(out.stats.skipped, 0u);
}

TEST(DogStatsdParser, SkipsEventsAndServiceChecksWithoutCountingThemMalformed) {
  auto out = parse(
      "_e{21,36}:An exception occurred|Cannot parse CSV file from 10.0.0.17|t:warning\n"
      "requests:1|c\n"
      "_sc|Redis connection|2|#env:dev|m:Redis connection timed out after 10s\n");
  EXPECT_EQ(out.stats.skipped, 2u);
  EXPECT_EQ(out.stats.metrics, 1u);
  EXPECT_EQ(out.stats.malformed, 0u);
  ASSERT_EQ(out.metrics.size(), 1u);
  EXPECT_EQ(out.metrics[0].name, "requests");
}

TEST(DogStatsdParser, CountsMalformedLinesAndGoesOnWithTheNext) {
  auto out =
      parse("good.one:1|c\nbad one:1|c\ngood.two:2|g\n:3|c\nbad.three:nan|g\ngood.three:3|h");
  EXPECT_EQ(out.stats.metrics, 3u);
  EXPECT_EQ(out.stats.malformed, 3u);
  EXPECT_EQ(out.firstMalformed, "bad one:1|c");
  ASSERT_EQ(out.metrics.size(), 3u);
  EXPECT_EQ(out.metrics[2].name, "good.three");
}

TEST(DogStatsdParser, FirstMalformedHasNoLineEnding) {
  auto out = parse("broken\r\nok:1|c");
  EXPECT_EQ(out.stats.malformed, 1u);
  EXPECT_EQ(out.firstMalformed, "broken");
}

TEST(DogStatsdParser, EmptyDatagramYieldsNothing) {
  auto out = parse("");
  EXPECT_EQ(out.stats.metrics + out.stats.malformed + out.stats.skipped, 0u);
  out = parse("\n\r\n\n");
  EXPECT_EQ(out.stats.metrics + out.stats.malformed + out.stats.skipped, 0u);
}

TEST(DogStatsdParser, ReadsVeryLongLines) {
  // Long in values (protocol 1.1 packs them) and in tags up to the bounds; a 10,000-character
  // name is refused (no query could name it) without disturbing the next line.
  std::string line = "long.line:1";
  for (int i = 0; i < 5'000; ++i) line += ":" + std::to_string(i);
  line += "|h|#";
  for (int i = 0; i < 100; ++i)
    line += (i ? ",k" : "k") + std::to_string(i) + ":" + std::string(150, 'v');
  std::string hugeName(10'000, 'n');
  auto out = parse(line + "\n" + hugeName + ":1|c\nafter:1|c");
  ASSERT_EQ(out.metrics.size(), 2u);
  EXPECT_EQ(out.metrics[0].values.size(), 5'001u);
  EXPECT_EQ(out.metrics[0].values.back(), 4'999.0);
  EXPECT_EQ(out.metrics[0].tags.size(), 100u);
  EXPECT_EQ(out.stats.malformed, 1u);
  EXPECT_EQ(out.metrics[1].name, "after");
}

TEST(DogStatsdParser, BinaryGarbageIsCountedNotFatal) {
  std::string garbage;
  uint32_t state = 12345;
  for (int i = 0; i < 65'536; ++i) {
    state = state * 1'103'515'245u + 12'345u;
    garbage.push_back(static_cast<char>(state >> 24));
  }
  garbage += std::string("\0\0:1|c\n", 7);
  garbage += "still.parsed:1|c";
  auto out = parse(garbage);
  // Every non-empty line (a trailing '\r' dropped) is counted once: here all but the last are bad.
  std::size_t lines = 0;
  for (std::string_view rest = garbage; !rest.empty();) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines += !line.empty();
  }
  ASSERT_GT(lines, 100u);  // the garbage holds many lines, not one long one
  EXPECT_EQ(out.stats.malformed, lines - 1);
  EXPECT_EQ(out.stats.skipped, 0u);
  ASSERT_EQ(out.metrics.size(), 1u);
  EXPECT_EQ(out.metrics.back().name, "still.parsed");
}

TEST(DogStatsdParser, NulBytesInANameMakeTheLineMalformed) {
  EXPECT_FALSE(parseLine(std::string_view("a\0b:1|c", 7)).has_value());
}

}  // namespace
}  // namespace xmetrics::ingest

namespace xmetrics::ingest {
namespace {

TEST(DogStatsdParserBounds, ANameOrTagNoQueryCouldReadIsRefused) {
  std::string name250(250, 'a'), name251(251, 'a');
  EXPECT_TRUE(parseLine(name250 + ":1|g"));
  EXPECT_FALSE(parseLine(name251 + ":1|g"));  // a 60 KB name cost the store its size
  EXPECT_FALSE(parseLine("q:1|g|#k:" + std::string(200, 'v')));  // a 202-character tag
  EXPECT_TRUE(parseLine("q:1|g|#k:" + std::string(198, 'v')));
  std::string many;
  for (int i = 0; i <= 100; ++i) many += (i ? "," : "") + std::string("t") + std::to_string(i);
  EXPECT_FALSE(parseLine("q:1|g|#" + many));  // 101 tags
  auto stats = parseDatagram(name251 + ":1|g\nok:1|g", [](const DogStatsdMetric&) {});
  EXPECT_EQ(stats.metrics, 1u);
  EXPECT_EQ(stats.malformed, 1u);  // counted (xmetrics_dogstatsd_malformed_total), not kept
}

}  // namespace
}  // namespace xmetrics::ingest

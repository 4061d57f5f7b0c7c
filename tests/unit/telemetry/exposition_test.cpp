#include "telemetry/exposition.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace xmetrics::telemetry {
namespace {

std::string labelValue(std::string_view value) {
  std::string out;
  appendLabelValue(out, value);
  return out;
}

std::string value(double v) {
  std::string out;
  appendValue(out, v);
  return out;
}

std::size_t count(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Exposition, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(labelValue(R"(a\b"c)"
                       "\nd"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(labelValue("env=prod,region in (eu,us)"), "env=prod,region in (eu,us)");
  // Tabs and other bytes pass as they are: only those three are special in the format.
  EXPECT_EQ(labelValue("a\tb"), "a\tb");
}

TEST(Exposition, LabelValuesKeepUtf8AndReplaceInvalidBytes) {
  EXPECT_EQ(labelValue("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_EQ(labelValue("a\x80z"), "a\xEF\xBF\xBDz");
  EXPECT_EQ(labelValue("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(labelValue("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(labelValue("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Exposition, HelpEscapesBackslashAndNewlineOnly) {
  std::string out;
  appendHelp(out, "a \"quoted\" \\ word\nnext");
  EXPECT_EQ(out, "a \"quoted\" \\\\ word\\nnext");
}

TEST(Exposition, ValuesAreSpelledAsPrometheusParsesThem) {
  EXPECT_EQ(value(0), "0");
  EXPECT_EQ(value(3), "3");
  EXPECT_EQ(value(-2.5), "-2.5");
  EXPECT_EQ(value(0.0001), "0.0001");
  EXPECT_EQ(value(0.00025), "0.00025");
  EXPECT_EQ(value(123456789012.5), "123456789012.5");
  EXPECT_EQ(value(1e-9), "1e-09");
  EXPECT_EQ(value(1e300), "1e+300");
  EXPECT_EQ(value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(value(std::nan("")), "NaN");
}

TEST(Exposition, HelpAndTypeComeOnceAndSamplesOfAFamilyStayTogether) {
  ExpositionWriter out;
  out.family("a_total", MetricType::kCounter, "A.").sample({{"backend", "x"}}, 1);
  out.family("b", MetricType::kGauge, "B.").sample({}, 2.5);
  // A second source adding to the first family: its sample joins the others.
  out.family("a_total", MetricType::kCounter, "A.").sample({{"backend", "y"}}, uint64_t{7});
  EXPECT_EQ(out.text(),
            "# HELP a_total A.\n"
            "# TYPE a_total counter\n"
            "a_total{backend=\"x\"} 1\n"
            "a_total{backend=\"y\"} 7\n"
            "# HELP b B.\n"
            "# TYPE b gauge\n"
            "b 2.5\n");
}

TEST(Exposition, FamiliesWithoutSamplesAreLeftOut) {
  ExpositionWriter out;
  out.family("empty_total", MetricType::kCounter, "Nothing.");
  out.family("one", MetricType::kGauge, "One.").sample({}, 1);
  EXPECT_EQ(count(out.text(), "empty_total"), 0u);
  EXPECT_EQ(count(out.text(), "# TYPE"), 1u);
}

TEST(Exposition, LargeCountsAreExact) {
  ExpositionWriter out;
  out.family("big_total", MetricType::kCounter, "Big.")
      .sample({}, std::numeric_limits<uint64_t>::max());
  EXPECT_NE(out.text().find("big_total 18446744073709551615\n"), std::string::npos);
}

TEST(Exposition, HistogramBucketsAreCumulativeAndEndWithInf) {
  ExpositionWriter out;
  const double bounds[] = {0.001, 0.01, 0.1};
  const uint64_t counts[] = {2, 0, 3, 1};  // 1 above 0.1
  const Label labels[] = {{"path", "external_metric"}};
  out.family("d_seconds", MetricType::kHistogram, "Durations.")
      .histogram(labels, bounds, counts, 0.75);
  EXPECT_EQ(out.text(),
            "# HELP d_seconds Durations.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{path=\"external_metric\",le=\"0.001\"} 2\n"
            "d_seconds_bucket{path=\"external_metric\",le=\"0.01\"} 2\n"
            "d_seconds_bucket{path=\"external_metric\",le=\"0.1\"} 5\n"
            "d_seconds_bucket{path=\"external_metric\",le=\"+Inf\"} 6\n"
            "d_seconds_sum{path=\"external_metric\"} 0.75\n"
            "d_seconds_count{path=\"external_metric\"} 6\n");
}

TEST(Exposition, HistogramWithoutLabelsHasOnlyLe) {
  ExpositionWriter out;
  const double bounds[] = {1};
  const uint64_t counts[] = {1, 1};
  out.family("h", MetricType::kHistogram, "H.").histogram({}, bounds, counts, 3);
  auto text = out.text();
  EXPECT_NE(text.find("h_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_sum 3\nh_count 2\n"), std::string::npos) << text;
}

TEST(Exposition, EscapedLabelValuesInASample) {
  ExpositionWriter out;
  out.family("m", MetricType::kGauge, "M.")
      .sample({{"selector", "a=\"b\"\\c\nd"}, {"metric", "x"}}, 1.0);
  EXPECT_NE(out.text().find("m{selector=\"a=\\\"b\\\"\\\\c\\nd\",metric=\"x\"} 1\n"),
            std::string::npos)
      << out.text();
}

}  // namespace
}  // namespace xmetrics::telemetry

#include "backends/prometheus/promql.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace xmetrics::backends::prometheus {
namespace {

core::LabelSelector selector(std::string_view text) { return *core::LabelSelector::parse(text); }

TEST(ParseInlinePromql, ReadsTheInlineShapeOfEqualities) {
  auto shape = parseInlinePromql("sum(queue_depth{env=\"prod\",queue=\"q1\"})");
  ASSERT_TRUE(shape);
  EXPECT_EQ(shape->aggregation, "sum");
  EXPECT_EQ(shape->metric, "queue_depth");
  EXPECT_EQ(shape->matchers, (std::vector<EqualityMatcher>{{"env", "prod"}, {"queue", "q1"}}));
  EXPECT_EQ(parseInlinePromql("count(up)"), (InlineShape{"count", "up", {}}));
  EXPECT_EQ(parseInlinePromql("max(job:rate5m{a=\"\"})"),
            (InlineShape{"max", "job:rate5m", {{"a", ""}}}));
  for (std::string_view a : {"sum", "avg", "min", "max", "count"}) {
    EXPECT_TRUE(parseInlinePromql(std::string(a) + "(m{k=\"v\"})")) << a;
  }
}

TEST(ParseInlinePromql, UnescapesWhatInlinePromqlEscapes) {
  auto shape = parseInlinePromql(R"(sum(m{k="a\"b\\c\nd"}))");
  ASSERT_TRUE(shape);
  EXPECT_EQ(shape->matchers.at(0).second, "a\"b\\c\nd");
}

TEST(ParseInlinePromql, RejectsEveryOtherForm) {
  for (std::string_view q : {
           "m{k=\"v\"}",                            // aggregation none: a bare selector
           "sum(m{k!=\"v\"})",                      // negation
           "sum(m{k=~\"a|b\"})",                    // regex
           "sum(m{k!~\"a\"})",                      //
           "sum(m{a=\"1\",k=~\"a|b\"})",            // one regex among equalities
           "sum (m{k=\"v\"})",                      // whitespace: not inlinePromql's text
           "sum(m{k=\"v\"} )",                      //
           "sum(m{k = \"v\"})",                     //
           "sum by (k)(m{k=\"v\"})",                // a grouping of its own
           "sum(m{k=\"v\"}) by (k)",                //
           "sum(m{k=\"v\"}) * 2",                   // arithmetic around it
           "max(m{k=\"v\"}[5m])",                   // a range
           "sum(rate(m{k=\"v\"}[5m]))",             // a function
           "sum(m{k=\"v\"} offset 5m)",             //
           "sum(m{})",                              // inlinePromql never writes empty braces
           "sum(m{k=\"v\",})",                      //
           "sum(m{k='v'})",                         // other quotes
           "sum(m{k=`v`})",                         //
           "sum(m{k=\"a\\tb\"})",                   // an escape inlinePromql never writes
           "sum(m{k=\"a\nb\"})",                    // a raw newline
           "sum(m{k=\"v})",                         // unterminated
           "sum(m{k=\"v\"}",                        //
           "sum(m{k=\"v\"}))",                      //
           "sum(a.b{k=\"v\"})",                     // not a PromQL metric name
           "sum(9m{k=\"v\"})",                      //
           "sum(m{app.kubernetes.io/name=\"v\"})",  // not a PromQL label name
           "sum(m{a:b=\"v\"})",                     //
           "sum(m{{k=\"v\"})",                      //
           "stddev(m{k=\"v\"})",                    // another aggregation
           "summary(m{k=\"v\"})",                   //
           "Sum(m{k=\"v\"})",                       //
           "",
           "sum()",
       }) {
    EXPECT_FALSE(parseInlinePromql(q)) << q;
  }
}

// The round trip: whatever inlinePromql makes of an equality-only selector reads back as its parts.
TEST(ParseInlinePromql, ReadsBackEveryEqualitySelectorInlinePromqlTranslates) {
  std::mt19937 random(14);
  auto pick = [&](std::string_view chars, std::size_t min, std::size_t max) {
    std::string s(std::uniform_int_distribution<std::size_t>(min, max)(random), 'x');
    for (char& c : s)
      c = chars[std::uniform_int_distribution<std::size_t>(0, chars.size() - 1)(random)];
    return s;
  };
  const std::string_view kAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const std::vector<std::string> kAggregations = {"sum", "avg", "min", "max", "count"};
  for (int round = 0; round < 500; ++round) {
    std::string metric = pick("abcxyz_", 1, 1) + pick("abz09_.-:", 0, 12);
    std::string aggregation = kAggregations[round % kAggregations.size()];
    std::string text;
    std::map<std::string, std::string> wanted;
    int n = std::uniform_int_distribution<int>(0, 4)(random);
    for (int i = 0; i < n; ++i) {
      // A label key as Kubernetes allows it and PromQL can name it.
      std::string key = pick("abcxyz", 1, 1);
      if (i % 2) key += pick("abz09_", 0, 6) + pick("abz09", 1, 1);
      // A label value: empty, or alphanumerics with -_. inside.
      std::string value = round % 7 == 0 ? "" : pick(kAlnum, 1, 1);
      if (value.size() && round % 3) value += pick("az09-_.", 0, 10) + pick(kAlnum, 1, 1);
      if (!wanted.emplace(key, value).second) continue;
      text += (text.empty() ? "" : ",") + key + "=" + value;
    }
    auto sel = selector(text);
    std::string promql = inlinePromql(metric, sel, aggregation);
    auto shape = parseInlinePromql(promql);
    ASSERT_TRUE(shape) << promql;
    std::string name = metric;
    for (char& c : name) {
      if (c == '.' || c == '-') c = '_';
    }
    EXPECT_EQ(shape->aggregation, aggregation);
    EXPECT_EQ(shape->metric, name);
    std::vector<EqualityMatcher> matchers;
    for (const auto& r : sel.requirements()) {
      // `!k` is written k="" and reads back as the equality it is in PromQL.
      matchers.emplace_back(r.key, r.values.empty() ? "" : r.values[0]);
    }
    EXPECT_EQ(shape->matchers, matchers) << promql;
  }
  EXPECT_FALSE(parseInlinePromql(inlinePromql("m", selector("k=v"), "none")));
  EXPECT_FALSE(parseInlinePromql(inlinePromql("m", selector("k in (a,b)"), "sum")));
  EXPECT_FALSE(parseInlinePromql(inlinePromql("m", selector("k!=a"), "sum")));
  EXPECT_FALSE(parseInlinePromql(inlinePromql("m", selector("k"), "sum")));
  EXPECT_FALSE(parseInlinePromql(inlinePromql("m", selector("a.b/c=v"), "sum")));
}

TEST(GroupedPromql, AggregatesByTheKeyOverAnAnchoredAlternation) {
  EXPECT_EQ(groupedPromql({.aggregation = "sum",
                           .metric = "queue_depth",
                           .common = {{"env", "prod"}},
                           .key = "queue",
                           .values = {"q0", "q1", "q11"}}),
            "sum by (queue)(queue_depth{env=\"prod\",queue=~\"q0|q1|q11\"})");
  EXPECT_EQ(
      groupedPromql({.aggregation = "count", .metric = "m", .key = "k", .values = {"a", "b"}}),
      "count by (k)(m{k=~\"a|b\"})");
}

TEST(GroupedPromql, EscapesValuesForTheRegexAndTheLiteral) {
  // RE2 metacharacters get a backslash, which the string literal doubles; a quote is escaped once.
  EXPECT_EQ(groupedPromql({.aggregation = "avg",
                           .metric = "m",
                           .common = {{"a", "x\"y"}},
                           .key = "k",
                           .values = {"1.2", "a|b", "(c)*", "d\"e", "f\\g"}}),
            R"(avg by (k)(m{a="x\"y",k=~"1\\.2|a\\|b|\\(c\\)\\*|d\"e|f\\\\g"}))");
}

}  // namespace
}  // namespace xmetrics::backends::prometheus

#include "query/datadog_query.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/label_selector.hpp"

namespace xmetrics::query {
namespace {

using Kind = TagFilter::Kind;

TagFilter match(std::string key, std::string value) {
  return TagFilter{.kind = Kind::kMatch, .key = std::move(key), .values = {std::move(value)}};
}
TagFilter bare(std::string key) { return TagFilter{.kind = Kind::kMatch, .key = std::move(key)}; }
TagFilter in(std::string key, std::vector<std::string> values) {
  return TagFilter{.kind = Kind::kIn, .key = std::move(key), .values = std::move(values)};
}
TagFilter notOf(TagFilter child) { return TagFilter{.kind = Kind::kNot, .children = {child}}; }
TagFilter andOf(std::vector<TagFilter> c) { return TagFilter{.kind = Kind::kAnd, .children = c}; }
TagFilter orOf(std::vector<TagFilter> c) { return TagFilter{.kind = Kind::kOr, .children = c}; }

DatadogQuery parsed(std::string_view text) {
  auto q = parseQuery(text);
  EXPECT_TRUE(q.has_value()) << text << ": " << (q ? "" : q.error().message);
  return q.value_or(DatadogQuery{});
}

TagFilter filterOf(std::string_view text) { return parsed(text).filter; }

// --- parsing ---

TEST(ParseQuery, ReadsTheClusterAgentInlineForm) {
  auto q = parsed("avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)");
  EXPECT_EQ(q.aggregator, Aggregator::kAvg);
  EXPECT_EQ(q.metric, "nginx.net.request_per_s");
  EXPECT_EQ(q.filter, andOf({match("app", "puppet"), match("env", "demo")}));
  EXPECT_TRUE(q.groupBy.empty());
  ASSERT_TRUE(q.rollup.has_value());
  EXPECT_EQ(q.rollup->method, TimeAggregator::kAvg);
  EXPECT_EQ(q.rollup->seconds, 30);
}

TEST(ParseQuery, StarSelectsEverySeries) {
  auto q = parsed("sum:requests{*}");
  EXPECT_EQ(q.filter.kind, Kind::kAll);
  EXPECT_FALSE(q.rollup.has_value());
  EXPECT_EQ(parsed("sum:requests{ * }").filter.kind, Kind::kAll);
}

TEST(ParseQuery, AcceptsEverySpaceAggregatorInAnyCase) {
  EXPECT_EQ(parsed("avg:m{*}").aggregator, Aggregator::kAvg);
  EXPECT_EQ(parsed("sum:m{*}").aggregator, Aggregator::kSum);
  EXPECT_EQ(parsed("min:m{*}").aggregator, Aggregator::kMin);
  EXPECT_EQ(parsed("max:m{*}").aggregator, Aggregator::kMax);
  EXPECT_EQ(parsed("MAX:m{*}").aggregator, Aggregator::kMax);
}

TEST(ParseQuery, KeepsTheMetricNameAsWritten) {
  EXPECT_EQ(parsed("avg:MyApp.Requests_Total{*}").metric, "MyApp.Requests_Total");
}

TEST(ParseQuery, ReadsSymbolicNegationBareTagsWildcardsAndEmptyValues) {
  EXPECT_EQ(filterOf("avg:m{!env:prod}"), notOf(match("env", "prod")));
  EXPECT_EQ(filterOf("avg:m{important}"), bare("important"));
  EXPECT_EQ(filterOf("avg:m{team:*}"), match("team", "*"));
  EXPECT_EQ(filterOf("avg:m{pod:web-*,!device:/dev/loop*}"),
            andOf({match("pod", "web-*"), notOf(match("device", "/dev/loop*"))}));
  EXPECT_EQ(filterOf("avg:m{app:}"), match("app", ""));
  EXPECT_EQ(filterOf("avg:m{url:http://x/y}"), match("url", "http://x/y"));
  EXPECT_EQ(filterOf("avg:m{ a:b , c:d }"), andOf({match("a", "b"), match("c", "d")}));
}

TEST(ParseQuery, FunctionalFormBindsNotTighterThanAndTighterThanOr) {
  EXPECT_EQ(filterOf("avg:m{a:1 OR b:2 AND NOT c:3}"),
            orOf({match("a", "1"), andOf({match("b", "2"), notOf(match("c", "3"))})}));
  EXPECT_EQ(filterOf("avg:m{(a:1 OR b:2) AND c:3}"),
            andOf({orOf({match("a", "1"), match("b", "2")}), match("c", "3")}));
  EXPECT_EQ(filterOf("avg:m{NOT (a:1 OR b:2)}"), notOf(orOf({match("a", "1"), match("b", "2")})));
}

TEST(ParseQuery, KeywordsIgnoreCase) {
  EXPECT_EQ(filterOf("avg:m{a:1 and not b:2 or c IN (x)}"),
            filterOf("avg:m{a:1 AND NOT b:2 OR c IN (x)}"));
  EXPECT_EQ(filterOf("avg:m{c not in (x,y)}"), filterOf("avg:m{c NOT IN (x,y)}"));
}

TEST(ParseQuery, ReadsInAndNotInLists) {
  EXPECT_EQ(filterOf("avg:m{region IN (eu, us)}"), in("region", {"eu", "us"}));
  EXPECT_EQ(filterOf("avg:m{region NOT IN (eu,us)}"), notOf(in("region", {"eu", "us"})));
  EXPECT_EQ(filterOf("avg:m{NOT region IN (eu,us)}"), notOf(in("region", {"eu", "us"})));
  EXPECT_EQ(
      filterOf("avg:m{env:prod AND region IN (eu,us) AND NOT tier:free}"),
      andOf({match("env", "prod"), in("region", {"eu", "us"}), notOf(match("tier", "free"))}));
}

TEST(ParseQuery, FlattensNestedAndsAndRedundantParentheses) {
  EXPECT_EQ(filterOf("avg:m{(a:1 AND b:2) AND ((c:3))}"),
            andOf({match("a", "1"), match("b", "2"), match("c", "3")}));
}

TEST(ParseQuery, ATagNamedLikeAKeywordPrefixIsATag) {
  EXPECT_EQ(filterOf("avg:m{not:x}"), match("not", "x"));
  EXPECT_EQ(filterOf("avg:m{android:1 AND order:2}"),
            andOf({match("android", "1"), match("order", "2")}));
}

TEST(ParseQuery, ReadsGroupByAndRollupForms) {
  auto q = parsed("sum:m{*} by {host,availability-zone}.rollup(sum, 60)");
  EXPECT_EQ(q.groupBy, (std::vector<std::string>{"host", "availability-zone"}));
  EXPECT_EQ(q.rollup, (Rollup{TimeAggregator::kSum, 60}));
  EXPECT_EQ(parsed("avg:m{*}.rollup(30)").rollup, parsed("avg:m{*}.rollup(avg,30)").rollup);
  EXPECT_EQ(parsed("avg:m{*}.rollup(max)").rollup, (Rollup{TimeAggregator::kMax, std::nullopt}));
  EXPECT_EQ(parsed("avg:m{*}.rollup( COUNT , 120 )").rollup, (Rollup{TimeAggregator::kCount, 120}));
  EXPECT_EQ(parsed("  avg:m{*}  ").metric, "m");
}

// --- printing ---

TEST(PrintQuery, RoundTripsToACanonicalSpelling) {
  struct Case {
    std::string_view in;
    std::string_view out;
  };
  const Case cases[] = {
      {"avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)",
       "avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)"},
      {"avg:m{*}.rollup(avg, 30)", "avg:m{*}.rollup(30)"},
      {"SUM:m{ a:b , !c:d }", "sum:m{a:b,!c:d}"},
      {"avg:m{a:b AND NOT c:d}", "avg:m{a:b,!c:d}"},
      {"avg:m{a:b and c in (x, y)}", "avg:m{a:b AND c IN (x,y)}"},
      {"avg:m{NOT c IN (x)}", "avg:m{c NOT IN (x)}"},
      {"avg:m{(a:1 OR b:2) AND NOT (c:3 OR d:4)}", "avg:m{(a:1 OR b:2) AND NOT (c:3 OR d:4)}"},
      {"avg:m{a:1 OR (b:2 AND c:3)}", "avg:m{a:1 OR b:2 AND c:3}"},
      {"avg:m{NOT NOT a:1}", "avg:m{NOT NOT a:1}"},
      {"max:m{*} by { host , az }.rollup(count)", "max:m{*} by {host,az}.rollup(count)"},
      {"min:m{team:*,pod:web-*}.rollup(max,60)", "min:m{team:*,pod:web-*}.rollup(max,60)"},
      {"avg:m{app:}", "avg:m{app:}"},
  };
  for (const auto& c : cases) {
    auto q = parsed(c.in);
    EXPECT_EQ(printQuery(q), c.out) << c.in;
    EXPECT_EQ(parsed(printQuery(q)), q) << c.in;
  }
}

TEST(PrintQuery, UsesTheSymbolicFormOnlyForAndsOfPlainMatches) {
  DatadogQuery q{.metric = "m", .filter = andOf({match("a", "1"), notOf(match("b", "2"))})};
  EXPECT_EQ(printQuery(q), "avg:m{a:1,!b:2}");
  q.filter = andOf({match("a", "1"), in("b", {"2"})});
  EXPECT_EQ(printQuery(q), "avg:m{a:1 AND b IN (2)}");
  EXPECT_EQ(parsed(printQuery(q)), q);
}

// --- errors ---

TEST(ParseQuery, ErrorsNamePositionExpectedAndFound) {
  struct Case {
    std::string_view text;
    std::size_t position;
    std::string_view mentions;
  };
  const Case cases[] = {
      {"", 0, "space aggregator"},
      {"p95:m{*}", 0, "'p95'"},
      {"avg m{*}", 3, "expected ':'"},
      {"avg:{*}", 4, "metric name"},
      {"avg:my-metric{*}", 6, "expected '{'"},
      {"avg:m", 5, "found end of query"},
      {"avg:m{}", 6, "{*}"},
      {"avg:m{*", 7, "expected '}'"},
      {"avg:m{*,a:b}", 7, "expected '}' after '*'"},
      {"avg:m{a:b", 9, "found end of query"},
      {"avg:m{a:b,}", 10, "expected a tag filter"},
      {"avg:m{a:b AND}", 13, "expected a tag filter"},
      {"avg:m{AND a:b}", 6, "keyword 'AND'"},
      {"avg:m{:b}", 6, "tag key"},
      {"avg:m{we*b:x}", 8, "wildcards are allowed in tag values only"},
      {"avg:m{a:b c:d}", 10, "found 'c:d'"},
      {"avg:m{env=prod}", 9, "found '='"},
      {"avg:m{env:prod AND !region:us}", 19, "cannot mix"},
      {"avg:m{!region:us AND env:prod}", 17, "cannot mix"},
      {"avg:m{a:b,c:d OR e:f}", 14, "cannot mix"},
      {"avg:m{a:b,(c:d)}", 10, "cannot mix"},
      {"avg:m{a:1 AND (b:2}", 18, "expected AND, OR or ')'"},
      {"avg:m{a IN x}", 11, "'(' after IN"},
      {"avg:m{a IN ()}", 12, "tag value in the IN list"},
      {"avg:m{a IN (x y)}", 14, "',' or ')'"},
      {"avg:m{a:b IN (x)}", 6, "tag key before IN"},
      {"avg:m{*} by host", 12, "'{' after 'by'"},
      {"avg:m{*} by {}", 13, "tag key to group by"},
      {"avg:m{*}.as_count()", 8, "'.rollup('"},
      {"avg:m{*}.rollup(p95)", 16, "rollup method"},
      {"avg:m{*}.rollup(0)", 16, "at least 1 second"},
      {"avg:m{*}.rollup(sum,)", 20, "interval in seconds"},
      {"avg:m{*}.rollup(99999999999)", 16, "too large"},
      {"avg:m{*}.rollup(sum 30)", 20, "',' or ')'"},
      {"avg:m{*}.rollup(30", 18, "')'"},
      {"avg:a{*} / avg:b{*}", 9, "expected end of query"},
      {"avg:m{*} extra", 9, "found 'extra'"},
  };
  for (const auto& c : cases) {
    auto q = parseQuery(c.text);
    ASSERT_FALSE(q.has_value()) << c.text;
    EXPECT_EQ(q.error().position, c.position) << c.text << ": " << q.error().message;
    EXPECT_NE(q.error().message.find(c.mentions), std::string::npos)
        << c.text << ": " << q.error().message;
  }
}

TEST(ParseQuery, ErrorsEscapeControlAndNonAsciiBytes) {
  auto q = parseQuery("avg:m{a:b\x01}");
  ASSERT_FALSE(q.has_value());
  EXPECT_EQ(q.error().position, 9u);
  EXPECT_NE(q.error().message.find("found '\\x01'"), std::string::npos) << q.error().message;
  auto utf8 = parseQuery("avg:m{r\xc3\xa9gion*:x}");
  ASSERT_FALSE(utf8.has_value());
  EXPECT_NE(utf8.error().message.find("'r\\xc3\\xa9gion*'"), std::string::npos)
      << utf8.error().message;
}

TEST(ParseQuery, RefusesHostileNestingInsteadOfOverflowingTheStack) {
  std::string deep = "avg:m{" + std::string(10'000, '(') + "a:b" + std::string(10'000, ')') + "}";
  auto q = parseQuery(deep);
  ASSERT_FALSE(q.has_value());
  EXPECT_NE(q.error().message.find("nests deeper"), std::string::npos);
}

// --- matching ---

TEST(TagFilterMatches, SelectsSeriesByTags) {
  const std::vector<std::string> tags = {"env:prod", "pod:web-7f9c", "region:eu", "canary",
                                         "team:"};
  struct Case {
    std::string_view query;
    bool selected;
  };
  const Case cases[] = {
      {"avg:m{*}", true},
      {"avg:m{env:prod}", true},
      {"avg:m{env:staging}", false},
      {"avg:m{env:prod,region:eu}", true},
      {"avg:m{env:prod,region:us}", false},
      {"avg:m{!env:staging}", true},
      {"avg:m{!env:prod}", false},
      {"avg:m{env:*}", true},
      {"avg:m{tier:*}", false},
      {"avg:m{team:*}", true},  // an empty value is still a value
      {"avg:m{team:}", true},
      {"avg:m{canary}", true},    // bare tag
      {"avg:m{canary:*}", true},  // the key is present: a bare tag is a label with no value
      {"avg:m{env}", false},      // bare filter does not match `env:prod`
      {"avg:m{pod:web-*}", true},
      {"avg:m{pod:*-7f9c}", true},
      {"avg:m{pod:*eb*}", true},
      {"avg:m{pod:w*b*c}", true},
      {"avg:m{pod:api-*}", false},
      {"avg:m{pod:web}", false},  // no implicit prefix match
      {"avg:m{ENV:PROD}", true},  // Datadog lowercases tags: case is ignored
      {"avg:m{region IN (us,eu)}", true},
      {"avg:m{region IN (us,ap)}", false},
      {"avg:m{region NOT IN (us,ap)}", true},
      {"avg:m{region NOT IN (eu)}", false},
      {"avg:m{env:staging OR region:eu}", true},
      {"avg:m{env:staging OR region:us}", false},
      {"avg:m{env:prod AND NOT (region:eu OR region:us)}", false},
      {"avg:m{NOT tier:free AND team:*}", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(filterOf(c.query).matches(tags), c.selected) << c.query;
  }
}

TEST(TagFilterMatches, ViewsAndStringsAgree) {
  std::vector<std::string> tags = {"env:prod", "pod:web-1"};
  std::vector<std::string_view> views(tags.begin(), tags.end());
  auto f = filterOf("avg:m{env:prod AND pod:web-*}");
  EXPECT_TRUE(f.matches(tags));
  EXPECT_TRUE(f.matches(std::span<const std::string_view>(views)));
  EXPECT_FALSE(filterOf("avg:m{env:prod}").matches(std::vector<std::string>{}));
  EXPECT_TRUE(filterOf("avg:m{!env:prod}").matches(std::vector<std::string>{}));
}

TEST(TagFilterMatches, WildcardsStayLinearOnHostilePatterns) {
  std::string value(5'000, 'a');
  auto f = match("k", "*a*a*a*a*a*a*a*a*a*a*b");
  EXPECT_FALSE(f.matches(std::vector<std::string>{"k:" + value}));
}

// --- inline translation ---

core::LabelSelector selector(std::string_view text) {
  auto s = core::LabelSelector::parse(text);
  EXPECT_TRUE(s.has_value()) << text;
  return s.value_or(core::LabelSelector{});
}

TEST(InlineQuery, MatchesTheClusterAgentForEqualitySelectors) {
  EXPECT_EQ(
      inlineQuery("nginx.net.request_per_s", selector("env=demo,app=puppet"), Aggregator::kAvg, 30),
      "avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)");
  EXPECT_EQ(inlineQuery("nginx.net.request_per_s", selector(""), Aggregator::kAvg, 30),
            "avg:nginx.net.request_per_s{*}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("kube_container_name==nginx"), Aggregator::kMax, 60),
            "max:m{kube_container_name:nginx}.rollup(60)");
}

TEST(InlineQuery, SortsTagStringsLikeTheClusterAgent) {
  // The Cluster Agent sorts the `key:value` strings, so `a.b:x` comes before `a:y` ('.' < ':')
  // although the key `a` sorts before `a.b`. Autogen names hash this text: it must be identical.
  EXPECT_EQ(inlineQuery("m", selector("a=y,a.b=x"), Aggregator::kAvg, 30),
            "avg:m{a.b:x,a:y}.rollup(30)");
}

TEST(InlineQuery, TranslatesEveryOtherOperatorToTheFunctionalForm) {
  EXPECT_EQ(inlineQuery("m", selector("tier!=free"), Aggregator::kAvg, 30),
            "avg:m{NOT tier:free}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("region in (us,eu)"), Aggregator::kAvg, 30),
            "avg:m{region IN (eu,us)}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("region notin (us,eu)"), Aggregator::kAvg, 30),
            "avg:m{region NOT IN (eu,us)}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("team"), Aggregator::kAvg, 30), "avg:m{team:*}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("!canary"), Aggregator::kAvg, 30),
            "avg:m{NOT canary:*}.rollup(30)");
  EXPECT_EQ(inlineQuery("m", selector("env=prod,region in (eu,us),tier!=free,team,!canary"),
                        Aggregator::kAvg, 30),
            "avg:m{NOT canary:* AND env:prod AND region IN (eu,us) AND team:* AND NOT tier:free}"
            ".rollup(30)");
}

TEST(InlineQuery, LeavesTheRollupOutWhenNotPositive) {
  EXPECT_EQ(inlineQuery("m", selector("a=b"), Aggregator::kSum, 0), "sum:m{a:b}");
}

TEST(InlineQuery, ParsesBackAndSelectsWhatTheLabelSelectorSelects) {
  const std::string_view selectors[] = {
      "",           "env=prod",          "env=prod,app=web",
      "tier!=free", "region in (eu,us)", "region notin (eu,us)",
      "team",       "!canary",           "env=prod,region in (eu,us),tier!=free,team,!canary",
  };
  const core::Labels labelSets[] = {
      {},
      {{"env", "prod"}},
      {{"env", "prod"}, {"app", "web"}},
      {{"env", "prod"}, {"region", "eu"}, {"team", "a"}},
      {{"env", "prod"}, {"region", "ap"}, {"team", "a"}, {"tier", "free"}},
      {{"env", "dev"}, {"region", "us"}, {"canary", "true"}},
  };
  for (auto text : selectors) {
    auto sel = selector(text);
    std::string inlined = inlineQuery("m", sel, Aggregator::kAvg, 30);
    auto q = parseQuery(inlined);
    ASSERT_TRUE(q.has_value()) << inlined << ": " << q.error().message;
    for (const auto& labels : labelSets) {
      std::vector<std::string> tags;
      for (const auto& [k, v] : labels) tags.push_back(k + ":" + v);
      EXPECT_EQ(q->filter.matches(tags), sel.matches(labels)) << inlined;
    }
  }
}

}  // namespace
}  // namespace xmetrics::query

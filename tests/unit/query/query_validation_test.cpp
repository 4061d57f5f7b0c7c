#include "query/query_validation.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace xmetrics::query {
namespace {

// The message for a refused query; fails the test when the query passes.
std::string refusal(std::string_view query) {
  auto problem = validateForBatch(query);
  EXPECT_TRUE(problem.has_value()) << "accepted: " << query;
  return problem.value_or("");
}

void expectAccepted(std::string_view query) {
  auto problem = validateForBatch(query);
  EXPECT_FALSE(problem.has_value()) << query << ": " << problem.value_or("");
}

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// --- accepted ---

TEST(ValidateForBatch, AcceptsTheInlineTranslations) {
  expectAccepted("avg:nginx.net.request_per_s{kube_container_name:nginx}.rollup(30)");
  expectAccepted("avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)");
  expectAccepted("avg:queue.depth{*}.rollup(30)");
  expectAccepted("avg:jobs.pending{env:prod AND tier NOT IN (free)}.rollup(30)");
  expectAccepted("avg:jobs.pending{env:prod AND region IN (eu,us) AND NOT tier:free}.rollup(30)");
  expectAccepted("avg:orders{app:web,env:prod}");
  expectAccepted("avg:m{k:*}");
  expectAccepted("avg:m{!k:v}");
  expectAccepted("avg:m{k:web-*}");
}

TEST(ValidateForBatch, AcceptsEveryQueryOfTheTestsAndFixtures) {
  // tests/integration, tests/e2e, docs and /work/shared/fixtures/datadog.
  for (std::string_view q : {
           "avg:system.cpu.user{*}",
           "system.cpu.idle{*}",
           "avg:datadog.estimated_usage.metrics.custom{*}",
           "sum:cfg.gauge{a:b}.rollup(60)",
           "max:xm.doc.proxy_manual{app:proxy}.rollup(10)",
           "max:reload.one{*}",
           "max:reload.two{*}",
           "max:helm.chart.metric{app:web}.rollup(60)",
           "avg:xm.e2e.dm.gc_manual{queue:gc}.rollup(10)",
           "avg:xm.doc.requests{app:web}.rollup(10)",
           "avg:xm.doc.orders{env:prod,queue:email}.rollup(10)",
           "avg:xm.cut.requests{app:web}.rollup(30)",
           "avg:xm.cut.queue{queue:jobs}.rollup(30)",
           "avg:other.client{*}",
           "avg:nginx.requests{app:web}.rollup(30)",
           "avg:never.sent{app:web}.rollup(30)",
           "avg:cli.gauge{env:cli}.rollup(30)",
           "max:checkout.latency{*}",
           "max:proxy.min{*}",
           "sum:requests{*}",
           "avg:requests{app:web}.rollup(30)",
       }) {
    expectAccepted(q);
  }
}

TEST(ValidateForBatch, AcceptsArithmeticAndFunctions) {
  expectAccepted("sum:a{*}/sum:b{*}");
  expectAccepted("sum:a{*} / sum:b{*} * 100");
  expectAccepted("(avg:a{*} + avg:b{*}) / 2");
  expectAccepted("abs(avg:a{*})");
  expectAccepted("per_second(sum:requests{env:prod}.as_count())");
  expectAccepted("timeshift(avg:a{*}, -3600)");
  expectAccepted("avg:a{*}.fill(zero, 30)");
  expectAccepted("p95:request.latency.distribution{service:web}");
  expectAccepted("avg:m{a:b,c:d} by {x,y}");
  expectAccepted("avg:m{a:b,c:d} by {x,y}.rollup(max, 60)");
  expectAccepted("top(avg:m{*} by {h}, 10, 'mean', 'desc')");
  expectAccepted("anomalies(avg:m{*}, 'basic', 2)");
  expectAccepted("avg:m{service:\"a,b\"}");
  expectAccepted("avg:m{service:\"a\\\"b\"}");  // an escaped quote inside quotes
  expectAccepted("count_nonzero(avg:m{*} by {host})");
}

TEST(ValidateForBatch, AcceptsMetricNamesAtTheBoundsOfTheAgentsPattern) {
  expectAccepted("avg:a{*}");
  expectAccepted("avg:A.b_C.9{*}");
  expectAccepted("avg:" + std::string(200, 'm') + "{*}");
}

// --- refused: several top-level queries ---

TEST(ValidateForBatch, RefusesSeveralTopLevelQueriesInOne) {
  auto message = refusal("avg:a{*},avg:b{*}");
  EXPECT_TRUE(has(message, "several top-level queries")) << message;
  EXPECT_TRUE(has(message, "position 8")) << message;
  EXPECT_TRUE(has(message, "after 'avg:a{*}'")) << message;
  EXPECT_TRUE(has(message, "keep one query")) << message;  // the fix
  EXPECT_TRUE(has(refusal("avg:a{*}.rollup(30), avg:b{*}"), "several top-level queries"));
  EXPECT_TRUE(has(refusal("avg:a{*},"), "several top-level queries"));
  EXPECT_TRUE(has(refusal(",avg:a{*}"), "several top-level queries"));
  EXPECT_TRUE(has(refusal("avg:a{x:y} by {h},sum:b{*} by {h}"), "several top-level queries"));
}

TEST(ValidateForBatch, ACommaInsideQuotesOrBracketsIsNotTopLevel) {
  expectAccepted("avg:m{a:b,c:d}");
  expectAccepted("top(avg:m{*}, 10, 'mean', 'desc')");
  expectAccepted("avg:m{*}.rollup(avg, 60)");
  expectAccepted("avg:m{tag:\"x,y\"}");
}

// --- refused: brackets ---

TEST(ValidateForBatch, RefusesAnUnclosedBraceNamingWhereItOpened) {
  auto message = refusal("avg:a{*");
  EXPECT_TRUE(has(message, "unbalanced brackets")) << message;
  EXPECT_TRUE(has(message, "'{' opened at position 5 is never closed")) << message;
  EXPECT_TRUE(has(message, "add the matching '}'")) << message;
  EXPECT_TRUE(has(refusal("abs(avg:a{*}"), "'(' opened at position 3 is never closed"));
  EXPECT_TRUE(has(refusal("avg:a{*}.rollup(30"), "never closed"));
  EXPECT_TRUE(has(refusal("avg:a{*} by {host"), "never closed"));
  EXPECT_TRUE(has(refusal("[avg:a{*}"), "'[' opened at position 0 is never closed"));
}

TEST(ValidateForBatch, RefusesAStrayCloser) {
  auto message = refusal("avg:a{*}}");
  EXPECT_TRUE(has(message, "unbalanced brackets")) << message;
  EXPECT_TRUE(has(message, "'}' at position 8 closes nothing")) << message;
  EXPECT_TRUE(has(message, "remove it")) << message;
  EXPECT_TRUE(has(refusal("avg:a{*})"), "')' at position 8 closes nothing"));
  EXPECT_TRUE(has(refusal("avg:a{*}]"), "closes nothing"));
  // A stray closer would let a neighbour's comma count as top level: `a{*}},b{` -> refused.
  EXPECT_TRUE(has(refusal("avg:a{*}}{"), "closes nothing"));
}

TEST(ValidateForBatch, RefusesBracketsClosedInTheWrongOrder) {
  auto message = refusal("abs(avg:a{*)}");
  EXPECT_TRUE(has(message, "unbalanced brackets")) << message;
  EXPECT_TRUE(has(message, "'{' opened at position 9 is closed by ')' at position 11")) << message;
  EXPECT_TRUE(has(message, "close it with '}' first")) << message;
  EXPECT_TRUE(has(refusal("avg:a{*].rollup(30)"), "closed by ']'"));
  EXPECT_TRUE(has(refusal("(avg:a{*}]"), "'(' opened at position 0 is closed by ']'"));
}

// --- refused: quotes ---

TEST(ValidateForBatch, RefusesAnUnterminatedDoubleQuote) {
  auto message = refusal("avg:m{service:\"web}");
  EXPECT_TRUE(has(message, "unterminated quote")) << message;
  EXPECT_TRUE(has(message, "'\"' at position 14 is never closed")) << message;
  EXPECT_TRUE(has(message, "add the closing '\"'")) << message;
  // The quote would swallow the neighbours joined after it, their commas and braces included.
  EXPECT_TRUE(has(refusal("avg:m{*} \""), "unterminated quote"));
  EXPECT_TRUE(has(refusal("avg:m{tag:\"a\\\"}"), "unterminated quote"));  // escaped, still open
}

TEST(ValidateForBatch, RefusesAnUnterminatedSingleQuote) {
  auto message = refusal("top(avg:m{*}, 10, 'mean)");
  EXPECT_TRUE(has(message, "unterminated quote")) << message;
  EXPECT_TRUE(has(message, "position 18")) << message;
}

// --- refused: metric names ---

TEST(ValidateForBatch, RefusesAMetricNameOutsideTheAgentsPattern) {
  auto message = refusal("avg:my-metric{*}");
  EXPECT_TRUE(has(message, "invalid metric name 'my-metric' at position 4")) << message;
  EXPECT_TRUE(has(message, "'-' at position 6 is not a letter, digit, '_' or '.'")) << message;
  EXPECT_TRUE(has(message, "^[a-zA-Z][a-zA-Z0-9_.]{0,199}$")) << message;
  EXPECT_TRUE(has(message, "ask for 'my_metric'")) << message;  // the fix

  auto digit = refusal("avg:9lives{*}");
  EXPECT_TRUE(has(digit, "invalid metric name '9lives'")) << digit;
  EXPECT_TRUE(has(digit, "must start with a letter")) << digit;

  auto longName = refusal("avg:" + std::string(201, 'm') + "{*}");
  EXPECT_TRUE(has(longName, "201 characters long, at most 200")) << longName;

  EXPECT_TRUE(has(refusal("avg:a:b{*}"), "invalid metric name 'a:b'"));
  EXPECT_TRUE(has(refusal("avg:a@b{*}"), "'@'"));
  EXPECT_TRUE(has(refusal("avg:caf\xc3\xa9{*}"), "'caf\\xc3\\xa9'"));  // bytes quoted, not raw
}

TEST(ValidateForBatch, ChecksEveryMetricNameOfAnExpression) {
  expectAccepted("sum:good.one{*}/sum:good.two{*}");
  EXPECT_TRUE(has(refusal("sum:good{*}/sum:bad-one{*}"), "invalid metric name 'bad-one'"));
  EXPECT_TRUE(has(refusal("abs(avg:bad*name{*})"), "invalid metric name 'bad*name'"));
  EXPECT_TRUE(has(refusal("top(avg:x$y{*} by {h}, 10, 'mean', 'desc')"), "'x$y'"));
}

TEST(ValidateForBatch, RefusesAMissingMetricName) {
  auto message = refusal("avg:{*}");
  EXPECT_TRUE(has(message, "no metric name after 'avg:' at position 0")) << message;
  EXPECT_TRUE(has(message, "avg:nginx.requests{*}")) << message;  // an example of the fix
  EXPECT_TRUE(has(refusal("sum:a{*} + avg: {*}"), "no metric name after 'avg:'"));
}

TEST(ValidateForBatch, ColonsInsideFiltersAndQuotesAreNotMetricNames) {
  expectAccepted("avg:m{kube_namespace:shop,pod:web-1}");
  expectAccepted("avg:m{env:prod} by {kube_namespace}");
  expectAccepted("anomalies(avg:m{*}, 'agile:weird-arg', 2)");
}

// --- refused: empty ---

TEST(ValidateForBatch, RefusesAnEmptyQuery) {
  EXPECT_TRUE(has(refusal(""), "the query is empty"));
  EXPECT_TRUE(has(refusal("   "), "the query is empty"));
}

// --- messages ---

TEST(ValidateForBatch, MessagesQuoteOnlyAShortPrintableExcerpt) {
  std::string hostile = "avg:a{*}" + std::string(500, 'x') + ",\x01";
  auto message = refusal(hostile);
  EXPECT_TRUE(has(message, "several top-level queries")) << message;
  EXPECT_LT(message.size(), 600u) << message;
  EXPECT_TRUE(has(message, "...'")) << message;
  for (char c : message) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << message;
}

}  // namespace
}  // namespace xmetrics::query

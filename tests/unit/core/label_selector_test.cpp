#include "core/label_selector.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace xmetrics::core {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;

LabelSelector mustParse(std::string_view text) {
  auto parsed = LabelSelector::parse(text);
  EXPECT_TRUE(parsed.has_value()) << "\"" << text << "\": " << parsed.error().message;
  return parsed.value_or(LabelSelector{});
}

SelectorRequirement requirement(std::string key, SelectorOperator op,
                                std::vector<std::string> values = {}) {
  return SelectorRequirement{std::move(key), op, std::move(values)};
}

TEST(LabelSelectorParse, EmptyOrBlankTextIsTheEmptySelector) {
  for (const char* text : {"", " ", " \t\r\n "}) {
    const LabelSelector selector = mustParse(text);
    EXPECT_TRUE(selector.empty()) << text;
    EXPECT_EQ(selector.canonical(), "");
    EXPECT_EQ(selector, LabelSelector{});
  }
}

TEST(LabelSelectorParse, ReadsEveryOperator) {
  EXPECT_THAT(mustParse("a=1").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kEquals, {"1"})));
  EXPECT_THAT(mustParse("a==1").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kEquals, {"1"})));
  EXPECT_THAT(mustParse("a!=1").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kNotEquals, {"1"})));
  EXPECT_THAT(mustParse("a in (x,y)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kIn, {"x", "y"})));
  EXPECT_THAT(mustParse("a notin (x)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kNotIn, {"x"})));
  EXPECT_THAT(mustParse("a").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kExists)));
  EXPECT_THAT(mustParse("!a").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kDoesNotExist)));
}

TEST(LabelSelectorParse, IgnoresWhitespaceBetweenTokens) {
  const LabelSelector spaced =
      mustParse("  env = prod ,\ttier in ( web , db )\n, ! canary , zone ");
  EXPECT_EQ(spaced.canonical(), "!canary,env=prod,tier in (db,web),zone");
  EXPECT_EQ(spaced, mustParse("env=prod,tier in (web,db),!canary,zone"));
  EXPECT_EQ(mustParse("a!=b"), mustParse("a != b"));
  EXPECT_EQ(mustParse("a in(b)"), mustParse("a in (b)"));
}

TEST(LabelSelectorParse, EmptyValuesFollowApimachinery) {
  // selector.go parseExactValue/parseValues: a missing value is the empty value.
  EXPECT_THAT(mustParse("a=").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kEquals, {""})));
  EXPECT_THAT(mustParse("a==").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kEquals, {""})));
  EXPECT_THAT(mustParse("a!=,b").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kNotEquals, {""}),
                          requirement("b", SelectorOperator::kExists)));
  EXPECT_THAT(mustParse("a in ()").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kIn, {""})));
  EXPECT_THAT(mustParse("a notin (,b)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kNotIn, {"", "b"})));
  EXPECT_THAT(mustParse("a in (b,)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kIn, {"", "b"})));
  EXPECT_THAT(mustParse("a in (b,,c)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kIn, {"", "b", "c"})));
  EXPECT_THAT(mustParse("a in (,,,)").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kIn, {""})));
}

TEST(LabelSelectorParse, KeywordsAreOrdinaryWordsOutsideOperatorPosition) {
  EXPECT_THAT(mustParse("in in (in,notin)").requirements(),
              ElementsAre(requirement("in", SelectorOperator::kIn, {"in", "notin"})));
  EXPECT_THAT(mustParse("notin notin (x)").requirements(),
              ElementsAre(requirement("notin", SelectorOperator::kNotIn, {"x"})));
  EXPECT_THAT(mustParse("notin,!in,a=in").requirements(),
              ElementsAre(requirement("a", SelectorOperator::kEquals, {"in"}),
                          requirement("in", SelectorOperator::kDoesNotExist),
                          requirement("notin", SelectorOperator::kExists)));
}

TEST(LabelSelectorParse, AcceptsQualifiedKeysAndLabelValues) {
  const LabelSelector selector =
      mustParse("app.kubernetes.io/name=web,example.com/Team_1.x=A-b_c.9,k8s-io/a in (1.2.3)");
  EXPECT_EQ(selector.canonical(),
            "app.kubernetes.io/name=web,example.com/Team_1.x=A-b_c.9,k8s-io/a in (1.2.3)");
  const std::string longest(63, 'k');
  const std::string prefix = std::string(63, 'p') + "." + std::string(63, 'q');
  EXPECT_FALSE(mustParse(prefix + "/" + longest + "=" + std::string(63, 'v')).empty());
}

TEST(LabelSelectorCanonical, SortsByKeyThenOperatorAndSortsValues) {
  EXPECT_EQ(mustParse("b=2,a=1").canonical(), "a=1,b=2");
  EXPECT_EQ(mustParse("x in (c,a,b,a)").canonical(), "x in (a,b,c)");
  EXPECT_EQ(mustParse("x notin (b,b)").canonical(), "x notin (b)");
  EXPECT_EQ(mustParse("a==1").canonical(), "a=1");
  EXPECT_EQ(mustParse("!b,a").canonical(), "a,!b");
  EXPECT_EQ(mustParse("z notin (q), a!=1, m").canonical(), "a!=1,m,z notin (q)");
  EXPECT_EQ(mustParse("a,!a,a notin (y),a in (x),a!=1,a=2").canonical(),
            "a=2,a!=1,a in (x),a notin (y),a,!a");
  EXPECT_EQ(mustParse("a in (b,)").canonical(), "a in (,b)");
  EXPECT_EQ(mustParse("a in ( )").canonical(), "a in ()");
  EXPECT_EQ(mustParse("a==").canonical(), "a=");
  // Byte order, like Go's sort.Strings: upper case before lower case.
  EXPECT_EQ(mustParse("b=1,B=1,a=1").canonical(), "B=1,a=1,b=1");
  // Repeated requirements are kept, as apimachinery keeps them.
  EXPECT_EQ(mustParse("a=b,a=b").canonical(), "a=b,a=b");
}

TEST(LabelSelectorCanonical, SelectorsThatDifferOnlyInSpellingAreEqual) {
  EXPECT_EQ(mustParse("a=1,b in (y,x)"), mustParse(" b in (x,y,x) , a==1 "));
  EXPECT_NE(mustParse("a=1"), mustParse("a!=1"));
  EXPECT_NE(mustParse("a=1"),
            mustParse("a in (1)"));  // same selection, kept apart like apimachinery
}

TEST(LabelSelectorCanonical, ReparsesToTheSameSelector) {
  for (const char* text :
       {"a=b", "a==b", "a!=b", "a in (x, y ,z)", "a notin (z,y)", "a", "!a", "a=,b!=,c in ()",
        "c in (,x)", "x in (a,,b),y,z notin ()", "in in (in)", "notin notin (notin),!in",
        "example.com/a=b,a.b/c notin (d,e)", "b,a,!c,d=e,f!=g,h in (i),j notin (k)"}) {
    const LabelSelector selector = mustParse(text);
    const std::string canonical = selector.canonical();
    const LabelSelector reparsed = mustParse(canonical);
    EXPECT_EQ(reparsed, selector) << text << " -> " << canonical;
    EXPECT_EQ(reparsed.canonical(), canonical) << text;
  }
}

struct MatchCase {
  const char* selector;
  bool matches;
};

TEST(LabelSelectorMatches, FollowsApimachinerySemantics) {
  const Labels labels{{"env", "prod"}, {"tier", "web"}, {"blank", ""}};
  const MatchCase cases[] = {
      {"", true},
      {"env=prod", true},
      {"env==prod", true},
      {"env=dev", false},
      {"env=Prod", false},
      {"env!=dev", true},
      {"env!=prod", false},
      {"missing!=x", true},  // != and notin match when the label is absent
      {"missing notin (a)", true},
      {"missing in (a)", false},
      {"missing=", false},  // absent is not the empty value
      {"blank=", true},
      {"blank in ()", true},
      {"blank!=", false},
      {"env in (dev,prod)", true},
      {"env in (dev,qa)", false},
      {"env notin (prod)", false},
      {"env notin (dev,qa)", true},
      {"env", true},
      {"missing", false},
      {"!missing", true},
      {"!env", false},
      {"env=prod,tier=web", true},
      {"env=prod,tier=db", false},
      {"env,tier in (web),!canary,zone notin (eu)", true},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(mustParse(c.selector).matches(labels), c.matches) << c.selector;
  }
  EXPECT_TRUE(LabelSelector{}.matches({}));
  EXPECT_FALSE(mustParse("a").matches({}));
  EXPECT_TRUE(mustParse("!a,b!=c,d notin (e)").matches({}));
}

struct ErrorCase {
  std::string selector;
  std::size_t position;
  std::string message;  // a part of the message
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << "\"" << c.selector << "\""; }

class LabelSelectorErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(LabelSelectorErrorTest, ReportsWhereAndWhat) {
  const ErrorCase& c = GetParam();
  const auto parsed = LabelSelector::parse(c.selector);
  ASSERT_FALSE(parsed.has_value()) << "parsed as " << parsed->canonical();
  EXPECT_EQ(parsed.error().position, c.position) << parsed.error().message;
  EXPECT_THAT(parsed.error().message, HasSubstr(c.message));
  EXPECT_THAT(parsed.error().message, HasSubstr("at position " + std::to_string(c.position)));
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, LabelSelectorErrorTest,
    testing::Values(
        ErrorCase{"a in (b", 7,
                  "expected ',' or ')' after value \"b\" of key \"a\", found end of input"},
        ErrorCase{"env in (a b)", 10,
                  "expected ',' or ')' after value \"a\" of key \"env\", found \"b\""},
        ErrorCase{"=b", 0, "expected a label key or '!', found '='"},
        ErrorCase{",a", 0, "expected a label key or '!', found ','"},
        ErrorCase{"a=b,", 4, "expected a label key or '!' after ',', found end of input"},
        ErrorCase{"a,,b", 2, "expected a label key or '!' after ',', found ','"},
        ErrorCase{"a!", 1,
                  "expected an operator (=, ==, !=, in, notin), ',' or end of input "
                  "after key \"a\", found '!'"},
        ErrorCase{"a b", 2, "after key \"a\", found \"b\""},
        ErrorCase{"a (b)", 2, "after key \"a\", found '('"},
        ErrorCase{"a=b c", 4,
                  "expected ',' or end of input after requirement \"a=b\", found \"c\""},
        ErrorCase{"a in (b))", 8, "after requirement \"a in (b)\", found ')'"},
        ErrorCase{"a in", 4, "expected '(' after 'in' for key \"a\", found end of input"},
        ErrorCase{"a notin b", 8, "expected '(' after 'notin' for key \"a\", found \"b\""},
        ErrorCase{"a in (=)", 6, "expected a value, ',' or ')' after '(' for key \"a\", found '='"},
        ErrorCase{"a in (b,=)", 8, "expected a value or ',' in the values of key \"a\", found '='"},
        // apimachinery's parseIdentifiersList rejects a double comma right before ')'.
        ErrorCase{"a in (b,,)", 9, "expected a value or ',' in the values of key \"a\", found ')'"},
        ErrorCase{"a in (,,)", 8, "found ')'"},
        ErrorCase{"a=(b)", 2, "expected a value after '=' for key \"a\", found '('"},
        ErrorCase{"a===b", 3, "expected a value after '==' for key \"a\", found '='"},
        ErrorCase{"a!=!b", 3, "expected a value after '!=' for key \"a\", found '!'"},
        ErrorCase{"!", 1, "expected a label key after '!', found end of input"},
        ErrorCase{"!=a", 0, "expected a label key or '!', found '!='"},
        ErrorCase{"!!a", 1, "expected a label key after '!', found '!'"},
        ErrorCase{"!a=b", 2, "expected ',' or end of input after \"!a\""},
        ErrorCase{"!a in (b)", 3, "found \"in\""},
        ErrorCase{"a>1", 1, "operator '>' after key \"a\" is not supported"},
        ErrorCase{"a<1", 1, "operator '<' after key \"a\" is not supported"},
        // Keys: qualified names.
        ErrorCase{"a_=b", 0, "invalid label key \"a_\": name part must consist of alphanumeric"},
        ErrorCase{"x,a@b", 2, "invalid label key \"a@b\""},
        ErrorCase{std::string(64, 'k'), 0, "name part must be no more than 63 characters"},
        ErrorCase{"a/b/c=d", 0, "optional DNS subdomain prefix and one '/'"},
        ErrorCase{"/a=b", 0, "prefix part must be non-empty"},
        ErrorCase{"example.com/=b", 0, "name part must be non-empty"},
        ErrorCase{"Example.com/a=b", 0, "prefix part must be a lowercase RFC 1123 subdomain"},
        ErrorCase{"example..com/a=b", 0, "prefix part must be a lowercase RFC 1123 subdomain"},
        ErrorCase{std::string(254, 'p') + "/a", 0, "prefix part must be no more than 253"},
        // Values: label values.
        ErrorCase{"a=" + std::string(64, 'v'), 2,
                  "invalid value \"" + std::string(64, 'v') +
                      "\" for key \"a\": must be no more "
                      "than 63 characters"},
        ErrorCase{"a=b@c", 2, "invalid value \"b@c\" for key \"a\": must be empty or consist of"},
        ErrorCase{"a in (x, -y)", 9, "invalid value \"-y\" for key \"a\""},
        ErrorCase{"a=b/c", 2, "invalid value \"b/c\""},
        ErrorCase{std::string("a=b\0c", 5), 2, "invalid value \"b\\x00c\""}));

TEST(LabelSelectorErrors, LongInputIsCutShortInTheMessage) {
  const auto parsed = LabelSelector::parse("a=" + std::string(1000, 'v'));
  ASSERT_FALSE(parsed.has_value());
  EXPECT_LT(parsed.error().message.size(), 300u);
  EXPECT_THAT(parsed.error().message, HasSubstr("...\""));
}

}  // namespace
}  // namespace xmetrics::core

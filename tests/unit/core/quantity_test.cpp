#include "core/quantity.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace xmetrics::core {
namespace {

struct QuantityCase {
  double value;
  std::string expected;
};

void PrintTo(const QuantityCase& c, std::ostream* os) { *os << c.value << " -> " << c.expected; }

class FormatQuantityTest : public testing::TestWithParam<QuantityCase> {};

TEST_P(FormatQuantityTest, MatchesApimachineryCanonicalForm) {
  EXPECT_EQ(formatQuantity(GetParam().value), GetParam().expected);
}

// Expected strings are what k8s.io/apimachinery resource.Quantity.String() prints for
// ParseQuantity(<shortest decimal of the double>); several rows come from quantity_test.go
// (TestQuantityString, TestQuantityParse, TestQuantityParseEmit).
INSTANTIATE_TEST_SUITE_P(
    Values, FormatQuantityTest,
    testing::Values(
        // The examples in the Quantity doc comment and the reference page.
        QuantityCase{1.5, "1500m"}, QuantityCase{2000, "2k"}, QuantityCase{0.0015, "1500u"},
        QuantityCase{-1.5, "-1500m"}, QuantityCase{-2.5, "-2500m"},
        // Zero never carries a suffix or a sign.
        QuantityCase{0, "0"}, QuantityCase{-0.0, "0"},
        // Integers keep every digit; trailing zeros climb into the largest suffix.
        QuantityCase{1, "1"}, QuantityCase{9, "9"}, QuantityCase{10, "10"},
        QuantityCase{100, "100"}, QuantityCase{1000, "1k"}, QuantityCase{1025, "1025"},
        QuantityCase{2472, "2472"}, QuantityCase{824.0, "824"}, QuantityCase{3000, "3k"},
        QuantityCase{50000, "50k"}, QuantityCase{1000000, "1M"}, QuantityCase{1234567, "1234567"},
        QuantityCase{1234000, "1234k"}, QuantityCase{300e6, "300M"}, QuantityCase{1e9, "1G"},
        QuantityCase{1e12, "1T"}, QuantityCase{40e12, "40T"}, QuantityCase{2e15, "2P"},
        QuantityCase{1e18, "1E"}, QuantityCase{12e18, "12E"}, QuantityCase{1e20, "100E"},
        QuantityCase{1234567e6, "1234567M"},
        // Fractions become an integer mantissa with a smaller suffix.
        QuantityCase{0.1, "100m"}, QuantityCase{0.5, "500m"}, QuantityCase{0.05, "50m"},
        QuantityCase{0.001, "1m"}, QuantityCase{0.08, "80m"}, QuantityCase{1.08, "1080m"},
        QuantityCase{9.01, "9010m"}, QuantityCase{42.5, "42500m"}, QuantityCase{123.456, "123456m"},
        QuantityCase{100.035e3, "100035"}, QuantityCase{10.035e6, "10035k"},
        QuantityCase{5.444e12, "5444G"}, QuantityCase{2.5e15, "2500T"},
        QuantityCase{1.01e18, "1010P"}, QuantityCase{7.123456e6, "7123456"},
        QuantityCase{6.987654321e9, "6987654321"}, QuantityCase{1e-6, "1u"},
        QuantityCase{80e-6, "80u"}, QuantityCase{1080e-6, "1080u"}, QuantityCase{1e-9, "1n"},
        QuantityCase{80e-9, "80n"}, QuantityCase{1080e-9, "1080n"},
        QuantityCase{1.2345, "1234500u"},
        // The double's shortest form, not its exact binary value, is what gets rendered.
        QuantityCase{0.3, "300m"}, QuantityCase{0.1 + 0.2, "300000001n"},
        // Below nano apimachinery rounds away from zero on parse ("0.9n" -> "1n").
        QuantityCase{1e-12, "1n"}, QuantityCase{-1e-12, "-1n"}, QuantityCase{0.5e-9, "1n"},
        QuantityCase{0.9e-9, "1n"}, QuantityCase{3.001e-9, "4n"}, QuantityCase{1.1e-9, "2n"},
        QuantityCase{0.00000012345, "124n"}, QuantityCase{0.00000012354, "124n"},
        QuantityCase{9.99e-10, "1n"}, QuantityCase{1.0000000001, "1000000001n"},
        QuantityCase{std::numeric_limits<double>::denorm_min(), "1n"},
        // Past E there is no DecimalSI suffix: exponent form, exponent still a multiple of 3.
        QuantityCase{1e21, "1e21"}, QuantityCase{5e21, "5e21"}, QuantityCase{1e22, "10e21"},
        QuantityCase{1.5e21, "1500E"}, QuantityCase{1e24, "1e24"}, QuantityCase{-1e21, "-1e21"},
        QuantityCase{9.223372036854776e18, "9223372036854776k"},
        QuantityCase{std::numeric_limits<double>::max(), "179769313486231570e291"}));

TEST(FormatQuantity, NonFiniteValuesRenderAsZero) {
  EXPECT_EQ(formatQuantity(std::numeric_limits<double>::quiet_NaN()), "0");
  EXPECT_EQ(formatQuantity(std::numeric_limits<double>::infinity()), "0");
  EXPECT_EQ(formatQuantity(-std::numeric_limits<double>::infinity()), "0");
}

}  // namespace
}  // namespace xmetrics::core

namespace xmetrics::core {
namespace {

TEST(ParseQuantityTest, ReadsTheFormsHpaTargetsAreWrittenIn) {
  EXPECT_DOUBLE_EQ(*parseQuantity("9"), 9);
  EXPECT_DOUBLE_EQ(*parseQuantity("500m"), 0.5);
  EXPECT_DOUBLE_EQ(*parseQuantity("1.5k"), 1500);
  EXPECT_DOUBLE_EQ(*parseQuantity("2Ki"), 2048);
  EXPECT_DOUBLE_EQ(*parseQuantity("1e3"), 1000);
  EXPECT_DOUBLE_EQ(*parseQuantity("-2500m"), -2.5);
  EXPECT_DOUBLE_EQ(*parseQuantity("+.5"), 0.5);
  EXPECT_DOUBLE_EQ(*parseQuantity("1500u"), 0.0015);
}

TEST(ParseQuantityTest, RefusesWhatIsNotAQuantity) {
  EXPECT_FALSE(parseQuantity(""));
  EXPECT_FALSE(parseQuantity("m"));
  EXPECT_FALSE(parseQuantity("12x"));
  EXPECT_FALSE(parseQuantity("1.2.3"));
  EXPECT_FALSE(parseQuantity("5 m"));
}

TEST(ParseQuantityTest, ReadsBackWhatFormatQuantityWrites) {
  for (double v : {0.25, 2472.0, 824.0, 3.334, 1e-6, 42e9}) {
    EXPECT_DOUBLE_EQ(*parseQuantity(formatQuantity(v)), v) << formatQuantity(v);
  }
}

}  // namespace
}  // namespace xmetrics::core

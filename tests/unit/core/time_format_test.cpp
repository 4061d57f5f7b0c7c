#include "core/time_format.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <random>

namespace xmetrics::core {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Clock::time_point at(int64_t s, int64_t ms = 0) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(seconds(s) + milliseconds(ms)));
}

// What rfc3339 wrote before it did its own calendar arithmetic: the reference it must equal.
std::string byStrftime(Clock::time_point t) {
  // Floored in seconds without converting back to the clock's nanoseconds, which would overflow
  // below the clock's minimum.
  std::time_t s = std::chrono::floor<seconds>(t.time_since_epoch()).count();
  std::tm utc{};
  gmtime_r(&s, &utc);
  char buffer[32];
  return std::string(buffer, std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc));
}

TEST(Rfc3339, WritesKubernetesTimeInUtcWholeSeconds) {
  EXPECT_EQ(rfc3339(at(0)), "1970-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339(at(1777636800)), "2026-05-01T12:00:00Z");
  EXPECT_EQ(rfc3339(at(1709164799, 999)), "2024-02-28T23:59:59Z");  // the fraction is dropped
  EXPECT_EQ(rfc3339(at(1709164800)), "2024-02-29T00:00:00Z");       // a leap day
  EXPECT_EQ(rfc3339(at(-1)), "1969-12-31T23:59:59Z");
  EXPECT_EQ(rfc3339(at(0, -500)), "1969-12-31T23:59:59Z");  // floored, not truncated towards 0
  EXPECT_EQ(rfc3339(at(7258118399)), "2199-12-31T23:59:59Z");
}

TEST(Rfc3339, TheClocksWholeRangeIsWrittenAsStrftimeDoes) {
  for (auto t : {Clock::time_point::min(), Clock::time_point::max()}) {
    EXPECT_EQ(rfc3339(t), byStrftime(t));
  }
  EXPECT_EQ(rfc3339(Clock::time_point::max()).substr(0, 5), "2262-");
  EXPECT_EQ(rfc3339(Clock::time_point::min()).substr(0, 5), "1677-");
}

TEST(Rfc3339, EqualsStrftimeAcrossTheCalendar) {
  std::mt19937_64 random(20261202);
  // Within the clock's range (nanoseconds in 64 bits): years 1678..2261.
  std::uniform_int_distribution<int64_t> second(-9214560000, 9214646400);
  for (int i = 0; i < 20000; ++i) {
    auto t = at(second(random), static_cast<int64_t>(random() % 1000));
    ASSERT_EQ(rfc3339(t), byStrftime(t)) << "at " << Clock::to_time_t(t);
  }
}

TEST(Rfc3339, ParsesWhatItWrites) {
  for (int64_t s : {int64_t{0}, int64_t{1709164800}, int64_t{1777636800}}) {
    auto parsed = parseRfc3339(rfc3339(at(s)));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, at(s));
  }
}

}  // namespace
}  // namespace xmetrics::core

#include "telemetry/process_metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace xmetrics::telemetry {
namespace {

TEST(ProcessMetrics, ResidentSizeIsTheSecondStatmFieldInPages) {
  auto rss = residentBytesFromStatm("5000 3200 800 100 0 900 0\n", 4096);
  ASSERT_TRUE(rss) << rss.error();
  EXPECT_EQ(*rss, 3200.0 * 4096);
  EXPECT_FALSE(residentBytesFromStatm("", 4096));
}

TEST(ProcessMetrics, StartTimeIsBootTimePlusStartTicks) {
  // The command name may hold spaces and parentheses; fields count from its last ')'.
  std::string stat =
      "4242 (x (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 12345 "
      "100000 800 18446744073709551615\n";
  std::string system = "cpu  1 2 3\nintr 5\nctxt 6\nbtime 1700000000\nprocesses 7\n";
  auto start = startTimeFromStat(stat, system, 100);
  ASSERT_TRUE(start) << start.error();
  EXPECT_DOUBLE_EQ(*start, 1700000000 + 123.45);
  EXPECT_FALSE(startTimeFromStat(stat, "cpu 1\n", 100));
  EXPECT_FALSE(startTimeFromStat("no parens", system, 100));
}

TEST(ProcessMetrics, ThisProcessHasAResidentSizeAndStartedRecently) {
  ExpositionWriter out;
  writeProcessMetrics(out);
  writeBuildInfo(out, "1.2.3", "abc123-dirty");
  auto text = out.text();
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge\n"), std::string::npos) << text;
  EXPECT_NE(text.find("xmetrics_build_info{version=\"1.2.3\",revision=\"abc123-dirty\"} 1\n"),
            std::string::npos)
      << text;
  auto at = text.find("\nprocess_start_time_seconds ");
  ASSERT_NE(at, std::string::npos) << text;
  double start = std::stod(text.substr(at + 28));
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);
}

}  // namespace
}  // namespace xmetrics::telemetry

#include "telemetry/http_request_metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace xmetrics::telemetry {
namespace {

using namespace std::chrono_literals;

TEST(HttpRequestMetrics, CountsByPathClassAndCode) {
  HttpRequestMetrics m({"api", "health", "other"});
  m.record(0, 200, 50us);
  m.record(0, 200, 60us);
  m.record(0, 404, 70us);
  m.record(1, 200, 10us);
  EXPECT_EQ(m.requests(0, 200), 2u);
  EXPECT_EQ(m.requests(0, 404), 1u);
  EXPECT_EQ(m.requests(1, 200), 1u);
  EXPECT_EQ(m.requests(2, 200), 0u);
}

TEST(HttpRequestMetrics, UnusualCodesAndClassesAreStillCounted) {
  HttpRequestMetrics m({"api", "other"});
  m.record(0, 418, 1ms);
  m.record(0, 599, 1ms);
  m.record(7, 200, 1ms);  // out of range: the last class
  EXPECT_EQ(m.requests(0, 418), 1u);
  EXPECT_EQ(m.requests(0, 599), 1u);
  EXPECT_EQ(m.requests(1, 200), 1u);
  ExpositionWriter out;
  m.write(out);
  auto text = out.text();
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"api\",code=\"418\"} 1\n"),
            std::string::npos)
      << text;
}

TEST(HttpRequestMetrics, DurationsFallIntoTheirBuckets) {
  HttpRequestMetrics m({"api"});
  m.record(0, 200, 40us);   // <= 0.0001
  m.record(0, 200, 100us);  // exactly 0.0001: le is inclusive
  m.record(0, 200, 300us);  // <= 0.0005
  m.record(0, 503, 6s);     // past the largest bound
  auto d = m.durations(0);
  EXPECT_EQ(d.counts[0], 2u);
  EXPECT_EQ(d.counts[1], 0u);
  EXPECT_EQ(d.counts[2], 1u);
  EXPECT_EQ(d.counts.back(), 1u);
  EXPECT_EQ(d.sumNanoseconds, 40'000u + 100'000u + 300'000u + 6'000'000'000u);
}

TEST(HttpRequestMetrics, ThreadsCountIntoTheirOwnBlocksAndTheTotalsAddUp) {
  HttpRequestMetrics m({"api", "other"});
  constexpr int kThreads = 4, kPerThread = 10'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) m.record(0, 200, 20us);
    });
  }
  // A scrape while they count sees a consistent histogram (count = +Inf bucket) at any moment.
  for (int i = 0; i < 100; ++i) {
    ExpositionWriter out;
    m.write(out);
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.requests(0, 200), uint64_t{kThreads * kPerThread});
  EXPECT_EQ(m.durations(0).counts[0], uint64_t{kThreads * kPerThread});
}

TEST(HttpRequestMetrics, TwoInstancesOnOneThreadKeepTheirOwnCounts) {
  auto a = std::make_unique<HttpRequestMetrics>(std::vector<std::string>{"x"});
  HttpRequestMetrics b({"x"});
  a->record(0, 200, 1us);
  b.record(0, 200, 1us);
  a->record(0, 200, 1us);
  EXPECT_EQ(a->requests(0, 200), 2u);
  EXPECT_EQ(b.requests(0, 200), 1u);
  // A new instance, perhaps at the freed address, starts from zero.
  a.reset();
  HttpRequestMetrics c({"x"});
  c.record(0, 200, 1us);
  EXPECT_EQ(c.requests(0, 200), 1u);
}

TEST(HttpRequestMetrics, WritesCountersAndAHistogramPerPathClass) {
  HttpRequestMetrics m({"external_metric", "health"});
  m.record(0, 200, 50us);
  m.record(0, 404, 2ms);
  ExpositionWriter out;
  m.write(out);
  auto text = out.text();
  EXPECT_NE(text.find("# TYPE xmetrics_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"external_metric\",code=\"200\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xmetrics_http_requests_total{path=\"external_metric\",code=\"404\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE xmetrics_http_request_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(text.find("xmetrics_http_request_duration_seconds_bucket{path=\"external_metric\","
                      "le=\"0.0001\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xmetrics_http_request_duration_seconds_bucket{path=\"external_metric\","
                      "le=\"0.0025\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("xmetrics_http_request_duration_seconds_count{path=\"external_metric\"} 2\n"),
            std::string::npos);
  // No requests, no series for the class.
  EXPECT_EQ(text.find("path=\"health\""), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::telemetry

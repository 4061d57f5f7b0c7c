#pragma once

// telemetry/: the Prometheus text format writer and the request counters behind /metrics.
// May include core/ only.

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::telemetry {

// The Prometheus text exposition format, version 0.0.4: what /metrics answers.
inline constexpr std::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

struct Label {
  std::string_view name;   // [a-zA-Z_][a-zA-Z0-9_]*: our own constants, not checked
  std::string_view value;  // anything; escaped, and invalid UTF-8 replaced, when written
};

// Escapes a label value: backslash, double quote and line feed, as the format requires. Bytes that
// are not valid UTF-8 become U+FFFD: a namespace or selector comes from a request URL, and one
// invalid byte would make Prometheus reject the whole scrape.
void appendLabelValue(std::string& out, std::string_view value);
// Escapes HELP text: backslash and line feed.
void appendHelp(std::string& out, std::string_view help);
// A sample value as the format spells it: integers without exponent, +Inf, -Inf, NaN.
void appendValue(std::string& out, double value);

class ExpositionWriter;

// The samples of one metric family. Obtained from ExpositionWriter::family(); valid as long as the
// writer.
class MetricFamily {
 public:
  // One sample named like the family (counters, gauges).
  void sample(std::initializer_list<Label> labels, double value) {
    sample(std::span<const Label>(labels.begin(), labels.size()), value);
  }
  void sample(std::span<const Label> labels, double value);
  // Integral counts are written exactly, even past 2^53.
  template <std::integral T>
  void sample(std::initializer_list<Label> labels, T value) {
    writeIntegral(std::span<const Label>(labels.begin(), labels.size()), value);
  }

  // One histogram series: `_bucket` per upper bound (cumulative, ending with le="+Inf"), `_sum` and
  // `_count`. `counts` holds one count per bucket, NOT cumulative, the last one past the largest
  // bound (size = upperBounds.size() + 1); `_count` is their total, so it always equals the +Inf
  // bucket however the counts were read.
  void histogram(std::span<const Label> labels, std::span<const double> upperBounds,
                 std::span<const uint64_t> counts, double sum);

 private:
  friend class ExpositionWriter;
  MetricFamily(std::string name, MetricType type, std::string help)
      : name_(std::move(name)), type_(type), help_(std::move(help)) {}
  template <typename T>
  void writeIntegral(std::span<const Label> labels, T value) {
    startSample("", labels, {});
    if constexpr (std::signed_integral<T>) {
      appendInteger(static_cast<int64_t>(value));
    } else {
      appendUnsigned(static_cast<uint64_t>(value));
    }
  }
  void startSample(std::string_view suffix, std::span<const Label> labels, Label extra);
  void appendInteger(int64_t value);
  void appendUnsigned(uint64_t value);

  std::string name_;
  MetricType type_;
  std::string help_;
  std::string samples_;
};

// Collects metric families and renders them. `# HELP` and `# TYPE` come once per family, and a
// family's samples stay together even when several sources add to it (e.g. one per backend):
// asking for a family again returns the same one. Families without samples are left out.
class ExpositionWriter {
 public:
  ExpositionWriter() = default;
  ExpositionWriter(const ExpositionWriter&) = delete;
  ExpositionWriter& operator=(const ExpositionWriter&) = delete;

  // `name` with its unit (`_seconds`, `_bytes`) and, for counters, `_total`.
  MetricFamily& family(std::string_view name, MetricType type, std::string_view help);

  // The exposition, families in the order they were first asked for.
  std::string text() const;

 private:
  // Pointers stay valid as the list grows: callers hold MetricFamily& across family() calls.
  std::vector<std::unique_ptr<MetricFamily>> families_;
};

// Something that adds its families to a scrape (assembled by the serve command).
using MetricsSource = std::function<void(ExpositionWriter&)>;

}  // namespace xmetrics::telemetry

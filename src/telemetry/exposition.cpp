#include "telemetry/exposition.hpp"

#include <charconv>
#include <cmath>

namespace xmetrics::telemetry {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at the start of `s` (Unicode table 3-7), or 0.
std::size_t utf8SequenceLength(std::string_view s) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  auto within = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return within(1, 0x80, 0xBF) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    // No overlong forms (E0 needs A0..BF) and no surrogates (ED needs 80..9F).
    unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    return within(1, lo, hi) && within(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return within(1, lo, hi) && within(2, 0x80, 0xBF) && within(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

std::string_view typeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

void appendLabelValue(std::string& out, std::string_view value) {
  while (!value.empty()) {
    char c = value.front();
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (std::size_t n = utf8SequenceLength(value)) {
      out.append(value.substr(0, n));
      value.remove_prefix(n);
      continue;
    } else {
      out += kReplacement;
    }
    value.remove_prefix(1);
  }
}

void appendHelp(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void appendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[64];
  // Plain decimals in the everyday range (0.0001 rather than 1e-04: what people type in `le`
  // matchers), the shortest round-trip form outside it.
  double magnitude = std::fabs(value);
  bool plain = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e15);
  auto [end, ec] =
      plain ? std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed)
            : std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, ec == std::errc() ? end : buffer);
}

void MetricFamily::startSample(std::string_view suffix, std::span<const Label> labels,
                               Label extra) {
  samples_ += name_;
  samples_ += suffix;
  if (!labels.empty() || !extra.name.empty()) {
    samples_ += '{';
    bool first = true;
    auto add = [&](const Label& label) {
      if (!first) samples_ += ',';
      first = false;
      samples_ += label.name;
      samples_ += "=\"";
      appendLabelValue(samples_, label.value);
      samples_ += '"';
    };
    for (const auto& label : labels) add(label);
    if (!extra.name.empty()) add(extra);
    samples_ += '}';
  }
  samples_ += ' ';
}

void MetricFamily::appendInteger(int64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  samples_.append(buffer, end);
  samples_ += '\n';
}

void MetricFamily::appendUnsigned(uint64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  samples_.append(buffer, end);
  samples_ += '\n';
}

void MetricFamily::sample(std::span<const Label> labels, double value) {
  startSample("", labels, {});
  appendValue(samples_, value);
  samples_ += '\n';
}

void MetricFamily::histogram(std::span<const Label> labels, std::span<const double> upperBounds,
                             std::span<const uint64_t> counts, double sum) {
  uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i <= upperBounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    le.clear();
    if (i < upperBounds.size()) {
      appendValue(le, upperBounds[i]);
    } else {
      le = "+Inf";
    }
    startSample("_bucket", labels, {"le", le});
    appendUnsigned(cumulative);
  }
  startSample("_sum", labels, {});
  appendValue(samples_, sum);
  samples_ += '\n';
  startSample("_count", labels, {});
  appendUnsigned(cumulative);
}

MetricFamily& ExpositionWriter::family(std::string_view name, MetricType type,
                                       std::string_view help) {
  for (auto& f : families_) {
    if (f->name_ == name) return *f;
  }
  families_.push_back(
      std::unique_ptr<MetricFamily>(new MetricFamily(std::string(name), type, std::string(help))));
  return *families_.back();
}

std::string ExpositionWriter::text() const {
  std::size_t size = 0;
  for (const auto& f : families_)
    size += f->samples_.size() + f->help_.size() + 2 * f->name_.size() + 32;
  std::string out;
  out.reserve(size);
  for (const auto& f : families_) {
    if (f->samples_.empty()) continue;
    out += "# HELP ";
    out += f->name_;
    out += ' ';
    appendHelp(out, f->help_);
    out += "\n# TYPE ";
    out += f->name_;
    out += ' ';
    out += typeName(f->type_);
    out += '\n';
    out += f->samples_;
  }
  return out;
}

}  // namespace xmetrics::telemetry

#include "ingest/dogstatsd_parser.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

namespace xmetrics::ingest {

namespace {

// Later than this is taken as garbage rather than a time: it keeps `|T` far from the range where
// converting seconds to the clock's nanoseconds overflows (year 2262).
constexpr int64_t kMaxTimestamp = 4'102'444'800;  // 2100-01-01T00:00:00Z

// The Datadog Agent accepts any bytes in a name; Datadog's intake then keeps only these. A name
// with other characters would become a series no query can name, so it is refused here, loudly.
constexpr bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

// What can be served: the HTTP side takes metric names of at most 250 characters, and Datadog
// keeps tags of at most 200. A longer one is refused here, before it costs the store memory for a
// series nobody can ever read.
constexpr std::size_t kMaxNameLength = 250;
constexpr std::size_t kMaxTagLength = 200;
constexpr std::size_t kMaxTags = 100;

bool isValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!isNameChar(c)) return false;
  }
  return true;
}

std::optional<MetricType> parseType(std::string_view text) {
  if (text == "c") return MetricType::kCount;
  if (text == "g") return MetricType::kGauge;
  if (text == "ms") return MetricType::kTimer;
  if (text == "h") return MetricType::kHistogram;
  if (text == "s") return MetricType::kSet;
  if (text == "d") return MetricType::kDistribution;
  return std::nullopt;
}

// The whole text must be one finite decimal number. from_chars takes no leading '+', which the
// Agent (Go's ParseFloat) accepts, so one is stripped here; "+-1" stays invalid.
std::optional<double> parseFinite(std::string_view text) {
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) return std::nullopt;
  }
  if (text.empty()) return std::nullopt;
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<int64_t> parseTimestamp(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty() || text.front() == '-') return std::nullopt;
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 1 || value > kMaxTimestamp) return std::nullopt;
  return value;
}

// Protocol 1.1 packs values as `1:2:3`. Empty entries (`1::2`, a trailing ':') are skipped as the
// Agent skips them; at least one value must remain.
bool parseValues(std::string_view text, DogStatsdMetric& metric) {
  while (true) {
    auto colon = text.find(':');
    std::string_view piece = text.substr(0, colon);
    if (!piece.empty()) {
      auto value = parseFinite(piece);
      if (!value) return false;
      metric.values.push_back(*value);
    }
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  return !metric.values.empty();
}

// false when a tag is longer than kMaxTagLength or there are more than kMaxTags.
bool parseTags(std::string_view text, std::vector<std::string_view>& tags) {
  tags.clear();  // the Agent keeps the last `|#` field of a line
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view tag = text.substr(0, comma);
    if (tag.size() > kMaxTagLength) return false;
    if (!tag.empty()) tags.push_back(tag);
    if (tags.size() > kMaxTags) return false;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return true;
}

}  // namespace

bool isEventOrServiceCheck(std::string_view line) {
  return line.starts_with("_e{") || line.starts_with("_sc|");
}

std::optional<DogStatsdMetric> parseLine(std::string_view line) {
  DogStatsdMetric metric;
  if (!parseLine(line, metric)) return std::nullopt;
  return metric;
}

bool parseLine(std::string_view line, DogStatsdMetric& metric) {
  // Every field reset, the vectors keeping their capacity: no allocation per line.
  metric.values.clear();
  metric.tags.clear();
  metric.setValue = {};
  metric.sampleRate = 1.0;
  metric.timestamp.reset();
  auto firstPipe = line.find('|');
  if (firstPipe == std::string_view::npos) return false;
  std::string_view nameAndValue = line.substr(0, firstPipe);
  std::string_view rest = line.substr(firstPipe + 1);

  auto colon = nameAndValue.find(':');
  if (colon == std::string_view::npos) return false;
  metric.name = nameAndValue.substr(0, colon);
  std::string_view rawValue = nameAndValue.substr(colon + 1);
  if (!isValidName(metric.name) || rawValue.empty()) return false;

  auto pipe = rest.find('|');
  auto type = parseType(rest.substr(0, pipe));
  if (!type) return false;
  metric.type = *type;
  rest = pipe == std::string_view::npos ? std::string_view{} : rest.substr(pipe + 1);

  if (metric.type == MetricType::kSet) {
    metric.setValue = rawValue;  // members are opaque and may hold ':' (the Agent keeps them whole)
  } else if (!parseValues(rawValue, metric)) {
    return false;
  }

  // Optional fields in any order; the last of a kind wins. Unknown ones (`c:` container id,
  // `e:` external data, `card:` cardinality, future fields, empty ones) are ignored, as the
  // Agent ignores them.
  while (!rest.empty()) {
    pipe = rest.find('|');
    std::string_view field = rest.substr(0, pipe);
    rest = pipe == std::string_view::npos ? std::string_view{} : rest.substr(pipe + 1);
    if (field.empty()) continue;
    switch (field.front()) {
      case '@': {
        auto rate = parseFinite(field.substr(1));
        if (!rate || *rate <= 0 || *rate > 1) return false;
        metric.sampleRate = *rate;
        break;
      }
      case '#':
        if (!parseTags(field.substr(1), metric.tags)) return false;
        break;
      case 'T': {
        auto timestamp = parseTimestamp(field.substr(1));
        if (!timestamp) return false;
        metric.timestamp = *timestamp;
        break;
      }
      default:
        break;
    }
  }
  return true;
}

}  // namespace xmetrics::ingest

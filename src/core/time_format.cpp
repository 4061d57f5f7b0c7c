#include "core/time_format.hpp"

#include <charconv>
#include <cmath>
#include <ctime>

namespace xmetrics::core {

void appendRfc3339(std::string& out, Clock::time_point t) {
  // Every published value is stamped with this (a refresh of 10,000 metrics renders 10,000), so
  // it is written from the calendar arithmetic directly rather than through gmtime_r and strftime
  // (with their locale and time-zone machinery). The clock counts nanoseconds in 64 bits, so its
  // years are 1677..2262: always four digits.
  // In seconds before days: the clock's earliest days lie beyond what nanoseconds can hold.
  auto second = std::chrono::floor<std::chrono::seconds>(t);
  auto day = std::chrono::floor<std::chrono::days>(second);
  std::chrono::year_month_day date{day};
  std::chrono::hh_mm_ss clock{second - day};
  char buffer[20];  // 2026-05-01T12:00:00Z
  auto put = [&](std::size_t at, unsigned value, std::size_t digits) {
    for (std::size_t i = digits; i-- > 0; value /= 10) {
      buffer[at + i] = static_cast<char>('0' + value % 10);
    }
  };
  put(0, static_cast<unsigned>(static_cast<int>(date.year())), 4);
  buffer[4] = '-';
  put(5, static_cast<unsigned>(date.month()), 2);
  buffer[7] = '-';
  put(8, static_cast<unsigned>(date.day()), 2);
  buffer[10] = 'T';
  put(11, static_cast<unsigned>(clock.hours().count()), 2);
  buffer[13] = ':';
  put(14, static_cast<unsigned>(clock.minutes().count()), 2);
  buffer[16] = ':';
  put(17, static_cast<unsigned>(clock.seconds().count()), 2);
  buffer[19] = 'Z';
  out.append(buffer, sizeof buffer);
}

std::string rfc3339(Clock::time_point t) {
  std::string out;
  appendRfc3339(out, t);
  return out;
}

std::expected<std::chrono::seconds, std::string> parseDuration(std::string_view text) {
  auto bad = [&] {
    return std::unexpected("\"" + std::string(text) +
                           "\" is not a duration (use seconds like 30, or 30s, 2m, 1h30m)");
  };
  // Checked before rounding: llround of a number past int64 is unspecified (-2^63 here).
  auto seconds = [&](double total) -> std::expected<std::chrono::seconds, std::string> {
    if (total > static_cast<double>(kMaxDuration.count())) {
      return std::unexpected("\"" + std::string(text) + "\" is longer than 10 years (" +
                             std::to_string(kMaxDuration.count()) + "s)");
    }
    return std::chrono::seconds(static_cast<int64_t>(std::llround(total)));
  };
  if (text.empty()) return bad();
  {
    double n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && ptr == text.data() + text.size()) {
      if (n < 0 || !std::isfinite(n)) return bad();
      return seconds(n);
    }
  }
  double total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    double n = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    if (ec != std::errc() || n < 0) return bad();
    rest.remove_prefix(static_cast<std::size_t>(ptr - rest.data()));
    double unit = 0;
    if (rest.starts_with("ms")) {
      unit = 0.001;
      rest.remove_prefix(2);
    } else if (!rest.empty() && (rest[0] == 's' || rest[0] == 'm' || rest[0] == 'h')) {
      unit = rest[0] == 's' ? 1 : rest[0] == 'm' ? 60 : 3600;
      rest.remove_prefix(1);
    } else {
      return bad();
    }
    total += n * unit;
  }
  if (!std::isfinite(total)) return bad();
  return seconds(total);
}

std::optional<Clock::time_point> parseRfc3339(std::string_view text) {
  std::tm utc{};
  std::string copy(text);
  const char* end = strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &utc);
  if (!end) return std::nullopt;
  if (*end == '.') {
    ++end;
    while (*end >= '0' && *end <= '9') ++end;
  }
  if (std::string_view(end) != "Z") return std::nullopt;
  return Clock::from_time_t(timegm(&utc));
}

}  // namespace xmetrics::core

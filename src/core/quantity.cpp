#include "core/quantity.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace xmetrics::core {

namespace {

// Decimal exponents apimachinery has a DecimalSI suffix for (suffix.go, decSuffixes).
std::optional<std::string_view> decimalSuffix(int exponent) {
  switch (exponent) {
    case -9:
      return "n";
    case -6:
      return "u";
    case -3:
      return "m";
    case 0:
      return "";
    case 3:
      return "k";
    case 6:
      return "M";
    case 9:
      return "G";
    case 12:
      return "T";
    case 15:
      return "P";
    case 18:
      return "E";
    default:
      return std::nullopt;
  }
}

// Adds one to a string of decimal digits, growing it on carry ("99" -> "100").
void incrementDigits(std::string& digits) {
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (*it != '9') {
      ++*it;
      return;
    }
    *it = '0';
  }
  digits.insert(digits.begin(), '1');
}

}  // namespace

// The value is treated as the Quantity that ParseQuantity would build from the double's shortest
// round-trip decimal text, then rendered like Quantity.String() (k8s.io/apimachinery
// pkg/api/resource/quantity.go, CanonicalizeBytes + amount.go AsCanonicalBytes):
//  * parsing keeps at most nano precision and rounds a finer non-zero remainder away from zero
//    ("0.9n" -> "1n", "3.001n" -> "4n");
//  * trailing zeros of the mantissa move into the exponent, then the exponent is lowered to a
//    multiple of three (mantissa gains zeros), and that exponent picks the suffix;
//  * DecimalSI has no suffix past E (1e18). Since kubernetes/kubernetes#140459 the exponent then
//    falls back to DecimalExponent form, so 1e21 prints "1e21" and 1e22 "10e21"; older releases
//    silently dropped the exponent (printed "1"), which we do not copy.
std::string formatQuantity(double value) {
  if (!std::isfinite(value) || value == 0) {
    return "0";  // also -0: a Quantity has no negative zero
  }

  // Scientific shortest form: "d[.ddd]e[+-]xx".
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(),
                                       std::fabs(value), std::chars_format::scientific);
  if (ec != std::errc{}) {
    return "0";  // cannot happen: 64 bytes hold any double
  }
  const std::string_view text(buffer.data(), static_cast<std::size_t>(end - buffer.data()));
  const std::size_t e = text.find('e');
  std::string digits;
  for (const char c : text.substr(0, e)) {
    if (c != '.') {
      digits.push_back(c);
    }
  }
  int exponent = 0;
  std::string_view exponentText = text.substr(e + 1);
  if (!exponentText.empty() && exponentText.front() == '+') {
    exponentText.remove_prefix(1);
  }
  std::from_chars(exponentText.data(), exponentText.data() + exponentText.size(), exponent);
  // value = digits * 10^exponent
  exponent -= static_cast<int>(digits.size()) - 1;

  constexpr int kNanoExponent = -9;
  if (exponent < kNanoExponent) {
    const auto drop = static_cast<std::size_t>(kNanoExponent - exponent);
    bool remainder = false;
    if (drop >= digits.size()) {
      remainder = true;  // the whole value is below 1n; it is non-zero, so it rounds up to 1n
      digits = "0";
    } else {
      for (std::size_t i = digits.size() - drop; i < digits.size(); ++i) {
        remainder = remainder || digits[i] != '0';
      }
      digits.resize(digits.size() - drop);
    }
    exponent = kNanoExponent;
    if (remainder) {
      incrementDigits(digits);
    }
  }

  while (digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    ++exponent;
  }
  const int below = ((exponent % 3) + 3) % 3;
  digits.append(static_cast<std::size_t>(below), '0');
  exponent -= below;

  std::string result;
  result.reserve(digits.size() + 8);
  if (value < 0) {
    result.push_back('-');
  }
  result += digits;
  if (const auto suffix = decimalSuffix(exponent)) {
    result += *suffix;
  } else {
    result.push_back('e');
    result += std::to_string(exponent);
  }
  return result;
}

std::optional<double> parseQuantity(std::string_view text) {
  std::size_t end = 0;
  if (end < text.size() && (text[end] == '+' || text[end] == '-')) ++end;
  bool digits = false;
  while (end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) {
    digits = digits || text[end] != '.';
    ++end;
  }
  if (!digits) return std::nullopt;
  std::string number(text.substr(0, end));
  if (number.front() == '+') number.erase(0, 1);
  double mantissa = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), mantissa);
  if (ec != std::errc{} || ptr != number.data() + number.size()) return std::nullopt;
  const std::string_view suffix = text.substr(end);
  static constexpr std::array<std::pair<std::string_view, double>, 16> kSuffixes{{
      {"", 1},
      {"n", 1e-9},
      {"u", 1e-6},
      {"m", 1e-3},
      {"k", 1e3},
      {"M", 1e6},
      {"G", 1e9},
      {"T", 1e12},
      {"P", 1e15},
      {"E", 1e18},
      {"Ki", 1024.0},
      {"Mi", 1024.0 * 1024},
      {"Gi", 1024.0 * 1024 * 1024},
      {"Ti", 1024.0 * 1024 * 1024 * 1024},
      {"Pi", 1024.0 * 1024 * 1024 * 1024 * 1024},
      {"Ei", 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024},
  }};
  for (const auto& [name, factor] : kSuffixes) {
    if (suffix == name) return mantissa * factor;
  }
  if (suffix.size() > 1 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    int exponent = 0;
    const auto [eptr, eec] =
        std::from_chars(suffix.data() + 1, suffix.data() + suffix.size(), exponent);
    if (eec == std::errc{} && eptr == suffix.data() + suffix.size()) {
      return mantissa * std::pow(10.0, exponent);
    }
  }
  return std::nullopt;
}

}  // namespace xmetrics::core

#include "core/strings.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>

namespace xmetrics::core {
namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629, table 3-7 of the
// Unicode standard), or 0 when there is none.
std::size_t sequenceLength(std::string_view s) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto inRange = [&](std::size_t i, unsigned lo, unsigned hi) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  unsigned b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xc2 && b0 <= 0xdf) return inRange(1, 0x80, 0xbf) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    unsigned lo = b0 == 0xe0 ? 0xa0 : 0x80;  // no overlong forms
    unsigned hi = b0 == 0xed ? 0x9f : 0xbf;  // no surrogates
    return inRange(1, lo, hi) && inRange(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    unsigned lo = b0 == 0xf0 ? 0x90 : 0x80;
    unsigned hi = b0 == 0xf4 ? 0x8f : 0xbf;  // nothing past U+10FFFF
    return inRange(1, lo, hi) && inRange(2, 0x80, 0xbf) && inRange(3, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    if (auto n = sequenceLength(text)) {
      out.append(text.substr(0, n));
      text.remove_prefix(n);
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    auto b = static_cast<unsigned char>(text.front());
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
    text.remove_prefix(1);
  }
  return out;
}

std::string redactUrlCredentials(std::string_view text) {
  // A plain scan, not std::regex: backend bodies can be long, and libstdc++'s matcher recurses
  // once per character of a match.
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;
  for (auto scheme = text.find("://"); scheme != std::string_view::npos;
       scheme = text.find("://", scheme + 3)) {
    std::size_t start = scheme + 3, end = start;
    while (end < text.size() && text[end] != '/' && text[end] != '@' && text[end] != ' ' &&
           text[end] != '\t' && text[end] != '\n' && text[end] != '\r') {
      ++end;
    }
    if (end == start || end == text.size() || text[end] != '@') continue;
    out.append(text.substr(copied, start - copied));
    out += "<redacted>";
    copied = end;  // the '@' stays
  }
  out.append(text.substr(copied));
  return out;
}

std::string redactSecrets(std::string_view text, std::initializer_list<std::string_view> secrets) {
  std::string out(text);
  for (auto secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = out.find(secret); at != std::string::npos; at = out.find(secret, at)) {
      out.replace(at, secret.size(), "<redacted>");
      at += 10;
    }
  }
  return redactUrlCredentials(out);
}

}  // namespace xmetrics::core

namespace xmetrics::core {

std::optional<std::string> decodeBase64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t bits = 0;
  int held = 0;     // sextets in `bits`, 0..3
  int padding = 0;  // '=' seen; only more '=' (and line breaks) may follow
  for (char c : text) {
    if (c == '\n' || c == '\r') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = sextet(c);
    if (v < 0 || padding) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++held == 4) {
      out += static_cast<char>((bits >> 16) & 0xff);
      out += static_cast<char>((bits >> 8) & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      held = 0;
    }
  }
  // A last group of 2 or 3 sextets holds 1 or 2 bytes; a lone sextet holds none (not base64), and
  // padding must complete the group to 4 when present.
  if (held == 1 || (padding && held + padding != 4) || padding > 2) return std::nullopt;
  if (held == 2) out += static_cast<char>((bits >> 4) & 0xff);
  if (held == 3) {
    out += static_cast<char>((bits >> 10) & 0xff);
    out += static_cast<char>((bits >> 2) & 0xff);
  }
  return out;
}

std::string shortestDecimal(double v) {
  if (!std::isfinite(v)) return "-";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc() ? std::string(buffer, end) : "-";
}

}  // namespace xmetrics::core

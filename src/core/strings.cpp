#include "core/strings.hpp"

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

#pragma once

#include <optional>
#include <string>
#include <string_view>

// String helpers shared by every folder. ASCII only on purpose: metric names, label keys,
// verbs and setting values are ASCII, and the "C" locale xmetrics runs in folds nothing else.
namespace xmetrics::core {

inline char asciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = asciiLower(c);
  return out;
}

inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

// Newlines folded to spaces and trailing spaces cut: a multi-line answer (the aggregator's
// plain-text 503) fits one log or report line.
inline std::string oneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace xmetrics::core

namespace xmetrics::core {

// `text` with every byte that is not part of a well-formed UTF-8 sequence (stray continuation
// bytes, truncated or overlong sequences, surrogates, code points past U+10FFFF) written as the
// four characters \xNN. Text from outside (a request path, a backend's answer) goes through it
// before it reaches a JSON string, so the JSON stays valid and the bytes stay readable.
std::string validUtf8(std::string_view text);

// The shortest decimal that reads back as `v`: 824, 91.56, 0.0015 (Boost.JSON and iostreams would
// print 8.24E2 or 824.000000). "-" for NaN and infinities, which have no decimal.
std::string shortestDecimal(double v);

}  // namespace xmetrics::core

namespace xmetrics::core {

// `user:password@` of every URL in `text` replaced by `<redacted>@` (an endpoint or proxy URL
// with credentials, in a message, a log line or a setting's shown value).
std::string redactUrlCredentials(std::string_view text);

// Every occurrence of each secret (an API key, a bearer token; empty ones are skipped) in
// `text` replaced by `<redacted>`, and URL credentials as above. Text that came from outside — a
// backend's error body may echo the request's headers — goes through it before it is stored,
// logged or served.
std::string redactSecrets(std::string_view text, std::initializer_list<std::string_view> secrets);

}  // namespace xmetrics::core

namespace xmetrics::core {

// Standard base64 (RFC 4648 section 4), as Kubernetes writes []byte fields (kubeconfig's
// `*-data`, an APIService's caBundle): padded or not, line breaks ignored as Go's decoder does.
// nullopt when anything else is in it (another character, padding before the end, a lone
// trailing character), so a truncated certificate is refused instead of read as a shorter one.
std::optional<std::string> decodeBase64(std::string_view text);

}  // namespace xmetrics::core

// libFuzzer target: the static token CSV (token,user,uid,"group1,group2") of --token-auth-file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/authenticator.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using xmetrics::fuzz::check;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tokens = xmetrics::auth::parseTokenFile(text, "tokens.csv");
  if (!tokens) {
    check(tokens.error().find("tokens.csv") != std::string::npos);
    return 0;
  }
  for (const auto& token : *tokens) {
    check(!token.token.empty() && !token.user.name.empty());
    // An accepted token is in the file as written: verbatim, or inside a quoted field with "" for
    // each quote. Not necessarily up to the closing quote: as Kubernetes' token file reader, the
    // parser trims the spaces around a field, inside its quotes too.
    std::string escaped;
    for (char c : token.token) escaped += c == '"' ? std::string("\"\"") : std::string(1, c);
    check(text.find(token.token) != std::string_view::npos ||
          text.find(escaped) != std::string_view::npos);
    for (char c : {' ', '\t'}) check(token.token.front() != c && token.token.back() != c);
    check(token.token.back() != '\r');
  }
  return 0;
}

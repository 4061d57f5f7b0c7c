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
    // An accepted token is in the file as written: verbatim, or quoted with "" for each quote.
    std::string quoted = "\"";
    for (char c : token.token) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += '"';
    check(text.find(token.token) != std::string_view::npos ||
          text.find(quoted) != std::string_view::npos);
  }
  return 0;
}

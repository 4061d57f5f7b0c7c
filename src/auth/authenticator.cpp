#include "auth/authenticator.hpp"

#include <openssl/crypto.h>

namespace xmetrics::auth {
namespace {

// Splits one CSV record; quotes may wrap a field and "" inside quotes is a quote.
std::expected<std::vector<std::string>, std::string> splitCsv(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) return std::unexpected("unterminated quote");
  return fields;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::expected<std::vector<StaticToken>, std::string> parseTokenFile(std::string_view content,
                                                                    std::string_view fileName) {
  std::vector<StaticToken> tokens;
  std::size_t lineNo = 0;
  while (!content.empty()) {
    auto nl = content.find('\n');
    std::string_view line = trim(content.substr(0, nl));
    content = nl == std::string_view::npos ? std::string_view{} : content.substr(nl + 1);
    ++lineNo;
    if (line.empty() || line.front() == '#') continue;
    auto where = std::string(fileName) + " line " + std::to_string(lineNo);
    auto fields = splitCsv(line);
    if (!fields) return std::unexpected(where + ": " + fields.error());
    if (fields->size() < 3) {
      return std::unexpected(where + ": expected token,user,uid[,\"group1,group2\"]");
    }
    StaticToken t;
    t.token = std::string(trim((*fields)[0]));
    t.user.name = std::string(trim((*fields)[1]));
    t.user.uid = std::string(trim((*fields)[2]));
    t.user.method = "token";
    if (t.token.empty() || t.user.name.empty()) {
      return std::unexpected(where + ": the token and the user name must not be empty");
    }
    if (fields->size() > 3) {
      std::string_view groups = (*fields)[3];
      while (!groups.empty()) {
        auto comma = groups.find(',');
        auto g = trim(groups.substr(0, comma));
        if (!g.empty()) t.user.groups.emplace_back(g);
        groups = comma == std::string_view::npos ? std::string_view{} : groups.substr(comma + 1);
      }
    }
    tokens.push_back(std::move(t));
  }
  return tokens;
}

Authenticator::Authenticator(std::vector<StaticToken> tokens) : tokens_(std::move(tokens)) {}

std::expected<UserInfo, std::string> Authenticator::authenticate(
    const PeerCertificate& peer, std::string_view authorization) const {
  if (peer.verified && !peer.commonName.empty()) {
    return UserInfo{peer.commonName, "", peer.organizations, "x509"};
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() > kBearer.size() &&
      std::equal(kBearer.begin(), kBearer.end(), authorization.begin(),
                 [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    std::string_view presented = trim(authorization.substr(kBearer.size()));
    // Compare against every entry so the time taken does not say which one matched.
    const StaticToken* match = nullptr;
    for (const auto& t : tokens_) {
      if (constantTimeEquals(t.token, presented)) match = &t;
    }
    if (match) return match->user;
    return std::unexpected("the bearer token is not in the --token-auth-file");
  }
  if (peer.presented && !peer.verified) {
    return std::unexpected("the client certificate (CN \"" + peer.commonName +
                           "\") is not signed by a trusted CA: " + peer.verifyError);
  }
  return std::unexpected(
      "no credentials: present a client certificate signed by the xmetrics CA (see "
      "--write-kubeconfig) or a bearer token from --token-auth-file");
}

}  // namespace xmetrics::auth

#include "auth/authenticator.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "auth/token_hash.hpp"

namespace xmetrics::auth {
namespace {

// Splits one CSV record the way Go's encoding/csv (with TrimLeadingSpace, as kube-apiserver reads
// this file) does: a quote opens a field only at its start, "" inside quotes is a quote, and only
// a comma ends a quoted field. A stray quote is an error rather than a token other than the one
// the administrator wrote ("ab"c would otherwise become the token abc).
std::expected<std::vector<std::string>, std::string> splitCsv(std::string_view line) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  while (true) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return std::unexpected("unterminated quote");
        if (line[i] == '"' && i + 1 < line.size() && line[i + 1] == '"') {
          field += '"';
          i += 2;
        } else if (line[i] == '"') {
          ++i;
          break;
        } else {
          field += line[i++];
        }
      }
      if (i < line.size() && line[i] != ',') {
        return std::unexpected("text after a closing quote: quote the whole field");
      }
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"') {
          return std::unexpected("a quote inside an unquoted field: quote the whole field");
        }
        field += line[i++];
      }
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) return fields;
    ++i;  // the comma
  }
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

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); });
}

// kube-apiserver's X-Remote-Extra-<key>: the key is lowercased, then %-decoded.
std::string extraKey(std::string_view encoded) {
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(encoded[i])));
    if (c == '%' && i + 2 < encoded.size() &&
        std::isxdigit(static_cast<unsigned char>(encoded[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(encoded[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(encoded.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<UserInfo> fromRequestHeaders(const RequestHeaderConfig& rh,
                                           const RequestHeaders& headers) {
  UserInfo user;
  for (const auto& name : rh.usernameHeaders) {
    auto values = headers.values(name);
    if (!values.empty() && !values.front().empty()) {
      user.name = std::string(values.front());
      break;
    }
  }
  if (user.name.empty()) return std::nullopt;
  for (const auto& name : rh.groupHeaders) {
    for (auto v : headers.values(name)) user.groups.emplace_back(v);
  }
  headers.forEach([&](std::string_view name, std::string_view value) {
    for (const auto& prefix : rh.extraHeaderPrefixes) {
      if (startsWithIgnoreCase(name, prefix) && name.size() > prefix.size()) {
        user.extra[extraKey(name.substr(prefix.size()))].emplace_back(value);
      }
    }
  });
  user.method = "front-proxy";
  return user;
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

Authenticator::Authenticator(AuthenticationConfig config, TokenReviewer* reviewer,
                             std::chrono::seconds cacheTtl)
    : config_(std::make_shared<const AuthenticationConfig>(std::move(config))),
      reviewer_(reviewer),
      cacheTtl_(cacheTtl) {}

void Authenticator::update(AuthenticationConfig config) {
  auto next = std::make_shared<const AuthenticationConfig>(std::move(config));
  std::lock_guard lock(mutex_);
  config_ = std::move(next);
}

std::shared_ptr<const AuthenticationConfig> Authenticator::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

namespace {

// As k8s.io/apiserver's group adder: every authenticated user is in system:authenticated (RBAC's
// discovery roles are bound to it; the aggregator's own identities carry no groups at all).
UserInfo withAuthenticatedGroup(UserInfo user) {
  if (!user.inGroup("system:authenticated")) user.groups.emplace_back("system:authenticated");
  return user;
}

}  // namespace

LocalAuthentication Authenticator::authenticateLocally(const PeerCertificate& peer,
                                                       const RequestHeaders& headers) const {
  auto result = authenticateLocallyAs(peer, headers);
  if (result.user) result.user = withAuthenticatedGroup(std::move(*result.user));
  return result;
}

LocalAuthentication Authenticator::authenticateLocallyAs(const PeerCertificate& peer,
                                                         const RequestHeaders& headers) const {
  auto cfg = config();
  std::string certificateProblem;
  if (peer.presented) {
    // 1. Front-proxy: only a certificate from the request-header CA with an allowed CN makes the
    //    X-Remote-* headers count. Anyone else's X-Remote-User is ignored.
    if (cfg->requestHeader && cfg->requestHeader->ca) {
      const auto& rh = *cfg->requestHeader;
      if (rh.ca->verify(peer).empty()) {
        bool allowed = rh.allowedNames.empty() ||
                       std::ranges::find(rh.allowedNames, peer.commonName) != rh.allowedNames.end();
        if (!allowed) {
          return {std::nullopt,
                  "front-proxy certificate CN \"" + peer.commonName +
                      "\" is not in requestheader-allowed-names",
                  ""};
        }
        if (auto user = fromRequestHeaders(rh, headers)) return {user, "", ""};
        return {std::nullopt, "front-proxy request without a user header", ""};
      }
    }
    // 2. Client certificate: xmetrics' own CA (its replicas, its admin kubeconfig), then the
    // cluster's client CA.
    if (cfg->replicaCa && !peer.commonName.empty() && cfg->replicaCa->verify(peer).empty()) {
      return {UserInfo{peer.commonName, "", peer.organizations, {}, "x509-replica"}, "", ""};
    }
    if (cfg->clientCa) {
      auto error = cfg->clientCa->verify(peer);
      if (error.empty() && !peer.commonName.empty()) {
        return {UserInfo{peer.commonName, "", peer.organizations, {}, "x509"}, "", ""};
      }
      certificateProblem = "the client certificate (CN \"" + peer.commonName +
                           "\") is not signed by a trusted CA: " + error;
    } else if (!cfg->replicaCa) {
      certificateProblem = "client certificates are not accepted (no client CA configured)";
    } else {
      certificateProblem =
          "the client certificate (CN \"" + peer.commonName + "\") is not signed by xmetrics' CA";
    }
  }
  // 3. Bearer tokens: the static file, then the cluster.
  for (auto value : headers.values("Authorization")) {
    if (!startsWithIgnoreCase(value, "Bearer ")) continue;
    std::string_view presented = trim(value.substr(7));
    if (presented.empty()) break;
    // Compare against every entry so the time taken does not say which one matched.
    const StaticToken* match = nullptr;
    for (const auto& t : cfg->tokens) {
      if (constantTimeEquals(t.token, presented)) match = &t;
    }
    if (match) return {match->user, "", ""};
    if (!reviewer_) return {std::nullopt, "the bearer token is not in the --token-auth-file", ""};
    return {std::nullopt, "", std::string(presented)};
  }
  if (!certificateProblem.empty()) return {std::nullopt, certificateProblem, ""};
  return {std::nullopt,
          "no credentials: present a client certificate signed by a trusted CA (standalone: see "
          "--write-kubeconfig) or a bearer token",
          ""};
}

std::optional<std::expected<UserInfo, std::string>> Authenticator::cachedReview(
    const std::string& key) const {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  auto it = reviews_.find(key);
  if (it == reviews_.end() || it->second.expires <= now) return std::nullopt;
  if (it->second.user) return withAuthenticatedGroup(*it->second.user);
  return std::unexpected("the bearer token was rejected by the cluster (TokenReview)");
}

std::optional<std::expected<UserInfo, std::string>> Authenticator::cachedTokenReview(
    const std::string& token) const {
  return cachedReview(sha256Hex(token));
}

std::expected<UserInfo, std::string> Authenticator::reviewToken(const std::string& token) {
  std::string key = sha256Hex(token);
  if (auto cached = cachedReview(key)) return *cached;
  if (!reviewer_) return std::unexpected("the bearer token is not known");
  auto result = reviewer_->review(token);
  if (!result) return std::unexpected("cannot verify the bearer token: " + result.error());
  if (*result) (*result)->method = "tokenreview";  // before caching: a cached answer says it too
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (reviews_.size() > 10'000) {
    std::erase_if(reviews_, [&](const auto& kv) { return kv.second.expires <= now; });
    if (reviews_.size() > 10'000) reviews_.clear();
  }
  reviews_[key] = {now + cacheTtl_, *result};
  if (*result) return withAuthenticatedGroup(**result);
  return std::unexpected("the bearer token was rejected by the cluster (TokenReview)");
}

}  // namespace xmetrics::auth

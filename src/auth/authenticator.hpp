#pragma once

// auth/: who is asking (front-proxy headers, client certificates, tokens, TokenReview) and may
// they (SubjectAccessReview), with caches. May include core/ only; the reviews' transport is an
// interface kube/ implements.

#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/certificate_pool.hpp"
#include "auth/identity.hpp"

namespace xmetrics::auth {

// One line of a kube-apiserver style static token file: token,user,uid,"group1,group2".
struct StaticToken {
  std::string token;
  UserInfo user;
};

// Parses the CSV (quoted fields, blank lines and '#' comments skipped). Errors name the file and
// line but never echo the token.
std::expected<std::vector<StaticToken>, std::string> parseTokenFile(std::string_view content,
                                                                    std::string_view fileName);

// The front-proxy (aggregator) settings of kube-system/extension-apiserver-authentication.
struct RequestHeaderConfig {
  CertificatePoolPtr ca;                  // requestheader-client-ca-file
  std::vector<std::string> allowedNames;  // requestheader-allowed-names; empty: any CN
  std::vector<std::string> usernameHeaders{"X-Remote-User"};
  std::vector<std::string> groupHeaders{"X-Remote-Group"};
  std::vector<std::string> extraHeaderPrefixes{"X-Remote-Extra-"};
};

struct AuthenticationConfig {
  std::optional<RequestHeaderConfig> requestHeader;  // front-proxy; absent in standalone mode
  CertificatePoolPtr clientCa;  // client certificates: CN is the user, O the groups
  // xmetrics' own CA (the cert dir's, shared by the replicas through the serving-cert Secret): a
  // certificate from it authenticates as method "x509-replica", the only identity that may call
  // /xmetrics/v1/replicate. `xmetrics status` with the kubeconfig serve wrote uses it too.
  CertificatePoolPtr replicaCa;
  std::vector<StaticToken> tokens;  // --token-auth-file
};

// Asks the cluster who a bearer token belongs to (TokenReview). Implemented in kube/.
class TokenReviewer {
 public:
  virtual ~TokenReviewer() = default;
  // nullopt: the cluster says the token is not valid; error: the cluster could not be asked.
  virtual std::expected<std::optional<UserInfo>, std::string> review(const std::string& token) = 0;
};

// The outcome of the part of authentication that needs no network.
struct LocalAuthentication {
  std::optional<UserInfo> user;  // authenticated
  std::string error;             // refused: why (for a 401 message; never a secret)
  std::string tokenToReview;     // neither: a bearer token the cluster must judge (TokenReview)
};

// Authentication in kube-apiserver's order: front-proxy certificate + X-Remote-* headers (headers
// from anyone else are ignored), client certificate against the client CA, static token file, then
// TokenReview (cached ~10 s, both outcomes). Thread-safe; the config can be replaced at any time
// (the CA rotates).
class Authenticator {
 public:
  explicit Authenticator(AuthenticationConfig config, TokenReviewer* reviewer = nullptr,
                         std::chrono::seconds cacheTtl = std::chrono::seconds(10));

  void update(AuthenticationConfig config);

  LocalAuthentication authenticateLocally(const PeerCertificate& peer,
                                          const RequestHeaders& headers) const;

  // Blocks on the network on a cache miss: call off the request threads. Errors are for a 401.
  std::expected<UserInfo, std::string> reviewToken(const std::string& token);

  // The cached outcome of reviewing `token`, never blocking on the network: what reviewToken would
  // answer, or nullopt when nothing is cached (or it expired) and reviewToken must run off the
  // request threads. Lets a request whose token was reviewed in the last ~10 s skip the hop to
  // the review pool.
  std::optional<std::expected<UserInfo, std::string>> cachedTokenReview(
      const std::string& token) const;

 private:
  LocalAuthentication authenticateLocallyAs(const PeerCertificate& peer,
                                            const RequestHeaders& headers) const;
  std::shared_ptr<const AuthenticationConfig> config() const;
  std::optional<std::expected<UserInfo, std::string>> cachedReview(const std::string& key) const;

  mutable std::mutex mutex_;
  std::shared_ptr<const AuthenticationConfig> config_;
  TokenReviewer* reviewer_;
  std::chrono::seconds cacheTtl_;
  struct CachedReview {
    std::chrono::steady_clock::time_point expires;
    std::optional<UserInfo> user;
  };
  std::unordered_map<std::string, CachedReview> reviews_;  // by SHA-256 of the token
};

}  // namespace xmetrics::auth

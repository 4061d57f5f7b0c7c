#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <vector>

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

// Standalone authentication: a client certificate that verified against the local CA, or a bearer
// token from the token file. (In a cluster, front-proxy headers and TokenReview come first; see
// kube/.)
class Authenticator {
 public:
  explicit Authenticator(std::vector<StaticToken> tokens = {});

  // `authorization` is the raw Authorization header (may be empty). The error says why, without
  // secrets, for a 401 Status message.
  std::expected<UserInfo, std::string> authenticate(const PeerCertificate& peer,
                                                    std::string_view authorization) const;

 private:
  std::vector<StaticToken> tokens_;
};

}  // namespace xmetrics::auth

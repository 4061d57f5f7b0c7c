#pragma once

#include <string>
#include <vector>

namespace xmetrics::auth {

// What TLS proved about the caller. A client certificate is requested, never required; `verified`
// is true only when one was sent and it chains to a trusted client CA.
struct PeerCertificate {
  bool presented = false;
  bool verified = false;
  std::string commonName;                  // user name (CN), as kube-apiserver maps it
  std::vector<std::string> organizations;  // groups (O)
  std::string verifyError;                 // why a presented certificate did not verify
};

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::string method;  // "x509" or "token": how the caller proved who they are
};

}  // namespace xmetrics::auth

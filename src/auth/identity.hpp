#pragma once

#include <openssl/x509.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::auth {

// What TLS saw of the caller: the client certificate it presented, if any, not yet trusted. The
// Authenticator decides which CA pool (front-proxy, client CA, local CA) it chains to.
struct PeerCertificate {
  bool presented = false;
  std::string commonName;                  // user name (CN), as kube-apiserver maps it
  std::vector<std::string> organizations;  // groups (O)
  std::shared_ptr<X509> leaf;
  std::shared_ptr<STACK_OF(X509)> chain;  // intermediates the client sent (untrusted)
};

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  // How the caller proved it: "front-proxy", "x509" (the cluster's client CA), "x509-replica"
  // (xmetrics' own CA), "token" or "tokenreview".
  std::string method;

  bool inGroup(std::string_view group) const {
    for (const auto& g : groups) {
      if (g == group) return true;
    }
    return false;
  }
};

// Read access to a request's headers (names case-insensitive), without copying them.
class RequestHeaders {
 public:
  virtual ~RequestHeaders() = default;
  virtual std::vector<std::string_view> values(std::string_view name) const = 0;
  virtual void forEach(const std::function<void(std::string_view, std::string_view)>& fn) const = 0;
};

}  // namespace xmetrics::auth

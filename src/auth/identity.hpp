#pragma once

#include <openssl/x509.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::auth {

// What CertificatePool::verify concluded about one connection's certificate, per pool. A
// connection presents one certificate for as long as it lives, and the aggregator's front-proxy
// connection carries thousands of requests: verifying its chain (a signature check) on each of
// them cost about 65 µs of CPU, more than all the rest of serving the request.
struct CertificateVerdicts {
  struct Verdict {
    uint64_t pool = 0;  // CertificatePool::id(); 0: unused
    std::chrono::steady_clock::time_point checked;
    std::string error;  // empty: it chains to that pool
  };
  std::mutex mutex;
  std::array<Verdict, 4> verdicts;  // the front-proxy, replica and client CAs, and one spare
};

// What TLS saw of the caller: the client certificate it presented, if any, not yet trusted. The
// Authenticator decides which CA pool (front-proxy, client CA, local CA) it chains to.
struct PeerCertificate {
  bool presented = false;
  std::string commonName;                  // user name (CN), as kube-apiserver maps it
  std::vector<std::string> organizations;  // groups (O)
  std::shared_ptr<X509> leaf;
  std::shared_ptr<STACK_OF(X509)> chain;  // intermediates the client sent (untrusted)
  // This connection's verdicts, shared by the copies of its PeerCertificate; null: none kept
  // (each verify() checks the chain again).
  std::shared_ptr<CertificateVerdicts> verdicts;
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

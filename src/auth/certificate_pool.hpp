#pragma once

#include <openssl/x509_vfy.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>

#include "auth/identity.hpp"

namespace xmetrics::auth {

// A set of trusted CAs that verifies client certificates (clientAuth purpose). Immutable; replaced
// as a whole when the CA bundle rotates.
class CertificatePool {
 public:
  // `pem` may hold several certificates. The error names `what` (e.g. "client-ca-file").
  static std::expected<std::shared_ptr<const CertificatePool>, std::string> fromPem(
      const std::string& pem, const std::string& what);
  ~CertificatePool();

  // Empty string when `peer` chains to this pool; else why not. With `peer.verdicts`, the chain
  // is checked once per kRecheck and pool on a connection: a rotated CA bundle is a new pool (a
  // new id) and is checked at once; a certificate that expires while its connection stays open is
  // refused within kRecheck.
  std::string verify(const PeerCertificate& peer) const;
  static constexpr std::chrono::seconds kRecheck{10};

  // Unique among the pools of this process (never reused, unlike an address).
  uint64_t id() const { return id_; }

 private:
  std::string verifyChain(const PeerCertificate& peer) const;

  X509_STORE* store_ = nullptr;
  uint64_t id_ = 0;
};
using CertificatePoolPtr = std::shared_ptr<const CertificatePool>;

}  // namespace xmetrics::auth

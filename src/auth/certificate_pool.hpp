#pragma once

#include <openssl/x509_vfy.h>

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

  // Empty string when `peer` chains to this pool; else why not.
  std::string verify(const PeerCertificate& peer) const;

 private:
  X509_STORE* store_ = nullptr;
};
using CertificatePoolPtr = std::shared_ptr<const CertificatePool>;

}  // namespace xmetrics::auth

#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <vector>

namespace xmetrics::certs {

// The files of a standalone installation, all PEM, in --cert-dir:
//   ca.crt / ca.key            the local CA: signs the serving and client certificates; trusted for
//                              client-certificate authentication
//   tls.crt / tls.key          the serving certificate (SANs: localhost, 127.0.0.1, ::1, the
//   in-cluster
//                              service names)
//   client-admin.crt / .key    a client certificate (CN xmetrics-admin, O system:masters) for the
//                              kubeconfig written by --write-kubeconfig
// Files that exist are kept, so a restart serves the same certificates and an operator can drop in
// their own tls.crt/tls.key.
struct CertificateFiles {
  std::string caCertificate, caKey;
  std::string servingCertificate, servingKey;
  std::string clientCertificate, clientKey;
};

struct CertificateOptions {
  std::string certDir;
  std::vector<std::string> dnsNames;               // serving SANs besides localhost
  std::chrono::seconds validity{365 * 24 * 3600};  // leaves; the local CA 10 times as long
  // false: the files come from elsewhere (the serving-cert Secret, certs/serving_secret.hpp) and
  // must all be present; nothing is generated.
  bool generate = true;
};

// Creates whatever is missing (unless !generate): a leaf within a third of its validity of expiry,
// or not signed by the CA, is made again. Errors name the file and the cause.
std::expected<CertificateFiles, std::string> ensureCertificates(const CertificateOptions& options);

// A kubeconfig for `kubectl --kubeconfig PATH get --raw ...` against this server, written with mode
// 0600.
std::expected<void, std::string> writeKubeconfig(const std::string& path,
                                                 const std::string& serverUrl,
                                                 const CertificateFiles& files);

std::expected<std::string, std::string> readFile(const std::string& path);
// Atomically (temporary file + rename), never through a symlink; mode 0600 when `secret`.
std::expected<void, std::string> writeCertificateFile(const std::string& path,
                                                      const std::string& pem, bool secret);

}  // namespace xmetrics::certs

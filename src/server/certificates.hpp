#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <vector>

namespace xmetrics::server {

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
  std::vector<std::string> dnsNames;  // serving SANs besides localhost
  std::chrono::hours validity{24 * 365};
};

// Creates whatever is missing. Errors name the file and the cause.
std::expected<CertificateFiles, std::string> ensureCertificates(const CertificateOptions& options);

// A kubeconfig for `kubectl --kubeconfig PATH get --raw ...` against this server, written with mode
// 0600.
std::expected<void, std::string> writeKubeconfig(const std::string& path,
                                                 const std::string& serverUrl,
                                                 const CertificateFiles& files);

std::expected<std::string, std::string> readFile(const std::string& path);

}  // namespace xmetrics::server

#pragma once

// certs/: the certificates xmetrics makes for itself — a private CA, the serving certificate and
// the replicas' client certificate (authority.hpp, OpenSSL only), and in a cluster the Secret that
// holds them for every replica, the APIService caBundle they are trusted by, and their rotation
// (serving_secret.hpp, through kube/). Nothing here serves requests.

#include <chrono>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace xmetrics::certs {

using SystemTime = std::chrono::system_clock::time_point;

// A certificate and its private key, both PEM.
struct KeyPair {
  std::string certificate;
  std::string key;
};

// What a new certificate says. Validity counts from now; a leaf never outlives its issuer.
struct Subject {
  std::string commonName;
  std::vector<std::string> organizations;  // the groups, for a client certificate
};
enum class Usage { kCertificateAuthority, kServer, kClient };
struct CertificateRequest {
  Subject subject;
  Usage usage = Usage::kServer;
  std::vector<std::string> dnsNames;  // kServer: SANs besides localhost, 127.0.0.1 and ::1
  std::chrono::seconds validity{365 * 24 * 3600};
  SystemTime issuedAt{};  // the epoch: now (tests issue at other times)
};

// Every certificate's notBefore is this much before it was issued: clocks a little behind still
// accept it.
constexpr std::chrono::seconds kBackdate{3600};

// A new ECDSA P-256 key and a certificate for it: self-signed when `issuer` is null, else signed by
// the issuer (whose key must be present). Errors name what could not be read.
std::expected<KeyPair, std::string> issue(const CertificateRequest& request,
                                          const KeyPair* issuer = nullptr);

// One certificate of a PEM text, as far as rotation needs it.
struct CertificateFacts {
  std::string pem;  // this certificate alone
  SystemTime notBefore, notAfter;
  std::string subjectKeyId;  // hex; tells CAs of the same name apart
};
// Every certificate in a PEM text, in order; an error when there is none or one is malformed.
std::expected<std::vector<CertificateFacts>, std::string> readCertificates(std::string_view pem);

// Whether `certificatePem`'s signature verifies with `issuerPem`'s public key.
bool signedBy(std::string_view certificatePem, std::string_view issuerPem);
// Whether the private key `keyPem` belongs to the certificate `certificatePem`.
bool keyMatches(std::string_view certificatePem, std::string_view keyPem);

// Standard base64 (for a Secret's data and an APIService's caBundle).
std::string base64Encode(std::string_view data);
std::expected<std::string, std::string> base64Decode(std::string_view text);

}  // namespace xmetrics::certs

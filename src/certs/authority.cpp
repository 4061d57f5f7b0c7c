#include "certs/authority.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/beast/core/detail/base64.hpp>
#include <ctime>
#include <memory>

#include "core/strings.hpp"

namespace xmetrics::certs {
namespace {

struct Free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(X509* c) const { X509_free(c); }
  void operator()(BIO* b) const { BIO_free(b); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using CertPtr = std::unique_ptr<X509, Free>;
using BioPtr = std::unique_ptr<BIO, Free>;

BioPtr readBio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string toPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bioText(bio.get());
}

std::string toPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bioText(bio.get());
}

CertPtr parseCertificate(std::string_view pem) {
  auto bio = readBio(pem);
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

KeyPtr parseKey(std::string_view pem) {
  auto bio = readBio(pem);
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str())) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

SystemTime toTimePoint(const ASN1_TIME* time) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return SystemTime{};  // reads as long expired
  return std::chrono::system_clock::from_time_t(timegm(&parts));
}

}  // namespace

std::expected<KeyPair, std::string> issue(const CertificateRequest& request,
                                          const KeyPair* issuer) {
  CertPtr issuerCert;
  KeyPtr issuerKey;
  if (issuer) {
    issuerCert = parseCertificate(issuer->certificate);
    issuerKey = parseKey(issuer->key);
    if (!issuerCert || !issuerKey)
      return std::unexpected("the issuing CA's certificate or key is not PEM");
  }
  // ECDSA P-256: generated in a millisecond, small handshakes, accepted by every Kubernetes client.
  KeyPtr key(EVP_EC_gen("P-256"));
  CertPtr cert(X509_new());
  if (!key || !cert) return std::unexpected("OpenSSL could not make a key");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) {
    return std::unexpected(std::string("OpenSSL could not draw a serial number"));
  }
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  time_t from = request.issuedAt == SystemTime{}
                    ? std::time(nullptr)
                    : std::chrono::system_clock::to_time_t(request.issuedAt);
  X509_time_adj(X509_getm_notBefore(cert.get()), -kBackdate.count(), &from);
  X509_time_adj(X509_getm_notAfter(cert.get()), request.validity.count(), &from);
  if (issuerCert &&
      ASN1_TIME_compare(X509_get0_notAfter(cert.get()), X509_get0_notAfter(issuerCert.get())) > 0) {
    X509_set1_notAfter(cert.get(), X509_get0_notAfter(issuerCert.get()));
  }
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& org : request.subject.organizations) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(
      name, "CN", MBSTRING_UTF8,
      reinterpret_cast<const unsigned char*>(request.subject.commonName.c_str()), -1, -1, 0);
  X509* signer = issuerCert ? issuerCert.get() : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  bool ca = request.usage == Usage::kCertificateAuthority;
  addExtension(cert.get(), signer, NID_basic_constraints,
               ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  addExtension(cert.get(), signer, NID_key_usage,
               ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                  : "critical,digitalSignature,keyEncipherment");
  addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (issuerCert) addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (request.usage == Usage::kServer) {
    addExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    std::string sans = "DNS:localhost,IP:127.0.0.1,IP:::1";
    for (const auto& dns : request.dnsNames) sans += ",DNS:" + dns;
    addExtension(cert.get(), signer, NID_subject_alt_name, sans);
  } else if (request.usage == Usage::kClient) {
    addExtension(cert.get(), signer, NID_ext_key_usage, "clientAuth");
  }
  if (X509_sign(cert.get(), issuerKey ? issuerKey.get() : key.get(), EVP_sha256()) <= 0) {
    return std::unexpected("OpenSSL could not sign the certificate");
  }
  return KeyPair{toPem(cert.get()), toPem(key.get())};
}

std::expected<std::vector<CertificateFacts>, std::string> readCertificates(std::string_view pem) {
  std::vector<CertificateFacts> out;
  auto bio = readBio(pem);
  while (CertPtr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    CertificateFacts facts{.pem = toPem(cert.get()),
                           .notBefore = toTimePoint(X509_get0_notBefore(cert.get())),
                           .notAfter = toTimePoint(X509_get0_notAfter(cert.get()))};
    if (const ASN1_OCTET_STRING* id = X509_get0_subject_key_id(cert.get())) {
      static constexpr char kHex[] = "0123456789abcdef";
      for (int i = 0; i < ASN1_STRING_length(id); ++i) {
        unsigned char b = ASN1_STRING_get0_data(id)[i];
        facts.subjectKeyId += kHex[b >> 4];
        facts.subjectKeyId += kHex[b & 15];
      }
    }
    out.push_back(std::move(facts));
  }
  // The loop ends at the text's end (no start line) or at a certificate it cannot read: only the
  // first is the end of a bundle; the second must not silently shorten it.
  unsigned long last = ERR_peek_last_error();
  bool malformed = last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (malformed) {
    return std::unexpected("holds a malformed certificate after " + std::to_string(out.size()) +
                           " good ones");
  }
  if (out.empty()) return std::unexpected(std::string("holds no PEM certificate"));
  return out;
}

bool signedBy(std::string_view certificatePem, std::string_view issuerPem) {
  auto cert = parseCertificate(certificatePem);
  auto issuer = parseCertificate(issuerPem);
  if (!cert || !issuer) return false;
  EVP_PKEY* key = X509_get0_pubkey(issuer.get());
  bool ok = key && X509_verify(cert.get(), key) == 1;
  ERR_clear_error();
  return ok;
}

bool keyMatches(std::string_view certificatePem, std::string_view keyPem) {
  auto cert = parseCertificate(certificatePem);
  auto key = parseKey(keyPem);
  bool ok = cert && key && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::string base64Encode(std::string_view data) {
  namespace b64 = boost::beast::detail::base64;
  std::string out(b64::encoded_size(data.size()), '\0');
  out.resize(b64::encode(out.data(), data.data(), data.size()));
  return out;
}

std::expected<std::string, std::string> base64Decode(std::string_view text) {
  // Kubernetes writes a Secret's data padded, on one line: anything else was not written by it.
  // The length is checked first: Beast's decoder, used here before, wrote past a buffer of its
  // decoded_size() for a length that is not a multiple of 4.
  auto decoded = text.size() % 4 == 0 && text.find_first_of("\r\n") == std::string_view::npos
                     ? core::decodeBase64(text)
                     : std::nullopt;
  if (!decoded) return std::unexpected(std::string("is not base64"));
  return std::move(*decoded);
}

}  // namespace xmetrics::certs

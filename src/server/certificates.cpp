#include "server/certificates.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <boost/beast/core/detail/base64.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace xmetrics::server {
namespace {

namespace fs = std::filesystem;

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertPtr = std::unique_ptr<X509, CertFree>;

// ECDSA P-256: generated in a millisecond, small handshakes, accepted by every Kubernetes client.
KeyPtr generateKey() { return KeyPtr(EVP_EC_gen("P-256")); }

std::string toPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string toPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
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

struct Subject {
  std::string commonName;
  std::vector<std::string> organizations;
};

// issuer/issuerKey null = self-signed.
CertPtr makeCertificate(EVP_PKEY* key, const Subject& subject, X509* issuer, EVP_PKEY* issuerKey,
                        std::chrono::hours validity, bool isCa, const std::string& extendedUsage,
                        const std::string& subjectAltNames) {
  CertPtr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // tolerate clock skew
  X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                  std::chrono::duration_cast<std::chrono::seconds>(validity).count());
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& org : subject.organizations) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(subject.commonName.c_str()), -1,
                             -1, 0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  addExtension(cert.get(), signer, NID_basic_constraints,
               isCa ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  addExtension(cert.get(), signer, NID_key_usage,
               isCa ? "critical,keyCertSign,cRLSign,digitalSignature"
                    : "critical,digitalSignature,keyEncipherment");
  addExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer) addExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
  if (!extendedUsage.empty()) addExtension(cert.get(), signer, NID_ext_key_usage, extendedUsage);
  if (!subjectAltNames.empty()) {
    addExtension(cert.get(), signer, NID_subject_alt_name, subjectAltNames);
  }
  X509_sign(cert.get(), issuerKey ? issuerKey : key, EVP_sha256());
  return cert;
}

// Written to a fresh temporary file (never following a planted symlink, created with its final
// mode so a key is never readable by others even for a moment), then renamed into place.
std::expected<void, std::string> writeFile(const fs::path& path, const std::string& data,
                                           bool secret) {
  fs::path tmp = path;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  secret ? 0600 : 0644);
  if (fd < 0) return std::unexpected("cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::size_t written = 0;
  while (written < data.size()) {
    ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return std::unexpected("cannot write " + tmp.string() + ": " + std::strerror(error));
    }
    written += static_cast<std::size_t>(n);
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return std::unexpected("cannot write " + path.string() + ": " + ec.message());
  return {};
}

std::expected<KeyPtr, std::string> loadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return std::unexpected("cannot read " + path + ": " + std::strerror(errno));
  KeyPtr key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!key) return std::unexpected(path + " holds no PEM private key");
  return key;
}

std::expected<CertPtr, std::string> loadCert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return std::unexpected("cannot read " + path + ": " + std::strerror(errno));
  CertPtr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!cert) return std::unexpected(path + " holds no PEM certificate");
  return cert;
}

// A leaf made from a CA that was since replaced, or close to expiry, is made again: clients trust
// the current CA only.
bool issuedByAndValid(const std::string& certFile, X509* ca) {
  auto cert = loadCert(certFile);
  if (!cert) return false;
  EVP_PKEY* caKey = X509_get0_pubkey(ca);
  if (!caKey || X509_verify(cert->get(), caKey) != 1) return false;
  time_t soon = std::time(nullptr) + 30 * 24 * 3600;
  return X509_cmp_time(X509_get0_notAfter(cert->get()), &soon) > 0;
}

std::string base64(const std::string& data) {
  std::string out(boost::beast::detail::base64::encoded_size(data.size()), '\0');
  out.resize(boost::beast::detail::base64::encode(out.data(), data.data(), data.size()));
  return out;
}

}  // namespace

std::expected<std::string, std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::expected<CertificateFiles, std::string> ensureCertificates(const CertificateOptions& options) {
  fs::path dir = options.certDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return std::unexpected("cannot create --cert-dir " + dir.string() + ": " + ec.message());
  // The CA key in here can mint system:masters client certificates: the directory must be ours
  // alone, or anyone who could write to it could have planted their own CA.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return std::unexpected("cannot read --cert-dir " + dir.string() + ": " + std::strerror(errno));
  }
  CertificateFiles files{(dir / "ca.crt").string(),           (dir / "ca.key").string(),
                         (dir / "tls.crt").string(),          (dir / "tls.key").string(),
                         (dir / "client-admin.crt").string(), (dir / "client-admin.key").string()};
  // A read-only mount (a Kubernetes Secret volume, whose directory kubelet makes 0777) cannot be
  // planted into from here: its content is whatever the Secret's owner put there. Use it as is;
  // nothing can be generated into it, so every file must be present.
  struct statvfs filesystem {};
  if (::statvfs(dir.c_str(), &filesystem) == 0 && (filesystem.f_flag & ST_RDONLY) != 0) {
    std::string missing;
    for (const auto* f : {&files.caCertificate, &files.caKey, &files.servingCertificate,
                          &files.servingKey, &files.clientCertificate, &files.clientKey}) {
      if (!fs::exists(*f))
        missing += (missing.empty() ? "" : ", ") + fs::path(*f).filename().string();
    }
    if (!missing.empty()) {
      return std::unexpected("--cert-dir " + dir.string() +
                             " is read-only (a mounted Secret?) and lacks " + missing +
                             ": the Secret must hold ca.crt, ca.key, tls.crt, tls.key, "
                             "client-admin.crt and client-admin.key (docs/high-availability.md)");
    }
    return files;
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    return std::unexpected("--cert-dir " + dir.string() +
                           " is owned by another user or writable by others; use a private "
                           "directory (mode 0700) so nobody else can plant a CA there");
  }
  ::chmod(dir.c_str(), 0700);

  KeyPtr caKey;
  CertPtr caCert;
  if (fs::exists(files.caCertificate) && fs::exists(files.caKey)) {
    auto key = loadKey(files.caKey);
    if (!key) return std::unexpected(key.error());
    auto cert = loadCert(files.caCertificate);
    if (!cert) return std::unexpected(cert.error());
    caKey = std::move(*key);
    caCert = std::move(*cert);
  } else {
    caKey = generateKey();
    caCert = makeCertificate(caKey.get(), {"xmetrics-local-ca", {}}, nullptr, nullptr,
                             options.validity * 10, true, "", "");
    if (auto w = writeFile(files.caKey, toPem(caKey.get()), true); !w)
      return std::unexpected(w.error());
    if (auto w = writeFile(files.caCertificate, toPem(caCert.get()), false); !w) {
      return std::unexpected(w.error());
    }
  }

  if (!fs::exists(files.servingCertificate) || !fs::exists(files.servingKey) ||
      !issuedByAndValid(files.servingCertificate, caCert.get())) {
    std::string sans = "DNS:localhost,IP:127.0.0.1,IP:::1";
    for (const auto& name : options.dnsNames) sans += ",DNS:" + name;
    KeyPtr key = generateKey();
    CertPtr cert = makeCertificate(key.get(), {"xmetrics", {}}, caCert.get(), caKey.get(),
                                   options.validity, false, "serverAuth", sans);
    if (auto w = writeFile(files.servingKey, toPem(key.get()), true); !w)
      return std::unexpected(w.error());
    if (auto w = writeFile(files.servingCertificate, toPem(cert.get()), false); !w) {
      return std::unexpected(w.error());
    }
  }

  if (!fs::exists(files.clientCertificate) || !fs::exists(files.clientKey) ||
      !issuedByAndValid(files.clientCertificate, caCert.get())) {
    KeyPtr key = generateKey();
    CertPtr cert = makeCertificate(key.get(), {"xmetrics-admin", {"system:masters"}}, caCert.get(),
                                   caKey.get(), options.validity, false, "clientAuth", "");
    if (auto w = writeFile(files.clientKey, toPem(key.get()), true); !w)
      return std::unexpected(w.error());
    if (auto w = writeFile(files.clientCertificate, toPem(cert.get()), false); !w) {
      return std::unexpected(w.error());
    }
  }
  return files;
}

std::expected<void, std::string> writeKubeconfig(const std::string& path,
                                                 const std::string& serverUrl,
                                                 const CertificateFiles& files) {
  auto ca = readFile(files.caCertificate);
  auto cert = readFile(files.clientCertificate);
  auto key = readFile(files.clientKey);
  for (const auto* r : {&ca, &cert, &key}) {
    if (!*r) return std::unexpected(r->error());
  }
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << "v1";
  out << YAML::Key << "kind" << YAML::Value << "Config";
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << "xmetrics";
  out << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "server" << YAML::Value << serverUrl;
  out << YAML::Key << "certificate-authority-data" << YAML::Value << base64(*ca);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << "xmetrics-admin";
  out << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "client-certificate-data" << YAML::Value << base64(*cert);
  out << YAML::Key << "client-key-data" << YAML::Value << base64(*key);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << "xmetrics";
  out << YAML::Key << "context" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << "xmetrics";
  out << YAML::Key << "user" << YAML::Value << "xmetrics-admin";
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "current-context" << YAML::Value << "xmetrics";
  out << YAML::EndMap;
  fs::path p = path;
  if (p.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
  }
  return writeFile(p, std::string(out.c_str()) + "\n", true);
}

}  // namespace xmetrics::server

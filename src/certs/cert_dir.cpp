#include "certs/cert_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "certs/authority.hpp"

namespace xmetrics::certs {
namespace {

namespace fs = std::filesystem;

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

std::expected<void, std::string> writePair(const std::string& certFile, const std::string& keyFile,
                                           const KeyPair& pair) {
  if (auto w = writeFile(keyFile, pair.key, true); !w) return w;
  return writeFile(certFile, pair.certificate, false);
}

// A leaf made from a CA that was since replaced, or within a third of its validity of expiry, is
// made again: clients trust the current CA only.
bool issuedByAndValid(const std::string& certFile, const std::string& caPem,
                      std::chrono::seconds validity) {
  auto pem = readFile(certFile);
  if (!pem || !signedBy(*pem, caPem)) return false;
  auto facts = readCertificates(*pem);
  return facts && facts->front().notAfter > std::chrono::system_clock::now() + validity / 3;
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
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return std::unexpected("cannot read --cert-dir " + dir.string() + ": " + std::strerror(errno));
  }
  CertificateFiles files{(dir / "ca.crt").string(),           (dir / "ca.key").string(),
                         (dir / "tls.crt").string(),          (dir / "tls.key").string(),
                         (dir / "client-admin.crt").string(), (dir / "client-admin.key").string()};
  // A read-only mount (a Kubernetes Secret volume, whose directory kubelet makes 0777) cannot be
  // planted into from here: its content is whatever the Secret's owner put there. Nor is a cert
  // dir the serving-cert Secret was just written into (options.generate false). Use them as they
  // are: every file must be present but the CA key, which only issuing needs (cert-manager's
  // Secrets have none).
  struct statvfs filesystem {};
  bool readOnly = ::statvfs(dir.c_str(), &filesystem) == 0 && (filesystem.f_flag & ST_RDONLY) != 0;
  if (readOnly || !options.generate) {
    std::string missing;
    for (const auto* f : {&files.caCertificate, &files.servingCertificate, &files.servingKey,
                          &files.clientCertificate, &files.clientKey}) {
      if (!fs::exists(*f))
        missing += (missing.empty() ? "" : ", ") + fs::path(*f).filename().string();
    }
    if (!missing.empty()) {
      return std::unexpected("--cert-dir " + dir.string() +
                             (readOnly ? " is read-only (a mounted Secret?)" : "") + " lacks " +
                             missing +
                             ": the Secret must hold ca.crt, tls.crt, tls.key, client-admin.crt "
                             "and client-admin.key (docs/high-availability.md)");
    }
    return files;
  }
  // The CA key in here can mint system:masters client certificates: the directory must be ours
  // alone, or anyone who could write to it could have planted their own CA.
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    return std::unexpected("--cert-dir " + dir.string() +
                           " is owned by another user or writable by others; use a private "
                           "directory (mode 0700) so nobody else can plant a CA there");
  }
  ::chmod(dir.c_str(), 0700);

  KeyPair ca;
  if (fs::exists(files.caCertificate) && fs::exists(files.caKey)) {
    auto key = readFile(files.caKey);
    if (!key) return std::unexpected(key.error());
    auto cert = readFile(files.caCertificate);
    if (!cert) return std::unexpected(cert.error());
    if (!keyMatches(*cert, *key)) {
      return std::unexpected(files.caKey + " is not the key of " + files.caCertificate +
                             " (or one of them is not PEM)");
    }
    ca = {std::move(*cert), std::move(*key)};
  } else {
    auto made = issue({.subject = {"xmetrics-local-ca", {}},
                       .usage = Usage::kCertificateAuthority,
                       .validity = options.validity * 10});
    if (!made) return std::unexpected(made.error());
    ca = std::move(*made);
    if (auto w = writePair(files.caCertificate, files.caKey, ca); !w)
      return std::unexpected(w.error());
  }

  if (!fs::exists(files.servingCertificate) || !fs::exists(files.servingKey) ||
      !issuedByAndValid(files.servingCertificate, ca.certificate, options.validity)) {
    auto made = issue({.subject = {"xmetrics", {}},
                       .usage = Usage::kServer,
                       .dnsNames = options.dnsNames,
                       .validity = options.validity},
                      &ca);
    if (!made) return std::unexpected(made.error());
    if (auto w = writePair(files.servingCertificate, files.servingKey, *made); !w) {
      return std::unexpected(w.error());
    }
  }

  if (!fs::exists(files.clientCertificate) || !fs::exists(files.clientKey) ||
      !issuedByAndValid(files.clientCertificate, ca.certificate, options.validity)) {
    auto made = issue({.subject = {"xmetrics-admin", {"system:masters"}},
                       .usage = Usage::kClient,
                       .validity = options.validity},
                      &ca);
    if (!made) return std::unexpected(made.error());
    if (auto w = writePair(files.clientCertificate, files.clientKey, *made); !w) {
      return std::unexpected(w.error());
    }
  }
  return files;
}

std::expected<void, std::string> writeCertificateFile(const std::string& path,
                                                      const std::string& pem, bool secret) {
  return writeFile(path, pem, secret);
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
  out << YAML::Key << "certificate-authority-data" << YAML::Value << base64Encode(*ca);
  out << YAML::EndMap << YAML::EndMap << YAML::EndSeq;
  out << YAML::Key << "users" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << "xmetrics-admin";
  out << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "client-certificate-data" << YAML::Value << base64Encode(*cert);
  out << YAML::Key << "client-key-data" << YAML::Value << base64Encode(*key);
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

}  // namespace xmetrics::certs

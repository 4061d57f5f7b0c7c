#include "certs/cert_dir.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>

#include "auth/certificate_pool.hpp"

namespace xmetrics::certs {
namespace {

namespace fs = std::filesystem;

std::string freshDir(const std::string& name) {
  auto dir = ::testing::TempDir() + "/certificates-" + name;
  fs::remove_all(dir);
  return dir;
}

auth::PeerCertificate peerFrom(const std::string& file) {
  FILE* f = std::fopen(file.c_str(), "r");
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  auth::PeerCertificate p;
  p.presented = true;
  p.leaf = std::shared_ptr<X509>(cert, X509_free);
  return p;
}

TEST(Certificates, AreMadeOnceAndKeptAcrossRestarts) {
  auto dir = freshDir("keep");
  auto first = ensureCertificates({dir, {}});
  ASSERT_TRUE(first) << first.error();
  auto before = *readFile(first->servingCertificate);
  auto second = ensureCertificates({dir, {}});
  ASSERT_TRUE(second);
  EXPECT_EQ(*readFile(second->servingCertificate), before);
  struct stat st {};
  ASSERT_EQ(::stat(first->caKey.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
}

TEST(Certificates, LeavesAreRemadeWhenTheCaChanges) {
  auto dir = freshDir("new-ca");
  auto first = ensureCertificates({dir, {}});
  ASSERT_TRUE(first);
  fs::remove(first->caKey);  // an operator deletes the CA: a new one is made ...
  auto second = ensureCertificates({dir, {}});
  ASSERT_TRUE(second) << second.error();
  // ... and the client and serving certificates follow it, so clients keep verifying.
  auto pool = auth::CertificatePool::fromPem(*readFile(second->caCertificate), "ca");
  ASSERT_TRUE(pool);
  EXPECT_EQ((*pool)->verify(peerFrom(second->clientCertificate)), "");
}

TEST(Certificates, ADirectoryOthersCanWriteIsRefused) {
  auto dir = freshDir("shared");
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0777);
  auto made = ensureCertificates({dir, {}});
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().find("writable by others"), std::string::npos);
}

TEST(Certificates, TheKubeconfigIsPrivate) {
  auto dir = freshDir("kubeconfig");
  auto made = ensureCertificates({dir, {}});
  ASSERT_TRUE(made);
  auto path = dir + "/kubeconfig";
  ASSERT_TRUE(writeKubeconfig(path, "https://127.0.0.1:8443", *made));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_NE(readFile(path)->find("client-certificate-data"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::certs

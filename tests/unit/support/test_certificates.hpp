#pragma once

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <cstdio>
#include <string>

#include "auth/certificate_pool.hpp"
#include "certs/cert_dir.hpp"

namespace xmetrics::testing {

// A local CA with a client certificate (CN xmetrics-admin, O system:masters), made by the same code
// `serve` uses, in a directory of its own per name.
struct TestCertificates {
  certs::CertificateFiles files;
  auth::CertificatePoolPtr pool;
  auth::PeerCertificate client;

  explicit TestCertificates(const std::string& name) {
    auto made = certs::ensureCertificates({::testing::TempDir() + "/certs-" + name, {}});
    EXPECT_TRUE(made) << (made ? "" : made.error());
    files = *made;
    pool = *auth::CertificatePool::fromPem(*certs::readFile(files.caCertificate), "test CA");
    FILE* f = std::fopen(files.clientCertificate.c_str(), "r");
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    client.presented = true;
    client.leaf = std::shared_ptr<X509>(cert, X509_free);
    client.commonName = "xmetrics-admin";
    client.organizations = {"system:masters"};
  }
};

}  // namespace xmetrics::testing

#include "kube/authentication_config.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "support/test_certificates.hpp"

namespace xmetrics::kube {
namespace {

TEST(AuthenticationConfig, ReadsBothCasAndTheRequestHeaderLists) {
  testing::TestCertificates clientCa("kube-client-ca");
  testing::TestCertificates frontProxy("kube-front-proxy");
  boost::json::object cm{
      {"data",
       boost::json::object{
           {"client-ca-file", *certs::readFile(clientCa.files.caCertificate)},
           {"requestheader-client-ca-file", *certs::readFile(frontProxy.files.caCertificate)},
           {"requestheader-allowed-names", R"(["front-proxy-client"])"},
           {"requestheader-username-headers", R"(["X-Remote-User"])"},
           {"requestheader-group-headers", R"(["X-Remote-Group"])"},
           {"requestheader-extra-headers-prefix", R"(["X-Remote-Extra-"])"},
       }}};
  auto config = authenticationConfigFrom(cm, {});
  ASSERT_TRUE(config) << config.error();
  ASSERT_TRUE(config->requestHeader);
  EXPECT_EQ(config->requestHeader->allowedNames, std::vector<std::string>{"front-proxy-client"});
  EXPECT_TRUE(config->requestHeader->ca->verify(frontProxy.client).empty());
  EXPECT_FALSE(config->requestHeader->ca->verify(clientCa.client).empty());
  EXPECT_TRUE(config->clientCa->verify(clientCa.client).empty());
}

TEST(AuthenticationConfig, TheLocalCaIsTrustedApartFromTheClustersAsTheReplicas) {
  testing::TestCertificates clusterCa("kube-cluster-ca");
  testing::TestCertificates localCa("kube-local-ca");
  boost::json::object cm{
      {"data",
       boost::json::object{{"client-ca-file", *certs::readFile(clusterCa.files.caCertificate)}}}};
  auto config = authenticationConfigFrom(cm, {}, *certs::readFile(localCa.files.caCertificate));
  ASSERT_TRUE(config);
  EXPECT_TRUE(config->replicaCa->verify(localCa.client).empty());
  EXPECT_FALSE(config->replicaCa->verify(clusterCa.client).empty());
  EXPECT_TRUE(config->clientCa->verify(clusterCa.client).empty());
  EXPECT_FALSE(config->clientCa->verify(localCa.client).empty());
}

TEST(AuthenticationConfig, BadListsNameTheKey) {
  testing::TestCertificates ca("kube-bad");
  boost::json::object cm{
      {"data", boost::json::object{
                   {"requestheader-client-ca-file", *certs::readFile(ca.files.caCertificate)},
                   {"requestheader-allowed-names", "front-proxy-client"}}}};
  auto config = authenticationConfigFrom(cm, {});
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("requestheader-allowed-names"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::kube

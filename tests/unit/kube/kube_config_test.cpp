#include "kube/kube_config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace xmetrics::kube {
namespace {

constexpr const char* kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority: certs/ca.crt
- name: prod-cluster
  cluster:
    server: https://10.0.0.1
    certificate-authority-data: aGVsbG8=
    insecure-skip-tls-verify: true
contexts:
- name: dev
  context: {cluster: dev-cluster, user: dev-user, namespace: shop}
- name: prod
  context: {cluster: prod-cluster, user: prod-user}
users:
- name: dev-user
  user: {client-certificate: /abs/client.crt, client-key: client.key}
- name: prod-user
  user: {token: s3cret}
)";

TEST(ParseKubeconfig, TheCurrentContextResolvesRelativePathsAgainstTheFilesDirectory) {
  auto config = parseKubeconfig(kTwoContexts, "/home/ops/.kube/config");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->server, "https://127.0.0.1:6443");
  EXPECT_EQ(config->namespace_, "shop");
  EXPECT_EQ(config->tls.caFile, "/home/ops/.kube/certs/ca.crt");
  EXPECT_EQ(config->tls.clientCertFile, "/abs/client.crt");
  EXPECT_EQ(config->tls.clientKeyFile, "/home/ops/.kube/client.key");
  EXPECT_TRUE(config->token.empty());
}

TEST(ParseKubeconfig, ANamedContextWithInlineDataAndAToken) {
  auto config = parseKubeconfig(kTwoContexts, "/k/config", "prod");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->server, "https://10.0.0.1");
  EXPECT_EQ(config->namespace_, "default");
  EXPECT_EQ(config->tls.caPem, "hello");
  EXPECT_TRUE(config->tls.insecureSkipVerify);
  EXPECT_EQ(config->token, "s3cret");
}

TEST(ParseKubeconfig, ErrorsNameTheFileAndWhatIsMissing) {
  auto missing = parseKubeconfig(kTwoContexts, "/k/config", "staging");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "--kubeconfig /k/config: no context \"staging\"");
  auto noServer = parseKubeconfig(
      "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {}}]\n",
      "/k/config");
  ASSERT_FALSE(noServer);
  EXPECT_EQ(noServer.error(), "--kubeconfig /k/config: cluster \"c\" has no server");
  auto none = parseKubeconfig("apiVersion: v1\nkind: Config\n", "/k/config");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), "--kubeconfig /k/config: no contexts");
  auto notYaml = parseKubeconfig("clusters: [unclosed", "/k/config");
  ASSERT_FALSE(notYaml);
  EXPECT_TRUE(notYaml.error().starts_with("--kubeconfig /k/config: ")) << notYaml.error();
  // Fields of the wrong shape are an error, not an exception.
  auto wrongShape = parseKubeconfig("current-context: [a]\n", "/k/config");
  ASSERT_FALSE(wrongShape);
  EXPECT_TRUE(wrongShape.error().starts_with("--kubeconfig /k/config: ")) << wrongShape.error();
}

TEST(ParseKubeconfig, WithoutACurrentContextTheFirstContextIsUsed) {
  auto config = parseKubeconfig(
      "contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: d}}]\n"
      "clusters: [{name: c, cluster: {server: 'https://c'}}, {name: d, cluster: {server: x}}]\n"
      "users: [{name: u, user: {token: t}}]\n",
      "/k/config");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->server, "https://c");
  EXPECT_EQ(config->token, "t");
}

TEST(LoadKubeconfig, ReadsTheFileAndSaysWhenItCannot) {
  std::string path = ::testing::TempDir() + "kube_config_test.yaml";
  {
    std::ofstream out(path);
    out << kTwoContexts;
  }
  auto config = loadKubeconfig(path, "prod");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->token, "s3cret");
  std::remove(path.c_str());
  auto gone = loadKubeconfig(path);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error(), "--kubeconfig " + path + ": cannot open the file");
}

}  // namespace
}  // namespace xmetrics::kube

#include "kube/kube_config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

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

// Found by fuzz_kubeconfig (a heap overflow in the decoder for a length not a multiple of 4): data
// that is not base64 is refused with the entry and the field, never the value.
TEST(ParseKubeconfig, DataThatIsNotBase64IsRefusedNamingTheField) {
  std::string config = kTwoContexts;
  config.replace(config.find("aGVsbG8="), 8, "aGVsbG8=x");
  auto refused = parseKubeconfig(config, "/k/config", "prod");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(),
            "--kubeconfig /k/config: cluster \"prod-cluster\": certificate-authority-data is not "
            "base64 (as `base64 -w0` writes it)");

  std::string withKey = std::string(kTwoContexts) + "";
  withKey.replace(withKey.find("user: {token: s3cret}"), 21,
                  "user: {client-certificate-data: aGVsbG8=, client-key-data: c2VjcmV0a2V5*}");
  auto badKey = parseKubeconfig(withKey, "/k/config", "prod");
  ASSERT_FALSE(badKey);
  EXPECT_NE(badKey.error().find("user \"prod-user\": client-key-data is not base64"),
            std::string::npos)
      << badKey.error();
  EXPECT_EQ(badKey.error().find("c2VjcmV0a2V5"), std::string::npos) << badKey.error();

  // Unpadded and of a length that is not a multiple of 4: base64 all the same.
  std::string unpadded = kTwoContexts;
  unpadded.replace(unpadded.find("aGVsbG8="), 8, "aGVsbG8");
  auto fine = parseKubeconfig(unpadded, "/k/config", "prod");
  ASSERT_TRUE(fine) << fine.error();
  EXPECT_EQ(fine->tls.caPem, "hello");
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

// Restores an environment variable when the test ends.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ParseKubeconfig, ACredentialPluginIsRefusedSayingWhatToUseInstead) {
  constexpr const char* kExec = R"(apiVersion: v1
kind: Config
current-context: eks
clusters:
- name: c
  cluster: {server: https://example.invalid}
contexts:
- name: eks
  context: {cluster: c, user: aws}
users:
- name: aws
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}
)";
  auto config = parseKubeconfig(kExec, "/k");
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("user \"aws\" authenticates with an exec credential plugin"),
            std::string::npos)
      << config.error();
  EXPECT_NE(config.error().find("token"), std::string::npos);
}

TEST(KubectlKubeconfigPath, TheFirstOfKubeconfigElseTheHomesConfigWhenItExists) {
  std::string home = ::testing::TempDir() + "kubectl_home";
  std::filesystem::create_directories(home + "/.kube");
  ScopedEnv homeEnv("HOME", home.c_str());
  std::string first = home + "/first.yaml", second = home + "/second.yaml";
  std::ofstream(first) << kTwoContexts;
  std::ofstream(second) << kTwoContexts;
  {
    // The first that exists, as kubectl merges the list: empty and missing entries are skipped.
    ScopedEnv list("KUBECONFIG", (":" + home + "/missing.yaml:" + first + ":" + second).c_str());
    EXPECT_EQ(kubectlKubeconfigPath(), first);
  }
  {
    // Set, but naming nothing that exists: none (kubectl does not fall back to ~/.kube/config).
    ScopedEnv list("KUBECONFIG", (home + "/missing.yaml").c_str());
    EXPECT_EQ(kubectlKubeconfigPath(), "");
  }
  ScopedEnv unset("KUBECONFIG", nullptr);
  EXPECT_EQ(kubectlKubeconfigPath(), "");  // no ~/.kube/config: none, not a path that fails
  std::ofstream(home + "/.kube/config") << kTwoContexts;
  EXPECT_EQ(kubectlKubeconfigPath(), home + "/.kube/config");
  {
    ScopedEnv empty("KUBECONFIG", "");
    EXPECT_EQ(kubectlKubeconfigPath(), home + "/.kube/config");  // set but empty: as unset
  }
  std::filesystem::remove_all(home);
}

}  // namespace
}  // namespace xmetrics::kube

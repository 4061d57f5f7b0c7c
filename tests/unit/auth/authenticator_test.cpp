#include "auth/authenticator.hpp"

#include <gtest/gtest.h>

#include <map>

#include "support/test_certificates.hpp"

namespace xmetrics::auth {
namespace {

class FakeHeaders final : public RequestHeaders {
 public:
  explicit FakeHeaders(std::initializer_list<std::pair<const std::string, std::string>> h = {})
      : h_(h) {}
  std::vector<std::string_view> values(std::string_view name) const override {
    std::vector<std::string_view> out;
    for (const auto& [k, v] : h_) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(),
                     [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        out.push_back(v);
      }
    }
    return out;
  }
  void forEach(const std::function<void(std::string_view, std::string_view)>& fn) const override {
    for (const auto& [k, v] : h_) fn(k, v);
  }

 private:
  std::multimap<std::string, std::string> h_;
};

class FakeReviewer final : public TokenReviewer {
 public:
  int calls = 0;
  std::expected<std::optional<UserInfo>, std::string> review(const std::string& token) override {
    ++calls;
    if (token == "cluster-token")
      return UserInfo{"system:serviceaccount:ns:sa", "u1", {"g"}, {}, ""};
    if (token == "broken") return std::unexpected(std::string("connection refused"));
    return std::nullopt;
  }
};

TEST(ParseTokenFile, ReadsKubeApiserverStyleCsv) {
  auto tokens = parseTokenFile(
      "# comment\n\ntok1,alice,1001,\"dev,ops\"\ntok2,bob,1002\n\"tok,3\",carol,1003,viewers\n",
      "tokens.csv");
  ASSERT_TRUE(tokens) << tokens.error();
  ASSERT_EQ(tokens->size(), 3u);
  EXPECT_EQ((*tokens)[0].user.name, "alice");
  EXPECT_EQ((*tokens)[0].user.groups, (std::vector<std::string>{"dev", "ops"}));
  EXPECT_TRUE((*tokens)[1].user.groups.empty());
  EXPECT_EQ((*tokens)[2].token, "tok,3");
}

TEST(ParseTokenFile, QuotesFollowKubeApiserversCsvRules) {
  auto tokens = parseTokenFile("\"a\"\"b\",u,1, \"g1,g2\"\n", "tokens.csv");
  ASSERT_TRUE(tokens) << tokens.error();
  EXPECT_EQ((*tokens)[0].token, "a\"b");
  EXPECT_EQ((*tokens)[0].user.groups, (std::vector<std::string>{"g1", "g2"}));
  // Found by fuzz_token_file: a quote inside a field opened quoting, so x"a,b" became the token
  // "xa,b". kube-apiserver refuses such a line; so do we, naming the line and not the token.
  for (std::string_view bad : {"x\"secret,b\",u,1\n", "\"secret\"x,u,1\n", "\"secret,u,1\n"}) {
    auto refused = parseTokenFile(bad, "tokens.csv");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().find("tokens.csv line 1: "), std::string::npos) << refused.error();
    EXPECT_EQ(refused.error().find("secret"), std::string::npos) << refused.error();
  }
}

TEST(ParseTokenFile, ErrorsNameTheLineButNeverTheToken) {
  auto tokens = parseTokenFile("good,a,1\nsupersecret\n", "tokens.csv");
  ASSERT_FALSE(tokens);
  EXPECT_NE(tokens.error().find("tokens.csv line 2"), std::string::npos);
  EXPECT_EQ(tokens.error().find("supersecret"), std::string::npos);
}

TEST(Authenticator, AClientCertificateFromTheClientCaIsTheUser) {
  testing::TestCertificates certs("authn-client");
  Authenticator a({.clientCa = certs.pool});
  auto result = a.authenticateLocally(certs.client, FakeHeaders());
  ASSERT_TRUE(result.user) << result.error;
  EXPECT_EQ(result.user->name, "xmetrics-admin");
  EXPECT_EQ(result.user->groups,
            (std::vector<std::string>{"system:masters", "system:authenticated"}));
  EXPECT_EQ(result.user->method, "x509");
}

TEST(Authenticator, ACertificateFromXmetricsOwnCaIsAReplica) {
  testing::TestCertificates own("authn-own");
  testing::TestCertificates cluster("authn-cluster");
  Authenticator a({.clientCa = cluster.pool, .replicaCa = own.pool});
  auto replica = a.authenticateLocally(own.client, FakeHeaders());
  ASSERT_TRUE(replica.user) << replica.error;
  EXPECT_EQ(replica.user->method, "x509-replica");
  auto user = a.authenticateLocally(cluster.client, FakeHeaders());
  ASSERT_TRUE(user.user) << user.error;
  EXPECT_EQ(user.user->method, "x509");  // same name and groups, but not a replica
}

TEST(Authenticator, ACertificateFromAnotherCaIsRefusedWithTheReason) {
  testing::TestCertificates trusted("authn-trusted");
  testing::TestCertificates other("authn-other");
  Authenticator a({.clientCa = trusted.pool});
  auto result = a.authenticateLocally(other.client, FakeHeaders());
  ASSERT_FALSE(result.user);
  EXPECT_NE(result.error.find("not signed by a trusted CA"), std::string::npos) << result.error;
}

TEST(Authenticator, FrontProxyHeadersCountOnlyWithTheFrontProxyCertificate) {
  testing::TestCertificates frontProxy("authn-fp");
  testing::TestCertificates clients("authn-clients");
  RequestHeaderConfig rh{frontProxy.pool, {"xmetrics-admin"}};
  Authenticator a({.requestHeader = rh, .clientCa = clients.pool});
  FakeHeaders forged({{"X-Remote-User", "system:admin"},
                      {"X-Remote-Group", "system:masters"},
                      {"X-Remote-Extra-Scopes%2FA", "one"}});
  auto proxied = a.authenticateLocally(frontProxy.client, forged);
  ASSERT_TRUE(proxied.user) << proxied.error;
  EXPECT_EQ(proxied.user->name, "system:admin");
  EXPECT_EQ(proxied.user->groups,
            (std::vector<std::string>{"system:masters", "system:authenticated"}));
  EXPECT_EQ(proxied.user->extra.at("scopes/a"), std::vector<std::string>{"one"});
  EXPECT_EQ(proxied.user->method, "front-proxy");

  // The same headers from a mere client certificate are ignored: the caller is who the cert says.
  auto direct = a.authenticateLocally(clients.client, forged);
  ASSERT_TRUE(direct.user);
  EXPECT_EQ(direct.user->name, "xmetrics-admin");
  EXPECT_EQ(direct.user->method, "x509");

  // And with no certificate at all they authenticate nobody.
  EXPECT_FALSE(a.authenticateLocally({}, forged).user);
}

TEST(Authenticator, FrontProxyCertificateWithAnUnlistedNameIsRefused) {
  testing::TestCertificates frontProxy("authn-fp2");
  Authenticator a({.requestHeader = RequestHeaderConfig{frontProxy.pool, {"front-proxy-client"}}});
  auto result = a.authenticateLocally(frontProxy.client, FakeHeaders({{"X-Remote-User", "bob"}}));
  ASSERT_FALSE(result.user);
  EXPECT_NE(result.error.find("requestheader-allowed-names"), std::string::npos);
}

TEST(Authenticator, StaticTokensAuthenticateLocally) {
  Authenticator a({.tokens = *parseTokenFile("tok1,alice,1001,dev\n", "t")});
  auto user = a.authenticateLocally({}, FakeHeaders({{"Authorization", "Bearer tok1"}}));
  ASSERT_TRUE(user.user);
  EXPECT_EQ(user.user->name, "alice");
  EXPECT_TRUE(a.authenticateLocally({}, FakeHeaders({{"authorization", "bearer tok1"}})).user);
  auto wrong = a.authenticateLocally({}, FakeHeaders({{"Authorization", "Bearer tok2"}}));
  ASSERT_FALSE(wrong.user);
  EXPECT_EQ(wrong.error.find("tok2"), std::string::npos);
  EXPECT_TRUE(wrong.tokenToReview.empty());  // no cluster to ask in standalone mode
}

TEST(Authenticator, UnknownTokensGoToTokenReviewWhichIsCached) {
  FakeReviewer reviewer;
  Authenticator a({}, &reviewer);
  auto local = a.authenticateLocally({}, FakeHeaders({{"Authorization", "Bearer cluster-token"}}));
  ASSERT_FALSE(local.user);
  EXPECT_EQ(local.tokenToReview, "cluster-token");
  auto user = a.reviewToken("cluster-token");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->name, "system:serviceaccount:ns:sa");
  EXPECT_EQ(user->method, "tokenreview");
  EXPECT_EQ(user->groups, (std::vector<std::string>{"g", "system:authenticated"}));
  EXPECT_TRUE(a.reviewToken("cluster-token"));
  EXPECT_FALSE(a.reviewToken("forged"));
  EXPECT_FALSE(a.reviewToken("forged"));
  EXPECT_EQ(reviewer.calls, 2);  // both outcomes cached
  auto broken = a.reviewToken("broken");
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().find("connection refused"), std::string::npos);
  EXPECT_EQ(broken.error().find("broken"), broken.error().find("broken"));
}

// The request path answers from the cache on its own thread and hops to the review pool only on a
// miss: the cached answer must be what reviewToken answers, method and groups included.
TEST(Authenticator, ACachedTokenReviewIsAnsweredWithoutTheReviewer) {
  FakeReviewer reviewer;
  Authenticator a({}, &reviewer, std::chrono::seconds(10));
  EXPECT_FALSE(a.cachedTokenReview("cluster-token").has_value());
  EXPECT_FALSE(a.cachedTokenReview("forged").has_value());
  EXPECT_EQ(reviewer.calls, 0);
  ASSERT_TRUE(a.reviewToken("cluster-token"));
  ASSERT_FALSE(a.reviewToken("forged"));
  auto cached = a.cachedTokenReview("cluster-token");
  ASSERT_TRUE(cached.has_value());
  ASSERT_TRUE(cached->has_value());
  EXPECT_EQ((*cached)->name, "system:serviceaccount:ns:sa");
  EXPECT_EQ((*cached)->method, "tokenreview");
  EXPECT_EQ((*cached)->groups, (std::vector<std::string>{"g", "system:authenticated"}));
  auto refused = a.cachedTokenReview("forged");
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->has_value());
  EXPECT_EQ(reviewer.calls, 2);
  // A failed review is not an answer: it is not cached.
  ASSERT_FALSE(a.reviewToken("broken"));
  EXPECT_FALSE(a.cachedTokenReview("broken").has_value());

  Authenticator expiring({}, &reviewer, std::chrono::seconds(0));
  ASSERT_TRUE(expiring.reviewToken("cluster-token"));
  EXPECT_FALSE(expiring.cachedTokenReview("cluster-token").has_value());
}

TEST(Authenticator, NoCredentialsSaysHowToGetSome) {
  Authenticator a({});
  auto result = a.authenticateLocally({}, FakeHeaders());
  ASSERT_FALSE(result.user);
  EXPECT_NE(result.error.find("--write-kubeconfig"), std::string::npos);
}

TEST(Authenticator, ARotatedClientCaTakesEffect) {
  testing::TestCertificates oldCa("authn-rot-old");
  testing::TestCertificates newCa("authn-rot-new");
  Authenticator a({.clientCa = oldCa.pool});
  EXPECT_FALSE(a.authenticateLocally(newCa.client, FakeHeaders()).user);
  a.update({.clientCa = newCa.pool});
  EXPECT_TRUE(a.authenticateLocally(newCa.client, FakeHeaders()).user);
}

}  // namespace
}  // namespace xmetrics::auth

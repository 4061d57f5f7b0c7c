#include "auth/authenticator.hpp"

#include <gtest/gtest.h>

namespace xmetrics::auth {
namespace {

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

TEST(ParseTokenFile, ErrorsNameTheLineButNeverTheToken) {
  auto tokens = parseTokenFile("good,a,1\nsupersecret\n", "tokens.csv");
  ASSERT_FALSE(tokens);
  EXPECT_NE(tokens.error().find("tokens.csv line 2"), std::string::npos);
  EXPECT_EQ(tokens.error().find("supersecret"), std::string::npos);
}

TEST(Authenticator, AVerifiedClientCertificateIsTheUser) {
  Authenticator a;
  PeerCertificate peer{true, true, "xmetrics-admin", {"system:masters"}, ""};
  auto user = a.authenticate(peer, "");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->name, "xmetrics-admin");
  EXPECT_EQ(user->groups, std::vector<std::string>{"system:masters"});
  EXPECT_EQ(user->method, "x509");
}

TEST(Authenticator, AnUnverifiedCertificateIsRefusedWithTheReason) {
  Authenticator a;
  PeerCertificate peer{true, false, "mallory", {}, "unable to get local issuer certificate"};
  auto user = a.authenticate(peer, "");
  ASSERT_FALSE(user);
  EXPECT_NE(user.error().find("mallory"), std::string::npos);
  EXPECT_NE(user.error().find("unable to get local issuer"), std::string::npos);
}

TEST(Authenticator, BearerTokensFromTheFileAuthenticate) {
  Authenticator a(*parseTokenFile("tok1,alice,1001,dev\n", "t"));
  auto user = a.authenticate({}, "Bearer tok1");
  ASSERT_TRUE(user);
  EXPECT_EQ(user->name, "alice");
  EXPECT_EQ(user->method, "token");
  EXPECT_TRUE(a.authenticate({}, "bearer tok1"));  // scheme is case-insensitive
  auto wrong = a.authenticate({}, "Bearer tok2");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().find("tok2"), std::string::npos);
}

TEST(Authenticator, NoCredentialsSaysHowToGetSome) {
  Authenticator a;
  auto user = a.authenticate({}, "");
  ASSERT_FALSE(user);
  EXPECT_NE(user.error().find("--write-kubeconfig"), std::string::npos);
}

}  // namespace
}  // namespace xmetrics::auth

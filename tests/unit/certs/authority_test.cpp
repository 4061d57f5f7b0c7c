#include "certs/authority.hpp"

#include <gtest/gtest.h>

namespace xmetrics::certs {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

KeyPair makeCa(seconds validity, SystemTime at = std::chrono::system_clock::now()) {
  auto ca = issue({.subject = {"test-ca", {}},
                   .usage = Usage::kCertificateAuthority,
                   .validity = validity,
                   .issuedAt = at});
  EXPECT_TRUE(ca) << ca.error();
  return *ca;
}

TEST(Authority, ALeafIsSignedByItsCaAndValidForWhatWasAsked) {
  auto now = std::chrono::system_clock::now();
  auto ca = makeCa(hours(240), now);
  auto leaf = issue({.subject = {"xmetrics", {}},
                     .usage = Usage::kServer,
                     .dnsNames = {"xmetrics.xmetrics.svc"},
                     .validity = hours(24),
                     .issuedAt = now},
                    &ca);
  ASSERT_TRUE(leaf) << leaf.error();
  EXPECT_TRUE(signedBy(leaf->certificate, ca.certificate));
  EXPECT_TRUE(keyMatches(leaf->certificate, leaf->key));
  EXPECT_FALSE(keyMatches(leaf->certificate, ca.key));
  auto other = makeCa(hours(240));
  EXPECT_FALSE(signedBy(leaf->certificate, other.certificate));
  auto facts = readCertificates(leaf->certificate);
  ASSERT_TRUE(facts) << facts.error();
  ASSERT_EQ(facts->size(), 1u);
  // Whole seconds: the certificate keeps no fraction.
  auto expected = std::chrono::floor<seconds>(now) + hours(24);
  EXPECT_LE(std::chrono::abs(facts->front().notAfter - expected), seconds(1));
  EXPECT_LE(std::chrono::abs(facts->front().notBefore - (expected - hours(25))), seconds(1));
}

TEST(Authority, ALeafNeverOutlivesItsIssuer) {
  auto ca = makeCa(hours(2));
  auto leaf = issue({.subject = {"xmetrics-admin", {"system:masters"}},
                     .usage = Usage::kClient,
                     .validity = hours(24)},
                    &ca);
  ASSERT_TRUE(leaf) << leaf.error();
  auto caFacts = readCertificates(ca.certificate);
  auto leafFacts = readCertificates(leaf->certificate);
  ASSERT_TRUE(caFacts && leafFacts);
  EXPECT_EQ(leafFacts->front().notAfter, caFacts->front().notAfter);
}

TEST(Authority, ABundleIsReadInOrderAndGarbageIsAnError) {
  auto a = makeCa(hours(1)), b = makeCa(hours(2));
  auto facts = readCertificates(a.certificate + b.certificate);
  ASSERT_TRUE(facts) << facts.error();
  ASSERT_EQ(facts->size(), 2u);
  EXPECT_EQ(facts->at(0).pem, a.certificate);
  EXPECT_EQ(facts->at(1).pem, b.certificate);
  EXPECT_NE(facts->at(0).subjectKeyId, facts->at(1).subjectKeyId);
  EXPECT_EQ(facts->at(0).subjectKeyId.size(), 40u);  // SHA-1 of the key, hex
  EXPECT_FALSE(readCertificates("not a certificate"));
  // A damaged certificate after good ones is an error, not a shorter bundle.
  std::string damaged = b.certificate;
  damaged.replace(damaged.find('\n') + 10, 8, "@@@@@@@@");
  EXPECT_FALSE(readCertificates(a.certificate + damaged));
  EXPECT_FALSE(readCertificates(""));
  KeyPair junk{"junk", "junk"};
  EXPECT_FALSE(issue({.usage = Usage::kServer}, &junk));
}

TEST(Authority, Base64RoundTripsAndRefusesWhatIsNotBase64) {
  const char raw[] = "-----BEGIN\n\0\xff\x10 end";
  std::string bytes(raw, sizeof raw - 1);
  auto encoded = base64Encode(bytes);
  EXPECT_EQ(base64Encode("ab"), "YWI=");
  auto decoded = base64Decode(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, bytes);
  EXPECT_FALSE(base64Decode("not base64!"));
  // Padded texts, as Kubernetes stores a Secret's data.
  for (std::string plain : {"a", "ab", "abc", "abcd"}) {
    auto back = base64Decode(base64Encode(plain));
    ASSERT_TRUE(back) << base64Encode(plain);
    EXPECT_EQ(*back, plain);
  }
  EXPECT_FALSE(base64Decode("YWI"));    // a missing pad
  EXPECT_FALSE(base64Decode("YQ==="));  // one too many
  // Lengths that are not a multiple of 4 (Beast's decoder, used here before, wrote past its buffer
  // for them), and a line break Kubernetes never writes.
  for (std::string bad : {"Y", "YW", "YWJjZ", "YWJjZGV", "YWJj\nZGVm"}) {
    EXPECT_FALSE(base64Decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace xmetrics::certs

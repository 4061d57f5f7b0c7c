#include "certs/serving_secret.hpp"

#include <gtest/gtest.h>

namespace xmetrics::certs {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

constexpr auto kValidity = hours(24);  // L; the CA lives 10 L
const IssueOptions kOptions{.dnsNames = {"xmetrics.xmetrics.svc"}, .validity = kValidity};

size_t bundleSize(const SecretCertificates& c) { return readCertificates(c.caBundle)->size(); }

// The CA whose key signs, from the bundle.
std::string signingCa(const SecretCertificates& c) {
  auto bundle = readCertificates(c.caBundle);
  for (const auto& ca : *bundle) {
    if (keyMatches(ca.pem, c.caKey)) return ca.pem;
  }
  return "";
}

// Every moment, whatever step comes next: a client trusting the bundle accepts the serving
// certificate, and the replicas' client certificate is issued by a CA of the bundle.
void expectTrusted(const SecretCertificates& c, SystemTime now) {
  bool servingTrusted = false, clientTrusted = false;
  auto bundle = readCertificates(c.caBundle);
  for (const auto& ca : *bundle) {
    if (ca.notAfter <= now) continue;
    servingTrusted |= signedBy(c.serving.certificate, ca.pem);
    clientTrusted |= signedBy(c.client.certificate, ca.pem);
  }
  EXPECT_TRUE(servingTrusted && clientTrusted);
  EXPECT_GT(readCertificates(c.serving.certificate)->front().notAfter, now);
}

TEST(RotationPlan, AFreshInstallationNeedsNothing) {
  auto now = std::chrono::system_clock::now();
  auto certs = issueAll(kOptions, now);
  ASSERT_TRUE(certs) << certs.error();
  EXPECT_EQ(planRotation(*certs, now, kValidity), RotationStep::kNone);
  EXPECT_EQ(planRotation(*certs, now + hours(15), kValidity), RotationStep::kNone);
  EXPECT_TRUE(signedBy(certs->serving.certificate, certs->caBundle));
  EXPECT_TRUE(keyMatches(certs->caBundle, certs->caKey));
}

TEST(RotationPlan, LeavesAreRenewedWhenAThirdOfTheirLifeIsLeft) {
  auto now = std::chrono::system_clock::now();
  auto certs = *issueAll(kOptions, now);
  auto later = now + hours(16) + minutes(1);
  ASSERT_EQ(planRotation(certs, later, kValidity), RotationStep::kRenewLeaves);
  auto renewed = applyRotation(RotationStep::kRenewLeaves, certs, kOptions, later);
  ASSERT_TRUE(renewed) << renewed.error();
  EXPECT_NE(renewed->serving.certificate, certs.serving.certificate);
  EXPECT_NE(renewed->client.certificate, certs.client.certificate);
  EXPECT_EQ(renewed->caBundle, certs.caBundle);  // same CA: no caBundle change anywhere
  EXPECT_EQ(planRotation(*renewed, later, kValidity), RotationStep::kNone);
  expectTrusted(*renewed, later);
}

TEST(RotationPlan, ALeafOfAnotherCaOrWithAForeignKeyIsRenewed) {
  auto now = std::chrono::system_clock::now();
  auto certs = *issueAll(kOptions, now);
  auto other = *issueAll(kOptions, now);
  auto mixed = certs;
  mixed.serving = other.serving;
  EXPECT_EQ(planRotation(mixed, now, kValidity), RotationStep::kRenewLeaves);
  mixed = certs;
  mixed.client.key = other.client.key;
  EXPECT_EQ(planRotation(mixed, now, kValidity), RotationStep::kRenewLeaves);
}

// The CA's whole life, a round every hour: it is replaced with trust never broken, and nothing
// is done twice.
TEST(RotationPlan, TheCaIsIntroducedThenPromotedThenTheOldOneDropped) {
  // A whole second, as certificates count: the hour of each step is then exact.
  auto start = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  auto certs = *issueAll(kOptions, start);
  const std::string firstCa = certs.caBundle;
  std::vector<std::pair<int, RotationStep>> caSteps;
  for (int hour = 1; hour <= 24 * 12; ++hour) {
    auto now = start + hours(hour);
    for (int step = 0; step < 3; ++step) {  // a round may take a step or two
      auto next = planRotation(certs, now, kValidity);
      if (next == RotationStep::kNone) break;
      if (next != RotationStep::kRenewLeaves) caSteps.emplace_back(hour, next);
      auto applied = applyRotation(next, certs, kOptions, now);
      ASSERT_TRUE(applied) << applied.error();
      certs = std::move(*applied);
    }
    ASSERT_EQ(planRotation(certs, now, kValidity), RotationStep::kNone) << "hour " << hour;
    expectTrusted(certs, now);
  }
  ASSERT_EQ(caSteps.size(), 3u);
  // 2 L before the first CA expires (10 L) the next joins the bundle; at L it signs; at expiry
  // the first one leaves.
  EXPECT_EQ(caSteps[0], std::make_pair(8 * 24 + 1, RotationStep::kIntroduceCa));
  EXPECT_EQ(caSteps[1], std::make_pair(9 * 24 + 1, RotationStep::kPromoteCa));
  EXPECT_EQ(caSteps[2], std::make_pair(10 * 24, RotationStep::kDropExpiredCa));
  EXPECT_EQ(bundleSize(certs), 1u);
  EXPECT_NE(signingCa(certs), firstCa);
  EXPECT_TRUE(certs.nextCaKey.empty());
}

TEST(RotationPlan, BetweenIntroductionAndPromotionBothCasAreTrustedAndTheOldOneSigns) {
  auto start = std::chrono::system_clock::now();
  auto certs = *issueAll(kOptions, start);
  auto at = start + hours(8 * 24 + 1);
  ASSERT_EQ(planRotation(certs, at, kValidity), RotationStep::kIntroduceCa);
  auto introduced = *applyRotation(RotationStep::kIntroduceCa, certs, kOptions, at);
  EXPECT_EQ(bundleSize(introduced), 2u);
  EXPECT_EQ(signingCa(introduced), certs.caBundle);
  EXPECT_FALSE(introduced.nextCaKey.empty());
  EXPECT_EQ(introduced.serving.certificate, certs.serving.certificate);
  auto promotedAt = start + hours(9 * 24 + 1);
  ASSERT_EQ(planRotation(introduced, promotedAt, kValidity), RotationStep::kPromoteCa);
  auto promoted = *applyRotation(RotationStep::kPromoteCa, introduced, kOptions, promotedAt);
  EXPECT_EQ(bundleSize(promoted), 2u);  // the old CA stays trusted until it expires
  EXPECT_NE(signingCa(promoted), certs.caBundle);
  EXPECT_TRUE(signedBy(promoted.serving.certificate, signingCa(promoted)));
  EXPECT_TRUE(promoted.nextCaKey.empty());
}

TEST(RotationPlan, ACaIntroducedLateStillWaitsBeforeItSigns) {
  // Replicas all down past the point of promotion (or --cert-validity raised): the next CA joins
  // with less than a lifetime left on the old one, and still waits before it signs.
  auto start = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  auto certs = *issueAll(kOptions, start);
  auto late = start + hours(9 * 24 + 12);  // 12 h of the first CA left, under L = 24 h
  ASSERT_EQ(planRotation(certs, late, kValidity), RotationStep::kIntroduceCa);
  certs = *applyRotation(RotationStep::kIntroduceCa, certs, kOptions, late);
  // The leaves (long expired) are renewed at once; the CA waits.
  auto step = [&](std::chrono::seconds after) {
    auto at = late + after;
    auto next = planRotation(certs, at, kValidity);
    if (next == RotationStep::kRenewLeaves) {
      certs = *applyRotation(next, certs, kOptions, at);
      next = planRotation(certs, at, kValidity);
    }
    return next;
  };
  EXPECT_EQ(step(std::chrono::seconds(60)), RotationStep::kNone);
  EXPECT_EQ(step(std::chrono::seconds(299)), RotationStep::kNone);
  EXPECT_EQ(step(std::chrono::seconds(300)), RotationStep::kPromoteCa);
}

TEST(RotationPlan, ASecretWithoutAUsableCaKeyIsLeftAlone) {
  auto now = std::chrono::system_clock::now();
  auto certs = *issueAll(kOptions, now);
  certs.caKey.clear();  // e.g. cert-manager's Secret
  EXPECT_EQ(planRotation(certs, now + hours(23), kValidity), RotationStep::kNone);
  certs.caBundle = "garbage";
  EXPECT_EQ(planRotation(certs, now, kValidity), RotationStep::kNone);
  EXPECT_FALSE(applyRotation(RotationStep::kRenewLeaves, certs, kOptions, now));
}

}  // namespace
}  // namespace xmetrics::certs

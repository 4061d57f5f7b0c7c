#include "auth/certificate_pool.hpp"

#include <gtest/gtest.h>

#include "certs/cert_dir.hpp"
#include "support/test_certificates.hpp"

namespace xmetrics::auth {
namespace {

const CertificateVerdicts::Verdict* verdictFor(const PeerCertificate& peer,
                                               const CertificatePool& pool) {
  for (const auto& v : peer.verdicts->verdicts) {
    if (v.pool == pool.id()) return &v;
  }
  return nullptr;
}

// The client certificate of a connection, with the verdicts the server keeps for it.
PeerCertificate connectionOf(const testing::TestCertificates& certs) {
  PeerCertificate peer = certs.client;
  peer.verdicts = std::make_shared<CertificateVerdicts>();
  return peer;
}

// A connection's verdicts are kept per pool: a certificate trusted by one pool is not thereby
// trusted by another, and a refusal by one does not stick to the other.
TEST(CertificatePool, AConnectionsVerdictIsKeptPerPool) {
  testing::TestCertificates trusted("pool-trusted");
  testing::TestCertificates other("pool-other");
  PeerCertificate peer = connectionOf(trusted);

  EXPECT_EQ(trusted.pool->verify(peer), "");
  EXPECT_NE(other.pool->verify(peer), "");
  EXPECT_EQ(trusted.pool->verify(peer), "");  // the refusal by `other` is other's alone
  EXPECT_NE(other.pool->verify(peer), "");

  const auto* kept = verdictFor(peer, *trusted.pool);
  ASSERT_NE(kept, nullptr) << "the trusted pool's verdict is not kept";
  EXPECT_EQ(kept->error, "");
  const auto* refused = verdictFor(peer, *other.pool);
  ASSERT_NE(refused, nullptr) << "the other pool's verdict is not kept";
  EXPECT_NE(refused->error, "");

  // The copies of one connection's PeerCertificate share its verdicts.
  PeerCertificate copy = peer;
  EXPECT_EQ(copy.verdicts, peer.verdicts);
  EXPECT_EQ(trusted.pool->verify(copy), "");
}

// A rotated CA bundle is a new pool: its verdict is its own, even for the same PEM, so a connection
// opened before a rotation that drops its CA is refused on its next request.
TEST(CertificatePool, ARotatedPoolIsVerifiedAgain) {
  testing::TestCertificates before("pool-rotation-before");
  testing::TestCertificates unrelated("pool-rotation-unrelated");
  PeerCertificate peer = connectionOf(before);
  EXPECT_EQ(before.pool->verify(peer), "");

  auto same = CertificatePool::fromPem(*certs::readFile(before.files.caCertificate), "same CA");
  ASSERT_TRUE(same) << same.error();
  EXPECT_NE((*same)->id(), before.pool->id());
  EXPECT_EQ((*same)->verify(peer), "");
  EXPECT_NE(verdictFor(peer, **same), nullptr);

  auto rotated =
      CertificatePool::fromPem(*certs::readFile(unrelated.files.caCertificate), "rotated CA");
  ASSERT_TRUE(rotated) << rotated.error();
  EXPECT_NE((*rotated)->verify(peer), "");
}

// More pools than slots: the oldest verdict makes room, and every answer stays right.
TEST(CertificatePool, MorePoolsThanSlotsStillAnswerRight) {
  testing::TestCertificates trusted("pool-slots-trusted");
  std::vector<testing::TestCertificates> others;
  for (int i = 0; i < 6; ++i) others.emplace_back("pool-slots-" + std::to_string(i));
  PeerCertificate peer = connectionOf(trusted);
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(trusted.pool->verify(peer), "") << "round " << round;
    for (const auto& o : others) EXPECT_NE(o.pool->verify(peer), "") << "round " << round;
  }
}

// A kept verdict answers for kRecheck, then the chain is checked again: shown by planting a verdict
// the chain contradicts (an "ok" from a pool that does not trust the certificate).
TEST(CertificatePool, AKeptVerdictAnswersUntilItIsRecheckedAfterTenSeconds) {
  testing::TestCertificates trusted("pool-recheck-trusted");
  testing::TestCertificates other("pool-recheck-other");
  PeerCertificate peer = connectionOf(trusted);
  auto now = std::chrono::steady_clock::now();

  peer.verdicts->verdicts[0] = {other.pool->id(), now, ""};
  EXPECT_EQ(other.pool->verify(peer), "") << "a fresh verdict is answered without the chain";

  peer.verdicts->verdicts[0] = {other.pool->id(), now - CertificatePool::kRecheck, ""};
  EXPECT_NE(other.pool->verify(peer), "") << "a verdict kRecheck old is checked again";
  const auto* kept = verdictFor(peer, *other.pool);
  ASSERT_NE(kept, nullptr);
  EXPECT_NE(kept->error, "");
  EXPECT_GE(kept->checked, now);
}

TEST(CertificatePool, WithoutVerdictsEveryCallChecksTheChain) {
  testing::TestCertificates trusted("pool-plain-trusted");
  testing::TestCertificates other("pool-plain-other");
  PeerCertificate peer = trusted.client;  // no verdicts: as a test or a one-off check builds it
  ASSERT_EQ(peer.verdicts, nullptr);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(trusted.pool->verify(peer), "");
    EXPECT_NE(other.pool->verify(peer), "");
  }
  EXPECT_EQ(peer.verdicts, nullptr);  // nothing was kept to answer from
  EXPECT_EQ(CertificatePool::fromPem("not a certificate", "x").error(),
            "x holds no PEM certificate");
  EXPECT_EQ(trusted.pool->verify(PeerCertificate{}), "no client certificate");
}

}  // namespace
}  // namespace xmetrics::auth

#include "auth/certificate_pool.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace xmetrics::auth {

std::expected<CertificatePoolPtr, std::string> CertificatePool::fromPem(const std::string& pem,
                                                                        const std::string& what) {
  static std::atomic<uint64_t> lastId{0};
  auto pool = std::shared_ptr<CertificatePool>(new CertificatePool());
  pool->id_ = ++lastId;
  pool->store_ = X509_STORE_new();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(pool->store_, cert);
    X509_free(cert);
    ++added;
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop ends on an expected "no start line"
  if (added == 0) return std::unexpected(what + " holds no PEM certificate");
  return pool;
}

CertificatePool::~CertificatePool() { X509_STORE_free(store_); }

std::string CertificatePool::verify(const PeerCertificate& peer) const {
  if (!peer.leaf) return "no client certificate";
  if (!peer.verdicts) return verifyChain(peer);
  auto now = std::chrono::steady_clock::now();
  auto& cache = *peer.verdicts;
  std::lock_guard lock(cache.mutex);
  CertificateVerdicts::Verdict* slot = nullptr;
  for (auto& v : cache.verdicts) {
    if (v.pool == id_) {
      if (now - v.checked < kRecheck) return v.error;
      slot = &v;
      break;
    }
  }
  if (!slot) {  // a free slot, else the oldest
    slot = &cache.verdicts[0];
    for (auto& v : cache.verdicts) {
      if (v.pool == 0) {
        slot = &v;
        break;
      }
      if (v.checked < slot->checked) slot = &v;
    }
  }
  *slot = {id_, now, verifyChain(peer)};
  return slot->error;
}

std::string CertificatePool::verifyChain(const PeerCertificate& peer) const {
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store_, peer.leaf.get(), peer.chain.get());
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
  int ok = X509_verify_cert(ctx);
  std::string error = ok == 1 ? "" : X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
  X509_STORE_CTX_free(ctx);
  return error;
}

}  // namespace xmetrics::auth

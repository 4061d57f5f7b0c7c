#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <expected>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "certs/authority.hpp"
#include "kube/kube_client.hpp"
#include "telemetry/exposition.hpp"

namespace xmetrics::certs {

// The certificates of one installation as its Secret holds them (data keys in brackets).
struct SecretCertificates {
  std::string caBundle;   // [ca.crt] every CA clients trust: the signing one, and during a CA
                          // rotation the next one (before it signs) or the previous one (after)
  std::string caKey;      // [ca.key] the signing CA's key
  std::string nextCaKey;  // [ca-next.key] the key of a CA in the bundle that does not sign yet
  KeyPair serving;        // [tls.crt, tls.key]
  KeyPair client;         // [client-admin.crt, client-admin.key]: the replicas' own (HA)
};

// What a rotation round does, decided from the certificates and the clock alone (unit-tested).
// With leaf validity L and a CA of 10 L: leaves are renewed when a third of L is left; a new CA
// joins the bundle when 2 L of the old one are left (every client learns to trust it) and
// starts signing, with new leaves, when L is left; an expired CA leaves the bundle.
enum class RotationStep { kNone, kRenewLeaves, kIntroduceCa, kPromoteCa, kDropExpiredCa };
const char* rotationStepName(RotationStep step);
RotationStep planRotation(const SecretCertificates& certs, SystemTime now,
                          std::chrono::seconds validity);

struct IssueOptions {
  std::vector<std::string> dnsNames;  // serving SANs
  std::chrono::seconds validity{365 * 24 * 3600};
};
// A new installation: CA, serving and client certificates.
std::expected<SecretCertificates, std::string> issueAll(const IssueOptions& options,
                                                        SystemTime now = {});
// `step` applied to `certs`; new certificates are issued at `now`.
std::expected<SecretCertificates, std::string> applyRotation(RotationStep step,
                                                             const SecretCertificates& certs,
                                                             const IssueOptions& options,
                                                             SystemTime now);

// Keeps each named APIService's spec.caBundle equal to a CA bundle: read, compared, merge-patched
// when different. An APIService that is missing, refuses, or has insecureSkipTLSVerify is warned
// about once (until it works) and tried again next time.
//
// Taking over (--take-over-apiservice, moving from another adapter such as the Cluster Agent):
// the named APIServices are also pointed at xmetrics' Service, and their insecureSkipTLSVerify
// (the Cluster Agent's) is removed, in the same merge patch that sets the caBundle — the switch
// is one write, so kube-apiserver never has an APIService it cannot verify.
struct ApiServiceTakeOver {
  std::vector<std::string> names;
  std::string ns, service;  // xmetrics' Service
  int port = 443;
};

class CaBundleInjector {
 public:
  CaBundleInjector(kube::KubeClient& client, std::vector<std::string> apiServices,
                   ApiServiceTakeOver takeOver = {})
      : client_(client), apiServices_(std::move(apiServices)), takeOver_(std::move(takeOver)) {
    for (const auto& name : takeOver_.names) {
      if (std::ranges::find(apiServices_, name) == apiServices_.end()) apiServices_.push_back(name);
    }
  }
  // true when every APIService holds `caBundle` now.
  bool inject(const std::string& caBundle);
  // Taking over starts only once xmetrics is ready (serving, first refresh done): before, the
  // APIServices to take over are left as they are (their current provider keeps serving).
  void enableTakeOver() { takeOverEnabled_.store(true, std::memory_order_relaxed); }
  uint64_t injections() const { return injections_.load(std::memory_order_relaxed); }

 private:
  kube::KubeClient& client_;
  std::vector<std::string> apiServices_;
  ApiServiceTakeOver takeOver_;
  std::atomic<bool> takeOverEnabled_{false};
  std::mutex injectMutex_;  // inject() runs on the Secret's round and on a readiness waiter
  std::vector<std::string> warned_;
  std::atomic<uint64_t> injections_{0};
};

struct ServingSecretOptions {
  std::string ns, name;                  // the Secret, in xmetrics' namespace
  std::vector<std::string> apiServices;  // whose spec.caBundle is kept equal to ca.crt
  ApiServiceTakeOver takeOver;           // and which of those are pointed at xmetrics
  IssueOptions issue;
  std::string certDir;  // where the files are written for the server (an emptyDir in a pod)
  std::chrono::seconds checkInterval{60};
};

// The serving certificate shared by every replica, with no manual step: the Secret is created
// when absent (create-if-absent: whichever replica's create wins, the others read it), its files
// are written into the cert dir (the server reloads them), each named APIService's caBundle is set
// to its CA bundle, and, when the Secret is one xmetrics created, the certificates are rotated
// before they expire (an update with the Secret's resourceVersion: one replica's wins). A Secret
// someone else created is used and injected as it is, never changed.
class ServingSecret {
 public:
  ServingSecret(kube::KubeConfig cluster, ServingSecretOptions options);
  ~ServingSecret();

  // The first round, before the server starts: retried for about 30 s, then an error naming the
  // object, the API's answer and the RBAC it needs.
  std::expected<void, std::string> bootstrap();
  // Then a round every checkInterval. `onTrustChanged(caBundle)` runs when ca.crt changed.
  void start(std::function<void(const std::string&)> onTrustChanged);
  void stop();
  // xmetrics is ready: --take-over-apiservice goes ahead, in a round at once.
  void enableTakeOver();

  // xmetrics_serving_certificate_expiry_timestamp_seconds{certificate}, rotations and failures.
  void writeMetrics(telemetry::ExpositionWriter& out) const;

 private:
  std::expected<void, std::string> round();
  std::expected<SecretCertificates, std::string> readOrCreate(std::string& resourceVersion,
                                                              bool& ours);
  std::expected<void, std::string> writeFiles(const SecretCertificates& certs);
  // The Secret as xmetrics writes it; resourceVersion empty for a create.
  boost::json::object secretObject(const SecretCertificates& certs,
                                   const std::string& resourceVersion) const;

  kube::KubeClient client_;
  ServingSecretOptions options_;
  CaBundleInjector injector_{client_, options_.apiServices, options_.takeOver};
  std::string secretPath_;
  std::function<void(const std::string&)> onTrustChanged_;
  SecretCertificates written_;  // what the cert dir holds; only the round's thread touches it
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool roundNow_ = false;
  std::thread thread_;
  struct Facts {
    double servingExpiry = 0, clientExpiry = 0, caExpiry = 0;  // Unix seconds
  } facts_;
  std::atomic<uint64_t> rotations_{0}, failures_{0};
  // An APIService did not take the caBundle (not created yet, say): the next round comes sooner.
  std::atomic<bool> injectionPending_{false};
};

}  // namespace xmetrics::certs

// The serving certificate link: what xmetrics presents, checked the way kube-apiserver's
// aggregator checks it (the APIService's caBundle, the name <service>.<namespace>.svc).

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <memory>

#include "core/time_format.hpp"
#include "doctor/checks.hpp"

namespace xmetrics::doctor {
namespace {

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

std::vector<X509Ptr> readCertificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  while (bio) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (!cert) break;
    out.emplace_back(cert, X509_free);
  }
  return out;
}

std::string nameText(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

bool certificateExpiring(const CertificateFacts& facts) {
  return facts.secondsLeft < 30 * 86400 && facts.secondsLeft * 3 < facts.lifetimeSeconds;
}

CertificateFacts inspectServingCertificate(const std::vector<std::string>& chainPem,
                                           const std::string& caBundlePem, const std::string& name,
                                           core::Clock::time_point now) {
  CertificateFacts facts;
  std::vector<X509Ptr> chain;
  for (const auto& pem : chainPem) {
    for (auto& c : readCertificates(pem)) chain.push_back(std::move(c));
  }
  if (chain.empty()) {
    facts.error = "the server presented no certificate";
    return facts;
  }
  X509* leaf = chain.front().get();
  facts.subject = nameText(X509_get_subject_name(leaf));
  facts.issuer = nameText(X509_get_issuer_name(leaf));
  if (auto* sans = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) {
        facts.names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                                 static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
      } else if (n->type == GEN_IPADD) {
        const unsigned char* ip = ASN1_STRING_get0_data(n->d.iPAddress);
        int length = ASN1_STRING_length(n->d.iPAddress);
        char text[INET6_ADDRSTRLEN] = {};
        if ((length == 4 || length == 16) &&
            inet_ntop(length == 4 ? AF_INET : AF_INET6, ip, text, sizeof text)) {
          facts.names.emplace_back(text);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  std::time_t nowT = core::Clock::to_time_t(now);
  std::tm notAfter{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &notAfter) == 1) {
    auto t = core::Clock::from_time_t(timegm(&notAfter));
    facts.notAfter = core::rfc3339(t);
    facts.secondsLeft = std::chrono::duration_cast<std::chrono::seconds>(t - now).count();
    std::tm notBefore{};
    if (ASN1_TIME_to_tm(X509_get0_notBefore(leaf), &notBefore) == 1) {
      facts.lifetimeSeconds = static_cast<int64_t>(timegm(&notAfter) - timegm(&notBefore));
    }
  }
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  auto bundle = readCertificates(caBundlePem);
  for (auto& ca : bundle) {
    facts.bundleSubjects.push_back(nameText(X509_get_subject_name(ca.get())));
    X509_STORE_add_cert(store.get(), ca.get());
  }
  if (bundle.empty()) {
    facts.error = caBundlePem.empty() ? "the APIService has no caBundle"
                                      : "the caBundle holds no PEM certificate";
    return facts;
  }
  auto freeStack = [](STACK_OF(X509) * s) { sk_X509_free(s); };  // the certificates stay owned
  std::unique_ptr<STACK_OF(X509), decltype(freeStack)> untrusted(sk_X509_new_null(), freeStack);
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get());
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, nowT);
  // Go's verifier, which the aggregator uses, never falls back to the subject's CN.
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    facts.error = X509_verify_cert_error_string(err);
    if (err == X509_V_ERR_HOSTNAME_MISMATCH) {
      facts.error = "it is not valid for " + name + " (the name the aggregator verifies)";
    } else if (err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
               err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
               err == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
               err == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN) {
      // OpenSSL's "unable to get local issuer certificate" names neither side.
      std::string bundle;
      for (const auto& b : facts.bundleSubjects) bundle += (bundle.empty() ? "" : ", ") + b;
      facts.error = "it is signed by " + facts.issuer +
                    ", which is not among the caBundle's CAs (" + bundle + ")";
    }
  }
  return facts;
}

Check checkCertificate(const Evidence& e) {
  Check c{.name = "certificate"};
  std::string name = e.serviceName + "." + e.serviceNs + ".svc";
  if (!e.apiService) {
    c.verdict = Verdict::kWarn;
    c.problem = "not-checked";
    c.summary = "not checked: no APIService";
    return c;
  }
  if (e.insecureSkipTlsVerify) {
    c.verdict = Verdict::kWarn;
    c.problem = "insecure-skip-tls-verify";
    c.summary =
        "the APIService sets insecureSkipTLSVerify: kube-apiserver accepts any server "
        "certificate for external metrics";
    c.fix =
        "set spec.caBundle to the CA that signed xmetrics' serving certificate and remove "
        "insecureSkipTLSVerify";
  }
  if (e.address.empty()) {
    if (c.verdict == Verdict::kOk) {
      c.verdict = Verdict::kWarn;
      c.problem = "not-checked";
      c.summary = "not checked: xmetrics cannot be reached from here";
      c.fix = "give --server (e.g. after kubectl port-forward -n " + e.serviceNs + " svc/" +
              e.serviceName + " 8443:" + std::to_string(e.servicePort) +
              ", --server https://127.0.0.1:8443)";
    }
    c.evidence.push_back(e.reachError);
    return c;
  }
  auto facts = inspectServingCertificate(e.chain, e.caBundle, name, e.now);
  c.evidence.push_back("presented at " + e.address + ": subject " + facts.subject + ", issuer " +
                       facts.issuer + ", expires " + facts.notAfter);
  std::string names;
  for (const auto& n : facts.names) names += (names.empty() ? "" : ", ") + n;
  c.evidence.push_back("names: " + (names.empty() ? std::string("<none>") : names));
  std::string bundle;
  for (const auto& s : facts.bundleSubjects) bundle += (bundle.empty() ? "" : ", ") + s;
  c.evidence.push_back("caBundle: " + (bundle.empty() ? std::string("<empty>") : bundle));
  if (e.insecureSkipTlsVerify) return c;
  if (!facts.error.empty() && facts.secondsLeft <= 0) {
    c.verdict = Verdict::kFail;
    c.problem = "certificate-expired";
    c.summary = "the serving certificate xmetrics presents expired " + facts.notAfter;
    c.fix =
        "renew it (xmetrics remakes its own leaves at start when they are near expiry; a "
        "mounted Secret must be renewed by whoever issues it)";
    return c;
  }
  if (!facts.error.empty()) {
    c.verdict = Verdict::kFail;
    c.problem = facts.error.find("not valid for") != std::string::npos ? "certificate-name-mismatch"
                                                                       : "cabundle-mismatch";
    c.summary =
        c.problem == "cabundle-mismatch"
            ? "the APIService's caBundle does not verify the certificate xmetrics presents: " +
                  facts.error
            : "the certificate xmetrics presents " + facts.error;
    c.fix =
        c.problem == "certificate-name-mismatch"
            ? "point the APIService at the Service the certificate is for (see the service "
              "check), or reissue xmetrics' serving certificate with the name " +
                  name
            : "run xmetrics with --inject-ca-bundle=" + std::string(kApiServiceName) +
                  " (the manifests' and chart's default; it needs get/patch on that APIService "
                  "and logs event=ca_bundle_not_injected with the reason when refused), or put "
                  "the CA yourself: kubectl patch apiservice " +
                  std::string(kApiServiceName) +
                  " --type=merge -p \"{\\\"spec\\\":{\\\"caBundle\\\":\\\"$(base64 -w0 "
                  "ca.crt)\\\"}}\" (ca.crt from xmetrics' --cert-dir or its serving-cert Secret)";
    return c;
  }
  if (certificateExpiring(facts)) {
    c.verdict = Verdict::kWarn;
    c.problem = "certificate-expiring";
    c.summary = "the serving certificate expires " + facts.notAfter;
    c.fix = "renew xmetrics' serving certificate (and the caBundle if the CA changes)";
    return c;
  }
  c.summary = "the serving certificate for " + name + " verifies against the caBundle";
  return c;
}

}  // namespace xmetrics::doctor

#include "certs/serving_secret.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "certs/cert_dir.hpp"
#include "core/json_fields.hpp"

namespace xmetrics::certs {
namespace {

using core::json::objectAt;
using core::json::str;
using std::chrono::seconds;

// How long a new CA stays in the bundle before it signs, at least: the other replicas' rounds
// (a minute apart at most), libcurl's CA cache (60 s) and the APIService's injection.
constexpr std::chrono::seconds kMinTrustTime{300};

// Marks a Secret xmetrics created, and so may rotate. Any other Secret is only read.
constexpr const char* kIssuedBy = "xmetrics.io/issued-by";

// The CA of the bundle whose key is `key`, or null.
const CertificateFacts* caFor(const std::vector<CertificateFacts>& bundle, const std::string& key) {
  if (key.empty()) return nullptr;
  for (const auto& ca : bundle) {
    if (keyMatches(ca.pem, key)) return &ca;
  }
  return nullptr;
}

bool leafNeedsRenewal(const KeyPair& leaf, const CertificateFacts& ca, SystemTime now,
                      seconds validity) {
  auto facts = readCertificates(leaf.certificate);
  if (!facts || !signedBy(leaf.certificate, ca.pem) || !keyMatches(leaf.certificate, leaf.key)) {
    return true;
  }
  return facts->front().notAfter - now < validity / 3;
}

std::expected<KeyPair, std::string> issueLeaf(Usage usage, const KeyPair& ca,
                                              const IssueOptions& options, SystemTime now) {
  if (usage == Usage::kServer) {
    return issue({.subject = {"xmetrics", {}},
                  .usage = Usage::kServer,
                  .dnsNames = options.dnsNames,
                  .validity = options.validity,
                  .issuedAt = now},
                 &ca);
  }
  // The replicas' client certificate: followers present it to the leader
  // (docs/high-availability.md).
  return issue({.subject = {"xmetrics-admin", {"system:masters"}},
                .usage = Usage::kClient,
                .validity = options.validity,
                .issuedAt = now},
               &ca);
}

std::expected<void, std::string> renewLeaves(SecretCertificates& certs, const KeyPair& ca,
                                             const IssueOptions& options, SystemTime now) {
  auto serving = issueLeaf(Usage::kServer, ca, options, now);
  if (!serving) return std::unexpected(serving.error());
  auto client = issueLeaf(Usage::kClient, ca, options, now);
  if (!client) return std::unexpected(client.error());
  certs.serving = std::move(*serving);
  certs.client = std::move(*client);
  return {};
}

double unixSeconds(SystemTime t) {
  return static_cast<double>(std::chrono::duration_cast<seconds>(t.time_since_epoch()).count());
}

boost::json::object secretData(const SecretCertificates& c) {
  boost::json::object data{{"ca.crt", base64Encode(c.caBundle)},
                           {"ca.key", base64Encode(c.caKey)},
                           {"tls.crt", base64Encode(c.serving.certificate)},
                           {"tls.key", base64Encode(c.serving.key)},
                           {"client-admin.crt", base64Encode(c.client.certificate)},
                           {"client-admin.key", base64Encode(c.client.key)}};
  if (!c.nextCaKey.empty()) data["ca-next.key"] = base64Encode(c.nextCaKey);
  return data;
}

}  // namespace

const char* rotationStepName(RotationStep step) {
  switch (step) {
    case RotationStep::kNone:
      return "none";
    case RotationStep::kRenewLeaves:
      return "renew_leaves";
    case RotationStep::kIntroduceCa:
      return "introduce_ca";
    case RotationStep::kPromoteCa:
      return "promote_ca";
    case RotationStep::kDropExpiredCa:
      return "drop_expired_ca";
  }
  return "unknown";
}

RotationStep planRotation(const SecretCertificates& certs, SystemTime now, seconds validity) {
  auto bundle = readCertificates(certs.caBundle);
  if (!bundle) return RotationStep::kNone;  // nothing to reason about; the round reports it
  const CertificateFacts* signing = caFor(*bundle, certs.caKey);
  if (!signing) return RotationStep::kNone;
  auto caLeft = signing->notAfter - now;
  if (const CertificateFacts* next =
          certs.nextCaKey.empty() ? nullptr : caFor(*bundle, certs.nextCaKey)) {
    // It signs once clients had time to take it into their bundles: normally a whole lifetime
    // after it joined; never sooner than kMinTrustTime (a raised --cert-validity, replicas that
    // were all down) nor before the lifetime of the signing CA runs short.
    auto joined = next->notBefore + kBackdate;
    if (caLeft < validity &&
        now - joined >= std::min<std::chrono::seconds>(validity, kMinTrustTime)) {
      return RotationStep::kPromoteCa;
    }
  } else if (caLeft < 2 * validity) {
    return RotationStep::kIntroduceCa;
  }
  for (const auto& ca : *bundle) {
    if (&ca != signing && ca.notAfter <= now && ca.pem != signing->pem) {
      return RotationStep::kDropExpiredCa;
    }
  }
  if (leafNeedsRenewal(certs.serving, *signing, now, validity) ||
      leafNeedsRenewal(certs.client, *signing, now, validity)) {
    return RotationStep::kRenewLeaves;
  }
  return RotationStep::kNone;
}

std::expected<SecretCertificates, std::string> issueAll(const IssueOptions& options,
                                                        SystemTime now) {
  auto ca = issue({.subject = {"xmetrics-ca", {}},
                   .usage = Usage::kCertificateAuthority,
                   .validity = options.validity * 10,
                   .issuedAt = now});
  if (!ca) return std::unexpected(ca.error());
  SecretCertificates certs{.caBundle = ca->certificate, .caKey = ca->key};
  if (auto leaves = renewLeaves(certs, *ca, options, now); !leaves) {
    return std::unexpected(leaves.error());
  }
  return certs;
}

std::expected<SecretCertificates, std::string> applyRotation(RotationStep step,
                                                             const SecretCertificates& certs,
                                                             const IssueOptions& options,
                                                             SystemTime now) {
  auto bundle = readCertificates(certs.caBundle);
  if (!bundle) return std::unexpected("ca.crt " + bundle.error());
  SecretCertificates next = certs;
  const CertificateFacts* signing = caFor(*bundle, certs.caKey);
  if (!signing) return std::unexpected(std::string("ca.key is not the key of any CA in ca.crt"));
  switch (step) {
    case RotationStep::kNone:
      break;
    case RotationStep::kRenewLeaves:
      if (auto r = renewLeaves(next, {signing->pem, certs.caKey}, options, now); !r) {
        return std::unexpected(r.error());
      }
      break;
    case RotationStep::kIntroduceCa: {
      auto ca = issue({.subject = {"xmetrics-ca", {}},
                       .usage = Usage::kCertificateAuthority,
                       .validity = options.validity * 10,
                       .issuedAt = now});
      if (!ca) return std::unexpected(ca.error());
      next.caBundle += ca->certificate;
      next.nextCaKey = ca->key;
      break;
    }
    case RotationStep::kPromoteCa: {
      const CertificateFacts* incoming = caFor(*bundle, certs.nextCaKey);
      if (!incoming) return std::unexpected(std::string("ca-next.key matches no CA in ca.crt"));
      next.caKey = certs.nextCaKey;
      next.nextCaKey.clear();
      if (auto r = renewLeaves(next, {incoming->pem, next.caKey}, options, now); !r) {
        return std::unexpected(r.error());
      }
      break;
    }
    case RotationStep::kDropExpiredCa:
      next.caBundle.clear();
      for (const auto& ca : *bundle) {
        if (ca.notAfter > now || &ca == signing) next.caBundle += ca.pem;
      }
      break;
  }
  return next;
}

ServingSecret::ServingSecret(kube::KubeConfig cluster, ServingSecretOptions options)
    : client_(std::move(cluster)),
      options_(std::move(options)),
      secretPath_("/api/v1/namespaces/" + options_.ns + "/secrets/" + options_.name) {}

ServingSecret::~ServingSecret() { stop(); }

boost::json::object ServingSecret::secretObject(const SecretCertificates& certs,
                                                const std::string& resourceVersion) const {
  boost::json::object metadata{{"name", options_.name},
                               {"namespace", options_.ns},
                               {"labels", {{"app.kubernetes.io/name", "xmetrics"}}},
                               {"annotations", {{kIssuedBy, "xmetrics"}}}};
  // An update carries the version it replaces: of two replicas rotating at once, one wins.
  if (!resourceVersion.empty()) metadata["resourceVersion"] = resourceVersion;
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", std::move(metadata)},
          {"type", "Opaque"},
          {"data", secretData(certs)}};
}

std::expected<SecretCertificates, std::string> ServingSecret::readOrCreate(
    std::string& resourceVersion, bool& ours) {
  const std::string where = "Secret " + options_.ns + "/" + options_.name;
  auto got = client_.get(secretPath_);
  if (!got && got.error().status == 404) {
    auto fresh = issueAll(options_.issue);
    if (!fresh) return std::unexpected(fresh.error());
    auto created =
        client_.post("/api/v1/namespaces/" + options_.ns + "/secrets", secretObject(*fresh, ""));
    if (created) {
      spdlog::info("component=certs event=secret_created secret={}/{}", options_.ns, options_.name);
      resourceVersion = str(objectAt(created->as_object(), "metadata"), "resourceVersion");
      ours = true;
      return std::move(*fresh);
    }
    if (created.error().status != 409) {
      return std::unexpected("cannot create " + where + ": " + created.error().describe() +
                             " (the service account needs create on secrets in " + options_.ns +
                             ": deploy/manifests/10-rbac.yaml)");
    }
    got = client_.get(secretPath_);  // another replica created it first: use theirs
  }
  if (!got) {
    return std::unexpected("cannot read " + where + ": " + got.error().describe() +
                           " (the service account needs get and update on that Secret: "
                           "deploy/manifests/10-rbac.yaml)");
  }
  const auto* object = got->if_object();
  const auto* metadata = object ? objectAt(*object, "metadata") : nullptr;
  const auto* data = object ? objectAt(*object, "data") : nullptr;
  resourceVersion = str(metadata, "resourceVersion");
  ours = str(objectAt(metadata, "annotations"), kIssuedBy) == "xmetrics";
  SecretCertificates certs;
  std::string missing, malformed;
  auto field = [&](const char* key, std::string& into, bool required) {
    auto text = str(data, key);
    if (text.empty()) {
      if (required) missing += (missing.empty() ? "" : ", ") + std::string(key);
      return;
    }
    auto decoded = base64Decode(text);
    if (!decoded) {
      malformed += (malformed.empty() ? "" : ", ") + std::string(key);
      return;
    }
    into = std::move(*decoded);
  };
  field("ca.crt", certs.caBundle, true);
  field("ca.key", certs.caKey, ours);  // a Secret of cert-manager's or yours needs none
  field("ca-next.key", certs.nextCaKey, false);
  field("tls.crt", certs.serving.certificate, true);
  field("tls.key", certs.serving.key, true);
  field("client-admin.crt", certs.client.certificate, true);
  field("client-admin.key", certs.client.key, true);
  if (!missing.empty() || !malformed.empty()) {
    return std::unexpected(
        where + (missing.empty() ? "" : " lacks " + missing) +
        (malformed.empty()
             ? ""
             : std::string(missing.empty() ? "" : " and") + " has " + malformed + " not base64") +
        ": delete it and xmetrics creates a complete one, or see docs/high-availability.md");
  }
  if (auto bundle = readCertificates(certs.caBundle); !bundle) {
    return std::unexpected(where + ": ca.crt " + bundle.error());
  }
  return certs;
}

std::expected<void, std::string> ServingSecret::writeFiles(const SecretCertificates& certs) {
  const std::string dir = options_.certDir + "/";
  std::error_code ec;
  std::filesystem::create_directories(options_.certDir, ec);
  if (ec)
    return std::unexpected("cannot create --cert-dir " + options_.certDir + ": " + ec.message());
  // Keys before certificates: the server's watcher reloads on tls.crt/tls.key changing and checks
  // they match, so a reload between the two writes is refused and repeated after the second.
  struct File {
    const char* name;
    const std::string& now;
    const std::string& before;
    bool secret;
  };
  const File files[] = {
      {"ca.crt", certs.caBundle, written_.caBundle, false},
      {"client-admin.key", certs.client.key, written_.client.key, true},
      {"client-admin.crt", certs.client.certificate, written_.client.certificate, false},
      {"tls.key", certs.serving.key, written_.serving.key, true},
      {"tls.crt", certs.serving.certificate, written_.serving.certificate, false},
  };
  for (const auto& f : files) {
    if (f.now == f.before) continue;
    if (auto w = writeCertificateFile(dir + f.name, f.now, f.secret); !w) return w;
  }
  written_ = certs;
  written_.caKey.clear();  // never on disk: only the Secret holds the CA's keys
  written_.nextCaKey.clear();
  return {};
}

bool CaBundleInjector::inject(const std::string& caBundle) {
  std::lock_guard lock(injectMutex_);
  const auto encoded = base64Encode(caBundle);
  bool allDone = true;
  for (const auto& name : apiServices_) {
    const std::string path = "/apis/apiregistration.k8s.io/v1/apiservices/" + name;
    auto warnOnce = [&](const std::string& text) {
      if (std::ranges::find(warned_, name) != warned_.end()) return;
      warned_.push_back(name);
      spdlog::warn("component=certs event=ca_bundle_not_injected apiservice={} reason=\"{}\"", name,
                   text);
    };
    auto got = client_.get(path);
    if (!got) {
      warnOnce(got.error().describe() +
               (got.error().status == 404
                    ? "; it is injected once it exists"
                    : "; the service account needs get and patch on that APIService"));
      allDone = false;
      continue;
    }
    const auto* spec = got->is_object() ? objectAt(got->as_object(), "spec") : nullptr;
    if (std::ranges::find(takeOver_.names, name) != takeOver_.names.end()) {
      if (!takeOverEnabled_.load(std::memory_order_relaxed)) {
        allDone = false;  // not yet: done on the round after the server listens
        continue;
      }
      const auto* service = objectAt(spec, "service");
      const auto* port = service ? service->if_contains("port") : nullptr;
      bool ours = str(service, "namespace") == takeOver_.ns &&
                  str(service, "name") == takeOver_.service && port && port->is_int64() &&
                  port->as_int64() == takeOver_.port;
      bool insecure = spec && core::json::boolAt(*spec, "insecureSkipTLSVerify");
      if (!ours || insecure || str(spec, "caBundle") != encoded) {
        boost::json::object patch{{"spec",
                                   {{"service",
                                     {{"namespace", takeOver_.ns},
                                      {"name", takeOver_.service},
                                      {"port", takeOver_.port}}},
                                    {"insecureSkipTLSVerify", nullptr},
                                    {"caBundle", encoded}}}};
        if (auto patched = client_.mergePatch(path, patch); !patched) {
          warnOnce("take-over patch refused: " + patched.error().describe() +
                   "; the service account needs patch on that APIService");
          allDone = false;
          continue;
        }
        std::erase(warned_, name);
        injections_.fetch_add(1, std::memory_order_relaxed);
        if (!ours || insecure) {
          spdlog::info(
              "component=certs event=apiservice_taken_over apiservice={} from={}/{} to={}/{}:{}",
              name, str(service, "namespace"), str(service, "name"), takeOver_.ns,
              takeOver_.service, takeOver_.port);
        }
      }
      continue;
    }
    if (spec && core::json::boolAt(*spec, "insecureSkipTLSVerify")) {
      warnOnce(
          "it has insecureSkipTLSVerify: true, which Kubernetes refuses with a caBundle; "
          "remove it to have verified TLS");
      continue;  // the user's choice: nothing to retry
    }
    if (str(spec, "caBundle") == encoded) continue;
    auto patched = client_.mergePatch(path, boost::json::object{{"spec", {{"caBundle", encoded}}}});
    if (!patched) {
      warnOnce("patch refused: " + patched.error().describe() +
               "; the service account needs patch on that APIService");
      allDone = false;
      continue;
    }
    std::erase(warned_, name);
    injections_.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("component=certs event=ca_bundle_injected apiservice={}", name);
  }
  return allDone;
}

std::expected<void, std::string> ServingSecret::round() {
  std::string resourceVersion;
  bool ours = false;
  auto certs = readOrCreate(resourceVersion, ours);
  if (!certs) return std::unexpected(certs.error());
  if (ours) {
    auto now = std::chrono::system_clock::now();
    auto step = planRotation(*certs, now, options_.issue.validity);
    // A CA signs only once every client took it: not while an APIService still lacks the bundle.
    if (step == RotationStep::kPromoteCa && injectionPending_.load(std::memory_order_relaxed)) {
      step = RotationStep::kNone;
    }
    if (step != RotationStep::kNone) {
      // A rotation that cannot be written (no update permission, a quota) is reported and
      // retried next round; the certificates as read are still served and injected.
      auto rotated = applyRotation(step, *certs, options_.issue, now);
      if (!rotated) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("component=certs event=rotation_failed step={} error=\"{}\"",
                      rotationStepName(step), rotated.error());
      } else if (auto put = client_.put(secretPath_, secretObject(*rotated, resourceVersion))) {
        rotations_.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("component=certs event=certificates_rotated step={} secret={}/{}",
                     rotationStepName(step), options_.ns, options_.name);
        certs = std::move(*rotated);
      } else if (put.error().status == 409) {
        // Another replica rotated first (the resourceVersion moved): take what it wrote.
        certs = readOrCreate(resourceVersion, ours);
        if (!certs) return std::unexpected(certs.error());
      } else {
        failures_.fetch_add(1, std::memory_order_relaxed);
        spdlog::error(
            "component=certs event=rotation_failed step={} secret={}/{} error=\"{}\" "
            "hint=\"the service account needs update on that Secret\"",
            rotationStepName(step), options_.ns, options_.name, put.error().describe());
      }
    }
  }
  const bool trustChanged = certs->caBundle != written_.caBundle;
  if (auto w = writeFiles(*certs); !w) return w;
  injectionPending_.store(!injector_.inject(certs->caBundle), std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    auto leafExpiry = [](const std::string& pem) {
      auto facts = readCertificates(pem);
      return facts ? unixSeconds(facts->front().notAfter) : 0.0;
    };
    facts_.servingExpiry = leafExpiry(certs->serving.certificate);
    facts_.clientExpiry = leafExpiry(certs->client.certificate);
    if (auto bundle = readCertificates(certs->caBundle)) {
      // The CA that matters is the one expiring last: until then there is a valid one.
      facts_.caExpiry = 0;
      for (const auto& ca : *bundle)
        facts_.caExpiry = std::max(facts_.caExpiry, unixSeconds(ca.notAfter));
    }
  }
  if (trustChanged && onTrustChanged_) onTrustChanged_(certs->caBundle);
  return {};
}

std::expected<void, std::string> ServingSecret::bootstrap() {
  std::expected<void, std::string> last;
  auto wait = std::chrono::milliseconds(500);
  for (int attempt = 0; attempt < 7; ++attempt) {  // 0.5 + 1 + … + 16 s: about 30 s in all
    last = round();
    if (last) return last;
    spdlog::warn("component=certs event=bootstrap_retry attempt={} error=\"{}\"", attempt + 1,
                 last.error());
    std::unique_lock lock(mutex_);
    if (wake_.wait_for(lock, wait, [this] { return stopping_; })) break;
    wait *= 2;
  }
  return last;
}

void ServingSecret::start(std::function<void(const std::string&)> onTrustChanged) {
  onTrustChanged_ = std::move(onTrustChanged);
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    auto interval = [this] {
      return injectionPending_.load(std::memory_order_relaxed)
                 ? std::min(options_.checkInterval, std::chrono::seconds(5))
                 : options_.checkInterval;
    };
    for (;;) {
      // A round every interval, or at once when asked (enableTakeOver).
      wake_.wait_for(lock, interval(), [this] { return stopping_ || roundNow_; });
      if (stopping_) break;
      roundNow_ = false;
      lock.unlock();
      if (auto done = round(); !done) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("component=certs event=round_failed error=\"{}\"", done.error());
      }
      lock.lock();
    }
  });
}

void ServingSecret::enableTakeOver() {
  injector_.enableTakeOver();
  {
    std::lock_guard lock(mutex_);
    roundNow_ = true;
  }
  wake_.notify_all();
}

void ServingSecret::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServingSecret::writeMetrics(telemetry::ExpositionWriter& out) const {
  Facts facts;
  {
    std::lock_guard lock(mutex_);
    facts = facts_;
  }
  using telemetry::MetricType;
  auto& expiry = out.family(
      "xmetrics_certificate_expiry_timestamp_seconds", MetricType::kGauge,
      "When each certificate of the serving-cert Secret expires (Unix seconds); the CA is the "
      "last one of its bundle to expire.");
  expiry.sample({{"certificate", "serving"}}, facts.servingExpiry);
  expiry.sample({{"certificate", "client"}}, facts.clientExpiry);
  expiry.sample({{"certificate", "ca"}}, facts.caExpiry);
  out.family("xmetrics_certificate_rotations_total", MetricType::kCounter,
             "Rotation steps this replica wrote to the serving-cert Secret.")
      .sample({}, static_cast<double>(rotations_.load(std::memory_order_relaxed)));
  out.family("xmetrics_certificate_round_failures_total", MetricType::kCounter,
             "Rounds that could not read, create or update the Secret.")
      .sample({}, static_cast<double>(failures_.load(std::memory_order_relaxed)));
  out.family("xmetrics_ca_bundle_injections_total", MetricType::kCounter,
             "Times this replica set an APIService's caBundle.")
      .sample({}, static_cast<double>(injector_.injections()));
}

}  // namespace xmetrics::certs

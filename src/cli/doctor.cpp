#include "cli/doctor.hpp"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <memory>
#include <set>

#include "core/json_fields.hpp"
#include "core/quantity.hpp"
#include "core/strings.hpp"
#include "core/time_format.hpp"

namespace xmetrics::cli::doctor {
namespace {

using core::lowercase;
using core::json::objectAt;
using core::json::str;

std::optional<double> numberAt(const boost::json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Shortest decimal that round-trips: 824, 91.56, 0.25.
std::string decimal(double v) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc() ? std::string(buffer, end) : "?";
}

// A ratio for people: 91.56 rather than 91.55555555555556.
std::string rounded(double v) { return decimal(std::round(v * 100) / 100); }

}  // namespace

std::string_view verdictText(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk:
      return "OK";
    case Verdict::kWarn:
      return "WARN";
    case Verdict::kFail:
      return "FAIL";
  }
  return "?";
}

std::string renderText(const std::vector<Check>& checks) {
  std::size_t width = 0;
  for (const auto& c : checks) width = std::max(width, c.name.size());
  std::string out;
  int counts[3] = {0, 0, 0};
  for (const auto& c : checks) {
    ++counts[static_cast<int>(c.verdict)];
    std::string verdict(verdictText(c.verdict));
    out += verdict + std::string(5 - verdict.size(), ' ') + c.name +
           std::string(width - c.name.size() + 2, ' ');
    if (!c.subject.empty()) out += c.subject + ": ";
    out += c.summary + "\n";
    const std::string indent(5 + width + 2, ' ');
    for (const auto& e : c.evidence) out += indent + e + "\n";
    if (c.verdict != Verdict::kOk && !c.fix.empty()) out += indent + "fix: " + c.fix + "\n";
  }
  out += "\n" + std::to_string(counts[0]) + " OK, " + std::to_string(counts[1]) + " WARN, " +
         std::to_string(counts[2]) + " FAIL\n";
  return out;
}

boost::json::object renderJson(const std::vector<Check>& checks) {
  boost::json::array list;
  int counts[3] = {0, 0, 0};
  for (const auto& c : checks) {
    ++counts[static_cast<int>(c.verdict)];
    boost::json::array evidence;
    for (const auto& e : c.evidence) evidence.emplace_back(e);
    boost::json::object o{{"name", c.name},
                          {"verdict", verdictText(c.verdict)},
                          {"summary", c.summary},
                          {"evidence", std::move(evidence)}};
    if (!c.subject.empty()) o["subject"] = c.subject;
    if (!c.problem.empty()) o["problem"] = c.problem;
    if (c.verdict != Verdict::kOk && !c.fix.empty()) o["fix"] = c.fix;
    list.push_back(std::move(o));
  }
  return {{"checks", std::move(list)},
          {"ok", counts[0]},
          {"warn", counts[1]},
          {"fail", counts[2]},
          {"exitCode", exitCode(checks)}};
}

int exitCode(const std::vector<Check>& checks) {
  bool warn = false;
  for (const auto& c : checks) {
    if (c.verdict == Verdict::kFail) return 1;
    warn = warn || c.verdict == Verdict::kWarn;
  }
  return warn ? 2 : 0;
}

// ---------------------------------------------------------------------------------------------

HpaMath explainHpa(const HpaMathInput& in) {
  // As pkg/controller/podautoscaler/replica_calculator.go: values in milli-units (MilliValue
  // rounds up), AverageValue compares usage/current replicas to the per-pod target,
  // Value compares the usage to the target and scales the ready pods by the ratio.
  HpaMath out;
  auto milli = [](double v) { return static_cast<double>(std::ceil(v * 1000 - 1e-9)); };
  double usage = milli(in.value);
  double target = milli(in.target);
  int current = std::max(in.currentReplicas, 0);
  std::string valueText = core::formatQuantity(in.value);
  int desired = current;
  std::string why;
  if (target <= 0) {
    out.shown =
        valueText + "/" + in.targetText + (in.type == TargetType::kAverageValue ? " (avg)" : "");
    out.desired = std::clamp(current, in.minReplicas, std::max(in.minReplicas, in.maxReplicas));
    out.explanation = "the target " + in.targetText + " is not positive; the HPA cannot use it";
    return out;
  }
  if (in.type == TargetType::kAverageValue) {
    double perPod = current > 0 ? std::ceil(usage / current) : usage;
    out.shown = core::formatQuantity(perPod / 1000) + "/" + in.targetText + " (avg)";
    out.ratio = current > 0 ? usage / (target * current) : usage / target;
    out.withinTolerance = std::abs(1.0 - out.ratio) <= kHpaTolerance;
    why = "AverageValue target " + in.targetText + " per pod: xmetrics serves " + valueText;
    if (current > 0) {
      why += ", the HPA divides it by the " + std::to_string(current) +
             " current replicas: " + valueText + "/" + std::to_string(current) + " = " +
             core::formatQuantity(perPod / 1000) + " per pod (kubectl shows " + out.shown +
             "); ratio " + rounded(out.ratio);
    }
    if (current > 0 && out.withinTolerance) {
      why += " is within the tolerance " + decimal(kHpaTolerance) + " of 1: keep " +
             std::to_string(current);
    } else {
      desired = static_cast<int>(std::ceil(usage / target - 1e-9));
      why +=
          "; desired = ceil(" + valueText + "/" + in.targetText + ") = " + std::to_string(desired);
    }
  } else {
    out.shown = valueText + "/" + in.targetText;
    out.ratio = usage / target;
    out.withinTolerance = std::abs(1.0 - out.ratio) <= kHpaTolerance;
    why = "Value target " + in.targetText + " for the whole metric: xmetrics serves " + valueText +
          ", ratio " + valueText + "/" + in.targetText + " = " + rounded(out.ratio);
    if (current > 0 && out.withinTolerance) {
      why += " is within the tolerance " + decimal(kHpaTolerance) + " of 1: keep " +
             std::to_string(current);
    } else {
      // The HPA multiplies by its ready pods; the current replicas stand in for them here.
      desired = static_cast<int>(std::ceil(out.ratio * std::max(current, 1) - 1e-9));
      why += "; desired = ceil(" + std::to_string(std::max(current, 1)) + " × " +
             rounded(out.ratio) + ") = " + std::to_string(desired);
    }
  }
  int maxReplicas = std::max(in.minReplicas, in.maxReplicas);
  out.desired = std::clamp(desired, in.minReplicas, maxReplicas);
  if (out.desired != desired) {
    why +=
        ", " +
        std::string(out.desired > desired ? "raised to minReplicas " : "capped at maxReplicas ") +
        std::to_string(out.desired);
  }
  out.explanation = why;
  return out;
}

// ---------------------------------------------------------------------------------------------

namespace {

bool isInvalidKeys(std::string_view e) {
  return contains(e, "403 Forbidden") || contains(e, "401 Unauthorized") ||
         contains(e, "check the API and application keys");
}

bool isRateLimited(std::string_view e) {
  return contains(e, "429") || contains(e, "rate limited") || contains(e, "rate limit") ||
         contains(e, "Rate limit");
}

const std::string kKeysFix =
    "give xmetrics a valid Datadog API key and application key for this site (DD_API_KEY / "
    "DD_APP_KEY, or --datadog-api-key-file / --datadog-app-key-file, which are re-read when the "
    "Secret changes); check DD_SITE matches the organisation's site";
const std::string kRateFix =
    "fewer distinct queries per refresh (HPAs that ask the same query share one), a longer "
    "--refresh-period, or a higher query rate limit from Datadog; every client using the same API "
    "key spends the same budget";

}  // namespace

Finding classifyBackend(const boost::json::object& backend) {
  Finding f;
  std::string name = str(backend, "name");
  auto* reachableValue = backend.if_contains("reachable");
  bool reachable = !reachableValue || !reachableValue->is_bool() || reachableValue->as_bool();
  std::string lastError = str(backend, "lastError");
  std::string budget;
  bool spent = false;
  if (auto* details = objectAt(backend, "details")) {
    for (const auto& [k, v] : *details) {
      std::string text = v.is_string() ? std::string(v.as_string()) : boost::json::serialize(v);
      f.evidence.push_back(std::string(k) + ": " + text);
      if (k.starts_with("endpoint ")) {
        budget += (budget.empty() ? "" : "; ") + text;
        // "<state>; <remaining> of <limit> calls left per <period>s, resets in <n>s[, rate limited
        // for <n>s]" (DatadogBackend::health).
        spent = spent || contains(text, "; 0 of ") || contains(text, "rate limited for");
      }
    }
  }
  if (!lastError.empty()) f.evidence.insert(f.evidence.begin(), "last error: " + lastError);
  if (auto calls = numberAt(backend, "calls"); calls && *calls > 0) {
    f.evidence.push_back("calls: " + decimal(*calls));
  }
  if (isInvalidKeys(lastError)) {
    f.verdict = Verdict::kFail;
    f.problem = "invalid-keys";
    f.summary = name + ": invalid keys: the backend refuses xmetrics' credentials (" +
                (contains(lastError, "401") ? "401 Unauthorized" : "403 Forbidden") + ")";
    f.fix = kKeysFix;
    return f;
  }
  if (isRateLimited(lastError) || spent) {
    f.verdict = Verdict::kFail;
    f.problem = "rate-limited";
    // The endpoint's state ("ok; ") says nothing here; the budget does.
    std::string shown = budget.starts_with("ok; ") ? budget.substr(4) : budget;
    f.summary = name + ": rate limited" + (shown.empty() ? "" : " (" + shown + ")");
    f.fix = kRateFix;
    return f;
  }
  if (!reachable) {
    f.verdict = Verdict::kFail;
    f.problem = "backend-unreachable";
    f.summary = name + ": unreachable" + (lastError.empty() ? "" : ": " + lastError);
    f.fix =
        "check the backend's address and the network path from xmetrics to it "
        "(proxy, DNS, egress rules); `xmetrics status` shows each endpoint";
    return f;
  }
  if (!lastError.empty()) {
    f.verdict = Verdict::kWarn;
    f.problem = "backend-error";
    f.summary = name + ": reachable, but the last call failed: " + lastError;
    f.fix = "see the error; the metrics it affects show it too";
    return f;
  }
  f.summary = name + ": reachable" + (budget.empty() ? "" : "; " + budget);
  return f;
}

std::string describeResolution(const boost::json::object& metric) {
  std::string resolution = str(metric, "resolution");
  std::string object = str(metric, "datadogMetric");
  if (resolution.starts_with("datadogmetric ")) return "DatadogMetric " + resolution.substr(14);
  if (contains(resolution, "autogen") && !object.empty()) {
    return std::string(resolution.starts_with("configured") ? "configured" : "inline") +
           " (served through autogen DatadogMetric " + object + ")";
  }
  return resolution.empty() ? "inline" : resolution;
}

Finding classifyMetric(const boost::json::object& metric) {
  Finding f;
  std::string error = str(metric, "error");
  std::string query = str(metric, "query");
  std::string object = str(metric, "datadogMetric");
  auto* validValue = metric.if_contains("valid");
  bool valid = validValue && validValue->is_bool() && validValue->as_bool();
  bool hasValue = metric.contains("value");
  if (valid) {
    f.summary = "valid";
    return f;
  }
  f.verdict = Verdict::kFail;
  f.evidence.push_back("error: " + error);
  if (error.starts_with("DatadogMetric ") && contains(error, " not found")) {
    f.problem = "datadogmetric-missing";
    f.summary = "DatadogMetric " + object + " does not exist";
    auto slash = object.find('/');
    f.fix = slash == std::string::npos
                ? "create the DatadogMetric, or fix the HPA's metric name"
                : "create it (kubectl apply a DatadogMetric named \"" + object.substr(slash + 1) +
                      "\" in namespace \"" + object.substr(0, slash) +
                      "\"), or fix the HPA's metric name";
    return f;
  }
  if (contains(error, "names a DatadogMetric, but DatadogMetric support is off")) {
    f.problem = "datadogmetric-missing";
    f.summary = "the HPA names a DatadogMetric but xmetrics runs without DatadogMetric support";
    f.fix = "start xmetrics with --use-datadogmetric-crd=true (and the CRD installed)";
    return f;
  }
  if (error.starts_with("DatadogMetric ") &&
      (contains(error, " is invalid") || contains(error, "asks for backend"))) {
    f.problem = "datadogmetric-invalid";
    f.summary = "DatadogMetric " + object + " is invalid";
    if (auto at = error.find(" is invalid: "); at != std::string::npos) {
      f.summary += ": " + error.substr(at + 13, error.find("; fix its spec") - at - 13);
    }
    auto fix = error.find("; ");
    f.fix = fix == std::string::npos ? "fix the object's spec" : error.substr(fix + 2);
    if (contains(error, " is invalid")) {
      f.fix = "fix its spec (kubectl edit datadogmetric -n " + object.substr(0, object.find('/')) +
              " " + object.substr(object.find('/') + 1) +
              "): " + error.substr(error.find(" is invalid: ") + 13);
      if (auto cut = f.fix.rfind("; fix its spec"); cut != std::string::npos) f.fix.resize(cut);
    }
    return f;
  }
  if (hasValue) {
    // There is a point, but it is older than max-age (the only way a metric with a value is not
    // valid): served as an error, never as a number. The error says why no newer point came.
    f.problem = "stale-value";
    auto age = numberAt(metric, "ageSeconds");
    f.summary = "stale value: " + str(metric, "value") +
                (age ? ": its newest data point is " + decimal(*age) + "s old" : "");
    if (!str(metric, "timestamp").empty())
      f.evidence.push_back("data point at " + str(metric, "timestamp"));
    if (isInvalidKeys(error) || isRateLimited(error) || !error.starts_with("stale")) {
      f.fix =
          "the fetches fail (see the error and the backend check); the value comes back with "
          "the next successful fetch";
    } else {
      f.fix = "the source stopped reporting " + str(metric, "metricName") +
              ": check the app or agent that sends it (the query is " + query + ")";
    }
    return f;
  }
  if (isInvalidKeys(error)) {
    f.problem = "invalid-keys";
    f.summary = "invalid keys: the backend refuses xmetrics' credentials (see the backend check)";
    f.fix = kKeysFix;
    return f;
  }
  if (isRateLimited(error)) {
    f.problem = "rate-limited";
    f.summary = "rate limited: the backend's rate limit stops the fetch (see the backend check)";
    f.fix = kRateFix;
    return f;
  }
  if (contains(error, "no series matches") || contains(error, "no serie was found") ||
      contains(error, "returned no series")) {
    f.problem = "no-series";
    f.summary = "no series matches " + query;
    f.fix = "check the metric name and tags the app sends against the query " + query;
    return f;
  }
  if (contains(error, "no data for") || contains(error, "only null values")) {
    f.problem = "no-data";
    f.summary = "no data: the series exist but have no point in the query window";
    f.fix = "the source stopped sending " + str(metric, "metricName") +
            "; check the app or agent (the query is " + query + ")";
    return f;
  }
  if (contains(error, "rejected the query")) {
    f.problem = "rejected-query";
    f.summary = "bad query: the backend rejects " + query;
    f.fix =
        "fix the query (the DatadogMetric's spec.query, the metrics setting, or the HPA's "
        "metric name and selector)";
    return f;
  }
  f.problem = "metric-error";
  f.summary = "not valid";
  f.fix = "see the error";
  return f;
}

Finding classifyNoSeries(const std::string& metricName, bool metricHasData,
                         const std::string& metricMessage, const std::vector<TagProbe>& probes) {
  Finding f;
  f.verdict = Verdict::kFail;
  if (!metricHasData) {
    f.problem = "metric-missing";
    f.summary = "missing metric: " + metricName + " has no series at all, with any tags";
    f.evidence.push_back("the same metric without a selector: " + metricMessage);
    f.fix =
        "check the metric name (spelling, dots, the namespace the app reports) and that the "
        "app or agent sends it";
    return f;
  }
  f.evidence.push_back("the same metric without a selector has data");
  std::vector<std::string> bad;
  for (const auto& p : probes) {
    f.evidence.push_back("with only " + p.requirement + ": " +
                         (p.hasData ? std::string("data") : "no data (" + p.message + ")"));
    if (!p.hasData) bad.push_back(p.requirement);
  }
  f.problem = "tag-typo";
  if (bad.empty()) {
    f.summary = "typo in tags: metric " + metricName +
                " exists and each selector requirement matches series, but no series matches "
                "them all together";
    f.fix =
        "compare the HPA's selector with the tags the series carry; one series must have "
        "all of them";
    return f;
  }
  std::string list;
  for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
  f.summary = "typo in tags: metric " + metricName + " exists, but no series has " + list;
  f.fix = "fix the HPA's metric.selector (" + list +
          ") to the tags the app sends, or tag the metric that way";
  return f;
}

Finding classifyLeader(const boost::json::object* leader, const boost::json::object* lease,
                       const std::string& leaseName, core::Clock::time_point now) {
  Finding f;
  const std::string fix =
      "check xmetrics' logs for leader election errors and that its service account may get, "
      "create and update leases (coordination.k8s.io) in its namespace: without a leader no "
      "replica polls the backends (values go stale) and no DatadogMetric status is written";
  bool enabled = false;
  if (leader) {
    auto* e = leader->if_contains("enabled");
    enabled = e && e->is_bool() && e->as_bool();
    auto* is = leader->if_contains("isLeader");
    if (enabled) {
      f.evidence.push_back(
          "replica reached: identity " + str(*leader, "identity") + ", leader " +
          (is && is->is_bool() && is->as_bool() ? "yes" : "no") +
          (str(*leader, "holder").empty() ? "" : ", sees holder " + str(*leader, "holder")));
    }
  }
  if (!leader && !lease) {
    f.summary = "leader election not in use (single replica)";
    return f;
  }
  if (leader && !enabled) {
    f.summary = "leader election off (single replica)";
    return f;
  }
  if (!lease) {
    f.verdict = Verdict::kFail;
    f.problem = "leader-not-elected";
    f.summary =
        "leader not elected: leader election is on but Lease " + leaseName + " does not exist";
    f.fix = fix;
    return f;
  }
  const auto* spec = objectAt(*lease, "spec");
  std::string holder = spec ? str(*spec, "holderIdentity") : "";
  std::string renew = spec ? str(*spec, "renewTime") : "";
  // A plain number (-1: none) rather than an optional: GCC 12 warns about a maybe-uninitialized
  // optional<double> here.
  double duration = -1;
  if (spec) duration = numberAt(*spec, "leaseDurationSeconds").value_or(-1);
  auto renewed = core::parseRfc3339(renew);
  f.evidence.push_back("Lease " + leaseName + ": holder " + (holder.empty() ? "<none>" : holder) +
                       ", renewed " + (renew.empty() ? "never" : renew) + ", duration " +
                       (duration >= 0 ? decimal(duration) + "s" : "<none>"));
  auto expiry = renewed ? *renewed + std::chrono::seconds(static_cast<int64_t>(duration))
                        : core::Clock::time_point{};
  bool expired = holder.empty() || !renewed || duration < 0 || expiry < now;
  if (expired) {
    // A Lease without a running holder on a server that does not report leader election may be a
    // leftover of another version: worth a look, not a failure.
    f.verdict = leader ? Verdict::kFail : Verdict::kWarn;
    f.problem = "leader-not-elected";
    std::string since;
    if (renewed && duration >= 0) {
      auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - expiry).count();
      since = " (" + std::to_string(ago) + "s ago)";
    }
    f.summary = "leader not elected: Lease " + leaseName +
                (holder.empty() ? " has no holder" : " held by " + holder + " expired" + since);
    if (!leader) f.summary += "; the replica reached does not report leader election";
    f.fix = fix;
    return f;
  }
  f.summary = "leader " + holder + " (Lease " + leaseName + " renewed " + renew + ")";
  return f;
}

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------

std::vector<Finding> findAutogenShadowing(const boost::json::array& metrics,
                                          const std::vector<boost::json::object>& objects) {
  std::vector<Finding> out;
  struct Object {
    std::string id, ns, name, externalName, query;
    bool autogen = false;
  };
  std::vector<Object> all;
  for (const auto& o : objects) {
    Object x;
    if (auto* meta = objectAt(o, "metadata")) {
      x.ns = str(*meta, "namespace");
      x.name = str(*meta, "name");
    }
    if (auto* spec = objectAt(o, "spec")) {
      x.externalName = lowercase(str(*spec, "externalMetricName"));
      x.query = str(*spec, "query");
    }
    x.id = x.ns + "/" + x.name;
    x.autogen = x.name.starts_with("dcaautogen-");
    all.push_back(std::move(x));
  }
  std::set<std::string> serving;
  for (const auto& m : metrics) {
    if (m.is_object() && !str(m.as_object(), "datadogMetric").empty()) {
      serving.insert(str(m.as_object(), "datadogMetric"));
    }
  }
  std::set<std::pair<std::string, std::string>> reported;
  for (const auto& value : metrics) {
    if (!value.is_object()) continue;
    const auto& m = value.as_object();
    std::string metricName = lowercase(str(m, "metricName"));
    std::string ns = str(m, "namespace");
    std::string object = str(m, "datadogMetric");
    std::string resolution = str(m, "resolution");
    std::string where = ns + "/" + metricName;
    if (resolution.starts_with("datadogmetric ")) {
      // A manual object serves; an autogen object for the same metric that nothing uses any more
      // is the Cluster Agent's collision, harmless here.
      for (const auto& a : all) {
        if (!a.autogen || a.externalName != metricName || serving.contains(a.id)) continue;
        if (!reported.insert({a.id, object}).second) continue;
        Finding f;
        f.verdict = Verdict::kWarn;
        f.problem = "autogen-shadowing";
        f.summary = "autogen DatadogMetric " + a.id + " and DatadogMetric " + object +
                    " both exist for metric " + where + "; " + object + " serves";
        auto open = resolution.find(" (");
        std::string rule = open == std::string::npos ? "" : resolution.substr(open);
        f.evidence = {
            where + " resolves to DatadogMetric " + object + rule,
            "autogen " + a.id + " (query " + a.query + ") serves no metric any more",
            "xmetrics resolves from the objects that exist now: a DatadogMetric named like the "
            "metric in the HPA's namespace, or one referenced as datadogmetric@ns:name, wins over "
            "the inline query and its autogen object at once, without a restart"};
        f.fix =
            "nothing is wrong with the values; to clean up now: kubectl delete "
            "datadogmetric -n " +
            a.ns + " " + a.name +
            " (xmetrics deletes it by itself --autogen-expiry after it went inactive); to "
            "avoid it, create DatadogMetrics before the HPAs that name them, or run with "
            "--datadogmetric-autogen=false";
        out.push_back(std::move(f));
      }
      continue;
    }
    if (object.find("/dcaautogen-") == std::string::npos) continue;
    // An autogen object serves although a manual object names this metric: say why it does not win.
    for (const auto& o : all) {
      if (o.autogen) continue;
      std::string why;
      if (o.name == metricName && o.ns != ns) {
        why = "rule 2 takes a DatadogMetric named like the metric only from the HPA's namespace " +
              ns + "; " + o.id + " is in " + o.ns;
      } else if (o.externalName == metricName && o.query != str(m, "query")) {
        why = "rule 3 takes an object whose externalMetricName is " + metricName +
              " only when its query is exactly the inline one (" + str(m, "query") + "); " + o.id +
              "'s is " + o.query;
      } else {
        continue;
      }
      if (!reported.insert({object, o.id}).second) continue;
      Finding f;
      f.verdict = Verdict::kWarn;
      f.problem = "autogen-shadowing";
      f.summary = "DatadogMetric " + o.id + " names metric " + metricName + ", but autogen " +
                  object + " serves " + where;
      f.evidence = {why};
      f.fix = "name the HPA's metric datadogmetric@" + o.ns + ":" + o.name +
              ", or create the DatadogMetric as " + metricName + " in namespace " + ns;
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace xmetrics::cli::doctor

#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

// doctor's report model and its two printed forms (text and JSON). Pure: no I/O.
namespace xmetrics::doctor {

enum class Verdict { kOk, kWarn, kFail };
std::string_view verdictText(Verdict verdict);  // "OK", "WARN", "FAIL"

// One link of the chain (or one HPA metric, one backend): what was found, why, and the fix.
struct Check {
  std::string name;     // short and stable, for scripts: "apiservice", "rbac-hpa", "hpa", ...
  std::string subject;  // what it is about when there are several: "shop/web checkout.requests"
  Verdict verdict = Verdict::kOk;
  std::string summary;  // one line
  std::string problem;  // the failure mode when not OK: "wrong-rbac", "stale-value", ...
  std::vector<std::string> evidence;
  std::string fix;  // empty when OK
};

// What a classifier concluded; becomes (part of) a Check.
struct Finding {
  Verdict verdict = Verdict::kOk;
  std::string problem;
  std::string summary;
  std::string fix;
  std::vector<std::string> evidence;
};

// A finding's verdict, problem, summary and fix into `check`; its evidence after the check's own.
void apply(Check& check, const Finding& finding);

// One line per check — `OK   apiservice  v1beta1.external.metrics.k8s.io is Available` — the
// evidence indented below it, a `fix:` line for anything not OK, and a closing count.
std::string renderText(const std::vector<Check>& checks);
boost::json::object renderJson(const std::vector<Check>& checks);
// 0 when everything is OK, 1 when anything FAILs, 2 when the worst is a WARN.
int exitCode(const std::vector<Check>& checks);

}  // namespace xmetrics::doctor

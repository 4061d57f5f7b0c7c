#include "doctor/report.hpp"

#include <algorithm>
#include <boost/json.hpp>

namespace xmetrics::doctor {

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

void apply(Check& check, const Finding& finding) {
  check.verdict = finding.verdict;
  check.problem = finding.problem;
  check.summary = finding.summary;
  check.fix = finding.fix;
  check.evidence.insert(check.evidence.end(), finding.evidence.begin(), finding.evidence.end());
}

}  // namespace xmetrics::doctor

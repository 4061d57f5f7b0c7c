#include "core/hpa_math.hpp"

#include <algorithm>
#include <cmath>

#include "core/quantity.hpp"
#include "core/strings.hpp"

namespace xmetrics::core {
namespace {

// ceil(v) as a replica count: the HPA's own counts are int32, and a value far past any target
// (a queue of 3e9 against 1) or NaN must not overflow the conversion.
int replicasOf(double v) {
  if (!(v > 0)) return 0;
  return v >= 2147483647.0 ? 2147483647 : static_cast<int>(std::ceil(v - 1e-9));
}

// A ratio for people: 91.56 rather than 91.55555555555556.
std::string rounded(double v) { return shortestDecimal(std::round(v * 100) / 100); }

}  // namespace

HpaMath explainHpa(const HpaMathInput& in) {
  // As pkg/controller/podautoscaler/replica_calculator.go: values in milli-units (MilliValue
  // rounds up), AverageValue compares usage/current replicas to the per-pod target,
  // Value compares the usage to the target and scales the ready pods by the ratio.
  HpaMath out;
  auto milli = [](double v) { return static_cast<double>(std::ceil(v * 1000 - 1e-9)); };
  double usage = milli(in.value);
  double target = milli(in.target);
  int current = std::max(in.currentReplicas, 0);
  std::string valueText = formatQuantity(in.value);
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
    out.shown = formatQuantity(perPod / 1000) + "/" + in.targetText + " (avg)";
    out.ratio = current > 0 ? usage / (target * current) : usage / target;
    out.withinTolerance = std::abs(1.0 - out.ratio) <= kHpaTolerance;
    why = "AverageValue target " + in.targetText + " per pod: xmetrics serves " + valueText;
    if (current > 0) {
      why += ", the HPA divides it by the " + std::to_string(current) +
             " current replicas: " + valueText + "/" + std::to_string(current) + " = " +
             formatQuantity(perPod / 1000) + " per pod (kubectl shows " + out.shown + "); ratio " +
             rounded(out.ratio);
    }
    if (current > 0 && out.withinTolerance) {
      why += " is within the tolerance " + shortestDecimal(kHpaTolerance) + " of 1: keep " +
             std::to_string(current);
    } else {
      desired = replicasOf(usage / target);
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
      why += " is within the tolerance " + shortestDecimal(kHpaTolerance) + " of 1: keep " +
             std::to_string(current);
    } else {
      // The HPA multiplies by its ready pods; the current replicas stand in for them here.
      desired = replicasOf(out.ratio * std::max(current, 1));
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

}  // namespace xmetrics::core

#pragma once

#include <string>

// kube-controller-manager's replica calculator for one External metric, in words and numbers:
// what `xmetrics doctor` explains for each HPA and what the status page shows beside each metric.
namespace xmetrics::core {

enum class TargetType { kValue, kAverageValue };

struct HpaMathInput {
  TargetType type = TargetType::kValue;
  double target = 0;       // the target quantity (spec ... target.value / target.averageValue)
  std::string targetText;  // as written in the HPA, e.g. "9"
  double value = 0;        // what xmetrics serves: the sum of the items' values
  int currentReplicas = 0;
  int minReplicas = 1;
  int maxReplicas = 1;
};

struct HpaMath {
  std::string shown;  // as `kubectl get hpa` shows it: "824/9 (avg)", "2472/3k"
  double ratio = 0;   // usage / target (per pod for AverageValue)
  bool withinTolerance = false;
  int desired = 0;          // the replicas this metric asks for, clamped to min/max
  std::string explanation;  // the whole computation in words and numbers
};

inline constexpr double kHpaTolerance = 0.1;  // kube-controller-manager's default

HpaMath explainHpa(const HpaMathInput& input);

}  // namespace xmetrics::core

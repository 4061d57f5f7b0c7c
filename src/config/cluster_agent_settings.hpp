#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/serve_options.hpp"

// What the Datadog Cluster Agent reads for its external metrics provider, and what xmetrics does
// with each: the table behind docs/configuration.md's "Cluster Agent settings" section and the
// start-up review of the DD_* environment (logged, served at /xmetrics/v1/config, shown by doctor).
// A migrating user must never have a setting dropped without a word.
namespace xmetrics::config {

struct ClusterAgentSetting {
  enum class Kind {
    Same,           // an xmetrics setting reads it with the same name and meaning
    Mechanism,      // accepted, with a different mechanism (`xmetrics` says which)
    NotApplicable,  // xmetrics has no such thing; warned about when set (`xmetrics` says instead)
  };
  std::string key;  // as in datadog.yaml: "external_metrics_provider.refresh_period"
  Kind kind = Kind::Same;
  std::string xmetrics;  // Same: the xmetrics setting; else what xmetrics does
  // NotApplicable / Mechanism: values that change nothing (the Cluster Agent's default, what the
  // datadog chart always writes), so setting them is an info line, not a warning.
  std::vector<std::string> harmless;
};

// The DD_* variable of a key, as the Agent binds it: DD_ + upper-cased key with '.' -> '_'.
std::string clusterAgentVariable(std::string_view key);

// Every Cluster Agent setting of the external metrics provider and every general one it reads for
// this job, in the order docs/configuration.md lists them.
const std::vector<ClusterAgentSetting>& clusterAgentSettings();

// Whether a DD_* variable belongs to a Cluster Agent feature xmetrics does not have (admission
// controller, cluster checks, orchestrator explorer, APM, ...): ignored with one info line.
bool otherClusterAgentFeature(std::string_view variable);

// Reviews every DD_* variable of `variables` (the environment, then variables a Datadog-style
// config file sets): how each is applied, which are not applicable, which are unknown. `rows`:
// the settings table; `sources` where each setting's value came from (EffectiveSetting::source:
// "flag --x", "environment variable DD_X", "\"key\" in file", "default"), so a variable another
// source won over says which.
std::vector<ServeOptions::EnvironmentNote> reviewClusterAgentVariables(
    const std::map<std::string, std::string>& variables, const std::vector<Setting>& rows,
    const std::map<std::string, std::string>& sources);

}  // namespace xmetrics::config

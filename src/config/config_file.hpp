#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

// The YAML file of --config. It holds xmetrics settings under their flag names, and may also be
// (or include) the Cluster Agent's datadog-cluster.yaml / datadog.yaml: its keys
// (`external_metrics_provider: {refresh_period: 15}`, `api_key`, `site`, `proxy: {https: ...}`)
// are read as the DD_* variables the Agent binds them to, so the ConfigMap a user mounts for the
// Cluster Agent works unchanged.
namespace xmetrics::config {

struct ConfigFile {
  std::map<std::string, std::string> settings;  // xmetrics setting name -> text
  struct Variable {
    std::string value;
    std::string key;  // where it was, "external_metrics_provider.refresh_period"
  };
  std::map<std::string, Variable> variables;  // DD_* -> value, from Datadog-style keys
  std::vector<std::string> errors;            // each names the file and the key
};

// `isSetting`: whether a name is an xmetrics setting. A key that is not one is read Datadog-style
// when it looks like one (snake_case, or a section map); any other key is an error.
ConfigFile readConfigFile(const std::string& path,
                          const std::function<bool(std::string_view)>& isSetting);

}  // namespace xmetrics::config

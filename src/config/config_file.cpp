#include "config/config_file.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

#include "config/cluster_agent_settings.hpp"

namespace xmetrics::config {
namespace {

// The Agent's one-word top-level keys (the others have an underscore or are sections).
bool datadogWord(std::string_view key) {
  for (std::string_view k : {"site", "proxy", "hostname", "env", "tags"}) {
    if (k == key) return true;
  }
  return false;
}

boost::json::value toJson(const YAML::Node& node) {
  if (node.IsMap()) {
    boost::json::object o;
    for (const auto& kv : node) o[kv.first.as<std::string>()] = toJson(kv.second);
    return o;
  }
  if (node.IsSequence()) {
    boost::json::array a;
    for (const auto& item : node) a.push_back(toJson(item));
    return a;
  }
  if (node.IsNull()) return nullptr;
  return boost::json::string(node.as<std::string>());
}

// A Datadog-style section flattened the way the Agent binds environment variables: nested keys
// joined by '.', lists of words space-separated (DD_PROXY_NO_PROXY="a b"), lists of maps as JSON
// (DD_EXTERNAL_METRICS_PROVIDER_ENDPOINTS).
void flatten(const std::string& key, const YAML::Node& node, ConfigFile& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) flatten(key + "." + kv.first.as<std::string>(), kv.second, out);
    return;
  }
  std::string value;
  if (node.IsSequence()) {
    bool words = true;
    for (const auto& item : node) words = words && item.IsScalar();
    if (words) {
      for (const auto& item : node) value += (value.empty() ? "" : " ") + item.as<std::string>();
    } else {
      value = boost::json::serialize(toJson(node));
    }
  } else if (!node.IsNull()) {
    value = node.as<std::string>();
  }
  out.variables[clusterAgentVariable(key)] = {std::move(value), key};
}

}  // namespace

ConfigFile readConfigFile(const std::string& path,
                          const std::function<bool(std::string_view)>& isSetting) {
  ConfigFile out;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root || root.IsNull()) return out;
    if (!root.IsMap()) {
      out.errors.push_back("--config " + path + ": expected a map of setting: value");
      return out;
    }
    for (const auto& kv : root) {
      auto key = kv.first.as<std::string>();
      if (isSetting(key)) {
        if (key == "metrics" && kv.second.IsSequence()) {
          // The one structured setting: handed on as flow-style YAML text, as a flag carries it.
          YAML::Emitter flow;
          flow.SetSeqFormat(YAML::Flow);
          flow.SetMapFormat(YAML::Flow);
          flow << kv.second;
          out.settings[key] = flow.c_str();
        } else if (!kv.second.IsScalar()) {
          out.errors.push_back("--config " + path + ": \"" + key + "\" must be a single value");
        } else {
          out.settings[key] = kv.second.as<std::string>();
        }
      } else if (key.find('_') != std::string::npos || kv.second.IsMap() || datadogWord(key)) {
        flatten(key, kv.second, out);
      } else {
        out.errors.push_back("--config " + path + ": unknown setting \"" + key +
                             "\" (see `xmetrics serve --help` for the names; Cluster Agent keys "
                             "are read as in datadog.yaml)");
      }
    }
  } catch (const YAML::Exception& e) {
    out.errors.push_back("--config " + path + ": " + e.what());
  }
  return out;
}

}  // namespace xmetrics::config

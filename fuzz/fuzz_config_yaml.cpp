// libFuzzer target: the YAML file of --config (xmetrics settings, or the Cluster Agent's
// datadog.yaml), read into every setting's parser the way `xmetrics serve` reads it, and the JSON a
// secret-backend command prints.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "backends/registry.hpp"
#include "config/secret_backend.hpp"
#include "config/serve_options.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace xmetrics;
using xmetrics::fuzz::check;

// The file is read by path, as `serve` reads it: one per fuzzing process, rewritten per input.
const std::string& configPath() {
  static const std::string path = "/tmp/xmetrics-fuzz-config-" + std::to_string(getpid()) + ".yaml";
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  {
    std::FILE* file = std::fopen(configPath().c_str(), "wb");
    check(file != nullptr);
    check(std::fwrite(data, 1, size, file) == size);
    std::fclose(file);
  }
  config::SettingSources sources;
  sources.configFile = configPath();
  // ENC[...] values are answered here, never by running a command the input names.
  sources.secretBackend = [](const config::SecretBackendCall& call)
      -> std::expected<std::map<std::string, std::string>, std::string> {
    std::map<std::string, std::string> secrets;
    for (const auto& handle : call.handles) secrets[handle] = "secret-" + handle;
    return secrets;
  };
  auto options = config::resolveServeOptions(sources, backends::registeredBackends().settings());
  if (!options) {
    check(!options.error().empty());
    for (const auto& error : options.error()) check(!error.empty());
  }
  auto secrets = config::parseSecretBackendOutput(text, {"api_key", "app_key"});
  if (secrets) check(secrets->contains("api_key") && secrets->contains("app_key"));
  return 0;
}

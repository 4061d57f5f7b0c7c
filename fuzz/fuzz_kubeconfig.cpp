// libFuzzer target: the kubeconfig file of --kubeconfig (any YAML a user or a tool wrote).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "kube/kube_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using xmetrics::fuzz::check;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* context : {"", "prod"}) {
    auto config = xmetrics::kube::parseKubeconfig(text, "/etc/xmetrics/kubeconfig", context);
    if (config) {
      check(!config->server.empty() && config->server.back() != '/');
    } else {
      // Errors name the file.
      check(config.error().starts_with("--kubeconfig /etc/xmetrics/kubeconfig: "));
    }
  }
  return 0;
}

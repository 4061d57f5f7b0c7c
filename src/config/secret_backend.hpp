#pragma once

#include <chrono>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The Datadog Agent's secret backend, as the Agent runs it: a setting whose whole value is
// ENC[handle] is resolved by running secret_backend_command with secret_backend_arguments, the
// JSON {"version": "1.0", "secrets": [handles]} on stdin, and reading
// {"<handle>": {"value": "...", "error": null}, ...} from stdout, within secret_backend_timeout and
// at most secret_backend_output_max_size bytes. The command must be a file owned by the user
// xmetrics runs as, executable by it, and with no rights for group or others (group execute is
// allowed with secret_backend_command_allow_group_exec_perm), so nobody else can swap it.
namespace xmetrics::config {

struct SecretBackendCall {
  std::string command;
  std::vector<std::string> arguments;
  std::chrono::seconds timeout{30};
  std::size_t outputMaxSize = 1024 * 1024;
  bool allowGroupExec = false;
  std::vector<std::string> handles;  // distinct, in order of first use
};

// handle -> secret. The error never holds a secret: it names the command, the handle and the
// cause (the command's own stderr, cut to a line, is included: it is what the Agent logs too).
using SecretBackend = std::function<std::expected<std::map<std::string, std::string>, std::string>(
    const SecretBackendCall&)>;

// The handle of an ENC[handle] value; nullopt for any other text.
std::optional<std::string> encryptedHandle(std::string_view value);

// Runs the command for real.
std::expected<std::map<std::string, std::string>, std::string> runSecretBackend(
    const SecretBackendCall& call);

// The command's answer, parsed: every handle asked for must be there without an error.
std::expected<std::map<std::string, std::string>, std::string> parseSecretBackendOutput(
    std::string_view output, const std::vector<std::string>& handles);

}  // namespace xmetrics::config

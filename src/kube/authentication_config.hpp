#pragma once

#include <boost/json/object.hpp>
#include <expected>
#include <string>

#include "auth/authenticator.hpp"

namespace xmetrics::kube {

// Reads kube-system/extension-apiserver-authentication (client-ca-file, requestheader-*), whose
// list values are JSON arrays of strings. `base` supplies what the ConfigMap does not (static
// tokens); `extraClientCaPem` is xmetrics' own CA, trusted apart from client-ca-file as the
// replicas' identity (AuthenticationConfig::replicaCa; `xmetrics status` with the kubeconfig serve
// wrote uses it too). Errors name the key.
std::expected<auth::AuthenticationConfig, std::string> authenticationConfigFrom(
    const boost::json::object& configMap, auth::AuthenticationConfig base,
    const std::string& extraClientCaPem = "");

}  // namespace xmetrics::kube

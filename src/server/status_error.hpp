#pragma once

#include <string>
#include <string_view>

#include "server/https_server.hpp"

namespace xmetrics::server {

// A metav1.Status failure body: what kube-apiserver clients decode, and what `kubectl describe hpa`
// shows in events. `message` must name the object, the cause and the fix.
HttpResponse statusError(unsigned code, std::string_view reason, std::string_view message,
                         unsigned version = 11);

// A JSON body with Content-Type application/json (every xmetrics response is JSON).
HttpResponse jsonResponse(unsigned code, std::string body, unsigned version = 11);

}  // namespace xmetrics::server

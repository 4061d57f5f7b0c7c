#include "kube/kube_client.hpp"

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

namespace xmetrics::kube {

std::string KubeError::describe() const {
  std::string s = status ? "HTTP " + std::to_string(status) : std::string("transport error");
  if (!reason.empty()) s += " " + reason;
  if (!message.empty()) s += ": " + message;
  return s;
}

KubeClient::KubeClient(KubeConfig config, double qps, int burst)
    : config_(std::move(config)),
      http_(config_.tls),
      qps_(qps),
      burst_(burst),
      tokens_(burst),
      lastRefill_(std::chrono::steady_clock::now()) {}

void KubeClient::waitForToken() {
  std::unique_lock lock(bucketMutex_);
  while (true) {
    auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - lastRefill_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    lastRefill_ = now;
    if (tokens_ >= 1) {
      tokens_ -= 1;
      return;
    }
    auto wait = std::chrono::duration<double>((1 - tokens_) / qps_);
    lock.unlock();
    std::this_thread::sleep_for(wait);
    lock.lock();
  }
}

http::Headers KubeClient::headers() {
  http::Headers h{{"Accept", "application/json"}, {"User-Agent", "xmetrics"}};
  std::string token = config_.token;
  if (!config_.tokenFile.empty()) {
    // Projected service-account tokens rotate: read the file on every call (it is small and cached
    // by the kernel).
    std::ifstream in(config_.tokenFile);
    std::ostringstream ss;
    ss << in.rdbuf();
    token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  }
  if (!token.empty()) h["Authorization"] = "Bearer " + token;
  return h;
}

KubeResult<boost::json::value> KubeClient::call(std::string_view method, std::string_view path,
                                                const boost::json::value* body,
                                                std::string_view contentType) {
  waitForToken();
  http::Request r;
  r.method = std::string(method);
  r.url = config_.server + std::string(path);
  r.headers = headers();
  if (body) {
    r.body = boost::json::serialize(*body);
    r.headers["Content-Type"] = std::string(contentType);
  }
  auto response = http_.send(r);
  if (!response) return std::unexpected(KubeError{0, "", response.error()});
  boost::system::error_code ec;
  auto parsed = boost::json::parse(response->body, ec);
  if (response->status >= 200 && response->status < 300) {
    if (ec) {
      return std::unexpected(KubeError{
          response->status, "InvalidResponse",
          std::string(method) + " " + std::string(path) + " returned a body that is not JSON"});
    }
    return parsed;
  }
  KubeError error{response->status, "", ""};
  if (!ec && parsed.is_object()) {
    const auto& o = parsed.as_object();
    if (auto* reason = o.if_contains("reason"); reason && reason->is_string()) {
      error.reason = reason->as_string().c_str();
    }
    if (auto* message = o.if_contains("message"); message && message->is_string()) {
      error.message = message->as_string().c_str();
    }
  }
  if (error.message.empty()) {
    error.message =
        std::string(method) + " " + std::string(path) + ": " + response->body.substr(0, 200);
  }
  return std::unexpected(error);
}

KubeResult<boost::json::value> KubeClient::get(std::string_view path) {
  return call("GET", path, nullptr, "");
}
KubeResult<boost::json::value> KubeClient::post(std::string_view path,
                                                const boost::json::value& body) {
  return call("POST", path, &body, "application/json");
}
KubeResult<boost::json::value> KubeClient::put(std::string_view path,
                                               const boost::json::value& body) {
  return call("PUT", path, &body, "application/json");
}
KubeResult<boost::json::value> KubeClient::mergePatch(std::string_view path,
                                                      const boost::json::value& body) {
  return call("PATCH", path, &body, "application/merge-patch+json");
}
KubeResult<boost::json::value> KubeClient::del(std::string_view path) {
  return call("DELETE", path, nullptr, "");
}

std::expected<long, std::string> KubeClient::stream(
    std::string_view path, const std::function<bool(std::string_view)>& onData,
    const std::atomic<bool>* cancel) {
  waitForToken();
  http::Request r;
  r.url = config_.server + std::string(path);
  r.headers = headers();
  r.timeout = std::chrono::milliseconds(0);
  return http_.stream(r, onData, cancel);
}

}  // namespace xmetrics::kube

#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <expected>
#include <mutex>
#include <string>
#include <string_view>

#include "http/http_client.hpp"
#include "kube/kube_config.hpp"

namespace xmetrics::kube {

// A failed API call. `status` is the HTTP code (0 for transport failures); `reason` and `message`
// come from the metav1.Status body when there is one.
struct KubeError {
  long status = 0;
  std::string reason;
  std::string message;
  std::string describe() const;
};

template <typename T>
using KubeResult = std::expected<T, KubeError>;

// JSON calls to kube-apiserver with client-side rate limiting (token bucket: `qps` sustained,
// `burst` at once), like client-go's defaults. Thread-safe.
class KubeClient {
 public:
  explicit KubeClient(KubeConfig config, double qps = 20, int burst = 40);

  KubeResult<boost::json::value> get(std::string_view path);
  KubeResult<boost::json::value> post(std::string_view path, const boost::json::value& body);
  KubeResult<boost::json::value> put(std::string_view path, const boost::json::value& body);
  KubeResult<boost::json::value> mergePatch(std::string_view path, const boost::json::value& body);
  KubeResult<boost::json::value> del(std::string_view path);

  // A streaming GET (watch); see http::HttpClient::stream. Not rate limited beyond its start.
  std::expected<long, std::string> stream(std::string_view path,
                                          const std::function<bool(std::string_view)>& onData,
                                          const std::atomic<bool>* cancel);

  const KubeConfig& config() const { return config_; }

  // Ends every call in flight (their sockets are shut down) and fails every later one: for
  // shutdown, so that open watches end at once instead of at libcurl's next progress tick, up to
  // a second later.
  void cancel() { http_.cancel(); }

 private:
  KubeResult<boost::json::value> call(std::string_view method, std::string_view path,
                                      const boost::json::value* body, std::string_view contentType);
  http::Headers headers();
  void waitForToken();

  KubeConfig config_;
  http::HttpClient http_;
  double qps_;
  double burst_;
  std::mutex bucketMutex_;
  double tokens_;
  std::chrono::steady_clock::time_point lastRefill_;
};

}  // namespace xmetrics::kube

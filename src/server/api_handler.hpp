#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <string>

#include "auth/authenticator.hpp"
#include "catalog/catalog.hpp"
#include "poller/poller.hpp"
#include "server/https_server.hpp"
#include "store/value_store.hpp"

namespace xmetrics::server {

struct ApiHandlerOptions {
  std::chrono::seconds maxAge{120};
  std::chrono::seconds firstFetchTimeout{5};
  std::chrono::seconds refreshPeriod{30};
  std::size_t discoveryLimit = 100;  // metric names listed in the APIResourceList at most
};

// Routes every request. Reads only published snapshots; never calls a backend. Paths:
//   /healthz /livez /readyz                              open, no authentication
//   /apis, /apis/external.metrics.k8s.io[/v1beta1]       discovery
//   /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...
//   /openapi/v2, /openapi/v3                             404 (the aggregator then skips them
//   quietly) /xmetrics/v1/status                                  what `xmetrics status` prints
class ApiHandler final : public RequestHandler {
 public:
  using ExtraStatus = std::function<boost::json::object()>;
  ApiHandler(ApiHandlerOptions options, const auth::Authenticator& authenticator,
             store::ValueStore& values, catalog::Catalog& catalog, poller::Poller& poller,
             ExtraStatus extraStatus = {});

  // RequestHandler
  void handle(const HttpRequest& request, const PeerCertificate& peer,
              ResponseSlotPtr slot) override;

  // The JSON behind /xmetrics/v1/status.
  boost::json::object statusReport() const;

 private:
  HttpResponse health(std::string_view path, unsigned version) const;
  HttpResponse discovery(std::string_view path, unsigned version) const;
  void externalMetric(std::string_view ns, std::string_view metric, std::string_view selectorText,
                      unsigned version, ResponseSlotPtr slot);
  HttpResponse answer(const std::string& key, std::string_view ns, std::string_view metric,
                      std::string_view selector, unsigned version) const;

  ApiHandlerOptions options_;
  const auth::Authenticator& authenticator_;
  store::ValueStore& values_;
  catalog::Catalog& catalog_;
  poller::Poller& poller_;
  ExtraStatus extraStatus_;
};

}  // namespace xmetrics::server

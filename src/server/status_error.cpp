#include "server/status_error.hpp"

#include <boost/json.hpp>

#include "core/strings.hpp"

namespace xmetrics::server {

HttpResponse jsonResponse(unsigned code, std::string body, unsigned version) {
  HttpResponse response{static_cast<boost::beast::http::status>(code), version};
  response.set(boost::beast::http::field::content_type, "application/json");
  response.set(boost::beast::http::field::cache_control, "no-cache, private");
  response.body() = std::move(body);
  return response;
}

HttpResponse statusError(unsigned code, std::string_view reason, std::string_view message,
                         unsigned version) {
  boost::json::object status{
      {"kind", "Status"},
      {"apiVersion", "v1"},
      {"metadata", boost::json::object{}},
      // Messages quote what a request or a backend sent: always valid UTF-8, or the HPA and
      // kubectl could not decode the error itself.
      {"status", "Failure"},
      {"message", core::validUtf8(message)},
      {"reason", reason},
      {"code", code},
  };
  return jsonResponse(code, boost::json::serialize(status), version);
}

}  // namespace xmetrics::server

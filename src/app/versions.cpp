#include "app/versions.hpp"

#include <openssl/crypto.h>

#include <boost/version.hpp>

#include "http/curl_api.hpp"

namespace xmetrics::app {

Versions versions() {
  Versions v{.build = core::buildInfo(), .openssl = OpenSSL_version(OPENSSL_VERSION)};
  const auto* curl = http::curl().version_info(CURLVERSION_NOW);
  v.libcurl = curl && curl->version ? curl->version : "unknown";
  v.boost =
      std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000);
  return v;
}

std::string versionText(const Versions& v) {
  std::string text = "xmetrics " + std::string(v.build.version) + "\n";
  auto line = [&text](const char* name, std::string_view value) {
    text += "  ";
    text += name;
    text.append(11 - std::string_view(name).size(), ' ');
    text += value;
    text += "\n";
  };
  line("revision", v.build.revision);
  line("built", std::string(v.build.buildDate) + " (the commit's date)");
  line("compiler", v.build.compiler);
  line("OpenSSL", v.openssl);
  line("libcurl", v.libcurl);
  line("Boost", v.boost);
  return text;
}

boost::json::object versionJson(const Versions& v) {
  return {{"version", v.build.version},
          {"revision", v.build.revision},
          {"buildDate", v.build.buildDate},
          {"compiler", v.build.compiler},
          {"libraries", {{"openssl", v.openssl}, {"libcurl", v.libcurl}, {"boost", v.boost}}}};
}

}  // namespace xmetrics::app

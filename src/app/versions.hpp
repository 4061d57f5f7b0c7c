#pragma once

#include <boost/json.hpp>
#include <string>

#include "core/build_info.hpp"

namespace xmetrics::app {

// What `xmetrics version` reports: the build (core::buildInfo) and the libraries this process
// runs with. OpenSSL and libcurl are the versions loaded at run time (in the image: the Debian
// packages listed in its SBOM), Boost the headers it was compiled with.
struct Versions {
  core::BuildInfo build;
  std::string openssl;  // OpenSSL 3.0.x <date>
  std::string libcurl;  // 7.88.1; loading it is what `version` costs (serve loads it lazily)
  std::string boost;    // 1.81
};

Versions versions();

// "xmetrics 0.1.0 (revision …, built …)" then one line per component.
std::string versionText(const Versions& v);
boost::json::object versionJson(const Versions& v);

}  // namespace xmetrics::app

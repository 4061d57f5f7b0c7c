// `xmetrics version` and `xmetrics --version`: which build this is and what it runs with.

#include <boost/json.hpp>
#include <iostream>

#include "app/versions.hpp"
#include "cli/commands.hpp"

namespace xmetrics::cli {

int runVersion(const std::string& output) {
  auto v = app::versions();
  if (output == "json") {
    std::cout << boost::json::serialize(app::versionJson(v)) << "\n";
  } else {
    std::cout << app::versionText(v);
  }
  return 0;
}

}  // namespace xmetrics::cli

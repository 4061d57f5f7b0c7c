#pragma once

#include <string_view>

namespace xmetrics::core {

// Which xmetrics this is. One source: the version is CMake's project(VERSION), the revision and
// date come from git at build time (cmake/build_revision.cmake), so `xmetrics version`, the
// xmetrics_build_info metric, the image labels and the chart's appVersion all say the same.
struct BuildInfo {
  std::string_view version;    // 0.1.0
  std::string_view revision;   // the commit's full hash, "-dirty" when built from changed files
  std::string_view buildDate;  // the commit's date (UTC, RFC 3339): reproducible, not the clock's
  std::string_view compiler;   // GCC 12.2.0
};

const BuildInfo& buildInfo();

}  // namespace xmetrics::core

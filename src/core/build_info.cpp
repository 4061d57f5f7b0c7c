#include "core/build_info.hpp"

#include "build_revision.hpp"  // generated into the build directory

namespace xmetrics::core {

const BuildInfo& buildInfo() {
  static const BuildInfo info {
    .version = XMETRICS_VERSION, .revision = XMETRICS_REVISION, .buildDate = XMETRICS_BUILD_DATE,
#if defined(__clang__)
    .compiler = "Clang " __clang_version__,
#elif defined(__GNUC__)
    .compiler = "GCC " __VERSION__,
#else
    .compiler = "unknown compiler",
#endif
  };
  return info;
}

}  // namespace xmetrics::core

#pragma once

#include <string_view>

namespace xmetrics::core {

// Names the calling thread as `top -H`, `perf` and /proc/PID/task/*/comm show it (Linux keeps 15
// bytes: longer names are cut). bench/backend_calls tells the refresh loop's CPU from the backend
// calls' by these names.
void nameThisThread(std::string_view name);

}  // namespace xmetrics::core

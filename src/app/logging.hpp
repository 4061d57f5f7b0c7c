#pragma once

#include <string>
#include <vector>

namespace xmetrics::app {

// Configures the process-wide spdlog logger: `text` is one human line per event with key=value
// fields; `json` is one JSON object per line ({"time","level","msg"}) for log pipelines.
void setupLogging(const std::string& format, const std::string& level);

// The last 2000 lines logged (formatted as configured), oldest first.
std::vector<std::string> recentLogLines();

}  // namespace xmetrics::app

#pragma once

#include <string>

namespace xmetrics::cli {

// Configures the process-wide spdlog logger: `text` is one human line per event with key=value
// fields; `json` is one JSON object per line ({"time","level","msg"}) for log pipelines.
void setupLogging(const std::string& format, const std::string& level);

}  // namespace xmetrics::cli

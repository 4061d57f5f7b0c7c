#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "telemetry/exposition.hpp"

namespace xmetrics::telemetry {

// xmetrics_build_info{version,revision} 1: joins other series in queries (`* on() group_left`).
void writeBuildInfo(ExpositionWriter& out, std::string_view version, std::string_view revision);

// process_resident_memory_bytes and process_start_time_seconds, named as the Prometheus client
// libraries name them so existing dashboards and alerts apply unchanged. Read from /proc.
void writeProcessMetrics(ExpositionWriter& out);

// The parts of /proc that feed them, split out for tests: the resident set from /proc/self/statm,
// and the start time (Unix seconds) from /proc/self/stat's starttime and /proc/stat's btime.
std::expected<double, std::string> residentBytesFromStatm(std::string_view statm, long pageSize);
std::expected<double, std::string> startTimeFromStat(std::string_view selfStat,
                                                     std::string_view systemStat,
                                                     long ticksPerSecond);

}  // namespace xmetrics::telemetry

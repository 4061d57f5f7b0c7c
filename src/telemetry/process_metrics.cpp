#include "telemetry/process_metrics.hpp"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace xmetrics::telemetry {
namespace {

std::string readProcFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The `index`-th whitespace-separated field of `text` (0-based), or empty.
std::string_view field(std::string_view text, std::size_t index) {
  std::size_t i = 0;
  while (true) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n')) text.remove_prefix(1);
    if (text.empty()) return {};
    auto end = text.find_first_of(" \n");
    if (i == index) return text.substr(0, end);
    if (end == std::string_view::npos) return {};
    text.remove_prefix(end);
    ++i;
  }
}

template <typename T>
bool parseNumber(std::string_view text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace

void writeBuildInfo(ExpositionWriter& out, std::string_view version, std::string_view revision) {
  out.family("xmetrics_build_info", MetricType::kGauge,
             "Always 1; the labels say which xmetrics is running (version, git revision).")
      .sample({{"version", version}, {"revision", revision}}, 1);
}

std::expected<double, std::string> residentBytesFromStatm(std::string_view statm, long pageSize) {
  uint64_t pages = 0;
  if (!parseNumber(field(statm, 1), pages)) return std::unexpected("no resident size in statm");
  return static_cast<double>(pages) * static_cast<double>(pageSize);
}

std::expected<double, std::string> startTimeFromStat(std::string_view selfStat,
                                                     std::string_view systemStat,
                                                     long ticksPerSecond) {
  // The command name (field 2) is in parentheses and may hold spaces or ')': fields are counted
  // after its last ')'. starttime is field 22 overall, the 20th after the name.
  auto close = selfStat.rfind(')');
  if (close == std::string_view::npos) return std::unexpected("no command name in stat");
  uint64_t startTicks = 0;
  if (!parseNumber(field(selfStat.substr(close + 1), 19), startTicks)) {
    return std::unexpected("no starttime in stat");
  }
  auto btime = systemStat.find("\nbtime ");
  if (btime == std::string_view::npos) return std::unexpected("no btime in /proc/stat");
  uint64_t bootSeconds = 0;
  if (!parseNumber(field(systemStat.substr(btime + 1), 1), bootSeconds)) {
    return std::unexpected("bad btime in /proc/stat");
  }
  return static_cast<double>(bootSeconds) +
         static_cast<double>(startTicks) / static_cast<double>(ticksPerSecond);
}

void writeProcessMetrics(ExpositionWriter& out) {
  if (auto rss = residentBytesFromStatm(readProcFile("/proc/self/statm"), sysconf(_SC_PAGESIZE))) {
    out.family("process_resident_memory_bytes", MetricType::kGauge,
               "Resident memory size in bytes.")
        .sample({}, *rss);
  }
  // It never changes: read once.
  static const auto start = startTimeFromStat(readProcFile("/proc/self/stat"),
                                              readProcFile("/proc/stat"), sysconf(_SC_CLK_TCK));
  if (start) {
    out.family("process_start_time_seconds", MetricType::kGauge,
               "Start time of the process since the Unix epoch in seconds.")
        .sample({}, *start);
  }
}

}  // namespace xmetrics::telemetry

#include "app/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <ctime>

#include "core/time_format.hpp"

namespace xmetrics::app {
namespace {

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() %
        1000;
    std::string line = "{\"time\":\"" + core::rfc3339(msg.time);
    line.insert(line.size() - 1, "." + std::to_string(1000 + millis).substr(1));
    line += "\",\"level\":\"";
    line += spdlog::level::to_string_view(msg.level).data();
    line += "\",\"msg\":";
    line += boost::json::serialize(
        boost::json::string(std::string_view(msg.payload.data(), msg.payload.size())));
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// The last lines logged, for /xmetrics/v1/logs and `xmetrics flare` (a pod's earlier logs may be
// gone by the time someone looks).
std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> recent;

}  // namespace

std::vector<std::string> recentLogLines() {
  return recent ? recent->last_formatted() : std::vector<std::string>{};
}

void setupLogging(const std::string& format, const std::string& level) {
  auto stderrSink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  recent = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(2000);
  auto logger =
      std::make_shared<spdlog::logger>("xmetrics", spdlog::sinks_init_list{stderrSink, recent});
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace xmetrics::app

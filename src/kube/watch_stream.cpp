#include "kube/watch_stream.hpp"

#include <boost/json/parse.hpp>

#include "core/json_fields.hpp"

namespace xmetrics::kube {

bool WatchStreamReader::feed(std::string_view chunk,
                             const std::function<bool(WatchEvent&&)>& onEvent) {
  if (overflowed_) return false;
  buffer_.append(chunk);
  std::size_t start = 0;
  bool goOn = true;
  for (auto nl = buffer_.find('\n'); nl != std::string::npos && goOn;
       nl = buffer_.find('\n', start)) {
    std::string_view line(buffer_.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    boost::system::error_code ec;
    auto parsed = boost::json::parse(line, ec);
    auto* event = ec ? nullptr : parsed.if_object();
    auto* object = event ? event->if_contains("object") : nullptr;
    if (!object || !object->is_object()) {
      ++skipped_;
      continue;
    }
    goOn = onEvent({core::json::str(*event, "type"), std::move(object->as_object())});
  }
  if (!goOn) {
    buffer_.clear();
    return false;
  }
  buffer_.erase(0, start);
  if (buffer_.size() > maxLineBytes_) {
    overflowed_ = true;
    buffer_.clear();
    buffer_.shrink_to_fit();
    return false;
  }
  return true;
}

}  // namespace xmetrics::kube

#pragma once

#include <ctime>
#include <expected>
#include <mutex>
#include <string>

namespace xmetrics::backends::datadog {

// An API or application key: a value, or a file (a mounted Secret) read again whenever it changes,
// so a rotated key is picked up without a restart. The value never appears in any text this class
// returns. Thread-safe.
class Secret {
 public:
  Secret() = default;
  static Secret fromValue(std::string value);
  static Secret fromFile(std::string path);

  // The current value, surrounding whitespace trimmed. The error names the file, never its content.
  std::expected<std::string, std::string> get() const;
  bool empty() const { return value_.empty() && path_.empty(); }
  const std::string& path() const { return path_; }

  Secret(const Secret& other);
  Secret& operator=(const Secret& other);

 private:
  mutable std::mutex mutex_;
  mutable std::string value_;
  std::string path_;
  mutable timespec mtime_{};
  mutable off_t size_ = -1;
};

}  // namespace xmetrics::backends::datadog

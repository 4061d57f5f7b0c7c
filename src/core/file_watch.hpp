#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xmetrics::core {

// Calls `onChange` when any of `paths` changes (modification time, size, inode or existence).
// Polls with stat(), following symlinks, because that is what sees a Kubernetes Secret or
// ConfigMap volume update (an atomic swap of a ..data symlink, which inotify on the file misses).
// One thread; the callback runs on it.
class FileChangeWatcher {
 public:
  FileChangeWatcher(std::vector<std::string> paths, std::function<void()> onChange,
                    std::chrono::milliseconds interval = std::chrono::seconds(2));
  ~FileChangeWatcher();
  FileChangeWatcher(const FileChangeWatcher&) = delete;
  FileChangeWatcher& operator=(const FileChangeWatcher&) = delete;

 private:
  std::string fingerprint() const;

  std::vector<std::string> paths_;
  std::function<void()> onChange_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace xmetrics::core

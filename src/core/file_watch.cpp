#include "core/file_watch.hpp"

#include <sys/stat.h>

namespace xmetrics::core {

FileChangeWatcher::FileChangeWatcher(std::vector<std::string> paths, std::function<void()> onChange,
                                     std::chrono::milliseconds interval)
    : paths_(std::move(paths)), onChange_(std::move(onChange)), interval_(interval) {
  thread_ = std::thread([this] {
    std::string last = fingerprint();
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
      lock.unlock();
      std::string now = fingerprint();
      if (now != last) {
        last = std::move(now);
        onChange_();
      }
      lock.lock();
    }
  });
}

FileChangeWatcher::~FileChangeWatcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string FileChangeWatcher::fingerprint() const {
  std::string out;
  for (const auto& path : paths_) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      out += "missing;";
      continue;
    }
    out += std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

}  // namespace xmetrics::core

#include "backends/datadog/secret.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace xmetrics::backends::datadog {
namespace {

std::string trim(std::string s) {
  auto notSpace = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
  s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
  return s;
}

}  // namespace

Secret Secret::fromValue(std::string value) {
  Secret s;
  s.value_ = trim(std::move(value));
  return s;
}

Secret Secret::fromFile(std::string path) {
  Secret s;
  s.path_ = std::move(path);
  return s;
}

Secret::Secret(const Secret& other) {
  std::lock_guard lock(other.mutex_);
  value_ = other.value_;
  path_ = other.path_;
  mtime_ = other.mtime_;
  size_ = other.size_;
}

Secret& Secret::operator=(const Secret& other) {
  if (this == &other) return *this;
  std::scoped_lock lock(mutex_, other.mutex_);
  value_ = other.value_;
  path_ = other.path_;
  mtime_ = other.mtime_;
  size_ = other.size_;
  return *this;
}

std::expected<std::string, std::string> Secret::get() const {
  std::lock_guard lock(mutex_);
  if (path_.empty()) return value_;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return std::unexpected("cannot read " + path_ + ": " + std::strerror(errno));
  }
  if (st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec ||
      st.st_size != size_) {
    std::ifstream in(path_);
    if (!in) return std::unexpected("cannot read " + path_ + ": " + std::strerror(errno));
    std::ostringstream content;
    content << in.rdbuf();
    value_ = trim(content.str());
    mtime_ = st.st_mtim;
    size_ = st.st_size;
  }
  if (value_.empty()) return std::unexpected(path_ + " is empty");
  return value_;
}

}  // namespace xmetrics::backends::datadog

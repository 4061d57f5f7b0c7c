#include "flare/tar_gz.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace xmetrics::flare {
namespace {

// One 512-byte ustar header (POSIX.1-1988): octal fields, checksum over the header with the
// checksum field read as spaces.
std::array<char, 512> header(const std::string& name, std::size_t size, std::time_t mtime) {
  std::array<char, 512> h{};
  std::memcpy(h.data(), name.data(), std::min<std::size_t>(name.size(), 99));
  std::snprintf(h.data() + 100, 8, "%07o", 0600);
  std::snprintf(h.data() + 108, 8, "%07o", 0);
  std::snprintf(h.data() + 116, 8, "%07o", 0);
  std::snprintf(h.data() + 124, 12, "%011zo", size);
  std::snprintf(h.data() + 136, 12, "%011llo", static_cast<unsigned long long>(mtime));
  std::memset(h.data() + 148, ' ', 8);
  h[156] = '0';  // regular file
  std::memcpy(h.data() + 257, "ustar", 6);
  std::memcpy(h.data() + 263, "00", 2);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  std::snprintf(h.data() + 148, 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

}  // namespace

std::expected<void, std::string> writeTarGz(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& files) {
  for (const auto& [name, content] : files) {
    if (name.empty() || name.size() >= 100 || name.front() == '/' ||
        name.find("..") != std::string::npos) {
      return std::unexpected("bad archive member name \"" + name + "\"");
    }
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected("cannot write " + path + ": " + std::strerror(errno));
  gzFile gz = gzdopen(fd, "wb9");
  if (!gz) {
    ::close(fd);
    return std::unexpected("cannot compress into " + path);
  }
  auto now = std::time(nullptr);
  bool ok = true;
  auto put = [&](const char* data, std::size_t n) {
    if (n > 0 && gzwrite(gz, data, static_cast<unsigned>(n)) != static_cast<int>(n)) ok = false;
  };
  static const std::array<char, 512> zeros{};
  for (const auto& [name, content] : files) {
    auto h = header(name, content.size(), now);
    put(h.data(), h.size());
    put(content.data(), content.size());
    put(zeros.data(), (512 - content.size() % 512) % 512);
  }
  put(zeros.data(), 512);  // two zero blocks end the archive
  put(zeros.data(), 512);
  if (gzclose(gz) != Z_OK) ok = false;
  if (!ok) return std::unexpected("writing " + path + " failed (disk full?)");
  return {};
}

}  // namespace xmetrics::flare

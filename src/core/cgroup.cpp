#include "core/cgroup.hpp"

#include <charconv>
#include <fstream>

namespace xmetrics::core {
namespace {

std::optional<uint64_t> readLimit(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;  // "max"
  // cgroup v1 writes "unlimited" as the largest page-aligned signed value.
  if (value >= (uint64_t{1} << 62)) return std::nullopt;
  return value;
}

}  // namespace

std::optional<uint64_t> cgroupMemoryLimit(const std::string& root) {
  if (auto v2 = readLimit(root + "/memory.max")) return v2;
  return readLimit(root + "/memory/memory.limit_in_bytes");
}

}  // namespace xmetrics::core

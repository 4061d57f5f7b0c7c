#include "core/cgroup.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace xmetrics::core {
namespace {

std::string root(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) / ("xmetrics-cgroup-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "memory");
  return dir.string();
}

TEST(CgroupMemoryLimit, ReadsVersion2ThenVersion1) {
  auto v2 = root("v2");
  std::ofstream(v2 + "/memory.max") << "134217728\n";
  EXPECT_EQ(cgroupMemoryLimit(v2), 134217728u);
  std::ofstream(v2 + "/memory.max") << "max\n";
  EXPECT_EQ(cgroupMemoryLimit(v2), std::nullopt);

  auto v1 = root("v1");
  std::ofstream(v1 + "/memory/memory.limit_in_bytes") << "268435456\n";
  EXPECT_EQ(cgroupMemoryLimit(v1), 268435456u);
  std::ofstream(v1 + "/memory/memory.limit_in_bytes") << "9223372036854771712\n";  // unlimited
  EXPECT_EQ(cgroupMemoryLimit(v1), std::nullopt);
  EXPECT_EQ(cgroupMemoryLimit(root("none")), std::nullopt);
}

}  // namespace
}  // namespace xmetrics::core

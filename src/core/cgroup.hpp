#pragma once

#include <cstdint>
#include <optional>
#include <string>

// The memory limit the kernel enforces on this process's cgroup (a Kubernetes memory limit), so
// bounds sized in connections or entries can follow it.
namespace xmetrics::core {

// cgroup v2 memory.max, else v1 memory.limit_in_bytes, under `root` (/sys/fs/cgroup); nullopt when
// there is none ("max", or v1's "unlimited" near 2^63) or it cannot be read.
std::optional<uint64_t> cgroupMemoryLimit(const std::string& root = "/sys/fs/cgroup");

}  // namespace xmetrics::core

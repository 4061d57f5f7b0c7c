#pragma once

#include <expected>
#include <string>
#include <utility>
#include <vector>

namespace xmetrics::flare {

// Writes `files` (path inside the archive, content) as a gzip-compressed POSIX ustar archive, mode
// 0600 (a flare holds operational details). Paths must be relative and under 100 characters.
std::expected<void, std::string> writeTarGz(
    const std::string& path, const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace xmetrics::flare

#include "config/setting_rows.hpp"

#include <charconv>

namespace xmetrics::config {

ParseSetting<std::string> anyText() {
  return
      [](std::string_view v) -> std::expected<std::string, std::string> { return std::string(v); };
}

ParseSetting<std::string> oneOf(std::vector<std::string> allowed) {
  return [allowed =
              std::move(allowed)](std::string_view v) -> std::expected<std::string, std::string> {
    for (const auto& a : allowed) {
      if (a == v) return a;
    }
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    return std::unexpected("must be one of " + list);
  };
}

ParseSetting<std::chrono::seconds> durationAtLeast(std::chrono::seconds min) {
  return [min](std::string_view v) -> std::expected<std::chrono::seconds, std::string> {
    auto d = parseDuration(v);
    if (!d) return std::unexpected(d.error());
    if (*d < min) return std::unexpected("must be at least " + std::to_string(min.count()) + "s");
    return *d;
  };
}

ParseSetting<unsigned> numberIn(unsigned min, unsigned max) {
  return [min, max](std::string_view v) -> std::expected<unsigned, std::string> {
    unsigned n = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || ptr != v.data() + v.size() || n < min || n > max) {
      return std::unexpected("must be a number " + std::to_string(min) + "-" + std::to_string(max));
    }
    return n;
  };
}

ParseSetting<bool> boolean() {
  return [](std::string_view v) -> std::expected<bool, std::string> {
    for (std::string_view yes : {"1", "t", "T", "TRUE", "true", "True"}) {
      if (v == yes) return true;
    }
    for (std::string_view no : {"0", "f", "F", "FALSE", "false", "False"}) {
      if (v == no) return false;
    }
    return std::unexpected(std::string("must be true or false (or 1/0, t/f)"));
  };
}

}  // namespace xmetrics::config

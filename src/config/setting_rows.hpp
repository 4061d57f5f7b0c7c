#pragma once

#include <chrono>
#include <expected>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "config/serve_options.hpp"

namespace xmetrics::config {

// Building blocks of settings rows, for config's own and for the backends' rows: a parser of the
// text, and a row filling one field of a backend's settings struct with it. The error texts are
// what users see after `setting = "value": `.
template <typename T>
using ParseSetting = std::function<std::expected<T, std::string>(std::string_view)>;

ParseSetting<std::string> anyText();
ParseSetting<std::string> oneOf(std::vector<std::string> allowed);  // "must be one of a, b"
ParseSetting<std::chrono::seconds> durationAtLeast(std::chrono::seconds min);
ParseSetting<unsigned> numberIn(unsigned min, unsigned max);  // "must be a number min-max"
// A boolean as the Cluster Agent reads its DD_* variables (Go's strconv.ParseBool): 1 t T TRUE
// true True, 0 f F FALSE false False. "must be true or false (or 1/0, t/f)" otherwise.
ParseSetting<bool> boolean();

template <typename S, typename T>
ApplySetting backendField(std::string backend, T S::*field, ParseSetting<T> parse) {
  return [backend = std::move(backend), field, parse = std::move(parse)](
             std::string_view text, ServeOptions& options) -> std::optional<std::string> {
    auto value = parse(text);
    if (!value) return value.error();
    backendSettings<S>(options, backend).*field = std::move(*value);
    return std::nullopt;
  };
}

}  // namespace xmetrics::config

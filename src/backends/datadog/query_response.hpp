#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.hpp"

namespace xmetrics::backends::datadog {

// One `[ms_timestamp, value|null]` entry of a series' pointlist.
struct Point {
  int64_t timestampMs = 0;      // milliseconds since the epoch, as the API sends them
  std::optional<double> value;  // null when the bucket has no data
};

// The Cluster Agent's point rule: newest to oldest, nulls skipped, the *second* newest non-null
// point (the newest bucket is often still filling), else the only one. An empty or all-null list is
// an error whose text says which ("only null values found").
std::expected<Point, std::string> choosePoint(std::span<const Point> points);

// Maps a 200 answer of `GET /api/v1/query` for `queries` (the batch, in the order they were joined)
// back to one result per query by each series' `query_index`. A query with no series gets "no serie
// was found for this query" (the Cluster Agent's words, so existing alerts on them keep working).
// The whole answer fails (the error) when it is not JSON of that shape.
std::expected<std::vector<BackendResult>, std::string> parseQueryResponse(
    std::string_view body, std::span<const std::string> queries);

// The message of an error answer: `{"errors": ["a", "b"]}` -> "a; b", `{"error": "x"}` -> "x";
// otherwise the first 200 bytes of the body (empty body: "").
std::string errorMessage(std::string_view body);

}  // namespace xmetrics::backends::datadog

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

// A point's timestamp as sent (milliseconds since the epoch, a JSON number): nullopt unless it is
// a whole-enough number the clock can hold, from the epoch to the clock's end (year 2262), so that
// no answer can make a conversion overflow.
std::optional<int64_t> pointTimestampMs(double sent);

// The Cluster Agent's point rule: newest to oldest, nulls skipped, the *second* newest non-null
// point (the newest bucket is often still filling), else the only one. An empty or all-null list is
// an error whose text says which ("only null values found").
std::expected<Point, std::string> choosePoint(std::span<const Point> points);

// One series of an answer: its group's tags (`tag_set`, empty when not grouped) and its point.
struct SeriesAnswer {
  std::vector<std::string> tagSet;
  BackendResult result = std::unexpected(std::string());
};

// What a 200 answer says for one query of the call: the series whose `query_index` names it.
struct QueryAnswer {
  std::vector<SeriesAnswer> series;
  std::string noSeries;  // appended to "no serie was found": why there may be none
};

// Reads a 200 answer of `GET /api/v1/query` for a call of `queryCount` queries (in the order they
// were joined). Only an answer that is not JSON of that shape, or says `"status": "error"`, fails
// as a whole (the error); every other fault belongs to one query: a malformed point fails the
// series it is in, and a series naming no query of the call (its `query_index` out of range, or
// missing in a batch) is left out, noted in its neighbours' "no serie" text, never failing them.
std::expected<std::vector<QueryAnswer>, std::string> parseQueryAnswers(std::string_view body,
                                                                       std::size_t queryCount);

// Which query of a call of `queryCount` a series answers, by its `query_index` (absent: only a
// call of one query may omit it); nullopt when it names none (the series is left out).
std::optional<std::size_t> seriesQuery(std::optional<int64_t> queryIndex, std::size_t queryCount);

// The value of an ungrouped query: its one series' point. None gets "no serie was found for this
// query" (the Cluster Agent's words, so existing alerts on them keep working); several, an error
// saying an external metric needs exactly one.
BackendResult singleResult(QueryAnswer answer);

// The values of a grouped (coalesced) query, one per wanted value: the series whose tag set holds
// `key:value`, compared ignoring case (Datadog lowercases tags; `values` are lowercase). A value
// without a series gets "no serie was found for this query", as its own query would.
std::vector<BackendResult> splitByTag(QueryAnswer answer, std::string_view key,
                                      std::span<const std::string> values);

// parseQueryAnswers, each answer read by singleResult.
std::expected<std::vector<BackendResult>, std::string> parseQueryResponse(
    std::string_view body, std::span<const std::string> queries);

// The message of an error answer: `{"errors": ["a", "b"]}` -> "a; b", `{"error": "x"}` -> "x";
// otherwise the first 200 bytes of the body (empty body: "").
std::string errorMessage(std::string_view body);

}  // namespace xmetrics::backends::datadog

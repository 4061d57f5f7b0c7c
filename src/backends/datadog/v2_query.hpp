#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/datadog/query_response.hpp"

namespace xmetrics::backends::datadog {

// Datadog's v2 query API, `--datadog-api v2`: one POST per call with the queries in a JSON body.
//
// Why /api/v2/query/timeseries and not /api/v2/query/scalar: a scalar query reduces the whole
// window to one number with its `aggregator` (avg, sum, min, max, last, …). None of them is the
// Cluster Agent's point rule — the *second* newest non-null point, because the newest bucket is
// often still filling — and `last` is exactly the partial bucket the rule avoids. The timeseries
// answer carries every point of every series, so choosePoint() picks the same point v1 would, and
// a metric reads the same value whichever API fetched it. The body is no larger: the queries and
// one formula per query, no aggregator.
inline constexpr std::string_view kV2TimeseriesPath = "/api/v2/query/timeseries";

// What bounds a v2 call besides the chunk size: Datadog publishes no maximum of queries or formulas
// per request (the OpenAPI schema's `queries` and `formulas` have no maxItems) and no URL carries
// them, so the Cluster Agent's 7000-character limit does not apply. One call's query text (counted
// URL-escaped, as BatchLimits counts, which is never shorter than it is in JSON) is kept under
// this, so a batch of long coalesced queries stays a modest request body.
inline constexpr std::size_t kV2MaxQueryChars = 256 * 1024;

// The body of `POST /api/v2/query/timeseries` for `queries` over [fromMs, toMs) (milliseconds since
// the epoch): {"data":{"type":"timeseries_request","attributes":{"from":…,"to":…,"queries":[
// {"data_source":"metrics","name":"q0","query":…},…],"formulas":[{"formula":"q0"},…]}}}. One
// formula per query, in order, so that an answer's `query_index` k is queries[k]. No `interval`:
// Datadog picks the rollup for the window, as it does for v1.
std::string timeseriesRequestBody(std::span<const std::string_view> queries, int64_t fromMs,
                                  int64_t toMs);

// Reads a 200 answer of `POST /api/v2/query/timeseries` for a call of `queryCount` queries into
// what parseQueryAnswers gives for v1: one QueryAnswer per query, each series with its
// `group_tags` as SeriesAnswer::tagSet and the point choosePoint() takes from its values at the
// answer's `times`. The fault rules are v1's: only an answer that is not of this shape (not JSON,
// no `data.attributes` object, `series`/`times`/`values` that are not arrays, a time that is not a
// number) fails as a whole; a series whose values are missing, malformed or not one per time fails
// alone, and a series naming no query of the call is left out and noted in its neighbours'
// "no serie" text. An `errors` text beside the data is noted there too.
std::expected<std::vector<QueryAnswer>, std::string> parseTimeseriesAnswers(std::string_view body,
                                                                            std::size_t queryCount);

}  // namespace xmetrics::backends::datadog

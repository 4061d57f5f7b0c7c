// libFuzzer target: the answers of Datadog's query APIs (v1 `GET /api/v1/query`, v2
// `POST /api/v2/query/timeseries`) and its error bodies, as a proxy or a broken release may send
// them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/datadog/query_response.hpp"
#include "backends/datadog/v2_query.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace xmetrics::backends::datadog;
using xmetrics::backends::BackendResult;
using xmetrics::fuzz::check;

// A result is a point or a reason; never an error without words (users read them in HPA events).
void checkResult(const BackendResult& result) {
  check(result.has_value() || !result.error().empty());
}

void checkAnswers(const std::expected<std::vector<QueryAnswer>, std::string>& answers,
                  std::size_t queryCount) {
  if (!answers) {
    check(!answers.error().empty());
    return;
  }
  check(answers->size() == queryCount);
  const std::vector<std::string> hosts = {"a", "web-1"};
  for (const QueryAnswer& answer : *answers) {
    for (const SeriesAnswer& series : answer.series) checkResult(series.result);
    auto split = splitByTag(answer, "host", hosts);
    check(split.size() == hosts.size());
    for (const auto& result : split) checkResult(result);
    checkResult(singleResult(answer));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte: how many queries the call joined (1..8); the rest is the body.
  std::size_t queryCount = 1 + data[0] % 8;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  checkAnswers(parseQueryAnswers(body, queryCount), queryCount);
  checkAnswers(parseTimeseriesAnswers(body, queryCount), queryCount);
  std::vector<std::string> queries(queryCount, "avg:m{*}");
  auto results = parseQueryResponse(body, queries);
  if (results) check(results->size() == queryCount);
  // An error body is quoted in logs and statuses: bounded, whatever was sent.
  check(errorMessage(body).size() <= body.size() + 2 * 200);
  return 0;
}

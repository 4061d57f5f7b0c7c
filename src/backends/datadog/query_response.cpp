#include "backends/datadog/query_response.hpp"

#include <boost/json.hpp>

namespace xmetrics::backends::datadog {
namespace {

namespace json = boost::json;

std::string unitOf(const json::object& series) {
  // `unit` is [unit, per_unit], either may be null: "byte" / "byte per second".
  auto it = series.find("unit");
  if (it == series.end() || !it->value().is_array()) return "";
  const auto& units = it->value().as_array();
  auto name = [&](std::size_t i) -> std::string {
    if (units.size() <= i || !units[i].is_object()) return "";
    const auto& u = units[i].as_object();
    auto n = u.find("name");
    return n != u.end() && n->value().is_string() ? std::string(n->value().as_string()) : "";
  };
  std::string unit = name(0);
  std::string per = name(1);
  if (!per.empty()) unit = (unit.empty() ? "" : unit + " ") + "per " + per;
  return unit;
}

std::optional<double> number(const json::value& v) {
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return std::nullopt;
}

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n) return std::string(text);
  return std::string(text.substr(0, n)) + "…";
}

}  // namespace

std::expected<Point, std::string> choosePoint(std::span<const Point> points) {
  const Point* newest = nullptr;
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    if (!it->value) continue;
    if (newest) return *it;  // the second newest non-null point
    newest = &*it;
  }
  if (newest) return *newest;
  if (points.empty()) return std::unexpected("the series has no data points");
  return std::unexpected("only null values found in the last " + std::to_string(points.size()) +
                         " points");
}

std::expected<std::vector<BackendResult>, std::string> parseQueryResponse(
    std::string_view body, std::span<const std::string> queries) {
  auto notAnswer = [&](std::string why) {
    return std::unexpected("Datadog answered something that is not a query response (" + why +
                           "): " + clip(body, 120));
  };
  boost::system::error_code ec;
  json::value root = json::parse(body, ec);
  if (ec) return notAnswer("not JSON: " + ec.message());
  if (!root.is_object()) return notAnswer("not a JSON object");
  const auto& top = root.as_object();
  if (auto status = top.find("status"); status != top.end() && status->value().is_string() &&
                                        status->value().as_string() == "error") {
    return std::unexpected("Datadog answered status \"error\": " + errorMessage(body));
  }
  auto seriesIt = top.find("series");
  if (seriesIt == top.end() || !seriesIt->value().is_array()) return notAnswer("no series array");

  std::vector<std::optional<BackendResult>> found(queries.size());
  std::vector<std::size_t> seriesCount(queries.size(), 0);
  std::vector<Point> points;
  for (const auto& s : seriesIt->value().as_array()) {
    if (!s.is_object()) return notAnswer("a series is not an object");
    const auto& series = s.as_object();
    std::size_t index = 0;
    if (auto qi = series.find("query_index"); qi != series.end() && qi->value().is_int64()) {
      auto i = qi->value().get_int64();
      if (i < 0 || static_cast<std::size_t>(i) >= queries.size()) {
        return notAnswer("query_index " + std::to_string(i) + " out of range for " +
                         std::to_string(queries.size()) + " queries");
      }
      index = static_cast<std::size_t>(i);
    } else if (queries.size() != 1) {
      return notAnswer("a series without query_index in a batch of " +
                       std::to_string(queries.size()));
    }
    if (++seriesCount[index] > 1) {
      found[index] = std::unexpected("the query returned " + std::to_string(seriesCount[index]) +
                                     " series; an external metric needs exactly one (remove the "
                                     "`by {…}` grouping or narrow the filter)");
      continue;
    }
    points.clear();
    if (auto pl = series.find("pointlist"); pl != series.end() && pl->value().is_array()) {
      for (const auto& p : pl->value().as_array()) {
        if (!p.is_array() || p.as_array().size() < 2) return notAnswer("a malformed point");
        auto ts = number(p.as_array()[0]);
        if (!ts) return notAnswer("a point without a timestamp");
        points.push_back({static_cast<int64_t>(*ts), number(p.as_array()[1])});
      }
    }
    auto point = choosePoint(points);
    if (!point) {
      found[index] = std::unexpected(point.error());
      continue;
    }
    core::Sample sample;
    sample.value = *point->value;
    sample.time = core::Clock::time_point(std::chrono::milliseconds(point->timestampMs));
    sample.unit = unitOf(series);
    found[index] = sample;
  }
  std::vector<BackendResult> results;
  results.reserve(queries.size());
  for (auto& r : found) {
    results.push_back(r ? std::move(*r)
                        : BackendResult(std::unexpected("no serie was found for this query")));
  }
  return results;
}

std::string errorMessage(std::string_view body) {
  boost::system::error_code ec;
  json::value root = json::parse(body, ec);
  if (!ec && root.is_object()) {
    const auto& o = root.as_object();
    if (auto e = o.find("errors"); e != o.end() && e->value().is_array()) {
      std::string text;
      for (const auto& item : e->value().as_array()) {
        if (!item.is_string()) continue;
        if (!text.empty()) text += "; ";
        text += item.as_string();
      }
      if (!text.empty()) return text;
    }
    if (auto e = o.find("error"); e != o.end() && e->value().is_string()) {
      return std::string(e->value().as_string());
    }
  }
  return clip(body, 200);
}

}  // namespace xmetrics::backends::datadog

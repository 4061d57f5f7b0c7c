#include "backends/datadog/v2_query.hpp"

#include <boost/json.hpp>
#include <optional>

namespace xmetrics::backends::datadog {
namespace {

namespace json = boost::json;

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n) return std::string(text);
  return std::string(text.substr(0, n)) + "…";
}

// `errors` beside (or instead of) the data: a string in the v2 schema, a list of them in v1's.
std::string errorsText(const json::object& top) {
  const auto* e = top.if_contains("errors");
  if (!e) return "";
  if (e->is_string()) return std::string(e->get_string());
  std::string text;
  if (e->is_array()) {
    for (const auto& item : e->get_array()) {
      if (!item.is_string()) continue;
      if (!text.empty()) text += "; ";
      text += item.get_string();
    }
  }
  return text;
}

std::optional<double> number(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  return std::nullopt;
}

// `unit`: [unit, per unit], each an object with a `name`, or null -> "byte per second".
std::string unitText(const json::object& series) {
  const auto* unit = series.if_contains("unit");
  if (!unit || !unit->is_array()) return "";
  std::string names[2];
  const auto& list = unit->get_array();
  for (std::size_t k = 0; k < 2 && k < list.size(); ++k) {
    if (!list[k].is_object()) continue;
    if (const auto* name = list[k].get_object().if_contains("name"); name && name->is_string()) {
      names[k] = name->get_string();
    }
  }
  if (names[1].empty()) return names[0];
  return (names[0].empty() ? "" : names[0] + " ") + "per " + names[1];
}

}  // namespace

std::string timeseriesRequestBody(std::span<const std::string_view> queries, int64_t fromMs,
                                  int64_t toMs) {
  json::monotonic_resource memory;
  json::array list(&memory), formulas(&memory);
  list.reserve(queries.size());
  formulas.reserve(queries.size());
  for (std::size_t k = 0; k < queries.size(); ++k) {
    std::string name = "q" + std::to_string(k);
    list.push_back(
        json::object({{"data_source", "metrics"},
                      {"name", json::string_view(name)},
                      {"query", json::string_view(queries[k].data(), queries[k].size())}},
                     &memory));
    formulas.push_back(json::object({{"formula", json::string_view(name)}}, &memory));
  }
  json::object attributes(&memory);
  attributes["from"] = fromMs;
  attributes["to"] = toMs;
  attributes["queries"] = std::move(list);
  attributes["formulas"] = std::move(formulas);
  json::object data(&memory);
  data["type"] = "timeseries_request";
  data["attributes"] = std::move(attributes);
  json::object root(&memory);
  root["data"] = std::move(data);
  return json::serialize(root);
}

std::expected<std::vector<QueryAnswer>, std::string> parseTimeseriesAnswers(
    std::string_view body, std::size_t queryCount) {
  auto notAnswer = [&](std::string why) {
    return std::unexpected("Datadog answered something that is not a v2 timeseries response (" +
                           why + "): " + clip(body, 120));
  };
  // One arena per answer: the tree is read once and dropped whole, not node by node.
  json::monotonic_resource memory;
  boost::system::error_code ec;
  json::value root = json::parse(body, ec, &memory);
  if (ec) return notAnswer("not JSON: " + ec.message());
  if (!root.is_object()) return notAnswer("not a JSON object");
  const auto& top = root.get_object();
  std::string errors = errorsText(top);
  const auto* data = top.if_contains("data");
  if (!data || !data->is_object()) {
    if (!errors.empty()) return std::unexpected("Datadog answered an error: " + errors);
    return notAnswer("no data object");
  }
  if (const auto* type = data->get_object().if_contains("type");
      type && type->is_string() && type->get_string() != "timeseries_response") {
    return notAnswer("a " + std::string(type->get_string()));
  }
  const auto* attributes = data->get_object().if_contains("attributes");
  if (!attributes || !attributes->is_object()) return notAnswer("no data.attributes object");
  const auto& a = attributes->get_object();
  // Missing (or null) is an empty list: an answer without series has nothing to put in them.
  const json::array* lists[3] = {nullptr, nullptr, nullptr};
  const char* names[3] = {"series", "times", "values"};
  for (int k = 0; k < 3; ++k) {
    const auto* v = a.if_contains(names[k]);
    if (!v || v->is_null()) continue;
    if (!v->is_array()) return notAnswer(std::string(names[k]) + " is not an array");
    lists[k] = &v->get_array();
  }
  static const json::array kNone;
  const auto& series = lists[0] ? *lists[0] : kNone;
  const auto& times = lists[1] ? *lists[1] : kNone;
  const auto& values = lists[2] ? *lists[2] : kNone;
  // The times are the answer's, shared by every series: one that is not a number spoils them all.
  std::vector<int64_t> timesMs;
  timesMs.reserve(times.size());
  for (const auto& t : times) {
    auto ms = number(t);
    if (!ms) return notAnswer("a time that is not a number");
    auto at = pointTimestampMs(*ms);
    if (!at) return notAnswer("a time out of range");
    timesMs.push_back(*at);
  }

  // From here on every fault belongs to one query, or to none (as in parseQueryAnswers).
  std::vector<QueryAnswer> answers(queryCount);
  std::size_t stray = 0;
  std::vector<Point> points;
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (!series[i].is_object()) {
      ++stray;
      continue;
    }
    const auto& s = series[i].get_object();
    std::optional<int64_t> queryIndex;
    if (const auto* qi = s.if_contains("query_index"); qi && !qi->is_null()) {
      if (!qi->is_int64() && !qi->is_uint64()) {
        ++stray;
        continue;
      }
      queryIndex = qi->is_int64() ? qi->get_int64() : static_cast<int64_t>(qi->get_uint64());
    }
    auto found = seriesQuery(queryIndex, queryCount);
    if (!found) {
      ++stray;
      continue;
    }
    std::size_t index = *found;
    SeriesAnswer answer;
    if (const auto* tags = s.if_contains("group_tags"); tags && tags->is_array()) {
      for (const auto& tag : tags->get_array()) {
        if (tag.is_string()) answer.tagSet.emplace_back(tag.get_string());
      }
    }
    auto fail = [&](std::string why) {
      answer.result = std::unexpected("Datadog answered " + why + " in this query's series");
      answers[index].series.push_back(std::move(answer));
    };
    // values[i] belongs to series[i].
    if (i >= values.size() || !values[i].is_array()) {
      fail("no values");
      continue;
    }
    const auto& row = values[i].get_array();
    if (row.size() != timesMs.size()) {
      fail(std::to_string(row.size()) + " values for " + std::to_string(timesMs.size()) + " times");
      continue;
    }
    points.clear();
    bool malformed = false;
    for (std::size_t j = 0; j < row.size(); ++j) {
      if (row[j].is_null()) {
        points.push_back({timesMs[j], std::nullopt});
      } else if (auto v = number(row[j])) {
        points.push_back({timesMs[j], *v});
      } else {
        malformed = true;
        break;
      }
    }
    if (malformed) {
      fail("a malformed point");
      continue;
    }
    auto point = choosePoint(points);
    if (!point) {
      answer.result = std::unexpected(point.error());
    } else {
      core::Sample sample;
      sample.value = *point->value;
      sample.time = core::Clock::time_point(std::chrono::milliseconds(point->timestampMs));
      sample.unit = unitText(s);
      answer.result = std::move(sample);
    }
    answers[index].series.push_back(std::move(answer));
  }
  std::string note;
  if (stray > 0) {
    note = " (the answer also held " + std::to_string(stray) +
           " series that name no query of this call)";
  }
  if (!errors.empty()) note += " (Datadog also answered: " + clip(errors, 200) + ")";
  if (!note.empty()) {
    for (auto& answer : answers) {
      if (answer.series.empty()) answer.noSeries = note;
    }
  }
  return answers;
}

}  // namespace xmetrics::backends::datadog

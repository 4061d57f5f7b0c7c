#include "backends/datadog/query_response.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <unordered_map>

#include "query/coalesce.hpp"

namespace xmetrics::backends::datadog {
namespace {

namespace json = boost::json;

// What a query answer says, read straight from the parser's events. A refresh of 10,000 metrics
// reads some 300 answers; building a JSON tree of each (thousands of small allocations, then as
// many frees) cost more than the rest of the parse, and only these few fields are ever looked at.
// Where a key repeats, the last one counts, as in boost::json::object.
struct ResponseReader {
  // boost::json::parse's limits, so that oversized input fails alike.
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  struct Series {
    bool isObject = false;
    std::optional<int64_t> queryIndex;
    std::size_t pointsBegin = 0, pointsEnd = 0;  // in `points`
    const char* pointError = nullptr;            // the first bad point, in order
    std::string unit[2];                         // `unit`: [unit, per_unit] names
    std::vector<std::string> tagSet;             // `tag_set`: the group's `key:value` tags
  };

  bool rootIsObject = false;
  bool statusIsError = false;
  bool seriesIsArray = false;
  std::vector<Series> series;
  std::vector<Point> points;

  using ec_t = boost::system::error_code;

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) {
    Role role = Role::kOther;
    switch (take()) {
      case Slot::kRoot:
        rootIsObject = true;
        role = Role::kTop;
        break;
      case Slot::kSeriesItem:
        series.back().isObject = true;
        role = Role::kSeries;
        break;
      case Slot::kUnitItem:
        role = Role::kUnitItem;
        break;
      case Slot::kPoint:
        badPoint("a malformed point");
        break;
      default:
        break;
    }
    stack_.push_back({role});
    return true;
  }
  bool on_object_end(std::size_t, ec_t&) { return endContainer(); }
  bool on_array_begin(ec_t&) {
    Role role = Role::kOther;
    switch (take()) {
      case Slot::kTopSeries:
        seriesIsArray = true;
        series.clear();
        points.clear();
        role = Role::kSeriesList;
        break;
      case Slot::kSeriesField:
        if (stack_.back().key == Key::kPointlist) role = Role::kPointlist;
        if (stack_.back().key == Key::kUnit) role = Role::kUnit;
        if (stack_.back().key == Key::kTagSet) role = Role::kTagSet;
        break;
      case Slot::kPoint:
        role = Role::kPoint;
        break;
      default:
        break;
    }
    stack_.push_back({role});
    return true;
  }
  bool on_array_end(std::size_t n, ec_t&) {
    if (stack_.back().role == Role::kPoint) {
      if (n < 2) {
        badPoint("a malformed point");
      } else if (!pointTime_) {
        badPoint("a point without a timestamp");
      } else if (auto ms = pointTimestampMs(*pointTime_); !ms) {
        badPoint("a point whose timestamp is out of range");
      } else {
        points.push_back({*ms, pointValue_});
        series.back().pointsEnd = points.size();
      }
    }
    return endContainer();
  }
  bool on_key_part(json::string_view part, std::size_t, ec_t&) {
    text_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, ec_t&) {
    std::string_view key(part.data(), part.size());
    if (!text_.empty()) key = text_.append(part.data(), part.size());
    auto& top = stack_.back();
    top.key = Key::kOther;
    if (top.role == Role::kTop) {
      if (key == "status") top.key = Key::kStatus;
      if (key == "series") top.key = Key::kSeries;
    } else if (top.role == Role::kSeries) {
      if (key == "query_index") top.key = Key::kQueryIndex;
      if (key == "pointlist") top.key = Key::kPointlist;
      if (key == "unit") top.key = Key::kUnit;
      if (key == "tag_set") top.key = Key::kTagSet;
    } else if (top.role == Role::kUnitItem && key == "name") {
      top.key = Key::kName;
    }
    text_.clear();
    return true;
  }
  bool on_string_part(json::string_view part, std::size_t, ec_t&) {
    text_.append(part.data(), part.size());
    return true;
  }
  bool on_string(json::string_view part, std::size_t, ec_t&) {
    std::string_view text(part.data(), part.size());
    if (!text_.empty()) text = text_.append(part.data(), part.size());
    Slot slot = scalar();
    if (slot == Slot::kTopStatus) statusIsError = text == "error";
    if (slot == Slot::kUnitName) unitName().assign(text);
    if (slot == Slot::kTag) series.back().tagSet.emplace_back(text);
    text_.clear();
    return true;
  }
  bool on_number_part(json::string_view, ec_t&) { return true; }
  bool on_int64(int64_t v, json::string_view, ec_t&) {
    if (number(static_cast<double>(v)) == Slot::kSeriesField &&
        stack_.back().key == Key::kQueryIndex) {
      series.back().queryIndex = v;
    }
    return true;
  }
  bool on_uint64(uint64_t v, json::string_view, ec_t&) {
    number(static_cast<double>(v));
    return true;
  }
  bool on_double(double v, json::string_view, ec_t&) {
    number(v);
    return true;
  }
  bool on_bool(bool, ec_t&) {
    scalar();
    return true;
  }
  bool on_null(ec_t&) {
    scalar();
    return true;
  }
  bool on_comment_part(json::string_view, ec_t&) { return true; }
  bool on_comment(json::string_view, ec_t&) { return true; }

 private:
  // The containers that matter, by where they sit; everything else is kOther and skipped.
  enum class Role : uint8_t {
    kTop,
    kSeriesList,
    kSeries,
    kPointlist,
    kPoint,
    kUnit,
    kUnitItem,
    kTagSet,
    kOther
  };
  enum class Key : uint8_t {
    kOther,
    kStatus,
    kSeries,
    kQueryIndex,
    kPointlist,
    kUnit,
    kTagSet,
    kName
  };
  // What the value about to be read is.
  enum class Slot : uint8_t {
    kNone,
    kRoot,
    kTopStatus,
    kTopSeries,
    kSeriesItem,
    kSeriesField,
    kPoint,
    kPointTime,
    kPointValue,
    kUnitItem,
    kUnitName,
    kTag
  };
  struct Frame {
    Role role;
    Key key = Key::kOther;  // objects: the key of the value being read
    std::size_t index = 0;  // arrays: the position of the value being read
  };

  std::string& unitName() { return series.back().unit[stack_[stack_.size() - 2].index]; }

  Slot value() {
    if (stack_.empty()) return Slot::kRoot;
    const auto& top = stack_.back();
    switch (top.role) {
      case Role::kTop:
        return top.key == Key::kStatus   ? Slot::kTopStatus
               : top.key == Key::kSeries ? Slot::kTopSeries
                                         : Slot::kNone;
      case Role::kSeriesList:
        return Slot::kSeriesItem;
      case Role::kSeries:
        return top.key == Key::kOther ? Slot::kNone : Slot::kSeriesField;
      case Role::kPointlist:
        return Slot::kPoint;
      case Role::kPoint:
        return top.index == 0 ? Slot::kPointTime : top.index == 1 ? Slot::kPointValue : Slot::kNone;
      case Role::kUnit:
        return top.index < 2 ? Slot::kUnitItem : Slot::kNone;
      case Role::kUnitItem:
        return top.key == Key::kName ? Slot::kUnitName : Slot::kNone;
      case Role::kTagSet:
        return Slot::kTag;
      case Role::kOther:
        return Slot::kNone;
    }
    return Slot::kNone;
  }

  // Every value takes its slot first, which drops what a repeated key left there: the last of
  // repeated keys counts.
  Slot take() {
    Slot slot = value();
    switch (slot) {
      case Slot::kTopSeries:
        seriesIsArray = false;
        break;
      case Slot::kTopStatus:
        statusIsError = false;
        break;
      case Slot::kSeriesItem:
        series.emplace_back();
        break;
      case Slot::kSeriesField:
        clearSeriesField();
        break;
      case Slot::kPoint:
        pointTime_.reset();
        pointValue_.reset();
        break;
      case Slot::kUnitItem:
        series.back().unit[stack_.back().index].clear();
        break;
      case Slot::kUnitName:
        unitName().clear();
        break;
      default:
        break;
    }
    return slot;
  }
  // A string, number, bool or null; then its parent moves on to its next element.
  Slot scalar() {
    Slot slot = take();
    if (slot == Slot::kPoint) badPoint("a malformed point");
    next();
    return slot;
  }
  Slot number(double v) {
    Slot slot = scalar();
    if (slot == Slot::kPointTime) pointTime_ = v;
    if (slot == Slot::kPointValue) pointValue_ = v;
    return slot;
  }

  // A repeated `query_index`, `pointlist` or `unit` replaces the earlier one.
  void clearSeriesField() {
    auto& s = series.back();
    switch (stack_.back().key) {
      case Key::kQueryIndex:
        s.queryIndex.reset();
        break;
      case Key::kPointlist:
        s.pointsBegin = s.pointsEnd = points.size();
        s.pointError = nullptr;
        break;
      case Key::kUnit:
        s.unit[0].clear();
        s.unit[1].clear();
        break;
      case Key::kTagSet:
        s.tagSet.clear();
        break;
      default:
        break;
    }
  }
  void badPoint(const char* why) {
    if (!series.back().pointError) series.back().pointError = why;
  }
  void next() {
    if (!stack_.empty()) ++stack_.back().index;
  }
  bool endContainer() {
    stack_.pop_back();
    next();
    return true;
  }

  std::vector<Frame> stack_;
  std::string text_;  // a key or string the parser hands over in parts
  std::optional<double> pointTime_, pointValue_;
};

std::string clip(std::string_view text, std::size_t n) {
  if (text.size() <= n) return std::string(text);
  return std::string(text.substr(0, n)) + "…";
}

}  // namespace

std::optional<int64_t> pointTimestampMs(double sent) {
  using namespace std::chrono;
  static const double kLast = static_cast<double>(
      duration_cast<milliseconds>(core::Clock::time_point::max().time_since_epoch()).count());
  if (!(sent >= 0 && sent <= kLast)) return std::nullopt;  // NaN fails both
  return static_cast<int64_t>(sent);
}

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

std::expected<std::vector<QueryAnswer>, std::string> parseQueryAnswers(std::string_view body,
                                                                       std::size_t queryCount) {
  auto notAnswer = [&](std::string why) {
    return std::unexpected("Datadog answered something that is not a query response (" + why +
                           "): " + clip(body, 120));
  };
  json::basic_parser<ResponseReader> parser(json::parse_options{});
  boost::system::error_code ec;
  auto consumed = parser.write_some(false, body.data(), body.size(), ec);
  if (!ec && consumed < body.size()) ec = json::error::extra_data;
  if (ec) return notAnswer("not JSON: " + ec.message());
  auto& read = parser.handler();
  if (!read.rootIsObject) return notAnswer("not a JSON object");
  if (read.statusIsError) {
    return std::unexpected("Datadog answered status \"error\": " + errorMessage(body));
  }
  if (!read.seriesIsArray) return notAnswer("no series array");

  // From here on every fault belongs to one query, or to none: a series that names no query of
  // the call (an index out of range, none in a batch) cannot be blamed on a neighbour, and is left
  // out rather than failing every query of the call.
  std::vector<QueryAnswer> answers(queryCount);
  std::size_t stray = 0;
  for (auto& series : read.series) {
    auto found = series.isObject ? seriesQuery(series.queryIndex, queryCount) : std::nullopt;
    if (!found) {
      ++stray;
      continue;
    }
    std::size_t index = *found;
    SeriesAnswer answer;
    answer.tagSet = std::move(series.tagSet);
    if (series.pointError) {
      answer.result = std::unexpected(std::string("Datadog answered ") + series.pointError +
                                      " in this query's series");
      answers[index].series.push_back(std::move(answer));
      continue;
    }
    auto point = choosePoint(
        std::span(read.points).subspan(series.pointsBegin, series.pointsEnd - series.pointsBegin));
    if (!point) {
      answer.result = std::unexpected(point.error());
    } else {
      core::Sample sample;
      sample.value = *point->value;
      sample.time = core::Clock::time_point(std::chrono::milliseconds(point->timestampMs));
      sample.unit = series.unit[0];
      if (!series.unit[1].empty()) {
        sample.unit = (sample.unit.empty() ? "" : sample.unit + " ") + "per " + series.unit[1];
      }
      answer.result = std::move(sample);
    }
    answers[index].series.push_back(std::move(answer));
  }
  if (stray > 0) {
    std::string note = " (the answer also held " + std::to_string(stray) +
                       " series that name no query of this call)";
    for (auto& a : answers) {
      if (a.series.empty()) a.noSeries = note;
    }
  }
  return answers;
}

std::optional<std::size_t> seriesQuery(std::optional<int64_t> queryIndex, std::size_t queryCount) {
  if (!queryIndex) return queryCount == 1 ? std::optional<std::size_t>(0) : std::nullopt;
  if (*queryIndex < 0 || static_cast<std::size_t>(*queryIndex) >= queryCount) return std::nullopt;
  return static_cast<std::size_t>(*queryIndex);
}

BackendResult singleResult(QueryAnswer answer) {
  if (answer.series.empty()) {
    return std::unexpected("no serie was found for this query" + answer.noSeries);
  }
  if (answer.series.size() > 1) {
    return std::unexpected("the query returned " + std::to_string(answer.series.size()) +
                           " series; an external metric needs exactly one (remove the "
                           "`by {…}` grouping or narrow the filter)");
  }
  return std::move(answer.series.front().result);
}

std::vector<BackendResult> splitByTag(QueryAnswer answer, std::string_view key,
                                      std::span<const std::string> values) {
  // Each series by the values of `key` it carries (a group of 200 values answers 200 series:
  // looked up, not compared pairwise).
  struct Found {
    const SeriesAnswer* series = nullptr;
    std::size_t count = 0;
  };
  std::unordered_map<std::string, Found> byValue;
  byValue.reserve(answer.series.size());
  for (const auto& series : answer.series) {
    for (auto& value : query::tagValues(series.tagSet, key)) {
      auto& f = byValue[std::move(value)];
      f.series = &series;
      ++f.count;
    }
  }
  std::vector<BackendResult> results;
  results.reserve(values.size());
  for (const auto& value : values) {
    auto it = byValue.find(value);
    if (it == byValue.end()) {
      results.emplace_back(std::unexpected("no serie was found for this query" + answer.noSeries));
    } else if (it->second.count > 1) {
      // Datadog gives one series per group; two for one value would make the value ambiguous.
      results.emplace_back(std::unexpected("Datadog answered " + std::to_string(it->second.count) +
                                           " series for " + std::string(key) + ":" + value +
                                           " of a grouped query; an external metric needs one"));
    } else {
      results.push_back(it->second.series->result);
    }
  }
  return results;
}

std::expected<std::vector<BackendResult>, std::string> parseQueryResponse(
    std::string_view body, std::span<const std::string> queries) {
  auto answers = parseQueryAnswers(body, queries.size());
  if (!answers) return std::unexpected(answers.error());
  std::vector<BackendResult> results;
  results.reserve(answers->size());
  for (auto& a : *answers) results.push_back(singleResult(std::move(a)));
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

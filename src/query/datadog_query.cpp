#include "query/datadog_query.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <utility>

namespace xmetrics::query {
namespace {

constexpr std::size_t kMaxQuotedToken = 24;  // keeps error messages readable on long garbage

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) { return isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isMetricChar(char c) { return isAlnum(c) || c == '_' || c == '.'; }

// Characters of a tag filter word (`key`, `key:value`, an IN value). Bytes >= 0x80 let UTF-8 tag
// values through; everything with a meaning in the grammar (`,` `!` `(` `)` `{` `}`) is excluded.
bool isWordChar(char c) {
  return isAlnum(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || c == '*' ||
         c == '@' || static_cast<unsigned char>(c) >= 0x80;
}
bool isKeyChar(char c) { return isWordChar(c) && c != ':' && c != '*'; }

// Quotes a piece of the input for an error message. Errors end up in HPA events and JSON status
// fields, so control characters and non-ASCII bytes (possibly invalid UTF-8) are written as \xNN.
std::string quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  out += '\'';
  return out;
}

// Glob match where `*` matches any run (also empty) and everything else compares ignoring ASCII
// case. Iterative with one backtrack point, so it stays O(n*m) on hostile patterns.
bool globMatch(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0;
  std::size_t starP = std::string_view::npos, starT = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      starP = p++;
      starT = t;
    } else if (p < pattern.size() && lower(pattern[p]) == lower(text[t])) {
      ++p;
      ++t;
    } else if (starP != std::string_view::npos) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// Does `tag` (`k:v` or bare `k`) satisfy `key:pattern`, or the bare `key` when pattern is absent?
// `key:*` means "the series has tag key k", which a bare `k` has too: it is the DogStatsD spelling
// of a label with an empty value, and the selector `k` (exists) translates to `k:*`.
bool tagMatches(std::string_view tag, std::string_view key, const std::string* pattern) {
  if (pattern == nullptr || *pattern == "*") {
    if (equalsIgnoreCase(tag, key)) return true;
    if (pattern == nullptr) return false;
  }
  if (tag.size() <= key.size() || tag[key.size()] != ':') return false;
  if (!equalsIgnoreCase(tag.substr(0, key.size()), key)) return false;
  return globMatch(*pattern, tag.substr(key.size() + 1));
}

template <typename Tags>
bool matchesTags(const TagFilter& f, const Tags& tags) {
  switch (f.kind) {
    case TagFilter::Kind::kAll:
      return true;
    case TagFilter::Kind::kMatch: {
      const std::string* pattern = f.values.empty() ? nullptr : &f.values.front();
      return std::any_of(tags.begin(), tags.end(), [&](const auto& tag) {
        return tagMatches(std::string_view(tag), f.key, pattern);
      });
    }
    case TagFilter::Kind::kIn:
      return std::any_of(f.values.begin(), f.values.end(), [&](const std::string& value) {
        return std::any_of(tags.begin(), tags.end(), [&](const auto& tag) {
          return tagMatches(std::string_view(tag), f.key, &value);
        });
      });
    case TagFilter::Kind::kNot:
      return f.children.empty() || !matchesTags(f.children.front(), tags);
    case TagFilter::Kind::kAnd:
      return std::all_of(f.children.begin(), f.children.end(),
                         [&](const TagFilter& c) { return matchesTags(c, tags); });
    case TagFilter::Kind::kOr:
      return std::any_of(f.children.begin(), f.children.end(),
                         [&](const TagFilter& c) { return matchesTags(c, tags); });
  }
  return false;
}

constexpr std::array<std::pair<std::string_view, TimeAggregator>, 5> kTimeAggregators{{
    {"avg", TimeAggregator::kAvg},
    {"sum", TimeAggregator::kSum},
    {"min", TimeAggregator::kMin},
    {"max", TimeAggregator::kMax},
    {"count", TimeAggregator::kCount},
}};

std::string_view timeAggregatorName(TimeAggregator a) {
  for (const auto& [name, value] : kTimeAggregators) {
    if (value == a) return name;
  }
  return "avg";
}

enum class FilterForm { kUnknown, kSymbolic, kFunctional };

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  std::expected<DatadogQuery, QueryError> parse() {
    DatadogQuery query;
    skipSpaces();
    if (!parseSpaceAggregator(query) || !parseMetric(query) || !parseFilterBlock(query) ||
        !parseGroupBy(query) || !parseRollup(query)) {
      return std::unexpected(std::move(*error_));
    }
    skipSpaces();
    if (pos_ < text_.size()) {
      fail(pos_, "expected end of query, found " + found(pos_) +
                     " (arithmetic, functions and .as_count()/.as_rate() are not supported here)");
      return std::unexpected(std::move(*error_));
    }
    return query;
  }

 private:
  // --- lexical helpers ---

  bool fail(std::size_t position, std::string message) {
    if (!error_) error_ = QueryError{position, std::move(message)};
    return false;
  }

  void skipSpaces() {
    while (pos_ < text_.size() && isSpace(text_[pos_])) ++pos_;
  }

  bool atEnd() const { return pos_ >= text_.size(); }
  char peek() const { return atEnd() ? '\0' : text_[pos_]; }

  // Describes what sits at `at` for an error message: the word or character there, quoted.
  std::string found(std::size_t at) const {
    if (at >= text_.size()) return "end of query";
    std::size_t end = at;
    while (end < text_.size() && end - at < kMaxQuotedToken && isWordChar(text_[end])) ++end;
    if (end == at) end = at + 1;
    std::string quoted = quote(text_.substr(at, end - at));
    if (end - at >= kMaxQuotedToken && end < text_.size() && isWordChar(text_[end])) {
      quoted.insert(quoted.size() - 1, "...");
    }
    return quoted;
  }

  std::string_view peekWord() const {
    std::size_t end = pos_;
    while (end < text_.size() && isWordChar(text_[end])) ++end;
    return text_.substr(pos_, end - pos_);
  }

  static bool isKeyword(std::string_view word, std::string_view keyword) {
    return equalsIgnoreCase(word, keyword);
  }
  static bool isAnyKeyword(std::string_view w) {
    return isKeyword(w, "AND") || isKeyword(w, "OR") || isKeyword(w, "NOT") || isKeyword(w, "IN");
  }

  bool expectChar(char c, std::string_view what) {
    if (peek() != c) {
      return fail(pos_, "expected " + std::string(what) + ", found " + found(pos_));
    }
    ++pos_;
    return true;
  }

  // --- query structure ---

  bool parseSpaceAggregator(DatadogQuery& query) {
    std::size_t start = pos_;
    while (!atEnd() && isAlnum(peek())) ++pos_;
    auto name = text_.substr(start, pos_ - start);
    auto aggregator = query::parseAggregator(name);
    if (!aggregator) {
      return fail(start, "expected a space aggregator (avg, sum, min or max), found " +
                             (name.empty() ? found(start) : quote(name)));
    }
    query.aggregator = *aggregator;
    return expectChar(':', "':' after the space aggregator");
  }

  bool parseMetric(DatadogQuery& query) {
    std::size_t start = pos_;
    while (!atEnd() && isMetricChar(peek())) ++pos_;
    if (pos_ == start) {
      return fail(start,
                  "expected a metric name (letters, digits, '_' and '.'), found " + found(start));
    }
    query.metric = std::string(text_.substr(start, pos_ - start));
    if (peek() != '{') {
      return fail(pos_, "expected '{' after the metric name, found " + found(pos_) +
                            " (metric names hold only letters, digits, '_' and '.')");
    }
    return true;
  }

  bool parseFilterBlock(DatadogQuery& query) {
    ++pos_;  // '{', checked by parseMetric
    skipSpaces();
    if (peek() == '*' && peekWord() == "*") {
      ++pos_;
      skipSpaces();
      query.filter = TagFilter{};
      return expectChar('}', "'}' after '*'");
    }
    if (peek() == '}') {
      return fail(pos_, "expected a tag filter or '*', found '}' (use {*} for every series)");
    }
    auto filter = parseOr();
    if (!filter) return false;
    skipSpaces();
    if (peek() != '}') {
      std::string_view expected = form_ == FilterForm::kSymbolic     ? "',' or '}'"
                                  : form_ == FilterForm::kFunctional ? "AND, OR or '}'"
                                                                     : "',', AND, OR or '}'";
      return fail(
          pos_, "expected " + std::string(expected) + " after a tag filter, found " + found(pos_));
    }
    ++pos_;
    query.filter = std::move(*filter);
    return true;
  }

  bool parseGroupBy(DatadogQuery& query) {
    std::size_t save = pos_;
    skipSpaces();
    if (pos_ == save || !isKeyword(peekWord(), "by")) {
      pos_ = save;
      return true;
    }
    pos_ += 2;
    skipSpaces();
    if (!expectChar('{', "'{' after 'by'")) return false;
    for (;;) {
      skipSpaces();
      std::size_t start = pos_;
      while (!atEnd() && isKeyChar(peek())) ++pos_;
      if (pos_ == start)
        return fail(start, "expected a tag key to group by, found " + found(start));
      query.groupBy.emplace_back(text_.substr(start, pos_ - start));
      skipSpaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      return expectChar('}', "',' or '}' in the group by list");
    }
  }

  bool parseRollup(DatadogQuery& query) {
    if (peek() != '.') return true;
    std::size_t start = pos_;
    constexpr std::string_view kRollup = ".rollup(";
    if (text_.substr(pos_, kRollup.size()) != kRollup) {
      return fail(start, "expected '.rollup(' or end of query, found " + found(start) +
                             " (only .rollup() is supported)");
    }
    pos_ += kRollup.size();
    skipSpaces();
    Rollup rollup;
    if (isDigit(peek())) {
      // `.rollup(30)`: the Cluster Agent's form, avg over 30 s.
      if (!parseSeconds(rollup)) return false;
    } else {
      std::size_t methodStart = pos_;
      while (!atEnd() && isAlnum(peek())) ++pos_;
      auto method = text_.substr(methodStart, pos_ - methodStart);
      auto it =
          std::find_if(kTimeAggregators.begin(), kTimeAggregators.end(),
                       [&](const auto& entry) { return equalsIgnoreCase(entry.first, method); });
      if (it == kTimeAggregators.end()) {
        return fail(methodStart,
                    "expected a rollup method (avg, sum, min, max or count) or seconds, found " +
                        (method.empty() ? found(methodStart) : quote(method)));
      }
      rollup.method = it->second;
      skipSpaces();
      if (peek() == ',') {
        ++pos_;
        skipSpaces();
        if (!isDigit(peek())) {
          return fail(pos_, "expected the rollup interval in seconds, found " + found(pos_));
        }
        if (!parseSeconds(rollup)) return false;
      }
    }
    skipSpaces();
    if (!expectChar(')', rollup.seconds ? "')' after the rollup interval"
                                        : "',' or ')' after the rollup method")) {
      return false;
    }
    query.rollup = rollup;
    return true;
  }

  bool parseSeconds(Rollup& rollup) {
    std::size_t start = pos_;
    while (!atEnd() && isDigit(peek())) ++pos_;
    int seconds = 0;
    auto [ptr, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, seconds);
    if (ec != std::errc{} || ptr != text_.data() + pos_) {
      return fail(start, "rollup interval " + std::string(text_.substr(start, pos_ - start)) +
                             " is too large (at most " + std::to_string(INT_MAX) + " seconds)");
    }
    if (seconds <= 0) return fail(start, "rollup interval must be at least 1 second, found 0");
    rollup.seconds = seconds;
    return true;
  }

  // --- filter expressions: OR < AND (and ',') < NOT (and '!') < primary ---

  // Records which filter form a token belongs to; the second form seen is the error.
  bool useForm(FilterForm form, std::size_t at) {
    if (form_ == FilterForm::kUnknown) {
      form_ = form;
      formPos_ = at;
      return true;
    }
    if (form_ == form) return true;
    std::string what = found(at);
    if (form == FilterForm::kFunctional) {
      return fail(at, "cannot mix filter forms: found " + what +
                          " (functional form) after the symbolic ',' or '!' at position " +
                          std::to_string(formPos_) +
                          "; write the whole filter with AND/OR/NOT or with ',' and '!'");
    }
    return fail(at, "cannot mix filter forms: found " + what +
                        " (symbolic form) after the functional AND/OR/NOT/IN/( at position " +
                        std::to_string(formPos_) +
                        "; write the whole filter with AND/OR/NOT or with ',' and '!'");
  }

  static TagFilter combine(TagFilter::Kind kind, std::vector<TagFilter> parts) {
    if (parts.size() == 1) return std::move(parts.front());
    TagFilter node;
    node.kind = kind;
    for (auto& part : parts) {
      // `(a AND b) AND c` is `a AND b AND c`: flattening keeps one shape per meaning, so printing
      // needs no parentheses the parser would not give back.
      if (part.kind == kind) {
        for (auto& child : part.children) node.children.push_back(std::move(child));
      } else {
        node.children.push_back(std::move(part));
      }
    }
    return node;
  }

  std::optional<TagFilter> parseOr() {
    std::vector<TagFilter> parts;
    auto first = parseAnd();
    if (!first) return std::nullopt;
    parts.push_back(std::move(*first));
    for (;;) {
      skipSpaces();
      if (!isKeyword(peekWord(), "OR")) break;
      if (!useForm(FilterForm::kFunctional, pos_)) return std::nullopt;
      pos_ += 2;
      auto next = parseAnd();
      if (!next) return std::nullopt;
      parts.push_back(std::move(*next));
    }
    return combine(TagFilter::Kind::kOr, std::move(parts));
  }

  std::optional<TagFilter> parseAnd() {
    std::vector<TagFilter> parts;
    auto first = parseUnary();
    if (!first) return std::nullopt;
    parts.push_back(std::move(*first));
    for (;;) {
      skipSpaces();
      if (peek() == ',') {
        if (!useForm(FilterForm::kSymbolic, pos_)) return std::nullopt;
        ++pos_;
      } else if (isKeyword(peekWord(), "AND")) {
        if (!useForm(FilterForm::kFunctional, pos_)) return std::nullopt;
        pos_ += 3;
      } else {
        break;
      }
      auto next = parseUnary();
      if (!next) return std::nullopt;
      parts.push_back(std::move(*next));
    }
    return combine(TagFilter::Kind::kAnd, std::move(parts));
  }

  std::optional<TagFilter> parseUnary() {
    skipSpaces();
    bool negate = false;
    if (peek() == '!') {
      if (!useForm(FilterForm::kSymbolic, pos_)) return std::nullopt;
      ++pos_;
      negate = true;
    } else if (isKeyword(peekWord(), "NOT")) {
      if (!useForm(FilterForm::kFunctional, pos_)) return std::nullopt;
      pos_ += 3;
      negate = true;
    }
    if (!negate) return parsePrimary();
    if (++depth_ > kMaxDepth) {
      fail(pos_, "filter nests deeper than " + std::to_string(kMaxDepth) + " levels");
      return std::nullopt;
    }
    auto child = parseUnary();
    --depth_;
    if (!child) return std::nullopt;
    TagFilter node;
    node.kind = TagFilter::Kind::kNot;
    node.children.push_back(std::move(*child));
    return node;
  }

  std::optional<TagFilter> parsePrimary() {
    skipSpaces();
    std::size_t start = pos_;
    if (peek() == '(') {
      if (!useForm(FilterForm::kFunctional, pos_)) return std::nullopt;
      ++pos_;
      if (++depth_ > kMaxDepth) {
        fail(start, "filter nests deeper than " + std::to_string(kMaxDepth) + " levels");
        return std::nullopt;
      }
      auto inner = parseOr();
      --depth_;
      if (!inner) return std::nullopt;
      skipSpaces();
      if (!expectChar(')', "AND, OR or ')'")) return std::nullopt;
      return inner;
    }
    std::string_view word = peekWord();
    if (word.empty()) {
      fail(start, "expected a tag filter (key:value, key, key:*), found " + found(start));
      return std::nullopt;
    }
    if (isAnyKeyword(word)) {
      fail(start, "expected a tag filter, found the keyword " + quote(word));
      return std::nullopt;
    }
    if (word == "*") {
      fail(start, "'*' selects every series and must be the whole filter: {*}");
      return std::nullopt;
    }
    auto colon = word.find(':');
    std::string_view key = word.substr(0, colon);
    if (key.empty()) {
      fail(start, "expected a tag key before ':', found ':'");
      return std::nullopt;
    }
    if (auto star = key.find('*'); star != std::string_view::npos) {
      fail(start + star,
           "wildcards are allowed in tag values only, found '*' in the key " + quote(key));
      return std::nullopt;
    }
    pos_ += word.size();

    TagFilter node;
    node.kind = TagFilter::Kind::kMatch;
    node.key = std::string(key);
    if (colon != std::string_view::npos) node.values.emplace_back(word.substr(colon + 1));

    // `key IN (...)` and `key NOT IN (...)`
    std::size_t afterWord = pos_;
    skipSpaces();
    bool notIn = false;
    std::size_t operatorPos = pos_;
    if (isKeyword(peekWord(), "NOT")) {
      pos_ += 3;
      skipSpaces();
      if (isKeyword(peekWord(), "IN")) {
        notIn = true;
      } else {
        pos_ = afterWord;
        return node;
      }
    }
    if (!isKeyword(peekWord(), "IN")) {
      pos_ = afterWord;
      return node;
    }
    if (!useForm(FilterForm::kFunctional, operatorPos)) return std::nullopt;
    if (colon != std::string_view::npos) {
      fail(start, "expected a tag key before IN, found " + quote(word));
      return std::nullopt;
    }
    pos_ += 2;
    skipSpaces();
    if (!expectChar('(', "'(' after IN")) return std::nullopt;
    node.kind = TagFilter::Kind::kIn;
    for (;;) {
      skipSpaces();
      std::size_t valueStart = pos_;
      std::string_view value = peekWord();
      if (value.empty()) {
        fail(valueStart, "expected a tag value in the IN list, found " + found(valueStart));
        return std::nullopt;
      }
      pos_ += value.size();
      node.values.emplace_back(value);
      skipSpaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (!expectChar(')', "',' or ')' in the IN list")) return std::nullopt;
      break;
    }
    if (!notIn) return node;
    TagFilter negated;
    negated.kind = TagFilter::Kind::kNot;
    negated.children.push_back(std::move(node));
    return negated;
  }

  // Parentheses and NOT recurse; a bound keeps hostile input from exhausting the stack.
  static constexpr int kMaxDepth = 64;

  std::string_view text_;
  std::size_t pos_ = 0;
  std::optional<QueryError> error_;
  FilterForm form_ = FilterForm::kUnknown;
  std::size_t formPos_ = 0;
  int depth_ = 0;
};

// --- printing ---

bool isPlainMatch(const TagFilter& f) {
  return f.kind == TagFilter::Kind::kMatch && f.values.size() <= 1;
}
bool isSymbolicTerm(const TagFilter& f) {
  return isPlainMatch(f) ||
         (f.kind == TagFilter::Kind::kNot && f.children.size() == 1 && isPlainMatch(f.children[0]));
}
bool isSymbolic(const TagFilter& f) {
  if (f.kind == TagFilter::Kind::kAll || isSymbolicTerm(f)) return true;
  return f.kind == TagFilter::Kind::kAnd &&
         std::all_of(f.children.begin(), f.children.end(), isSymbolicTerm);
}

void printMatch(const TagFilter& f, std::string& out) {
  out += f.key;
  if (!f.values.empty()) {
    out += ':';
    out += f.values.front();
  }
}

void printIn(std::string_view key, const std::vector<std::string>& values, bool negated,
             std::string& out) {
  out += key;
  out += negated ? " NOT IN (" : " IN (";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += values[i];
  }
  out += ')';
}

void printSymbolic(const TagFilter& f, std::string& out) {
  if (f.kind == TagFilter::Kind::kAll) {
    out += '*';
  } else if (f.kind == TagFilter::Kind::kAnd) {
    for (std::size_t i = 0; i < f.children.size(); ++i) {
      if (i > 0) out += ',';
      printSymbolic(f.children[i], out);
    }
  } else if (f.kind == TagFilter::Kind::kNot) {
    out += '!';
    printMatch(f.children.front(), out);
  } else {
    printMatch(f, out);
  }
}

void printFunctional(const TagFilter& f, std::string& out);

void printOperand(const TagFilter& f, bool parenthesize, std::string& out) {
  if (parenthesize) out += '(';
  printFunctional(f, out);
  if (parenthesize) out += ')';
}

void printFunctional(const TagFilter& f, std::string& out) {
  using Kind = TagFilter::Kind;
  switch (f.kind) {
    case Kind::kAll:
      out += '*';
      return;
    case Kind::kMatch:
      printMatch(f, out);
      return;
    case Kind::kIn:
      printIn(f.key, f.values, false, out);
      return;
    case Kind::kNot: {
      if (f.children.empty()) return;
      const TagFilter& child = f.children.front();
      if (child.kind == Kind::kIn) {
        printIn(child.key, child.values, true, out);
        return;
      }
      out += "NOT ";
      printOperand(child, child.kind == Kind::kAnd || child.kind == Kind::kOr, out);
      return;
    }
    case Kind::kAnd:
    case Kind::kOr: {
      std::string_view glue = f.kind == Kind::kAnd ? " AND " : " OR ";
      for (std::size_t i = 0; i < f.children.size(); ++i) {
        if (i > 0) out += glue;
        const TagFilter& child = f.children[i];
        // OR binds looser than AND, and a nested node of the same kind would be flattened by the
        // parser, so both get parentheses to come back as the same tree.
        bool paren = child.kind == Kind::kOr || child.kind == f.kind;
        printOperand(child, paren, out);
      }
      return;
    }
  }
}

std::string printFilter(const TagFilter& f) {
  std::string out;
  if (isSymbolic(f)) {
    printSymbolic(f, out);
  } else {
    printFunctional(f, out);
  }
  return out;
}

void appendRollup(std::string& out, TimeAggregator method, std::optional<int> seconds) {
  out += ".rollup(";
  if (method == TimeAggregator::kAvg && seconds) {
    // The Cluster Agent's spelling, so inline queries print back byte for byte.
    out += std::to_string(*seconds);
  } else {
    out += timeAggregatorName(method);
    if (seconds) {
      out += ',';
      out += std::to_string(*seconds);
    }
  }
  out += ')';
}

}  // namespace

bool TagFilter::matches(const std::vector<std::string>& tags) const {
  return matchesTags(*this, tags);
}

bool TagFilter::matches(std::span<const std::string_view> tags) const {
  return matchesTags(*this, tags);
}

std::string quoteForMessage(std::string_view text) { return quote(text); }

std::expected<DatadogQuery, QueryError> parseQuery(std::string_view text) {
  return Parser(text).parse();
}

std::string printQuery(const DatadogQuery& query) {
  std::string out;
  out += aggregatorName(query.aggregator);
  out += ':';
  out += query.metric;
  out += '{';
  out += printFilter(query.filter);
  out += '}';
  if (!query.groupBy.empty()) {
    out += " by {";
    for (std::size_t i = 0; i < query.groupBy.size(); ++i) {
      if (i > 0) out += ',';
      out += query.groupBy[i];
    }
    out += '}';
  }
  if (query.rollup) appendRollup(out, query.rollup->method, query.rollup->seconds);
  return out;
}

std::string_view aggregatorName(Aggregator a) {
  switch (a) {
    case Aggregator::kAvg:
      return "avg";
    case Aggregator::kSum:
      return "sum";
    case Aggregator::kMin:
      return "min";
    case Aggregator::kMax:
      return "max";
  }
  return "avg";
}

std::optional<Aggregator> parseAggregator(std::string_view name) {
  if (equalsIgnoreCase(name, "avg")) return Aggregator::kAvg;
  if (equalsIgnoreCase(name, "sum")) return Aggregator::kSum;
  if (equalsIgnoreCase(name, "min")) return Aggregator::kMin;
  if (equalsIgnoreCase(name, "max")) return Aggregator::kMax;
  return std::nullopt;
}

std::string inlineQuery(std::string_view metric, const core::LabelSelector& selector,
                        Aggregator aggregator, int rollupSeconds) {
  using Op = core::SelectorOperator;
  const auto& requirements = selector.requirements();
  bool equalityOnly = std::all_of(requirements.begin(), requirements.end(),
                                  [](const auto& r) { return r.op == Op::kEquals; });
  std::string filter;
  if (requirements.empty()) {
    filter = "*";
  } else if (equalityOnly) {
    // Byte-compatible with the Cluster Agent, which sorts the `key:value` strings (not the keys):
    // autogen DatadogMetric names are a hash of this text.
    std::vector<std::string> tags;
    tags.reserve(requirements.size());
    for (const auto& r : requirements) {
      tags.push_back(r.key + ":" + (r.values.empty() ? std::string() : r.values.front()));
    }
    std::sort(tags.begin(), tags.end());
    for (std::size_t i = 0; i < tags.size(); ++i) {
      if (i > 0) filter += ',';
      filter += tags[i];
    }
  } else {
    for (std::size_t i = 0; i < requirements.size(); ++i) {
      const auto& r = requirements[i];
      if (i > 0) filter += " AND ";
      std::string_view value = r.values.empty() ? std::string_view() : r.values.front();
      switch (r.op) {
        case Op::kEquals:
          filter += r.key + ":" + std::string(value);
          break;
        case Op::kNotEquals:
          filter += "NOT " + r.key + ":" + std::string(value);
          break;
        case Op::kIn:
          printIn(r.key, r.values, false, filter);
          break;
        case Op::kNotIn:
          printIn(r.key, r.values, true, filter);
          break;
        case Op::kExists:
          filter += r.key + ":*";
          break;
        case Op::kDoesNotExist:
          filter += "NOT " + r.key + ":*";
          break;
      }
    }
  }
  std::string out;
  out += aggregatorName(aggregator);
  out += ':';
  out += metric;
  out += '{';
  out += filter;
  out += '}';
  if (rollupSeconds > 0) appendRollup(out, TimeAggregator::kAvg, rollupSeconds);
  return out;
}

}  // namespace xmetrics::query

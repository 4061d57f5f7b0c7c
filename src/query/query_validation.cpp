#include "query/query_validation.hpp"

#include <vector>

#include "query/datadog_query.hpp"

namespace xmetrics::query {
namespace {

constexpr std::size_t kMaxExcerpt = 40;      // keeps messages readable on long or hostile input
constexpr std::size_t kMaxMetricName = 200;  // the Datadog Agent's {0,199} after the first letter

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool isLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isMetricChar(char c) { return isLetter(c) || isDigit(c) || c == '_' || c == '.'; }
bool isAggregatorChar(char c) { return isLetter(c) || isDigit(c) || c == '_'; }
bool isQuote(char c) { return c == '"' || c == '\''; }

char closerOf(char open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

// A piece of the query for a message (query::quoteForMessage), cut at kMaxExcerpt bytes.
std::string quote(std::string_view text) {
  bool cut = text.size() > kMaxExcerpt;
  std::string out = quoteForMessage(text.substr(0, kMaxExcerpt));
  if (cut) out.insert(out.size() - 1, "...");
  return out;
}

std::string quoteChar(char c) { return quote(std::string_view(&c, 1)); }

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Brackets, quotes and top-level commas: what decides how a comma-joined batch splits.
std::optional<std::string> checkStructure(std::string_view q) {
  struct Open {
    char c = 0;
    std::size_t at = 0;
  };
  std::vector<Open> open;
  // Not std::optional: GCC 12 at -O3 warns its payload may be read uninitialized.
  bool quoted = false;
  Open inQuote;
  for (std::size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // an escaped character, the quote itself included
      } else if (c == inQuote.c) {
        quoted = false;
      }
      continue;
    }
    switch (c) {
      case '"':
      case '\'':
        inQuote = Open{c, i};
        quoted = true;
        break;
      case '(':
      case '[':
      case '{':
        open.push_back({c, i});
        break;
      case ')':
      case ']':
      case '}':
        if (open.empty()) {
          return "unbalanced brackets: the " + quoteChar(c) + " at position " + std::to_string(i) +
                 " closes nothing; remove it, or add the opening bracket it belongs to";
        }
        if (closerOf(open.back().c) != c) {
          return "unbalanced brackets: the " + quoteChar(open.back().c) + " opened at position " +
                 std::to_string(open.back().at) + " is closed by " + quoteChar(c) +
                 " at position " + std::to_string(i) + "; close it with " +
                 quoteChar(closerOf(open.back().c)) +
                 " first (brackets, braces and parentheses must nest)";
        }
        open.pop_back();
        break;
      case ',':
        if (open.empty()) {
          return "several top-level queries in one: the ',' at position " + std::to_string(i) +
                 " (after " + quote(trimmed(q.substr(0, i))) +
                 ") is outside every bracket and quote, and a batch joins queries with ',' and "
                 "answers them by position, so the next query would take a neighbour's answer; "
                 "keep one query, or combine them into one value with arithmetic such as "
                 "'avg:a{*} + avg:b{*}'";
        }
        break;
      default:
        break;
    }
  }
  if (quoted) {
    return "unterminated quote: the " + quoteChar(inQuote.c) + " at position " +
           std::to_string(inQuote.at) + " is never closed; add the closing " +
           quoteChar(inQuote.c) + " or remove the stray one";
  }
  if (!open.empty()) {
    return "unbalanced brackets: the " + quoteChar(open.back().c) + " opened at position " +
           std::to_string(open.back().at) + " is never closed; add the matching " +
           quoteChar(closerOf(open.back().c));
  }
  return std::nullopt;
}

// What is wrong with one metric name, or nullopt: the Datadog Agent's
// ^[a-zA-Z][a-zA-Z0-9_.]{0,199}$.
std::optional<std::string> metricNameProblem(std::string_view name, std::size_t at) {
  if (!isLetter(name.front())) return "it must start with a letter";
  if (name.size() > kMaxMetricName) {
    return "it is " + std::to_string(name.size()) + " characters long, at most " +
           std::to_string(kMaxMetricName) + " are allowed";
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!isMetricChar(name[i])) {
      return quoteChar(name[i]) + " at position " + std::to_string(at + i) +
             " is not a letter, digit, '_' or '.'";
    }
  }
  return std::nullopt;
}

// Every `<aggregator>:<metric>` outside tag filters and quotes. Called once the structure is sound.
std::optional<std::string> checkMetricNames(std::string_view q) {
  int braces = 0;
  char inQuote = 0;
  for (std::size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (inQuote) {
      if (c == '\\') {
        ++i;
      } else if (c == inQuote) {
        inQuote = 0;
      }
      continue;
    }
    if (isQuote(c)) {
      inQuote = c;
    } else if (c == '{') {
      ++braces;
    } else if (c == '}') {
      --braces;
    } else if (c == ':' && braces == 0) {
      std::size_t aggregatorStart = i;
      while (aggregatorStart > 0 && isAggregatorChar(q[aggregatorStart - 1])) --aggregatorStart;
      std::string after = quote(q.substr(aggregatorStart, i + 1 - aggregatorStart));
      std::size_t start = i + 1, end = start;
      while (end < q.size() && q[end] != '{' && q[end] != '}' && q[end] != ')' && q[end] != ',' &&
             !isQuote(q[end]) && !isSpace(q[end])) {
        ++end;
      }
      auto name = q.substr(start, end - start);
      if (name.empty()) {
        return "no metric name after " + after + " at position " + std::to_string(aggregatorStart) +
               "; write <aggregator>:<metric>{<filter>}, such as avg:nginx.requests{*}";
      }
      if (auto problem = metricNameProblem(name, start)) {
        std::string message = "invalid metric name " + quote(name) + " at position " +
                              std::to_string(start) + ": " + *problem +
                              "; Datadog metric names match ^[a-zA-Z][a-zA-Z0-9_.]{0,199}$";
        if (isLetter(name.front()) && name.size() <= kMaxMetricName) {
          // Datadog's intake turns every other character into '_': that is the name it stores.
          std::string stored(name);
          for (char& ch : stored) {
            if (!isMetricChar(ch)) ch = '_';
          }
          message += ", and Datadog stores other characters as '_': ask for " + quote(stored);
        } else {
          message += ": fix the metric name in the query";
        }
        return message;
      }
      i = end - 1;  // the character that ended the name is looked at next ('{' opens a filter)
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> validateForBatch(std::string_view query) {
  if (trimmed(query).empty()) return "the query is empty; write one query such as avg:<metric>{*}";
  if (auto problem = checkStructure(query)) return problem;
  return checkMetricNames(query);
}

}  // namespace xmetrics::query

#pragma once

// query/: the checks a query in Datadog syntax passes before it may share a batch with others'
// queries. Pure; may include core/ only.

#include <optional>
#include <string>
#include <string_view>

namespace xmetrics::query {

// Why `query` must not be sent in a Datadog batch, or nullopt when it may. A batch is one
// `GET /api/v1/query?query=q1,q2,...` whose answers come back by position (`query_index`), so
// anything that changes how the joined text splits would hand one object's value to another:
//   * a ',' outside every (), [], {} and quote: several top-level queries in one;
//   * an unclosed, unmatched or stray bracket, brace or parenthesis (order-checked);
//   * an unterminated quote (" or '), which would swallow the queries after it;
//   * a metric name (the text after `<aggregator>:` up to `{`) outside the Datadog Agent's pattern
//     ^[a-zA-Z][a-zA-Z0-9_.]{0,199}$.
// Arithmetic and functions (`sum:a{*}/sum:b{*}`, `abs(avg:a{*})`, `top(avg:m{*} by {h}, 10,
// 'mean', 'desc')`) pass: this is not parseQuery, which takes a much smaller subset. The message
// says what is wrong, where (0-based byte position), and how to fix it; it quotes at most a short
// excerpt of the query, with control and non-ASCII bytes written as \xNN.
std::optional<std::string> validateForBatch(std::string_view query);

}  // namespace xmetrics::query

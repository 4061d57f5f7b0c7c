#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/sample.hpp"
#include "core/status_report.hpp"
#include "ui/value_history.hpp"

namespace xmetrics::ui {

// What the page is asked to show: filters and the page of metrics, from its query string
// (ns=, validity=, backend=, q=, page=, per_page=). Unknown parameters are ignored; values are
// bounded, so a URL cannot make the page render more than kMaxPerPage metrics.
struct PageQuery {
  static constexpr std::size_t kDefaultPerPage = 50;
  static constexpr std::size_t kMaxPerPage = 500;
  std::string ns;  // exact namespace; empty: all
  std::string
      validity;  // valid | grace | stale | error | none | invalid (any but valid); empty: all
  std::string backend;   // exact backend name; empty: all
  std::string text;      // a substring of the name, selector or query
  std::size_t page = 1;  // 1-based
  std::size_t perPage = kDefaultPerPage;
};
PageQuery parsePageQuery(std::string_view query);

// What the page says of the process beside the report.
struct PageContext {
  std::string version;  // e.g. "0.1.0 (abc1234)"
  core::Clock::time_point startedAt;
  core::Clock::time_point now;
  std::chrono::milliseconds historyInterval{0};  // how often the history samples
};

// The whole HTML document: a header (version, role, uptime, refresh settings), the backends
// (state, calls and errors over the history, rate-limit budgets, queries per metric), a filter
// form, and one page of metrics (name, namespace, resolution, backend, query, value with unit and
// age, a sparkline and a validity strip from `history`, the HPAs that name it). No external
// assets; an inline script re-reads the page every few seconds when JavaScript runs. Every text
// from the report is HTML-escaped.
std::string renderPage(const core::StatusReport& report, const ValueHistory* history,
                       const PageQuery& query, const PageContext& context);

// `text` with & < > " ' as entities.
std::string escapeHtml(std::string_view text);

}  // namespace xmetrics::ui

#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tsdb/observation.hpp"

namespace xmetrics::ingest {

// DogStatsD datagram parsing (protocol 1.0-1.3, see docs/dogstatsd.md):
//   <name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>,<k>:<v>][|c:<container>][|T<unix-seconds>]
// One metric per line, several lines per datagram. Unknown `|x...` fields are ignored.
// A parsed line is what the embedded store records. Views point into the datagram: valid only
// during the callback.
using MetricType = tsdb::MetricType;
using DogStatsdMetric = tsdb::Observation;

struct ParseStats {
  uint64_t metrics = 0;    // lines that produced a DogStatsdMetric
  uint64_t skipped = 0;    // events (`_e{`) and service checks (`_sc|`), ignored on purpose
  uint64_t malformed = 0;  // lines that could not be parsed
  std::string_view firstMalformed;  // the first bad line, for a rate-limited log
};

// Parses a whole datagram, calling `onMetric(const DogStatsdMetric&)` for each good line.
// Never throws on bad input; bad lines are counted and skipped. `scratch` holds each line in
// turn: a caller that keeps it across datagrams (the listener) parses without allocating.
template <typename OnMetric>
ParseStats parseDatagram(std::string_view datagram, DogStatsdMetric& scratch, OnMetric&& onMetric);
template <typename OnMetric>
ParseStats parseDatagram(std::string_view datagram, OnMetric&& onMetric) {
  DogStatsdMetric scratch;
  return parseDatagram(datagram, scratch, std::forward<OnMetric>(onMetric));
}

// Parses one line (no newline) into `out`, reusing its vectors' capacity. false when malformed
// (`out` then holds part of the line).
bool parseLine(std::string_view line, DogStatsdMetric& out);
// The same, into a new value. nullopt when malformed.
std::optional<DogStatsdMetric> parseLine(std::string_view line);
bool isEventOrServiceCheck(std::string_view line);

template <typename OnMetric>
ParseStats parseDatagram(std::string_view datagram, DogStatsdMetric& scratch, OnMetric&& onMetric) {
  ParseStats stats;
  while (!datagram.empty()) {
    auto nl = datagram.find('\n');
    std::string_view line = datagram.substr(0, nl);
    datagram = nl == std::string_view::npos ? std::string_view{} : datagram.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (isEventOrServiceCheck(line)) {
      ++stats.skipped;
      continue;
    }
    if (parseLine(line, scratch)) {
      ++stats.metrics;
      onMetric(std::as_const(scratch));
    } else {
      if (stats.malformed++ == 0) stats.firstMalformed = line;
    }
  }
  return stats;
}

}  // namespace xmetrics::ingest

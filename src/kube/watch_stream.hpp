#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace xmetrics::kube {

// One event of a watch: `{"type": "ADDED", "object": {...}}`, one per line of the response body.
struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (as sent; not checked)
  boost::json::object object;
};

// Cuts a watch response's body into events as its chunks arrive. A line may span any number of
// chunks; a line that is not an event (blank, not JSON, no `object` map) is skipped and counted,
// never fatal, since one bad line must not cost the watch. A line longer than `maxLineBytes`
// without its newline ends the stream (`overflowed()`): the caller relists rather than buffer an
// answer without end.
class WatchStreamReader {
 public:
  // Bigger than any object etcd stores (1.5 MiB by default, a few MiB when raised).
  static constexpr std::size_t kDefaultMaxLineBytes = 64u << 20;
  explicit WatchStreamReader(std::size_t maxLineBytes = kDefaultMaxLineBytes)
      : maxLineBytes_(maxLineBytes) {}

  // Hands each complete event in `chunk` to `onEvent`, in order. False when `onEvent` returned
  // false (the rest of the chunk is dropped) or the line overflowed; true to go on reading.
  bool feed(std::string_view chunk, const std::function<bool(WatchEvent&&)>& onEvent);

  std::size_t skippedLines() const { return skipped_; }
  bool overflowed() const { return overflowed_; }
  std::size_t bufferedBytes() const { return buffer_.size(); }

 private:
  std::size_t maxLineBytes_;
  std::string buffer_;  // the start of a line whose newline has not arrived
  std::size_t skipped_ = 0;
  bool overflowed_ = false;
};

}  // namespace xmetrics::kube

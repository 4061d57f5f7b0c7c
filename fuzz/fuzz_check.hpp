#pragma once
// What every fuzz target asserts with: an invariant that does not hold aborts, which libFuzzer
// reports as a crash with the input that caused it.
#include <cstdlib>

namespace xmetrics::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace xmetrics::fuzz

#include "tsdb/time_series_store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace xmetrics::tsdb {
namespace {

using std::chrono::seconds;

// `|T` timestamps may run this far ahead of the receiving clock (clock skew between hosts).
constexpr int64_t kMaxFutureSeconds = 60;
// Raw samples kept per histogram bucket for its median and 95th percentile (reservoir sampling).
constexpr std::size_t kReservoirSize = 128;
// Distinct members tracked per set bucket; beyond this the bucket's value stops growing.
constexpr std::size_t kMaxSetMembers = 100'000;

constexpr uint32_t kNoId = std::numeric_limits<uint32_t>::max();

// What malloc really takes for a block of n bytes (glibc, 64-bit): n plus an 8-byte header, rounded
// up to 16, at least 32. Counting requested sizes instead under-counts small blocks by half, and
// the store is mostly small blocks; approxBytes is the bound maxBytes enforces, so it must be real.
constexpr std::size_t heapBytes(std::size_t n) {
  return n == 0 ? 0 : std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}
// A node of a std::unordered_* holding `value` bytes: the next pointer, the value, and the cached
// hash when the hash is not one libstdc++ deems fast (ours, on strings, is not).
constexpr std::size_t nodeBytes(std::size_t value, bool cachedHash) {
  return heapBytes(8 + value + (cachedHash ? 8 : 0));
}
// Bucket array of an unordered container (a single bucket lives inside the container).
std::size_t bucketArrayBytes(std::size_t buckets) {
  return buckets > 1 ? heapBytes(buckets * sizeof(void*)) : 0;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int64_t epochSeconds(core::Clock::time_point t) {
  return std::chrono::floor<seconds>(t.time_since_epoch()).count();
}

int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

uint64_t mix(uint64_t h, uint64_t v) {
  // splitmix64 finalizer over a running combination.
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// Strings (metric names, tags) stored once, lowercased, with a reference count so that series
// churn (pod names in tags) does not grow the table forever. Lookups ignore ASCII case and never
// allocate, which keeps the ingest path copy-free.
class Interner {
 public:
  uint32_t find(std::string_view text) const {
    auto it = ids_.find(text);
    return it == ids_.end() ? kNoId : it->second;
  }

  uint32_t acquire(std::string_view text) {
    if (auto it = ids_.find(text); it != ids_.end()) {
      ++entries_[it->second].refs;
      return it->second;
    }
    uint32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      id = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    }
    Entry& e = entries_[id];
    e.chars = std::make_unique<char[]>(text.size());
    std::transform(text.begin(), text.end(), e.chars.get(), lower);
    e.size = static_cast<uint32_t>(text.size());
    e.refs = 1;
    ids_.emplace(view(id), id);
    bytes_ += heapBytes(text.size()) + kNodeBytes;
    return id;
  }

  void release(uint32_t id) {
    Entry& e = entries_[id];
    if (--e.refs > 0) return;
    ids_.erase(view(id));
    bytes_ -= heapBytes(e.size) + kNodeBytes;
    e.chars.reset();
    e.size = 0;
    free_.push_back(id);
  }

  std::string_view view(uint32_t id) const { return {entries_[id].chars.get(), entries_[id].size}; }
  std::size_t bytes() const {
    return bytes_ + heapBytes(entries_.capacity() * sizeof(Entry)) +
           heapBytes(free_.capacity() * sizeof(uint32_t)) + bucketArrayBytes(ids_.bucket_count());
  }

 private:
  struct Entry {
    std::unique_ptr<char[]> chars;  // heap, so views in ids_ survive entries_ growing
    uint32_t size = 0;
    uint32_t refs = 0;
  };
  struct CaseInsensitiveHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const {
      uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
      for (char c : s) h = (h ^ static_cast<unsigned char>(lower(c))) * 0x100000001b3ULL;
      return h;
    }
  };
  struct CaseInsensitiveEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const {
      return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return lower(x) == lower(y);
             });
    }
  };
  // An ids_ node: a string_view and an id, plus the cached hash.
  static constexpr std::size_t kNodeBytes = nodeBytes(sizeof(std::string_view) + 8, true);

  std::unordered_map<std::string_view, uint32_t, CaseInsensitiveHash, CaseInsensitiveEqual> ids_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
  std::size_t bytes_ = 0;
};

// What a series was fed with; it decides the per-bucket summary kept.
// How long an idle counter still reads as 0 (the Datadog Agent's dogstatsd_expiry_seconds default).
constexpr std::chrono::seconds kCountExpiry{300};

enum class SeriesKind : uint8_t { kCount, kGauge, kSet, kHistogram, kDistribution };

SeriesKind kindOf(MetricType type) {
  switch (type) {
    case MetricType::kCount:
      return SeriesKind::kCount;
    case MetricType::kGauge:
      return SeriesKind::kGauge;
    case MetricType::kSet:
      return SeriesKind::kSet;
    case MetricType::kTimer:
    case MetricType::kHistogram:
      return SeriesKind::kHistogram;
    case MetricType::kDistribution:
      return SeriesKind::kDistribution;
  }
  return SeriesKind::kGauge;
}

bool isHistogramLike(SeriesKind k) {
  return k == SeriesKind::kHistogram || k == SeriesKind::kDistribution;
}

// Per-bucket fields of a histogram-like series.
// One native bucket of a histogram-like series. 32 bytes where six doubles would take 48: that
// difference is what keeps 10,000 timers within the process' memory budget. Counts and sums stay
// exact; sample values keep float precision (7 significant digits), see widen().
struct HistogramBucket {
  double weight = 0;  // sum of 1/sampleRate: the number of samples the bucket stands for
  double sum = 0;     // sum of value/sampleRate
  float min = 0;
  float max = 0;
  float median = 0;
  float p95 = 0;
};

float narrow(double v) {
  constexpr double kLargest = std::numeric_limits<float>::max();
  return static_cast<float>(std::clamp(v, -kLargest, kLargest));
}

// A stored float read back as the double of its shortest decimal spelling, so a latency sent as
// 0.123 is served as 0.123 and not as 0.12300000339746475.
double widen(float f) {
  std::array<char, 32> text;
  auto [end, ec] = std::to_chars(text.data(), text.data() + text.size(), f);
  double d = f;
  if (ec == std::errc{}) std::from_chars(text.data(), end, d);
  return d;
}

// Which number of a series' bucket a query reads.
enum class Stat : uint8_t {
  kRate,   // count: sum of value/sampleRate over the bucket, per second
  kValue,  // gauge: last value; set: distinct members
  kAvg,    // histogram-like: sum / count
  kCount,  // histogram-like: samples per second
  kMax,
  kMin,
  kMedian,
  kP95,
  kSum,
};

constexpr std::array<std::pair<std::string_view, Stat>, 7> kHistogramSuffixes{{
    {".avg", Stat::kAvg},
    {".count", Stat::kCount},
    {".max", Stat::kMax},
    {".min", Stat::kMin},
    {".median", Stat::kMedian},
    {".95percentile", Stat::kP95},
    {".sum", Stat::kSum},
}};

// Raw material of the bucket a set or histogram is currently filling; summarized and freed once
// the series moves on to a newer bucket or expire() sees the bucket closed.
struct OpenBucket {
  uint32_t bucket = 0;
  uint64_t offered = 0;                          // samples seen, for reservoir sampling
  std::vector<std::pair<float, float>> samples;  // (value, weight) reservoir, histograms
  std::unordered_set<uint64_t> members;          // member hashes, sets
};

// Eviction classes, in the order their series make room for a new one (docs/embedded-backend.md).
// Within a class series are kept least recently fed (kQueried: least recently matched) first.
enum class Tier : uint8_t {
  kOneShot,   // data in a single native bucket and never matched by a query: a flood looks so
  kFedAgain,  // fed in two buckets or more, never matched by a query
  kQueried,   // matched by a query; protected while that was within idleExpiry
};
constexpr std::size_t kTiers = 3;

struct Series {
  uint64_t hash = 0;
  uint32_t name = kNoId;  // interned, lowercased
  SeriesKind kind = SeriesKind::kGauge;
  bool alive = false;
  Tier tier = Tier::kOneShot;
  uint32_t prev = kNoId;  // neighbours in its tier's list
  uint32_t next = kNoId;
  uint32_t nameSlot = 0;       // its index in byName[name]
  uint32_t firstBucket = 0;    // the native bucket of its first point
  uint32_t cost = 0;           // bytes it holds beyond its record, as counted in seriesBytes
  int64_t lastMatched = 0;     // epoch seconds of the newest query that matched it; 0: none
  std::vector<uint32_t> tags;  // interned, sorted, unique
  int64_t lastSeen = 0;        // epoch seconds of the newest ingest
  // Counts only: the first and newest native bucket that received a point. Between them, and for
  // kCountExpiry after the newest, an empty bucket is a rate of 0 — as the Datadog Agent keeps
  // reporting an idle counter as 0 — so a rate falls to 0 when traffic stops.
  uint32_t firstCountBucket = 0;
  uint32_t lastCountBucket = 0;
  // Ring of native buckets: slot i holds bucket ids[i] (0 = empty; bucket 0 is 1970, always
  // beyond retention), its data in values[i] (counts, gauges, sets) or histograms[i].
  std::unique_ptr<uint32_t[]> ids;
  std::unique_ptr<double[]> values;
  std::unique_ptr<HistogramBucket[]> histograms;
  std::unique_ptr<OpenBucket> open;
};

// Weighted rank selection as the Datadog Agent does it: sorted samples, the first whose running
// weight exceeds floor((p*W - 1)/100) (median: floor((W - 1)/2)).
std::pair<float, float> medianAndP95(std::vector<std::pair<float, float>> samples) {
  if (samples.empty()) return {0, 0};
  std::sort(samples.begin(), samples.end());
  double total = 0;
  for (const auto& s : samples) total += s.second;
  double medianTarget = std::floor((total - 1) / 2);
  double p95Target = std::floor((95 * total - 1) / 100);
  std::optional<float> median, p95;
  double running = 0;
  for (const auto& [value, weight] : samples) {
    running += weight;
    if (!median && running > medianTarget) median = value;
    if (!p95 && running > p95Target) p95 = value;
    if (median && p95) break;
  }
  return {median.value_or(samples.back().first), p95.value_or(samples.back().first)};
}

// Is `tag` a `key:<value>` tag? Keys compare ignoring ASCII case; a bare `key` has no value and is
// not one (Datadog groups it under `N/A`).
bool hasKey(std::string_view tag, std::string_view key) {
  return tag.size() > key.size() && tag[key.size()] == ':' &&
         std::equal(key.begin(), key.end(), tag.begin(),
                    [](char a, char b) { return lower(a) == lower(b); });
}

// `q` without its ` by {...}` and with its filter narrowed to series carrying every tag of `tags`
// (`key:value`): `{rest AND k:v}`, an AND flattened as the parser flattens it, so it prints as the
// query a caller would have written. It names a group in its errors.
query::DatadogQuery narrowedTo(const query::DatadogQuery& q,
                               std::span<const std::string_view> tags) {
  using Kind = query::TagFilter::Kind;
  query::DatadogQuery out = q;
  out.groupBy.clear();
  if (tags.empty()) return out;
  std::vector<query::TagFilter> terms;
  if (q.filter.kind == Kind::kAnd) {
    terms = q.filter.children;
  } else if (q.filter.kind != Kind::kAll) {
    terms.push_back(q.filter);
  }
  for (std::string_view tag : tags) {
    query::TagFilter match;
    match.kind = Kind::kMatch;
    std::size_t colon = tag.find(':');
    match.key = std::string(tag.substr(0, colon));
    match.values.emplace_back(tag.substr(colon + 1));
    terms.push_back(std::move(match));
  }
  if (terms.size() == 1) {
    out.filter = std::move(terms.front());
  } else {
    out.filter = query::TagFilter{.kind = Kind::kAnd, .children = std::move(terms)};
  }
  return out;
}

}  // namespace

struct TimeSeriesStore::Impl {
  explicit Impl(TimeSeriesStoreOptions o) : options(o) {
    resolution = std::max<int64_t>(1, options.resolution.count());
    retention = std::max<int64_t>(resolution, options.retention.count());
    // Room for the whole retention, the future allowance and the bucket being filled, so two live
    // buckets never share a slot.
    ringSize = static_cast<uint32_t>((retention + resolution - 1) / resolution +
                                     (kMaxFutureSeconds + resolution - 1) / resolution + 1);
  }

  TimeSeriesStoreOptions options;
  int64_t resolution;
  int64_t retention;
  uint32_t ringSize;

  mutable std::mutex mutex;
  Interner strings;
  std::vector<Series> series;  // indexed by series id; holes reused
  std::vector<uint32_t> freeSeries;
  std::size_t liveSeries = 0;
  std::unordered_multimap<uint64_t, uint32_t> byKey;           // identity hash -> series id
  std::unordered_map<uint32_t, std::vector<uint32_t>> byName;  // name id -> series ids
  std::size_t points = 0;
  uint64_t refusedSeries = 0;
  uint64_t refusedForBytes = 0;
  uint64_t evictedSeries = 0;
  uint64_t rejectedPoints = 0;
  std::size_t seriesBytes = 0;  // sum of Series::cost
  std::size_t nameBytes = 0;    // byName's nodes and id vectors
  struct List {
    uint32_t head = kNoId;  // the next to go
    uint32_t tail = kNoId;
  };
  std::array<List, kTiers> tiers;
  uint64_t rng = 0x853c49e6748fea9bULL;
  std::vector<uint32_t> scratchTags;  // ingest's probe key, reused to avoid an allocation per line

  uint64_t nextRandom() {
    // xorshift64*: cheap and good enough to pick reservoir victims.
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
  }

  // --- what the store holds, in bytes ---

  // A byKey node: the 8-byte hash and the 4-byte id, padded.
  static constexpr std::size_t kKeyNodeBytes = nodeBytes(16, false);
  // A byName node: the name id and its vector of series ids.
  static constexpr std::size_t kNameNodeBytes = nodeBytes(8 + sizeof(std::vector<uint32_t>), false);
  // One distinct member of a set bucket: its node in the set, and a bucket slot at load factor 1.
  static constexpr std::size_t kMemberBytes = nodeBytes(8, false) + sizeof(void*);

  // What one series holds besides its record in `series`: its ring, its tags, its key node and
  // the raw material of the bucket being filled.
  std::size_t costOf(const Series& s) const {
    std::size_t bytes =
        kKeyNodeBytes + heapBytes(ringSize * sizeof(uint32_t)) +
        heapBytes(ringSize * (s.histograms ? sizeof(HistogramBucket) : sizeof(double))) +
        heapBytes(s.tags.capacity() * sizeof(uint32_t));
    if (s.open) {
      bytes += heapBytes(sizeof(OpenBucket)) +
               heapBytes(s.open->samples.capacity() * sizeof(std::pair<float, float>)) +
               s.open->members.size() * nodeBytes(8, false) +
               bucketArrayBytes(s.open->members.bucket_count());
    }
    return bytes;
  }

  void recost(Series& s) {
    std::size_t cost = costOf(s);
    seriesBytes = seriesBytes + cost - s.cost;
    s.cost = static_cast<uint32_t>(cost);
  }

  std::size_t totalBytes() const {
    return sizeof(Impl) + seriesBytes + nameBytes + strings.bytes() +
           heapBytes(series.capacity() * sizeof(Series)) +
           heapBytes(freeSeries.capacity() * sizeof(uint32_t)) +
           heapBytes(scratchTags.capacity() * sizeof(uint32_t)) +
           bucketArrayBytes(byKey.bucket_count()) + bucketArrayBytes(byName.bucket_count());
  }

  // --- eviction ---

  void link(uint32_t id, Tier tier) {
    Series& s = series[id];
    List& list = tiers[static_cast<std::size_t>(tier)];
    s.tier = tier;
    s.prev = list.tail;
    s.next = kNoId;
    if (list.tail != kNoId) {
      series[list.tail].next = id;
    } else {
      list.head = id;
    }
    list.tail = id;
  }

  void unlink(uint32_t id) {
    Series& s = series[id];
    List& list = tiers[static_cast<std::size_t>(s.tier)];
    (s.prev != kNoId ? series[s.prev].next : list.head) = s.next;
    (s.next != kNoId ? series[s.next].prev : list.tail) = s.prev;
    s.prev = s.next = kNoId;
  }

  void moveToTail(uint32_t id, Tier tier) {
    const Series& s = series[id];
    if (s.tier == tier && s.next == kNoId) return;
    unlink(id);
    link(id, tier);
  }

  // A new point: the series moves to the fed end of its list, or up a tier when a second bucket
  // shows it is not a one-shot. A queried series keeps its place, ordered by its last match.
  void fed(uint32_t id, uint32_t bucket) {
    const Series& s = series[id];
    if (s.tier == Tier::kQueried) return;
    moveToTail(id, s.tier == Tier::kOneShot && bucket != s.firstBucket ? Tier::kFedAgain : s.tier);
  }

  bool protectedAt(const Series& s, int64_t now) const {
    return s.lastMatched != 0 && now - s.lastMatched < options.idleExpiry.count();
  }

  // The next series to evict, never `keep`: from the lowest tier that has one, the costliest of
  // the few that were fed (or matched) longest ago. kNoId when every series is protected.
  uint32_t victim(uint32_t keep, int64_t now) const {
    constexpr int kSampled = 8;
    for (const List& list : tiers) {
      uint32_t best = kNoId;
      int seen = 0;
      for (uint32_t id = list.head; id != kNoId && seen < kSampled; id = series[id].next) {
        if (id == keep) continue;
        // kQueried is ordered by last match: past the first protected one, all are.
        if (protectedAt(series[id], now)) break;
        ++seen;
        if (best == kNoId || series[id].cost > series[best].cost) best = id;
      }
      if (best != kNoId) return best;
    }
    return kNoId;
  }

  bool overBounds(std::size_t extraBytes) const {
    return liveSeries > options.maxSeries || totalBytes() + extraBytes > options.maxBytes;
  }

  // Evicts until both bounds hold with `extraBytes` more; false when only protected series (and
  // `keep`) are left.
  bool makeRoom(uint32_t keep, int64_t now, std::size_t extraBytes = 0) {
    while (overBounds(extraBytes)) {
      uint32_t id = victim(keep, now);
      if (id == kNoId) return false;
      remove(id);
      ++evictedSeries;
    }
    return true;
  }

  static uint64_t identityHash(SeriesKind kind, uint32_t name, const std::vector<uint32_t>& tags) {
    uint64_t h = mix(static_cast<uint64_t>(kind) + 1, name);
    for (uint32_t t : tags) h = mix(h, t);
    return h;
  }

  // Finds or creates the series; nullptr when it is new and no room can be made for it.
  Series* seriesFor(const Observation& m, SeriesKind kind, uint32_t bucket, int64_t now) {
    uint32_t name = strings.find(m.name);
    bool known = name != kNoId;
    scratchTags.clear();
    for (std::string_view tag : m.tags) {
      uint32_t id = strings.find(tag);
      if (id == kNoId) {
        known = false;
        break;
      }
      scratchTags.push_back(id);
    }
    uint64_t hash = 0;
    if (known) {
      std::sort(scratchTags.begin(), scratchTags.end());
      scratchTags.erase(std::unique(scratchTags.begin(), scratchTags.end()), scratchTags.end());
      hash = identityHash(kind, name, scratchTags);
      auto [first, last] = byKey.equal_range(hash);
      for (auto it = first; it != last; ++it) {
        Series& s = series[it->second];
        if (s.kind == kind && s.name == name && s.tags == scratchTags) return &s;
      }
    }
    // Created first, so that what it costs (strings included) is known exactly; then room is
    // made, or it goes again.
    uint32_t id = create(m, kind, bucket);
    if (!makeRoom(id, now)) {
      ++(liveSeries > options.maxSeries ? refusedSeries : refusedForBytes);
      remove(id);
      return nullptr;
    }
    return &series[id];
  }

  uint32_t create(const Observation& m, SeriesKind kind, uint32_t bucket) {
    uint32_t id;
    if (!freeSeries.empty()) {
      id = freeSeries.back();
      freeSeries.pop_back();
    } else {
      id = static_cast<uint32_t>(series.size());
      series.emplace_back();
    }
    Series& s = series[id];
    s = Series{};
    s.alive = true;
    s.kind = kind;
    s.name = strings.acquire(m.name);
    s.tags.reserve(m.tags.size());
    for (std::string_view tag : m.tags) s.tags.push_back(strings.acquire(tag));
    std::sort(s.tags.begin(), s.tags.end());
    // A tag sent twice was acquired twice; give the extra references back.
    auto dup = std::unique(s.tags.begin(), s.tags.end());
    for (auto it = dup; it != s.tags.end(); ++it) strings.release(*it);
    s.tags.erase(dup, s.tags.end());
    s.tags.shrink_to_fit();
    s.hash = identityHash(kind, s.name, s.tags);
    s.ids = std::make_unique<uint32_t[]>(ringSize);
    if (isHistogramLike(kind)) {
      s.histograms = std::make_unique<HistogramBucket[]>(ringSize);
    } else {
      s.values = std::make_unique<double[]>(ringSize);
    }
    s.firstBucket = bucket;
    byKey.emplace(s.hash, id);
    auto [named, added] = byName.try_emplace(s.name);
    std::size_t idsBefore = heapBytes(named->second.capacity() * sizeof(uint32_t));
    s.nameSlot = static_cast<uint32_t>(named->second.size());
    named->second.push_back(id);
    nameBytes += (added ? kNameNodeBytes : 0) +
                 heapBytes(named->second.capacity() * sizeof(uint32_t)) - idsBefore;
    link(id, Tier::kOneShot);
    recost(s);
    ++liveSeries;
    return id;
  }

  void remove(uint32_t id) {
    Series& s = series[id];
    auto [first, last] = byKey.equal_range(s.hash);
    for (auto it = first; it != last; ++it) {
      if (it->second == id) {
        byKey.erase(it);
        break;
      }
    }
    // Swap-and-pop: evicting from a flood of one name stays O(1).
    auto named = byName.find(s.name);
    auto& ids = named->second;
    ids[s.nameSlot] = ids.back();
    series[ids[s.nameSlot]].nameSlot = s.nameSlot;
    ids.pop_back();
    if (ids.empty()) {
      nameBytes -= kNameNodeBytes + heapBytes(ids.capacity() * sizeof(uint32_t));
      byName.erase(named);
    }
    unlink(id);
    seriesBytes -= s.cost;
    for (uint32_t i = 0; i < ringSize; ++i) {
      if (s.ids[i] != 0) --points;
    }
    strings.release(s.name);
    for (uint32_t t : s.tags) strings.release(t);
    s = Series{};
    freeSeries.push_back(id);
    --liveSeries;
  }

  // The slot holding `bucket`, reset if it held an older one; nullopt if it holds a newer bucket
  // (the point is older than the ring remembers).
  struct Slot {
    uint32_t index;
    bool fresh;  // just (re)started for this bucket
  };
  std::optional<Slot> slotFor(Series& s, uint32_t bucket) {
    uint32_t slot = bucket % ringSize;
    if (s.ids[slot] == bucket) return Slot{slot, false};
    if (s.ids[slot] > bucket) return std::nullopt;
    if (s.ids[slot] == 0) ++points;
    s.ids[slot] = bucket;
    clear(s, slot);
    return Slot{slot, true};
  }

  static void clear(Series& s, uint32_t slot) {
    if (s.histograms) {
      s.histograms[slot] = HistogramBucket{};
    } else {
      s.values[slot] = 0;
    }
  }

  void finalize(Series& s) {
    if (!s.open) return;
    uint32_t slot = s.open->bucket % ringSize;
    if (isHistogramLike(s.kind) && s.ids[slot] == s.open->bucket) {
      auto [median, p95] = medianAndP95(std::move(s.open->samples));
      s.histograms[slot].median = median;
      s.histograms[slot].p95 = p95;
    }
    s.open.reset();
  }

  OpenBucket* openFor(Series& s, uint32_t bucket) {
    if (s.open && s.open->bucket == bucket) return s.open.get();
    if (s.open && s.open->bucket > bucket) return nullptr;  // late point, see addHistogram
    finalize(s);
    s.open = std::make_unique<OpenBucket>();
    s.open->bucket = bucket;
    return s.open.get();
  }

  void addHistogram(Series& s, uint32_t bucket, double value, double weight) {
    auto slot = slotFor(s, bucket);
    if (!slot) {
      ++rejectedPoints;
      return;
    }
    HistogramBucket& h = s.histograms[slot->index];
    float sample = narrow(value);
    if (slot->fresh) {
      h.min = h.max = h.median = h.p95 = sample;
    } else {
      h.min = std::min(h.min, sample);
      h.max = std::max(h.max, sample);
    }
    h.weight += weight;
    h.sum += value * weight;
    // A point for a bucket older than the one being filled (the receiving clock stepped back)
    // updates count/sum/min/max; its median and 95th percentile keep their summarized values.
    OpenBucket* open = openFor(s, bucket);
    if (open == nullptr) return;
    ++open->offered;
    if (open->samples.size() < kReservoirSize) {
      open->samples.emplace_back(sample, static_cast<float>(weight));
    } else if (uint64_t j = nextRandom() % open->offered; j < kReservoirSize) {
      open->samples[j] = {sample, static_cast<float>(weight)};
    }
  }

  void addSetMember(Series& s, uint32_t bucket, std::string_view member, int64_t now) {
    auto slot = slotFor(s, bucket);
    if (!slot) {
      ++rejectedPoints;
      return;
    }
    double& distinct = s.values[slot->index];
    OpenBucket* open = openFor(s, bucket);
    if (open == nullptr) {
      if (slot->fresh) distinct = 1;  // late member: counted only when it opens its bucket
      return;
    }
    if (open->members.size() >= kMaxSetMembers) return;
    uint64_t hash = std::hash<std::string_view>{}(member);
    // Members are the one thing a known series grows by without bound but kMaxSetMembers: room is
    // made (or the member refused) before, as for a new series.
    if (!open->members.contains(hash) &&
        !makeRoom(static_cast<uint32_t>(&s - series.data()), now, kMemberBytes)) {
      ++refusedForBytes;
      return;
    }
    open->members.insert(hash);
    distinct = static_cast<double>(open->members.size());
  }

  void ingest(const Observation& m, int64_t received) {
    SeriesKind kind = kindOf(m.type);
    if (kind != SeriesKind::kSet && m.values.empty()) return;
    // DogStatsD 1.3 timestamps apply to counts and gauges only (the clients drop them elsewhere).
    int64_t at = received;
    if (m.timestamp && (kind == SeriesKind::kCount || kind == SeriesKind::kGauge)) {
      at = *m.timestamp;
    }
    if (at < received - retention || at > received + kMaxFutureSeconds ||
        floorDiv(at, resolution) <= 0 ||
        floorDiv(at, resolution) >= std::numeric_limits<uint32_t>::max()) {
      ++rejectedPoints;
      return;
    }
    auto bucket = static_cast<uint32_t>(floorDiv(at, resolution));
    Series* s = seriesFor(m, kind, bucket, received);
    if (s == nullptr) return;
    const auto id = static_cast<uint32_t>(s - series.data());
    fed(id, bucket);
    s->lastSeen = std::max(s->lastSeen, received);
    if (kind == SeriesKind::kCount) {
      if (s->firstCountBucket == 0 || bucket < s->firstCountBucket) s->firstCountBucket = bucket;
      s->lastCountBucket = std::max(s->lastCountBucket, bucket);
    }
    double weight = (m.sampleRate > 0 && m.sampleRate <= 1) ? 1 / m.sampleRate : 1;

    switch (kind) {
      case SeriesKind::kCount: {
        auto slot = slotFor(*s, bucket);
        if (!slot) {
          ++rejectedPoints;
          return;
        }
        for (double value : m.values) {
          if (std::isfinite(value)) s->values[slot->index] += value * weight;
        }
        return;
      }
      case SeriesKind::kGauge: {
        auto slot = slotFor(*s, bucket);
        if (!slot) {
          ++rejectedPoints;
          return;
        }
        for (double value : m.values) {
          if (!std::isfinite(value)) continue;
          s->values[slot->index] = value;
        }
        return;
      }
      case SeriesKind::kSet:
        addSetMember(*s, bucket, m.setValue, received);
        recost(*s);
        return;
      case SeriesKind::kHistogram:
      case SeriesKind::kDistribution:
        for (double value : m.values) {
          if (std::isfinite(value)) addHistogram(*s, bucket, value, weight);
        }
        // The reservoir grew (by at most 1 KiB a bucket): others make room if they can.
        recost(*s);
        if (overBounds(0)) makeRoom(id, received);
        return;
    }
  }

  // The number a query reads from one native bucket of a series, or nullopt if it holds none.
  std::optional<double> read(const Series& s, uint32_t bucket, Stat stat) const {
    uint32_t slot = bucket % ringSize;
    if (s.ids[slot] != bucket) return std::nullopt;
    auto res = static_cast<double>(resolution);
    if (!s.histograms) return stat == Stat::kRate ? s.values[slot] / res : s.values[slot];
    const HistogramBucket& h = s.histograms[slot];
    switch (stat) {
      case Stat::kRate:
      case Stat::kValue:
        return std::nullopt;  // not asked of histograms, see candidates()
      case Stat::kAvg:
        return h.weight > 0 ? std::optional(h.sum / h.weight) : std::nullopt;
      case Stat::kCount:
        return h.weight / res;
      case Stat::kSum:
        return h.sum;
      case Stat::kMax:
        return widen(h.max);
      case Stat::kMin:
        return widen(h.min);
      case Stat::kMedian:
      case Stat::kP95: {
        float median = h.median, p95 = h.p95;
        if (s.open && s.open->bucket == bucket && !s.open->samples.empty()) {
          std::tie(median, p95) = medianAndP95(s.open->samples);
        }
        return widen(stat == Stat::kMedian ? median : p95);
      }
    }
    return std::nullopt;
  }

  struct Candidate {
    const Series* series;
    Stat stat;
  };

  // Time aggregation of one series over native buckets [first, last].
  std::optional<double> rollup(const Candidate& c, int64_t first, int64_t last,
                               query::TimeAggregator method) const {
    std::optional<double> acc;
    std::size_t n = 0;
    const int64_t zeroUntil =
        static_cast<int64_t>(c.series->lastCountBucket) + kCountExpiry.count() / resolution;
    for (int64_t b = first; b <= last; ++b) {
      auto value = read(*c.series, static_cast<uint32_t>(b), c.stat);
      if (!value && c.stat == Stat::kRate && c.series->firstCountBucket != 0 &&
          b >= c.series->firstCountBucket && b <= zeroUntil) {
        value = 0.0;
      }
      if (!value) continue;
      ++n;
      if (!acc) {
        acc = *value;
        continue;
      }
      switch (method) {
        case query::TimeAggregator::kAvg:
        case query::TimeAggregator::kSum:
          *acc += *value;
          break;
        case query::TimeAggregator::kMin:
          acc = std::min(*acc, *value);
          break;
        case query::TimeAggregator::kMax:
          acc = std::max(*acc, *value);
          break;
        case query::TimeAggregator::kCount:
          break;
      }
    }
    if (!acc) return std::nullopt;
    if (method == query::TimeAggregator::kAvg) return *acc / static_cast<double>(n);
    if (method == query::TimeAggregator::kCount) return static_cast<double>(n);
    return acc;
  }

  std::vector<Candidate> candidates(const query::DatadogQuery& q) const {
    std::vector<Candidate> out;
    std::vector<std::string_view> tagViews;
    auto consider = [&](std::string_view name, auto&& statFor) {
      uint32_t nameId = strings.find(name);
      if (nameId == kNoId) return;
      auto it = byName.find(nameId);
      if (it == byName.end()) return;
      for (uint32_t id : it->second) {
        const Series& s = series[id];
        std::optional<Stat> stat = statFor(s.kind);
        if (!stat) continue;
        tagViews.clear();
        for (uint32_t t : s.tags) tagViews.push_back(strings.view(t));
        if (q.filter.matches(std::span<const std::string_view>(tagViews))) {
          out.push_back({&s, *stat});
        }
      }
    };
    consider(q.metric, [](SeriesKind k) -> std::optional<Stat> {
      switch (k) {
        case SeriesKind::kCount:
          return Stat::kRate;
        case SeriesKind::kGauge:
        case SeriesKind::kSet:
          return Stat::kValue;
        case SeriesKind::kDistribution:
          return Stat::kAvg;
        case SeriesKind::kHistogram:
          return std::nullopt;  // a histogram exists only through its derived series
      }
      return std::nullopt;
    });
    for (const auto& [suffix, stat] : kHistogramSuffixes) {
      std::string_view metric = q.metric;
      if (metric.size() <= suffix.size()) continue;
      std::string_view tail = metric.substr(metric.size() - suffix.size());
      if (!std::equal(tail.begin(), tail.end(), suffix.begin(),
                      [](char a, char b) { return lower(a) == b; })) {
        continue;
      }
      Stat wanted = stat;
      consider(metric.substr(0, metric.size() - suffix.size()),
               [wanted](SeriesKind k) -> std::optional<Stat> {
                 return isHistogramLike(k) ? std::optional(wanted) : std::nullopt;
               });
    }
    return out;
  }

  // A series someone reads is what the store is for: protected from eviction from now on.
  void protect(const Series& s, int64_t nowSec) {
    auto id = static_cast<uint32_t>(&s - series.data());
    series[id].lastMatched = std::max(series[id].lastMatched, nowSec);
    moveToTail(id, Tier::kQueried);
  }

  // Steps 2-5 of "How a query is answered" (docs/embedded-backend.md) over one set of series, in
  // the order given: q's rollup and aggregator, the newest complete bucket. Shared by evaluate()
  // and evaluateGrouped() so that a group's answer is its narrowed query's, bit for bit. Errors
  // name `describe()`, the query as evaluate() would have been asked it.
  template <typename Describe>
  TimeSeriesStore::Result answer(const query::DatadogQuery& q,
                                 const std::vector<Candidate>& matched, seconds window,
                                 core::Clock::time_point now, Describe&& describe) const {
    auto windowText = [&] { return std::to_string(window.count()) + "s"; };
    if (matched.empty()) {
      return std::unexpected("no series matches " + describe() + " in the last " + windowText());
    }
    int64_t rollupSeconds = resolution;
    if (q.rollup && q.rollup->seconds) {
      rollupSeconds = std::max<int64_t>(
          resolution, (*q.rollup->seconds + resolution - 1) / resolution * resolution);
    }
    auto method = q.rollup ? q.rollup->method : query::TimeAggregator::kAvg;
    int64_t nowSec = epochSeconds(now);
    int64_t oldestKept = nowSec - retention;
    int64_t openBucket = floorDiv(nowSec, rollupSeconds);
    int64_t firstBucket = floorDiv(nowSec - std::max<int64_t>(0, window.count()), rollupSeconds);
    int64_t nativePerRollup = rollupSeconds / resolution;
    int64_t newestNative = floorDiv(nowSec, resolution);  // ignore points stamped in the future
    int64_t oldestNative = floorDiv(oldestKept + resolution - 1, resolution);

    auto valueAt = [&](int64_t k) -> std::optional<double> {
      int64_t first = std::max(k * nativePerRollup, oldestNative);
      int64_t last = std::min((k + 1) * nativePerRollup - 1, newestNative);
      if (first > last) return std::nullopt;
      std::optional<double> acc;
      std::size_t n = 0;
      for (const Candidate& c : matched) {
        auto value = rollup(c, first, last, method);
        if (!value) continue;
        ++n;
        if (!acc) {
          acc = *value;
          continue;
        }
        switch (q.aggregator) {
          case query::Aggregator::kAvg:
          case query::Aggregator::kSum:
            *acc += *value;
            break;
          case query::Aggregator::kMin:
            acc = std::min(*acc, *value);
            break;
          case query::Aggregator::kMax:
            acc = std::max(*acc, *value);
            break;
        }
      }
      if (acc && q.aggregator == query::Aggregator::kAvg) *acc /= static_cast<double>(n);
      return acc;
    };
    // Counts (and histogram .count) are rates; a gauge's unit is whatever the app meant.
    bool allRates = std::all_of(matched.begin(), matched.end(), [](const Candidate& c) {
      return c.stat == Stat::kRate || c.stat == Stat::kCount;
    });
    auto sampleAt = [&](int64_t k, double value) {
      return core::Sample{value, core::Clock::time_point(seconds(k * rollupSeconds)),
                          allRates ? "per second" : ""};
    };
    // Newest complete bucket first: an open bucket holds a partial rate or average.
    for (int64_t k = openBucket - 1; k >= firstBucket; --k) {
      if ((k + 1) * rollupSeconds <= oldestKept) break;
      if (auto value = valueAt(k)) return sampleAt(k, *value);
    }
    if (auto value = valueAt(openBucket)) return sampleAt(openBucket, *value);
    return std::unexpected("no data for " + describe() + " in the last " + windowText());
  }

  TimeSeriesStore::Result evaluate(const query::DatadogQuery& q, seconds window,
                                   core::Clock::time_point now) {
    if (!q.groupBy.empty()) {
      return std::unexpected(
          "grouped queries are not supported by the embedded backend: " + query::printQuery(q) +
          " asks for one value per group, the external metrics API serves one "
          "value per metric; remove the ' by {...}' clause");
    }
    std::lock_guard lock(mutex);
    auto matched = candidates(q);
    for (const Candidate& c : matched) protect(*c.series, epochSeconds(now));
    return answer(q, matched, window, now, [&] { return query::printQuery(q); });
  }

  // One pass over the matched series, each appended to every group whose tags it carries, so a
  // group keeps the relative order candidates() gives and evaluate() of its narrowed query uses.
  std::vector<GroupResult> evaluateGrouped(const query::DatadogQuery& q, seconds window,
                                           core::Clock::time_point now) {
    std::lock_guard lock(mutex);
    const int64_t nowSec = epochSeconds(now);
    const std::size_t keys = q.groupBy.size();
    // Group tags as views into the interner: stable while the lock is held. Ordered by text.
    std::map<std::vector<std::string_view>, std::vector<Candidate>> groups;
    std::vector<std::vector<std::string_view>> values(keys);  // per key, the series' `key:v` tags
    std::vector<std::size_t> pick(keys);
    std::vector<std::string_view> combination(keys);
    for (const Candidate& c : candidates(q)) {
      bool everyKey = true;
      for (std::size_t k = 0; k < keys; ++k) {
        values[k].clear();
        for (uint32_t t : c.series->tags) {
          std::string_view tag = strings.view(t);
          if (hasKey(tag, q.groupBy[k])) values[k].push_back(tag);
        }
        everyKey = everyKey && !values[k].empty();
      }
      if (!everyKey) continue;  // Datadog's `N/A` group: not served
      protect(*c.series, nowSec);
      // Every combination of the series' values (one, unless a key has several), odometer-wise.
      std::fill(pick.begin(), pick.end(), 0);
      for (;;) {
        for (std::size_t k = 0; k < keys; ++k) combination[k] = values[k][pick[k]];
        groups[combination].push_back(c);
        std::size_t k = keys;
        while (k > 0 && ++pick[k - 1] == values[k - 1].size()) pick[--k] = 0;
        if (k == 0) break;
      }
    }
    std::vector<GroupResult> out;
    out.reserve(groups.size());
    for (const auto& [tags, matched] : groups) {
      GroupResult group;
      group.tags.assign(tags.begin(), tags.end());
      group.result =
          answer(q, matched, window, now, [&] { return query::printQuery(narrowedTo(q, tags)); });
      out.push_back(std::move(group));
    }
    return out;
  }

  void expire(int64_t nowSec) {
    int64_t oldestBucket = floorDiv(nowSec - retention, resolution);
    int64_t currentBucket = floorDiv(nowSec, resolution);
    for (uint32_t id = 0; id < series.size(); ++id) {
      Series& s = series[id];
      if (!s.alive) continue;
      if (nowSec - s.lastSeen > options.idleExpiry.count()) {
        remove(id);
        continue;
      }
      if (s.open && s.open->bucket < currentBucket) {
        finalize(s);
        recost(s);
      }
      for (uint32_t i = 0; i < ringSize; ++i) {
        if (s.ids[i] != 0 && static_cast<int64_t>(s.ids[i]) < oldestBucket) {
          s.ids[i] = 0;
          clear(s, i);
          --points;
        }
      }
    }
    // Trailing holes are given back so a burst of series does not pin its peak forever.
    if (!series.empty() && !series.back().alive) {
      while (!series.empty() && !series.back().alive) series.pop_back();
      std::erase_if(freeSeries, [&](uint32_t hole) { return hole >= series.size(); });
    }
  }

  TimeSeriesStoreStats stats() const {
    TimeSeriesStoreStats out;
    out.series = liveSeries;
    out.points = points;
    out.refusedSeries = refusedSeries;
    out.refusedForBytes = refusedForBytes;
    out.evictedSeries = evictedSeries;
    out.rejectedPoints = rejectedPoints;
    out.approxBytes = totalBytes();
    out.maxBytes = options.maxBytes;
    return out;
  }
};

TimeSeriesStore::TimeSeriesStore(TimeSeriesStoreOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

TimeSeriesStore::~TimeSeriesStore() = default;

void TimeSeriesStore::ingest(const Observation& metric, core::Clock::time_point receivedAt) {
  std::lock_guard lock(impl_->mutex);
  impl_->ingest(metric, epochSeconds(receivedAt));
}

TimeSeriesStore::Result TimeSeriesStore::evaluate(const query::DatadogQuery& query,
                                                  std::chrono::seconds window,
                                                  core::Clock::time_point now) const {
  return impl_->evaluate(query, window, now);
}

std::vector<GroupResult> TimeSeriesStore::evaluateGrouped(const query::DatadogQuery& query,
                                                          std::chrono::seconds window,
                                                          core::Clock::time_point now) const {
  return impl_->evaluateGrouped(query, window, now);
}

void TimeSeriesStore::expire(core::Clock::time_point now) {
  std::lock_guard lock(impl_->mutex);
  impl_->expire(epochSeconds(now));
}

TimeSeriesStoreStats TimeSeriesStore::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats();
}

}  // namespace xmetrics::tsdb

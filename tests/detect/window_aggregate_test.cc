#include "detect/window_aggregate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "detect/window_detector.h"
#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kSec;
using cityloop::testing::kT0;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestConfig;

constexpr Aggregate kAggregates[] = {Aggregate::kCount, Aggregate::kMin, Aggregate::kMax,
                                     Aggregate::kMean,  Aggregate::kSum, Aggregate::kPercentile};

// --- Unit tests ------------------------------------------------------------

TEST(SampleBufferTest, InsertKeepsTimeOrderAndIgnoresDuplicates) {
  SampleBuffer b;
  EXPECT_TRUE(b.Insert(30, 3));
  EXPECT_TRUE(b.Insert(10, 1));
  EXPECT_TRUE(b.Insert(20, 2));
  EXPECT_TRUE(b.Insert(40, 4));
  EXPECT_FALSE(b.Insert(20, 99));  // duplicate timestamp: the first value stays
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b.samples(), (std::vector<Sample>{{10, 1}, {20, 2}, {30, 3}, {40, 4}}));
  EXPECT_EQ(b.oldest().ts_ms, 10);
  EXPECT_EQ(b.newest().ts_ms, 40);
  EXPECT_EQ(b.FirstAtOrAfter(11)->ts_ms, 20);
  EXPECT_EQ(b.FirstAtOrAfter(41), nullptr);
  b.EvictBefore(30);
  EXPECT_EQ(b.samples(), (std::vector<Sample>{{30, 3}, {40, 4}}));
  b.EvictBefore(1000);
  EXPECT_TRUE(b.empty());
}

TEST(SampleBufferTest, AFullBufferDropsItsOldestSample) {
  SampleBuffer b(3);
  for (int64_t t : {10, 20, 30}) EXPECT_TRUE(b.Insert(t, 0));
  EXPECT_TRUE(b.Insert(40, 0));  // drops 10
  EXPECT_EQ(b.dropped(), 1u);
  EXPECT_FALSE(b.Insert(5, 0));  // older than everything held: dropped at once
  EXPECT_EQ(b.dropped(), 2u);
  EXPECT_TRUE(b.Insert(25, 0));  // drops 20
  EXPECT_EQ(b.dropped(), 3u);
  EXPECT_FALSE(b.Insert(30, 0));  // duplicate, not a drop
  EXPECT_EQ(b.dropped(), 3u);
  std::vector<int64_t> ts;
  for (const Sample& s : b.samples()) ts.push_back(s.ts_ms);
  EXPECT_EQ(ts, (std::vector<int64_t>{25, 30, 40}));
  b.set_capacity(2);
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b.oldest().ts_ms, 30);
  EXPECT_EQ(b.dropped(), 4u);
}

TEST(SampleBufferTest, AggregatesOverAHalfOpenRange) {
  SampleBuffer b;
  b.Insert(0, 5);
  b.Insert(10, 1);
  b.Insert(20, 4);
  b.Insert(30, 2);
  b.Insert(40, 3);
  int n = -1;
  EXPECT_EQ(b.Compute(Aggregate::kCount, 0, 10, 40, &n), 3);  // 10, 20, 30: 40 is outside
  EXPECT_EQ(n, 3);
  EXPECT_EQ(b.Compute(Aggregate::kSum, 0, 10, 40, &n), 7);
  EXPECT_EQ(b.Compute(Aggregate::kMin, 0, 10, 40, &n), 1);
  EXPECT_EQ(b.Compute(Aggregate::kMax, 0, 10, 40, &n), 4);
  EXPECT_DOUBLE_EQ(b.Compute(Aggregate::kMean, 0, 10, 40, &n), 7.0 / 3);
  EXPECT_EQ(b.Compute(Aggregate::kMax, 0, 0, 1, &n), 5);
  EXPECT_EQ(n, 1);
}

TEST(SampleBufferTest, PercentileIsNearestRank) {
  SampleBuffer b;
  for (int i = 1; i <= 4; ++i) b.Insert(i, 5 - i);  // values 4, 3, 2, 1
  auto p = [&](double pct) { return b.Compute(Aggregate::kPercentile, pct, 0, 100, nullptr); };
  EXPECT_EQ(p(25), 1);   // rank ceil(1.0) = 1
  EXPECT_EQ(p(26), 2);   // rank ceil(1.04) = 2
  EXPECT_EQ(p(50), 2);   // rank 2
  EXPECT_EQ(p(75), 3);   // rank 3
  EXPECT_EQ(p(95), 4);   // rank ceil(3.8) = 4
  EXPECT_EQ(p(100), 4);  // the max
  EXPECT_EQ(p(0.001), 1);
  SampleBuffer twenty;
  for (int i = 1; i <= 20; ++i) twenty.Insert(i, i);
  // 95 / 100 * 20 is exactly 19: rank 19, not 20.
  EXPECT_EQ(twenty.Compute(Aggregate::kPercentile, 95, 0, 100, nullptr), 19);
}

TEST(SampleBufferTest, AnEmptyRangeHasCountZeroAndNoOtherValue) {
  SampleBuffer b;
  b.Insert(100, 1);
  int n = -1;
  EXPECT_EQ(b.Compute(Aggregate::kCount, 0, 0, 100, &n), 0);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(b.Compute(Aggregate::kSum, 0, 0, 100, &n), 0);
  for (Aggregate a : {Aggregate::kMin, Aggregate::kMax, Aggregate::kMean, Aggregate::kPercentile}) {
    EXPECT_TRUE(std::isnan(b.Compute(a, 50, 0, 100, &n))) << AggregateName(a);
    EXPECT_EQ(n, 0);
  }
  EXPECT_EQ(b.Compute(Aggregate::kCount, 0, 200, 100, &n), 0);  // from > to
}

TEST(SampleBufferTest, EncodingRoundTripsExactly) {
  SampleBuffer b(17);
  const double values[] = {0.1, -0.0, 1e-310, std::numeric_limits<double>::infinity(), -123456.789, 1.0 / 3};
  int64_t ts = -5000;
  for (double v : values) {
    b.Insert(ts, v);
    ts += 1234567;
  }
  b.Insert(ts + 1, 7);
  b.Insert(ts + 2, 8);
  b.set_capacity(7);  // drops one, and counts it
  const std::string bytes = b.Encode();
  EXPECT_LT(bytes.size(), 8 + b.size() * 12);  // compact: a value plus a small delta each
  auto back = SampleBuffer::Decode(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, b);
  EXPECT_EQ(back->capacity(), 7u);
  EXPECT_EQ(back->dropped(), 1u);
  EXPECT_TRUE(std::signbit(back->samples()[0].value) == std::signbit(b.samples()[0].value));
  EXPECT_EQ(SampleBuffer::Decode(SampleBuffer().Encode())->size(), 0u);
  // Truncated, padded, or garbage input is refused.
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(SampleBuffer::Decode(bytes.substr(0, n))) << n;
  EXPECT_FALSE(SampleBuffer::Decode(bytes + "x"));
  EXPECT_FALSE(SampleBuffer::Decode("garbage"));
}

TEST(SampleBufferTest, CapacityFollowsTheSpanToHold) {
  EXPECT_EQ(SampleCapacityFor(10 * 60000, 30000), SampleBuffer::kDefaultCapacity);  // 21 readings
  EXPECT_EQ(SampleCapacityFor(10 * 60000, 1000), 2 * 601 + 16u);
  EXPECT_EQ(SampleCapacityFor(86400000, 1000), SampleBuffer::kMaxCapacity);
  EXPECT_EQ(SampleCapacityFor(60000, 0), SampleBuffer::kDefaultCapacity);
}

TEST(WindowsTest, EndsAreEpochAligned) {
  const WindowSpec tumbling{10, 10};
  EXPECT_EQ(FirstEndAfter(tumbling, 0), 10);
  EXPECT_EQ(FirstEndAfter(tumbling, 9), 10);
  EXPECT_EQ(FirstEndAfter(tumbling, 10), 20);
  EXPECT_EQ(FirstEndAfter(tumbling, -1), 0);
  EXPECT_EQ(FirstEndAfter(tumbling, -10), 0);
  EXPECT_EQ(FirstEndAfter(tumbling, -11), -10);
  EXPECT_EQ(WindowEnds(tumbling, 5, 40), (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_EQ(WindowEnds(tumbling, 10, 39), (std::vector<int64_t>{20, 30}));
  EXPECT_TRUE(WindowEnds(tumbling, 10, 10).empty());
  const WindowSpec sliding{10, 5};  // [e - 10, e), e a multiple of 5
  EXPECT_EQ(FirstEndAfter(sliding, 7), 10);
  EXPECT_EQ(LastEndContaining(sliding, 7), 15);  // 7 is in [0, 10) and [5, 15)
  EXPECT_EQ(WindowEnds(sliding, -3, 12), (std::vector<int64_t>{0, 5, 10}));
  const WindowSpec hopping{3, 10};  // [7, 10), [17, 20), ...
  EXPECT_EQ(FirstEndAfter(hopping, 8), 10);
  EXPECT_EQ(LastEndContaining(hopping, 8), 10);
  EXPECT_LE(LastEndContaining(hopping, 5), 5);  // in a gap
}

TEST(WindowsTest, SpansAndNames) {
  EXPECT_EQ(FormatSpanMs(600000), "10m");
  EXPECT_EQ(FormatSpanMs(90000), "90s");
  EXPECT_EQ(FormatSpanMs(7200000), "2h");
  EXPECT_EQ(FormatSpanMs(86400000), "1d");
  EXPECT_EQ(FormatSpanMs(250), "250ms");
  EXPECT_EQ(FormatSpanMs(0), "0ms");
  EXPECT_STREQ(AggregateName(Aggregate::kCount), "count");
  EXPECT_STREQ(AggregateName(Aggregate::kMin), "min");
  EXPECT_STREQ(AggregateName(Aggregate::kMax), "max");
  EXPECT_STREQ(AggregateName(Aggregate::kMean), "mean");
  EXPECT_STREQ(AggregateName(Aggregate::kSum), "sum");
  EXPECT_STREQ(AggregateName(Aggregate::kPercentile), "percentile");
}

// --- Randomised: SampleBuffer against brute force --------------------------

// The reference: recomputed from the sorted list of distinct samples.
struct RefResult {
  int count = 0;
  double value = 0;
};

RefResult Reference(const std::map<int64_t, double>& samples, Aggregate a, double pct, int64_t from, int64_t to) {
  std::vector<double> in;  // in time order
  for (const auto& [ts, v] : samples) {
    if (ts >= from && ts < to) in.push_back(v);
  }
  RefResult r;
  r.count = static_cast<int>(in.size());
  double sum = 0;
  for (double v : in) sum += v;
  switch (a) {
    case Aggregate::kCount: r.value = r.count; break;
    case Aggregate::kSum: r.value = sum; break;
    case Aggregate::kMean: r.value = in.empty() ? NAN : sum / r.count; break;
    case Aggregate::kMin: r.value = in.empty() ? NAN : *std::min_element(in.begin(), in.end()); break;
    case Aggregate::kMax: r.value = in.empty() ? NAN : *std::max_element(in.begin(), in.end()); break;
    case Aggregate::kPercentile: {
      if (in.empty()) {
        r.value = NAN;
        break;
      }
      std::sort(in.begin(), in.end());
      int rank = static_cast<int>(std::ceil(pct * r.count / 100.0));
      rank = std::clamp(rank, 1, r.count);
      r.value = in[static_cast<size_t>(rank - 1)];
      break;
    }
  }
  return r;
}

// Window ends in (after, upto] by testing every instant.
std::vector<int64_t> ReferenceEnds(const WindowSpec& spec, int64_t after, int64_t upto) {
  std::vector<int64_t> out;
  for (int64_t t = after + 1; t <= upto; ++t) {
    if (((t % spec.slide_ms) + spec.slide_ms) % spec.slide_ms == 0) out.push_back(t);
  }
  return out;
}

bool SameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

WindowSpec RandomSpec(std::mt19937_64& rng, int64_t max_size) {
  WindowSpec spec;
  spec.size_ms = std::uniform_int_distribution<int64_t>(1, max_size)(rng);
  switch (rng() % 4) {
    case 0: spec.slide_ms = spec.size_ms; break;                                                   // tumbling
    case 1: spec.slide_ms = std::max<int64_t>(1, spec.size_ms / (2 + static_cast<int64_t>(rng() % 4))); break;
    case 2: spec.slide_ms = std::uniform_int_distribution<int64_t>(1, spec.size_ms)(rng); break;  // sliding
    default: spec.slide_ms = std::uniform_int_distribution<int64_t>(1, 2 * spec.size_ms)(rng); break;  // maybe gaps
  }
  return spec;
}

double RandomPercentile(std::mt19937_64& rng) {
  static constexpr double kFixed[] = {50, 90, 95, 99, 100, 25, 1};
  if (rng() % 2) return kFixed[rng() % std::size(kFixed)];
  return std::uniform_real_distribution<double>(1e-6, 100)(rng);
}

TEST(SampleBufferRandomTest, MatchesBruteForceOnEveryWindow) {
  constexpr uint64_t kSeeds = 3000;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const WindowSpec spec = RandomSpec(rng, 200);
    const bool small_cap = rng() % 5 == 0;
    const size_t cap = small_cap ? 1 + rng() % 24 : SampleBuffer::kDefaultCapacity;
    const int64_t lo = std::uniform_int_distribution<int64_t>(-800, 500)(rng);
    const int64_t hi = lo + std::uniform_int_distribution<int64_t>(1, 1200)(rng);
    const int n = static_cast<int>(rng() % 120);
    const bool coarse_values = rng() % 2;  // many equal values: ties in min/max/percentile

    // Generated samples, some timestamps repeated with other values, then arriving shuffled.
    std::vector<Sample> arrivals;
    for (int i = 0; i < n; ++i) {
      const int64_t ts = std::uniform_int_distribution<int64_t>(lo, hi)(rng);
      const double v = coarse_values ? static_cast<double>(rng() % 5)
                                     : std::uniform_real_distribution<double>(-100, 100)(rng);
      arrivals.push_back({ts, v});
      if (rng() % 8 == 0) arrivals.push_back({ts, v + 1});  // duplicate
    }
    std::shuffle(arrivals.begin(), arrivals.end(), rng);

    SampleBuffer b(cap);
    std::map<int64_t, double> ref;  // distinct timestamps, first value wins, at most cap (oldest dropped)
    for (const Sample& s : arrivals) {
      const bool fresh = !ref.contains(s.ts_ms);
      bool kept = false;
      if (fresh) {
        ref.emplace(s.ts_ms, s.value);
        kept = true;
        if (ref.size() > cap) {
          kept = ref.begin()->first != s.ts_ms;
          ref.erase(ref.begin());
        }
      }
      ASSERT_EQ(b.Insert(s.ts_ms, s.value), kept);
    }
    ASSERT_EQ(b.size(), ref.size());

    const std::vector<int64_t> ends = WindowEnds(spec, lo - spec.size_ms - 2, hi + spec.size_ms + 2);
    ASSERT_EQ(ends, ReferenceEnds(spec, lo - spec.size_ms - 2, hi + spec.size_ms + 2));
    const double pct = RandomPercentile(rng);
    for (int64_t end : ends) {
      for (Aggregate a : kAggregates) {
        int count = -1;
        const double got = b.Compute(a, pct, spec.Start(end), end, &count);
        const RefResult want = Reference(ref, a, pct, spec.Start(end), end);
        ASSERT_EQ(count, want.count) << AggregateName(a) << " window end " << end;
        ASSERT_TRUE(SameValue(got, want.value))
            << AggregateName(a) << " p" << pct << " window end " << end << ": " << got << " vs " << want.value;
      }
    }
    // Which windows hold a time: [FirstEndAfter, LastEndContaining].
    for (int64_t t = lo; t <= hi; t += 1 + static_cast<int64_t>(rng() % 37)) {
      for (int64_t end : ends) {
        const bool contains = spec.Start(end) <= t && t < end;
        const bool in_range = end >= FirstEndAfter(spec, t) && end <= LastEndContaining(spec, t);
        ASSERT_EQ(contains, in_range) << "t " << t << " end " << end;
      }
    }

    auto back = SampleBuffer::Decode(b.Encode());
    ASSERT_TRUE(back.has_value());
    ASSERT_EQ(*back, b);
    const int64_t cut = std::uniform_int_distribution<int64_t>(lo - 1, hi + 1)(rng);
    b.EvictBefore(cut);
    std::erase_if(ref, [&](const auto& kv) { return kv.first < cut; });
    ASSERT_EQ(b.size(), ref.size());
    if (!ref.empty()) {
      ASSERT_EQ(b.oldest().ts_ms, ref.begin()->first);
    }
    if (HasFailure()) break;
  }
}

// --- Randomised: WindowDetector end to end ---------------------------------

// One generated run: readings arrive out of order (some beyond the allowed
// lateness, which the harness drops), some repeated, with event time moved
// on at random by other traffic on both partitions; now and then the rule's
// state is persisted and restored into a fresh detector mid-run.
struct Arrival {
  std::string device;  // empty: another device reports (moves event time only)
  int64_t ts;
  double value;
  int partition;
};

struct Expected {
  std::string device;
  int64_t end;
  double value;
  auto operator<=>(const Expected&) const = default;
};

// The reference: every window of the device from its first, judged in order
// on the distinct samples that were not late.
void ReferenceAlarms(const WindowRule& rule, const WindowSpec& spec, const std::string& device,
                     const std::map<int64_t, double>& samples, int64_t first_end, int64_t final_watermark,
                     std::vector<Expected>* out) {
  bool alarm = false;
  const double level = rule.overrides.contains(device) ? rule.overrides.at(device) : rule.level;
  for (int64_t end = first_end; end <= final_watermark; end += spec.slide_ms) {
    const RefResult r = Reference(samples, rule.aggregate, rule.percentile, spec.Start(end), end);
    if (rule.aggregate != Aggregate::kCount && r.count < std::max(1, rule.min_samples)) continue;
    const bool meets = rule.direction == ThresholdDirection::kAbove ? r.value >= level : r.value <= level;
    if (!alarm && meets) out->push_back({device, end, r.value});
    alarm = meets;
  }
}

TEST(WindowDetectorRandomTest, MatchesTheReferenceEndToEnd) {
  constexpr uint64_t kRuns = 1500;
  const std::vector<std::string> kDevices = {"wl-1", "wl-2", "wl-9"};  // wl-9 is not registered
  int64_t total_signals = 0, total_restores = 0;
  for (uint64_t seed = 1; seed <= kRuns; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed * 7919);
    const int64_t lateness = std::vector<int64_t>{0, 5 * kSec, 20 * kSec}[rng() % 3];
    Config config = TestConfig();
    config.event_time.allowed_lateness_ms = lateness;
    RuleHarness h(config, lateness);

    WindowRule rule;
    rule.id = "wl-window";
    rule.sensor_kind = "water_level";
    rule.category = "waterlogging";
    rule.size_ms = std::vector<int64_t>{10, 20, 30, 60}[rng() % 4] * kSec;
    switch (rng() % 4) {
      case 0: rule.slide_ms = 0; break;  // tumbling
      case 1: rule.slide_ms = rule.size_ms / 2; break;
      case 2: rule.slide_ms = rule.size_ms / 3 + kSec; break;
      default: rule.slide_ms = rule.size_ms * 3 / 2; break;  // hopping, with gaps
    }
    rule.aggregate = kAggregates[rng() % std::size(kAggregates)];
    rule.percentile = RandomPercentile(rng);
    rule.direction = rng() % 2 ? ThresholdDirection::kAbove : ThresholdDirection::kBelow;
    rule.min_samples = 1 + static_cast<int>(rng() % 3);
    const double mean_gap_s = 4.5;
    const double per_window = static_cast<double>(rule.size_ms) / kSec / mean_gap_s;
    std::uniform_real_distribution<double> around(0.6, 1.4);
    switch (rule.aggregate) {
      case Aggregate::kCount: rule.level = std::round(per_window * around(rng)); break;
      case Aggregate::kSum: rule.level = per_window * 0.5 * around(rng); break;
      default: rule.level = std::uniform_real_distribution<double>(0.2, 0.8)(rng); break;
    }
    if (rng() % 3 == 0) rule.overrides["wl-2"] = rule.level * around(rng);
    const WindowSpec spec{rule.size_ms, rule.slide()};

    // Per device: readings every 1-8 s, now and then a silence.
    std::vector<Arrival> arrivals;
    std::map<std::string, int> partition_of;
    const int device_count = 1 + static_cast<int>(rng() % 3);
    for (int d = 0; d < device_count; ++d) {
      const std::string& dev = kDevices[static_cast<size_t>(d)];
      partition_of[dev] = static_cast<int>(rng() % 2);
      int64_t t = kT0 + static_cast<int64_t>(rng() % 30) * kSec;
      const int n = 40 + static_cast<int>(rng() % 80);
      const bool coarse = rng() % 2;
      for (int i = 0; i < n; ++i) {
        t += (1 + static_cast<int64_t>(rng() % 8)) * kSec + static_cast<int64_t>(rng() % 1000);
        if (rng() % 25 == 0) t += (60 + static_cast<int64_t>(rng() % 60)) * kSec;
        const double v = coarse ? static_cast<double>(rng() % 4) / 4 : std::uniform_real_distribution<double>(0, 1)(rng);
        arrivals.push_back({dev, t, v, partition_of[dev]});
        if (rng() % 20 == 0) arrivals.push_back({dev, t, 1 - v, partition_of[dev]});  // duplicate
      }
    }
    // Arrival order: by time plus a random delay of up to 30 s.
    std::vector<std::pair<int64_t, Arrival>> delayed;
    for (Arrival& a : arrivals) delayed.emplace_back(a.ts + static_cast<int64_t>(rng() % (30 * kSec)), a);
    std::stable_sort(delayed.begin(), delayed.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    arrivals.clear();
    for (auto& [at, a] : delayed) {
      arrivals.push_back(a);
      if (rng() % 10 == 0) arrivals.push_back({"", at + static_cast<int64_t>(rng() % 20) * kSec, 0, static_cast<int>(rng() % 2)});
    }

    auto det = std::make_unique<WindowDetector>(rule, h.city(), h.devices());
    const size_t restore_at = rng() % 2 ? rng() % arrivals.size() : arrivals.size();
    std::vector<Expected> got;
    std::map<std::string, std::map<int64_t, double>> accepted;
    std::map<std::string, int64_t> first_end;
    int64_t newest = kT0;
    auto collect = [&](const std::vector<Signal>& signals) {
      for (const Signal& s : signals) {
        got.push_back({s.device_id, s.fired_ms, s.value});
        EXPECT_EQ(s.id, rule.id + ":" + s.device_id + ":" + std::to_string(s.fired_ms));
        EXPECT_EQ(s.ts_ms, spec.Start(s.fired_ms));
      }
    };
    for (size_t i = 0; i < arrivals.size(); ++i) {
      if (i == restore_at) {
        auto fresh = std::make_unique<WindowDetector>(rule, h.city(), h.devices());
        ASSERT_TRUE(RuleHarness::CarryOverState(*det, *fresh).ok());
        det = std::move(fresh);
        ++total_restores;
      }
      const Arrival& a = arrivals[i];
      newest = std::max(newest, a.ts);
      if (a.device.empty()) {
        collect(h.AdvanceTo(*det, a.ts, a.partition));
        continue;
      }
      const int late_before = h.late();
      collect(h.Feed(*det, a.device, "water_level", a.ts, a.value, a.partition));
      if (h.late() != late_before) continue;  // dropped by the harness
      const int64_t wm = h.time().Watermark(h.time().Source("city.sensors", a.partition));
      if (!first_end.contains(a.device)) first_end[a.device] = FirstEndAfter(spec, std::min(a.ts, wm));
      accepted[a.device].emplace(a.ts, a.value);  // a duplicate keeps the first
    }
    // Event time moves past everything on both partitions.
    const int64_t final_ts = newest + rule.size_ms + spec.slide_ms + lateness + kSec;
    for (int p = 0; p < 2; ++p) collect(h.AdvanceTo(*det, final_ts, p));

    std::vector<Expected> want;
    for (const auto& [dev, samples] : accepted) {
      ReferenceAlarms(rule, spec, dev, samples, first_end[dev], final_ts - lateness, &want);
      const WindowState* st = det->StateFor(dev);
      ASSERT_NE(st, nullptr);
      EXPECT_EQ(st->samples.dropped(), 0u);  // the reference assumes nothing was dropped
    }
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(det->stats().late_samples, 0);  // what the harness lets through is always in time
    ASSERT_EQ(got.size(), want.size()) << AggregateName(rule.aggregate) << " size " << rule.size_ms
                                       << " slide " << spec.slide_ms << " restore at " << restore_at;
    for (size_t k = 0; k < got.size(); ++k) {
      ASSERT_EQ(got[k].device, want[k].device);
      ASSERT_EQ(got[k].end, want[k].end) << "signal " << k;
      ASSERT_TRUE(SameValue(got[k].value, want[k].value)) << got[k].value << " vs " << want[k].value;
    }
    total_signals += static_cast<int64_t>(got.size());
    if (HasFailure()) break;
  }
  if (HasFailure()) return;
  // The generator must actually exercise alarms and restores.
  std::printf("window runs %llu: %lld signals, %lld restores\n", static_cast<unsigned long long>(kRuns),
              static_cast<long long>(total_signals), static_cast<long long>(total_restores));
  EXPECT_GT(total_signals, static_cast<int64_t>(kRuns));
  EXPECT_GT(total_restores, static_cast<int64_t>(kRuns / 4));
}

}  // namespace
}  // namespace cityloop::detect

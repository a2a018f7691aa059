// Department KPIs (DOMAIN.md "KPIs"), kept incrementally: every case has a
// contribution, a pure function of the case (Contribute), and the KpiBook is
// the sum of every case's current contribution. The case engine calls
// Replace(before, after) for each case it changes, so a book folded from all
// cases rebuilt from the audit log equals the live one exactly: the stored
// state is integers only; rates, means and scores are computed at query time.
//
// The published formulas:
// - Cohort: a case counts on its cohort day, the local date (city.utc_offset)
//   of registered_ms, else of first_event_ms when it was never registered.
//   Merged cases contribute nothing (their signals count in the case that
//   absorbed them).
// - Case-level counts, keyed (cohort day, lead department, district, grid
//   cell code, category):
//     accepted        1 for every case
//     registered      registered_ms != 0
//     dispatched      dispatched_ms != 0
//     due_to_close    dispatched && !deferred && status != invalid
//     closed          status == closed
//     closed_on_time  closed && (close.deadline_ms == 0 || closed_ms <= close.deadline_ms)
//                     (deadlines already include extensions and suspensions)
//     reworked        reworks > 0
//     extended        extensions > 0
//     reopened        reopens > 0
//     deferred        deferred (ever 缓办)
//     close time      closed_ms - registered_ms, when closed and registered
// - Task-level counts, keyed by the task's department (same day, district,
//   cell, category), one per task in Case::tasks:
//     dispatches            1
//     acknowledged_on_time  acknowledged_ms != 0 && (acknowledge.deadline_ms == 0 ||
//                           acknowledged_ms <= acknowledge.deadline_ms)
//     not_returned          status != returned
//     times to acknowledge / arrive / handle: acknowledged_ms / arrived_ms /
//     handled_ms minus dispatched_ms.
//   A time is recorded only when both ends are set and the difference is >= 0.
// - Rates (kKpiRates, named as kKpiRateNames): numerator / denominator over
//   the rows' summed counts; absent (JSON null) when the denominator is 0.
// - Times: count, mean (exact: int64 sum / count) and p90. p90 is the upper
//   edge of the histogram bin holding the nearest-rank 90th percentile
//   (rank ceil(0.9 n)). Bins: [0, 1 s), then edges from 1 s growing by
//   floor(e / 10) ms (at most 10 % wide) up to the first edge >= 60 days,
//   then one open bin. A reported p90 of a true value v >= 1 s is in
//   (v, 1.1 v]; below 1 s it reads 1 s; beyond the top edge it reads the top
//   edge (DurationStats::kTopEdgeMs, just over 60 days).
// - Composite score (综合指标值) with kpi.weights:
//     100 x (sum_{w>0} w x rate + sum_{w<0} |w| x (1 - rate)) / sum |w|
//   over the weighted rates present (an absent rate drops out of both sums);
//   absent when no weighted rate is present. A negative weight means lower is
//   better.
//
// Not thread-safe: owned by the engine thread; API queries go through the
// engine's snapshot.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/model.h"
#include "core/status.h"

namespace cityloop::dispatch {

// Count, exact sum and a sparse log-binned histogram of durations (ms).
struct DurationStats {
  struct Bin {
    uint8_t index = 0;
    int32_t count = 0;
    int key() const { return index; }
    bool operator==(const Bin&) const = default;
  };
  static constexpr int64_t kFirstEdgeMs = 1000;
  static const int kBinCount;       // bins including [0, 1 s) and the open top bin
  static const int64_t kTopEdgeMs;  // lower edge of the open top bin (>= 60 days)

  int64_t count = 0;
  int64_t sum_ms = 0;
  std::vector<Bin> bins;  // ascending index, no zero counts

  void Record(int64_t ms);  // one observation, ms >= 0
  void Add(const DurationStats& other, int sign);
  bool empty() const { return count == 0 && sum_ms == 0 && bins.empty(); }
  std::optional<double> MeanMs() const;
  // Nearest-rank percentile (1..100) as the upper edge of its bin.
  std::optional<int64_t> PercentileMs(int percent) const;
  std::optional<int64_t> P90Ms() const { return PercentileMs(90); }

  static int BinOf(int64_t ms);
  static int64_t UpperEdgeMs(int bin);  // the open top bin reports kTopEdgeMs
  bool operator==(const DurationStats&) const = default;
};

struct KpiCounts {
  int64_t accepted = 0;
  int64_t registered = 0;
  int64_t dispatched = 0;
  int64_t due_to_close = 0;
  int64_t closed = 0;
  int64_t closed_on_time = 0;
  int64_t reworked = 0;
  int64_t extended = 0;
  int64_t reopened = 0;
  int64_t deferred = 0;
  int64_t dispatches = 0;
  int64_t acknowledged_on_time = 0;
  int64_t not_returned = 0;
  DurationStats ack, arrive, handle, close;

  void Add(const KpiCounts& other, int sign);  // sign +1 or -1
  bool IsZero() const;
  bool operator==(const KpiCounts&) const = default;
};

// The counters and times by their JSON / persistence names.
struct KpiCountField {
  std::string_view name;
  int64_t KpiCounts::*member;
};
inline constexpr std::array<KpiCountField, 13> kKpiCountFields = {{
    {"accepted", &KpiCounts::accepted},
    {"registered", &KpiCounts::registered},
    {"dispatched", &KpiCounts::dispatched},
    {"due_to_close", &KpiCounts::due_to_close},
    {"closed", &KpiCounts::closed},
    {"closed_on_time", &KpiCounts::closed_on_time},
    {"reworked", &KpiCounts::reworked},
    {"extended", &KpiCounts::extended},
    {"reopened", &KpiCounts::reopened},
    {"deferred", &KpiCounts::deferred},
    {"dispatches", &KpiCounts::dispatches},
    {"acknowledged_on_time", &KpiCounts::acknowledged_on_time},
    {"not_returned", &KpiCounts::not_returned},
}};
struct KpiTimeField {
  std::string_view name;
  DurationStats KpiCounts::*member;
};
inline constexpr std::array<KpiTimeField, 4> kKpiTimeFields = {{
    {"acknowledge", &KpiCounts::ack},
    {"arrive", &KpiCounts::arrive},
    {"handle", &KpiCounts::handle},
    {"close", &KpiCounts::close},
}};

// One rate: numerator / denominator. In the order of kKpiRateNames.
struct KpiRateFormula {
  std::string_view name;
  std::string_view numerator, denominator;  // kKpiCountFields names
  int64_t KpiCounts::*num;
  int64_t KpiCounts::*den;
};
extern const std::array<KpiRateFormula, kKpiRateNames.size()> kKpiRates;

std::optional<double> KpiRate(const KpiCounts& c, const KpiRateFormula& rate);
std::optional<double> KpiScore(const KpiCounts& c, const KpiOptions& options);

struct KpiKey {
  int32_t day = 0;  // local days since 1970-01-01
  std::string department, district, cell, category;
  auto operator<=>(const KpiKey&) const = default;
  bool operator==(const KpiKey&) const = default;
};
struct KpiKeyHash {
  size_t operator()(const KpiKey& k) const;
};

// A case's share of the book: one part per distinct key, ascending by key.
struct KpiContribution {
  std::vector<std::pair<KpiKey, KpiCounts>> parts;
  bool operator==(const KpiContribution&) const = default;
};

// The local date of ms, as days since 1970-01-01.
int32_t LocalDay(int64_t ms, int utc_offset_minutes);
KpiContribution Contribute(const Case& c, int utc_offset_minutes);

enum class KpiGroup { kDepartment, kDistrict, kCell, kCategory, kDay, kTotal };
// "dept"|"department", "district", "grid"|"cell", "category", "day", "total".
std::optional<KpiGroup> ParseKpiGroup(std::string_view s);
const char* KpiGroupName(KpiGroup g);  // "department", "district", "cell", ...

struct KpiRow {
  std::string group;  // the department/district/cell/category id, "YYYY-MM-DD", or "total"
  KpiCounts counts;
};

class KpiBook {
 public:
  static constexpr std::string_view kStatePrefix = "kpi/";

  explicit KpiBook(KpiOptions options);

  // Replaces one case's contribution (an empty one for a new or gone case).
  void Replace(const KpiContribution& before, const KpiContribution& after);

  // Rows for cohort days [from_day, to_day] (inclusive, local days since
  // 1970-01-01), one per group value with data, ascending by group name.
  std::vector<KpiRow> Query(KpiGroup group, int64_t from_day, int64_t to_day) const;
  // {group_by, from_day, to_day, from, to, rows: [{group, counts, rates,
  // times: {acknowledge|arrive|handle|close: {count, mean_ms, p90_ms}},
  // score}], formulas: {<rate>: {numerator, denominator}}, definitions,
  // weights}. Absent values are null.
  nlohmann::json QueryJson(KpiGroup group, int64_t from_day, int64_t to_day) const;

  // Adds every bucket of other (the books of several shards make the city's).
  void MergeFrom(const KpiBook& other);

  // Same non-zero buckets (by name; the interning order does not matter).
  bool operator==(const KpiBook& other) const;

  // Persistence: the buckets changed since the last call, as
  // ("kpi/<day>/<dept>/<district>/<cell>/<category>", value), ascending by
  // key; an empty value deletes the key. Names are escaped ('%' -> %25,
  // '/' -> %2F). The value is compact JSON, deterministic: the non-zero
  // counts by name, and each time as [count, sum_ms, bin, n, bin, n, ...].
  void TakeDirty(std::vector<std::pair<std::string, std::string>>* out);
  // Loads one entry TakeDirty wrote (full key), replacing the bucket if
  // present; does not mark it dirty.
  Status Restore(std::string_view key, std::string_view value);
  // Forgets what changed: after rebuilding the book from cases whose KPIs
  // the store already holds, so the next TakeDirty does not rewrite them all.
  void ClearDirty() { dirty_.clear(); }
  // Off: nothing is recorded for TakeDirty (an owner that rebuilds the book
  // from its cases on start and never persists it).
  void set_track_dirty(bool on) {
    track_dirty_ = on;
    if (!on) dirty_.clear();
  }

  size_t bucket_count() const { return bucket_count_; }
  const KpiOptions& options() const { return options_; }

 private:
  // A key without its day, with names interned in names_.
  struct Slot {
    uint32_t department = 0, district = 0, cell = 0, category = 0;
    bool operator==(const Slot&) const = default;
  };
  struct SlotHash {
    size_t operator()(const Slot& s) const;
  };
  // One bin of one time (kKpiTimeFields index) in a bucket.
  struct TimeBin {
    uint8_t time = 0;
    uint8_t index = 0;
    int32_t count = 0;
    int key() const { return time << 8 | index; }
    bool operator==(const TimeBin&) const = default;
  };
  // One key's sums on one day: a handful of cases, so int32 counts and one
  // sparse vector for the four histograms.
  struct Bucket {
    std::array<int32_t, kKpiCountFields.size()> counts{};
    std::array<int32_t, kKpiTimeFields.size()> time_count{};
    std::array<int64_t, kKpiTimeFields.size()> time_sum_ms{};
    std::vector<TimeBin> bins;  // ascending key(), no zero counts
    void Add(const KpiCounts& c, int sign);
    void AddTo(KpiCounts* c) const;
    bool IsZero() const;
    std::string Encode() const;
    Status Decode(std::string_view value);
    bool operator==(const Bucket&) const = default;
  };
  // A day's buckets, contiguous so a range query scans them in order;
  // index finds a slot's position.
  struct Day {
    std::vector<Slot> slots;
    std::vector<Bucket> buckets;
    std::unordered_map<Slot, uint32_t, SlotHash> index;
  };
  struct DirtyHash {
    size_t operator()(const std::pair<int32_t, Slot>& d) const;
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  uint32_t Intern(std::string_view name);
  Slot SlotOf(const KpiKey& key);
  void Apply(const KpiKey& key, const KpiCounts& counts, int sign);
  std::string StateKey(int32_t day, const Slot& slot) const;
  // The slot's name a group is by; null by day and in total.
  static uint32_t Slot::*GroupField(KpiGroup group);

  KpiOptions options_;
  std::map<int32_t, Day> days_;
  size_t bucket_count_ = 0;
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> ids_;
  std::unordered_set<std::pair<int32_t, Slot>, DirtyHash> dirty_;
  bool track_dirty_ = true;
};

}  // namespace cityloop::dispatch

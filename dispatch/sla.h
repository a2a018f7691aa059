// SlaPolicy: the SLA clocks of DOMAIN.md "Time limits". Picks each stage's
// limit (category x priority x stage, most specific first), decides whether
// it counts wall time or working time, and keeps a clock's warning and
// breach instants right through extensions and suspensions. Immutable after
// construction; the case engine's thread uses it.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "core/config.h"
#include "core/model.h"
#include "core/work_calendar.h"

namespace cityloop::dispatch {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

class SlaPolicy {
 public:
  explicit SlaPolicy(const Config& config);

  // sla.limits (category+priority, then category), sla.handle_by_category,
  // sla.limits (priority only), sla.<stage>.<priority>; nullopt: no limit.
  std::optional<SlaLimit> LimitFor(std::string_view category, Priority priority, SlaStage stage) const;
  // Urgent work (sla.wall_clock_categories, urgent priority with
  // sla.urgent_wall_clock) counts wall time whatever its limit says.
  bool OnWallClock(std::string_view category, Priority priority) const;

  // Starts k at start_ms with the stage's limit. A stage without a limit
  // still runs, for the record (durations), and never warns.
  void Start(SlaClock& k, std::string_view category, Priority priority, SlaStage stage, int64_t start_ms) const;
  static void Stop(SlaClock& k, int64_t at_ms) {
    if (k.running()) k.stopped_ms = at_ms;
  }
  // 延期: the limit grows by `by_ms` (on the clock's basis). A light the new
  // deadline takes back goes back to what it is at `now_ms`.
  void Extend(SlaClock& k, int64_t by_ms, int64_t now_ms) const;
  // A suspension from from_ms to to_ms: the deadline moves by the time
  // suspended on the clock's basis.
  void AddPause(SlaClock& k, int64_t from_ms, int64_t to_ms) const;
  // The next instant the clock changes light, or kNever.
  static int64_t NextDue(const SlaClock& k);
  // The light at t.
  static SlaLight LightAt(const SlaClock& k, int64_t t);
  // Share of the limit used at t (0 for a clock without a limit).
  double Ratio(const SlaClock& k, int64_t t) const;

  const WorkCalendar& calendar() const { return calendar_; }
  const SlaOptions& options() const { return options_; }

 private:
  // started + amount + paused on the clock's basis.
  int64_t Point(const SlaClock& k, int64_t amount_ms) const;
  void Recompute(SlaClock& k) const;

  SlaOptions options_;
  WorkCalendar calendar_;
};

}  // namespace cityloop::dispatch

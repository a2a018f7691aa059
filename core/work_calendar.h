// WorkCalendar: the city's working time (sla.calendar) as arithmetic on epoch ms, for SLA clocks that count
// working hours or working days: weekly workdays, daily hours, holidays and make-up working days (调休), at the
// fixed UTC offset of the city.
//
// Working time is a non-decreasing function of the instant, so deadlines and elapsed time are differences and
// inverses of it; weeks are counted arithmetically and holiday/extra-day lists are binary-searched, so cost grows
// with the log of the span, never with its length.
//
// Immutable after construction: share one instance freely, across threads, with no locking.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/config.h"

namespace cityloop {

class WorkCalendar {
 public:
  // "Never": what AddWorking and Deadline return when the calendar has no working time left (empty hours, or
  // no workdays and no extra working day after the start). Far enough out to add to and compare safely;
  // instants beyond +-kNeverMs are counted as +-kNeverMs.
  static constexpr int64_t kNeverMs = INT64_MAX / 4;

  // Hours are clamped to the day, sorted and merged; the day lists are sorted. Any options are accepted.
  explicit WorkCalendar(const WorkCalendarOptions& options);

  bool IsWorkday(int64_t local_day) const;
  int64_t LocalDay(int64_t epoch_ms) const;
  int64_t day_length_ms() const { return day_length_ms_; }

  // The earliest instant t >= start_ms with WorkingBetween(start_ms, t) == working_ms: work that ends exactly
  // at 12:00 ends at 12:00, not at 14:00. working_ms <= 0 returns start_ms; no working time ahead, kNeverMs.
  int64_t AddWorking(int64_t start_ms, int64_t working_ms) const;
  // Working ms in [from_ms, to_ms); 0 when to_ms <= from_ms. Additive: split a range anywhere and the parts sum.
  int64_t WorkingBetween(int64_t from_ms, int64_t to_ms) const;

  // The limit on its own basis: wall ms, or working ms (kWorkingDays: days x day_length_ms()).
  int64_t LimitAmountMs(const SlaLimit& limit) const;
  // start + limit on the limit's basis (kWall: plain addition, saturating).
  int64_t Deadline(int64_t start_ms, const SlaLimit& limit) const;
  // From from_ms to to_ms in working ms (WorkingBetween) or wall ms; never negative.
  int64_t Elapsed(int64_t from_ms, int64_t to_ms, bool working) const;

 private:
  struct Segment {
    int64_t from_ms, to_ms;  // of the local day
    int64_t cum_end_ms;      // working ms of the day up to to_ms
  };

  // Working days in [anchor, local_day) for a fixed anchor; only differences mean anything.
  int64_t WorkdaysBefore(int64_t local_day) const;
  // Working ms in [0, ms_of_day) of a working day.
  int64_t WorkingInDay(int64_t ms_of_day) const;
  // Working ms in [anchor, epoch_ms): the function the public queries difference and invert.
  int64_t WorkingBefore(int64_t epoch_ms) const;

  int64_t offset_ms_;
  std::array<bool, 7> workdays_;          // index 0 = Monday
  std::array<int64_t, 8> week_prefix_{};  // base workdays among the first i weekdays of a week
  std::vector<Segment> segments_;
  int64_t day_length_ms_ = 0;
  std::vector<int64_t> holidays_;         // only those that remove a base workday, sorted
  std::vector<int64_t> extra_workdays_;   // only those that add a day off the weekly pattern, sorted
  bool no_work_ = false;
};

}  // namespace cityloop

#include "core/work_calendar.h"

#include <algorithm>
#include <cctype>

#include "core/time_util.h"

namespace cityloop {
namespace {

constexpr int64_t kDayMs = 86400000;
// Past this many days from the start, work that has not ended never will (or the answer is past kNeverMs anyway).
constexpr int64_t kMaxSearchDays = 2 * WorkCalendar::kNeverMs / kDayMs;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Keeps instants where the day arithmetic cannot overflow.
int64_t ClampInstant(int64_t ms) { return std::clamp(ms, -WorkCalendar::kNeverMs, WorkCalendar::kNeverMs); }

int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? INT64_MAX : INT64_MIN;
  return sum;
}

// 1970-01-01 (day 0) was a Thursday; index 0 = Monday.
int Weekday(int64_t local_day) { return static_cast<int>((local_day % 7 + 10) % 7); }

bool Contains(const std::vector<int64_t>& sorted, int64_t day) {
  return std::binary_search(sorted.begin(), sorted.end(), day);
}

int64_t CountBefore(const std::vector<int64_t>& sorted, int64_t day) {
  return std::lower_bound(sorted.begin(), sorted.end(), day) - sorted.begin();
}

// "1.5" x scale, rounded to the nearest unit; nullopt unless digits with at most one '.', and not past kNeverMs.
std::optional<int64_t> ParseScaled(std::string_view s, int64_t scale) {
  int64_t whole = 0, frac = 0, frac_den = 1;
  bool any_digit = false, seen_dot = false;
  for (char c : s) {
    if (c == '.') {
      if (seen_dot) return std::nullopt;
      seen_dot = true;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      any_digit = true;
      if (!seen_dot) {
        if (whole > WorkCalendar::kNeverMs / scale / 10) return std::nullopt;
        whole = whole * 10 + (c - '0');
      } else if (frac_den < 1000000000) {  // digits past the ninth cannot change a ms result
        frac = frac * 10 + (c - '0');
        frac_den *= 10;
      }
    } else {
      return std::nullopt;
    }
  }
  if (!any_digit) return std::nullopt;
  return whole * scale + (frac * scale + frac_den / 2) / frac_den;
}

}  // namespace

WorkCalendar::WorkCalendar(const WorkCalendarOptions& options)
    : offset_ms_(int64_t{options.utc_offset_minutes} * 60000), workdays_(options.workdays) {
  for (int i = 0; i < 7; ++i) week_prefix_[i + 1] = week_prefix_[i] + (workdays_[i] ? 1 : 0);

  std::vector<std::pair<int, int>> hours;
  for (auto [from, to] : options.hours) {
    from = std::clamp(from, 0, 1440);
    to = std::clamp(to, 0, 1440);
    if (from < to) hours.emplace_back(from, to);
  }
  std::sort(hours.begin(), hours.end());
  for (const auto& [from, to] : hours) {
    const int64_t from_ms = int64_t{from} * 60000, to_ms = int64_t{to} * 60000;
    if (!segments_.empty() && from_ms <= segments_.back().to_ms) {
      if (to_ms > segments_.back().to_ms) {
        day_length_ms_ += to_ms - segments_.back().to_ms;
        segments_.back().to_ms = to_ms;
        segments_.back().cum_end_ms = day_length_ms_;
      }
      continue;
    }
    day_length_ms_ += to_ms - from_ms;
    segments_.push_back({from_ms, to_ms, day_length_ms_});
  }

  std::vector<int64_t> extra = options.extra_workdays;
  std::sort(extra.begin(), extra.end());
  extra.erase(std::unique(extra.begin(), extra.end()), extra.end());
  for (int64_t day : options.holidays) {
    if (workdays_[Weekday(day)] && !Contains(extra, day)) holidays_.push_back(day);
  }
  std::sort(holidays_.begin(), holidays_.end());
  holidays_.erase(std::unique(holidays_.begin(), holidays_.end()), holidays_.end());
  for (int64_t day : extra) {
    if (!workdays_[Weekday(day)]) extra_workdays_.push_back(day);
  }
  no_work_ = day_length_ms_ == 0 || (week_prefix_[7] == 0 && extra_workdays_.empty());
}

bool WorkCalendar::IsWorkday(int64_t local_day) const {
  return workdays_[Weekday(local_day)] ? !Contains(holidays_, local_day) : Contains(extra_workdays_, local_day);
}

int64_t WorkCalendar::LocalDay(int64_t epoch_ms) const {
  return FloorDiv(SaturatingAdd(epoch_ms, offset_ms_), kDayMs);
}

int64_t WorkCalendar::WorkdaysBefore(int64_t local_day) const {
  // Whole weeks from Monday 1969-12-29 (day -3), then the days of the last, partial week.
  const int64_t weeks = FloorDiv(local_day + 3, 7);
  const int64_t base = weeks * week_prefix_[7] + week_prefix_[local_day + 3 - weeks * 7];
  return base - CountBefore(holidays_, local_day) + CountBefore(extra_workdays_, local_day);
}

int64_t WorkCalendar::WorkingInDay(int64_t ms_of_day) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), ms_of_day,
                             [](int64_t ms, const Segment& s) { return ms < s.from_ms; });
  if (it == segments_.begin()) return 0;
  --it;
  return it->cum_end_ms - it->to_ms + std::min(ms_of_day, it->to_ms);
}

int64_t WorkCalendar::WorkingBefore(int64_t epoch_ms) const {
  const int64_t local = ClampInstant(epoch_ms) + offset_ms_;
  const int64_t day = FloorDiv(local, kDayMs);
  const int64_t in_day = IsWorkday(day) ? WorkingInDay(local - day * kDayMs) : 0;
  return WorkdaysBefore(day) * day_length_ms_ + in_day;
}

int64_t WorkCalendar::WorkingBetween(int64_t from_ms, int64_t to_ms) const {
  if (to_ms <= from_ms || day_length_ms_ == 0) return 0;
  return WorkingBefore(to_ms) - WorkingBefore(from_ms);
}

int64_t WorkCalendar::AddWorking(int64_t start_ms, int64_t working_ms) const {
  if (working_ms <= 0) return start_ms;
  if (no_work_ || start_ms >= kNeverMs) return std::max(start_ms, kNeverMs);
  const int64_t target = WorkingBefore(start_ms) + std::min(working_ms, kNeverMs);
  // The work ends `rest` into the working day that has `whole` working days before it.
  const int64_t whole = FloorDiv(target - 1, day_length_ms_);
  const int64_t rest = target - whole * day_length_ms_;  // (0, day_length_ms_]

  // Find that day: the last with WorkdaysBefore(day) <= whole. The start day is one such, so search forwards.
  int64_t lo = FloorDiv(ClampInstant(start_ms) + offset_ms_, kDayMs);
  int64_t step = 8;
  while (WorkdaysBefore(lo + step) <= whole) {
    if (step > kMaxSearchDays) return kNeverMs;
    step *= 2;
  }
  int64_t hi = lo + step;  // WorkdaysBefore(lo) <= whole < WorkdaysBefore(hi)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (WorkdaysBefore(mid) <= whole ? lo : hi) = mid;
  }

  const auto seg = std::lower_bound(segments_.begin(), segments_.end(), rest,
                                    [](const Segment& s, int64_t ms) { return s.cum_end_ms < ms; });
  const int64_t end = lo * kDayMs + seg->to_ms - (seg->cum_end_ms - rest) - offset_ms_;
  return std::min(end, kNeverMs);
}

int64_t WorkCalendar::LimitAmountMs(const SlaLimit& limit) const {
  if (limit.basis != SlaLimit::Basis::kWorkingDays) return limit.amount;
  if (day_length_ms_ == 0) return 0;
  const int64_t max_days = kNeverMs / day_length_ms_;
  return std::clamp(limit.amount, -max_days, max_days) * day_length_ms_;
}

int64_t WorkCalendar::Deadline(int64_t start_ms, const SlaLimit& limit) const {
  if (limit.basis == SlaLimit::Basis::kWall) return SaturatingAdd(start_ms, limit.amount);
  if (limit.basis == SlaLimit::Basis::kWorkingDays && limit.amount > 0 && day_length_ms_ == 0) return kNeverMs;
  return AddWorking(start_ms, LimitAmountMs(limit));
}

int64_t WorkCalendar::Elapsed(int64_t from_ms, int64_t to_ms, bool working) const {
  if (to_ms <= from_ms) return 0;
  if (working) return WorkingBetween(from_ms, to_ms);
  int64_t wall;
  return __builtin_sub_overflow(to_ms, from_ms, &wall) ? INT64_MAX : wall;
}

std::optional<SlaLimit> ParseSlaLimit(std::string_view text) {
  const std::string_view number = text.substr(0, text.size() >= 2 ? text.size() - 2 : 0);
  std::optional<int64_t> amount;
  SlaLimit::Basis basis = SlaLimit::Basis::kWorkingMs;
  if (text.ends_with("wd")) {
    basis = SlaLimit::Basis::kWorkingDays;
    if (number.find('.') == std::string_view::npos) amount = ParseScaled(number, 1);  // whole days only
  } else if (text.ends_with("wh")) {
    amount = ParseScaled(number, 3600000);
  } else if (text.ends_with("wm")) {
    amount = ParseScaled(number, 60000);
  } else {
    basis = SlaLimit::Basis::kWall;
    // ParseDurationMs converts through a double; more than 10 integer digits could overflow int64 ms.
    const size_t digits = text.find_first_not_of("0123456789");
    if (std::min(digits, text.size()) > 10) return std::nullopt;
    amount = ParseDurationMs(text);
  }
  if (!amount || *amount <= 0) return std::nullopt;
  return SlaLimit{basis, *amount};
}

}  // namespace cityloop

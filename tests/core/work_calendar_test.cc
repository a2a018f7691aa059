#include "core/work_calendar.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "core/time_util.h"

namespace cityloop {
namespace {

constexpr int64_t kMinute = 60000;
constexpr int64_t kHour = 3600000;

int64_t At(const char* rfc3339) { return *ParseRfc3339Ms(rfc3339); }

// Local date -> days since 1970-01-01, by std::chrono rather than the code under test.
int64_t Day(int y, unsigned m, unsigned d) {
  return std::chrono::sys_days{std::chrono::year{y} / m / d}.time_since_epoch().count();
}

WorkCalendarOptions Options(std::vector<int64_t> holidays = {}, std::vector<int64_t> extra_workdays = {}) {
  WorkCalendarOptions o;  // Mon-Fri, 08:30-12:00 and 14:00-17:30, UTC+8
  o.holidays = std::move(holidays);
  o.extra_workdays = std::move(extra_workdays);
  return o;
}

// Brute force: walks minute by minute, deciding each minute from the options alone.
class Reference {
 public:
  explicit Reference(WorkCalendarOptions o) : o_(std::move(o)) {}

  int64_t Between(int64_t from, int64_t to) const {
    int64_t sum = 0;
    for (int64_t t = from; t < to;) {
      const int64_t next = std::min(to, MinuteStart(t) + kMinute);
      if (Working(t)) sum += next - t;
      t = next;
    }
    return sum;
  }

  int64_t Add(int64_t start, int64_t working) const {
    int64_t t = start;
    while (working > 0) {
      const int64_t next = MinuteStart(t) + kMinute;
      if (Working(t)) {
        const int64_t take = std::min(working, next - t);
        working -= take;
        t += take;
      } else {
        t = next;
      }
    }
    return t;
  }

 private:
  static int64_t MinuteStart(int64_t t) {
    return std::chrono::floor<std::chrono::minutes>(std::chrono::milliseconds{t}).count() * kMinute;
  }

  bool Working(int64_t t) const {  // the minute holding t
    const std::chrono::milliseconds local{t + int64_t{o_.utc_offset_minutes} * kMinute};
    const auto day = std::chrono::floor<std::chrono::days>(local);
    const int monday0 = static_cast<int>((std::chrono::weekday{std::chrono::sys_days{day}}.c_encoding() + 6) % 7);
    auto listed = [&](const std::vector<int64_t>& days) {
      return std::find(days.begin(), days.end(), day.count()) != days.end();
    };
    if (!((o_.workdays[monday0] && !listed(o_.holidays)) || listed(o_.extra_workdays))) return false;
    const int64_t minute = std::chrono::floor<std::chrono::minutes>(local - day).count();
    for (const auto& [from, to] : o_.hours) {
      if (from <= minute && minute < to) return true;
    }
    return false;
  }

  WorkCalendarOptions o_;
};

TEST(WorkCalendar, CountsLocalDaysAndWeekdays) {
  const WorkCalendar cal(Options());
  EXPECT_EQ(cal.day_length_ms(), 7 * kHour);
  EXPECT_EQ(Day(2026, 12, 1), 20788);
  EXPECT_TRUE(cal.IsWorkday(Day(2026, 12, 1)));  // Tuesday
  EXPECT_TRUE(cal.IsWorkday(Day(2026, 12, 4)));  // Friday
  EXPECT_FALSE(cal.IsWorkday(Day(2026, 12, 5)));
  EXPECT_FALSE(cal.IsWorkday(Day(2026, 12, 6)));
  EXPECT_TRUE(cal.IsWorkday(Day(2026, 12, 7)));
  EXPECT_EQ(cal.LocalDay(At("2026-12-01T00:00:00+08:00")), Day(2026, 12, 1));
  EXPECT_EQ(cal.LocalDay(At("2026-11-30T23:59:59.999+08:00")), Day(2026, 11, 30));
  EXPECT_EQ(cal.LocalDay(At("2026-11-30T16:00:00Z")), Day(2026, 12, 1));

  // Before the epoch: 1970-01-01 was a Thursday, 1969-12-29 a Monday.
  EXPECT_TRUE(cal.IsWorkday(0));
  EXPECT_FALSE(cal.IsWorkday(2));
  EXPECT_TRUE(cal.IsWorkday(-1));
  EXPECT_TRUE(cal.IsWorkday(-3));
  EXPECT_FALSE(cal.IsWorkday(-4));
  EXPECT_FALSE(cal.IsWorkday(-5));
  EXPECT_TRUE(cal.IsWorkday(-8));
  EXPECT_EQ(cal.LocalDay(-1), 0);  // 07:59:59.999 local
  EXPECT_EQ(cal.LocalDay(-8 * kHour), 0);
  EXPECT_EQ(cal.LocalDay(-8 * kHour - 1), -1);
  WorkCalendarOptions utc = Options();
  utc.utc_offset_minutes = 0;
  EXPECT_EQ(WorkCalendar(utc).LocalDay(-1), -1);
  EXPECT_EQ(WorkCalendar(utc).LocalDay(-86400001), -2);
}

TEST(WorkCalendar, CarriesOvernightAndOverTheWeekend) {
  const WorkCalendar cal(Options());
  const int64_t friday_1700 = At("2026-12-04T17:00:00+08:00");
  EXPECT_EQ(cal.AddWorking(friday_1700, 30 * kMinute), At("2026-12-04T17:30:00+08:00"));
  // 30 min on Friday, 1.5 h from Monday's opening.
  EXPECT_EQ(cal.AddWorking(friday_1700, 2 * kHour), At("2026-12-07T10:00:00+08:00"));
  EXPECT_EQ(cal.WorkingBetween(friday_1700, At("2026-12-07T10:00:00+08:00")), 2 * kHour);
  // Tuesday evening to Wednesday.
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T19:00:00+08:00"), kHour), At("2026-12-02T09:30:00+08:00"));
}

TEST(WorkCalendar, StartInsideTheLunchBreak) {
  const WorkCalendar cal(Options());
  const int64_t t = At("2026-12-01T12:30:00+08:00");
  EXPECT_EQ(cal.AddWorking(t, kHour), At("2026-12-01T15:00:00+08:00"));
  EXPECT_EQ(cal.AddWorking(t, 0), t);
  EXPECT_EQ(cal.AddWorking(t, -kHour), t);
  EXPECT_EQ(cal.WorkingBetween(At("2026-12-01T12:00:00+08:00"), At("2026-12-01T14:00:00+08:00")), 0);
}

TEST(WorkCalendar, StartBeforeOpening) {
  const WorkCalendar cal(Options());
  const int64_t t = At("2026-12-01T07:00:00+08:00");
  EXPECT_EQ(cal.AddWorking(t, 30 * kMinute), At("2026-12-01T09:00:00+08:00"));
  EXPECT_EQ(cal.AddWorking(t, 1), At("2026-12-01T08:30:00.001+08:00"));
  EXPECT_EQ(cal.WorkingBetween(t, At("2026-12-01T08:30:00+08:00")), 0);
}

TEST(WorkCalendar, WorkEndingAtASegmentEndEndsThere) {
  const WorkCalendar cal(Options());
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T11:00:00+08:00"), kHour), At("2026-12-01T12:00:00+08:00"));
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T11:00:00+08:00"), kHour + 1), At("2026-12-01T14:00:00.001+08:00"));
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T07:00:00+08:00"), 7 * kHour), At("2026-12-01T17:30:00+08:00"));
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T17:30:00+08:00"), 1), At("2026-12-02T08:30:00.001+08:00"));
  // A start at a segment end: nothing more that day before 14:00.
  EXPECT_EQ(cal.AddWorking(At("2026-12-01T12:00:00+08:00"), kMinute), At("2026-12-01T14:01:00+08:00"));
}

TEST(WorkCalendar, WeekendsDoNotCount) {
  const WorkCalendar cal(Options());
  EXPECT_EQ(cal.AddWorking(At("2026-12-05T10:00:00+08:00"), kHour), At("2026-12-07T09:30:00+08:00"));
  EXPECT_EQ(cal.AddWorking(At("2026-12-06T23:59:00+08:00"), kHour), At("2026-12-07T09:30:00+08:00"));
  EXPECT_EQ(cal.WorkingBetween(At("2026-12-04T17:30:00+08:00"), At("2026-12-07T08:30:00+08:00")), 0);
  EXPECT_EQ(cal.WorkingBetween(At("2026-11-30T00:00:00+08:00"), At("2026-12-07T00:00:00+08:00")), 35 * kHour);
}

TEST(WorkCalendar, HolidayOnAMonday) {
  const WorkCalendar cal(Options({Day(2026, 12, 7)}));
  EXPECT_FALSE(cal.IsWorkday(Day(2026, 12, 7)));
  EXPECT_EQ(cal.AddWorking(At("2026-12-04T17:00:00+08:00"), 2 * kHour), At("2026-12-08T10:00:00+08:00"));
  EXPECT_EQ(cal.WorkingBetween(At("2026-12-04T00:00:00+08:00"), At("2026-12-08T00:00:00+08:00")), 7 * kHour);
}

TEST(WorkCalendar, ExtraWorkingSaturday) {
  // 调休: Saturday 12th is worked; a holiday on a Sunday changes nothing; a date both off and worked is worked.
  const WorkCalendar cal(Options({Day(2026, 12, 13), Day(2026, 12, 21)}, {Day(2026, 12, 12), Day(2026, 12, 21)}));
  EXPECT_TRUE(cal.IsWorkday(Day(2026, 12, 12)));
  EXPECT_FALSE(cal.IsWorkday(Day(2026, 12, 13)));
  EXPECT_TRUE(cal.IsWorkday(Day(2026, 12, 21)));
  EXPECT_EQ(cal.AddWorking(At("2026-12-11T17:00:00+08:00"), 2 * kHour), At("2026-12-12T10:00:00+08:00"));
  EXPECT_EQ(cal.AddWorking(At("2026-12-12T17:00:00+08:00"), kHour), At("2026-12-14T09:00:00+08:00"));
  EXPECT_EQ(cal.WorkingBetween(At("2026-12-07T00:00:00+08:00"), At("2026-12-14T00:00:00+08:00")), 42 * kHour);
}

TEST(WorkCalendar, SplitRangesAddUp) {
  // A suspended (挂账) case counts work before the suspension and after the resume.
  const WorkCalendar cal(Options({Day(2026, 12, 7)}));
  const int64_t opened = At("2026-12-01T10:00:00+08:00");
  const int64_t suspended = At("2026-12-02T11:00:00+08:00");
  const int64_t resumed = At("2026-12-08T15:00:00+08:00");
  const int64_t now = At("2026-12-09T09:00:00+08:00");
  EXPECT_EQ(cal.WorkingBetween(opened, suspended), 8 * kHour);  // 5.5 h Tuesday, 2.5 h Wednesday
  EXPECT_EQ(cal.WorkingBetween(resumed, now), 3 * kHour);       // 2.5 h Tuesday, 0.5 h Wednesday
  EXPECT_EQ(cal.WorkingBetween(opened, now),
            cal.WorkingBetween(opened, suspended) + cal.WorkingBetween(suspended, resumed) +
                cal.WorkingBetween(resumed, now));
  for (int64_t cut = opened; cut <= now; cut += 37 * kMinute + 11) {
    EXPECT_EQ(cal.WorkingBetween(opened, cut) + cal.WorkingBetween(cut, now), cal.WorkingBetween(opened, now));
  }
  EXPECT_EQ(cal.WorkingBetween(now, opened), 0);
  EXPECT_EQ(cal.Elapsed(opened, suspended, true), 8 * kHour);
  EXPECT_EQ(cal.Elapsed(opened, suspended, false), suspended - opened);
  EXPECT_EQ(cal.Elapsed(suspended, opened, false), 0);
  EXPECT_EQ(cal.Elapsed(suspended, opened, true), 0);
}

TEST(WorkCalendar, LimitsOnEachBasis) {
  const WorkCalendar cal(Options({Day(2026, 12, 7)}, {Day(2026, 12, 12)}));
  const SlaLimit one_day{SlaLimit::Basis::kWorkingDays, 1};
  EXPECT_EQ(cal.LimitAmountMs(one_day), 7 * kHour);
  EXPECT_EQ(cal.LimitAmountMs({SlaLimit::Basis::kWorkingMs, 4 * kHour}), 4 * kHour);
  EXPECT_EQ(cal.LimitAmountMs({SlaLimit::Basis::kWall, 30 * kMinute}), 30 * kMinute);

  EXPECT_EQ(cal.Deadline(At("2026-12-01T10:00:00+08:00"), one_day), At("2026-12-02T10:00:00+08:00"));
  EXPECT_EQ(cal.Deadline(At("2026-12-04T10:00:00+08:00"), one_day), At("2026-12-08T10:00:00+08:00"));
  EXPECT_EQ(cal.Deadline(At("2026-12-04T17:30:00+08:00"), one_day), At("2026-12-08T17:30:00+08:00"));
  EXPECT_EQ(cal.Deadline(At("2026-12-08T07:00:00+08:00"), one_day), At("2026-12-08T17:30:00+08:00"));
  // 13 working days from Tuesday 1st: 2-4, (7th off) 8-11, Saturday 12th, 14-18.
  EXPECT_EQ(cal.Deadline(At("2026-12-01T09:00:00+08:00"), {SlaLimit::Basis::kWorkingDays, 13}),
            At("2026-12-18T09:00:00+08:00"));
  EXPECT_EQ(cal.Deadline(At("2026-12-01T15:00:00+08:00"), {SlaLimit::Basis::kWorkingMs, 4 * kHour}),
            At("2026-12-02T10:00:00+08:00"));
  EXPECT_EQ(cal.Deadline(At("2026-12-05T10:00:00+08:00"), {SlaLimit::Basis::kWall, 30 * kMinute}),
            At("2026-12-05T10:30:00+08:00"));
}

TEST(WorkCalendar, LongDurationsSkipWeeks) {
  const WorkCalendar cal(Options());
  const int64_t monday = At("2027-01-04T09:00:00+08:00");
  EXPECT_EQ(cal.Deadline(monday, {SlaLimit::Basis::kWorkingDays, 260}), monday + 364 * 86400000LL);
  const int64_t ten_years = 2600 * 7 * kHour;
  EXPECT_EQ(cal.WorkingBetween(monday, cal.AddWorking(monday, ten_years)), ten_years);
  // Far in the past too.
  const int64_t old = At("1950-03-06T09:00:00+08:00");  // a Monday
  EXPECT_EQ(cal.Deadline(old, {SlaLimit::Basis::kWorkingDays, 5}), old + 7 * 86400000LL);
  EXPECT_EQ(cal.WorkingBetween(old, monday) % kMinute, 0);
}

TEST(WorkCalendar, NoWorkingTimeNeverEnds) {
  const int64_t t = At("2026-12-01T10:00:00+08:00");
  WorkCalendarOptions no_hours = Options();
  no_hours.hours.clear();
  const WorkCalendar closed(no_hours);
  EXPECT_EQ(closed.day_length_ms(), 0);
  EXPECT_EQ(WorkCalendar::kNeverMs, INT64_MAX / 4);
  EXPECT_EQ(closed.AddWorking(t, kHour), WorkCalendar::kNeverMs);
  EXPECT_EQ(closed.Deadline(t, {SlaLimit::Basis::kWorkingDays, 1}), WorkCalendar::kNeverMs);
  EXPECT_EQ(closed.Deadline(t, {SlaLimit::Basis::kWall, kHour}), t + kHour);
  EXPECT_EQ(closed.WorkingBetween(t, t + 86400000LL * 30), 0);

  WorkCalendarOptions no_days = Options();
  no_days.workdays.fill(false);
  const WorkCalendar idle(no_days);
  EXPECT_FALSE(idle.IsWorkday(Day(2026, 12, 1)));
  EXPECT_EQ(idle.AddWorking(t, 1), WorkCalendar::kNeverMs);

  // Only one extra day: it holds 7 h and no more.
  no_days.extra_workdays = {Day(2026, 12, 12)};
  const WorkCalendar one_day(no_days);
  EXPECT_EQ(one_day.AddWorking(t, kHour), At("2026-12-12T09:30:00+08:00"));
  EXPECT_EQ(one_day.AddWorking(t, 7 * kHour), At("2026-12-12T17:30:00+08:00"));
  EXPECT_EQ(one_day.AddWorking(t, 7 * kHour + 1), WorkCalendar::kNeverMs);
  EXPECT_EQ(one_day.AddWorking(At("2026-12-13T10:00:00+08:00"), 1), WorkCalendar::kNeverMs);

  // Nonsense hours are clamped, sorted and merged rather than trusted.
  WorkCalendarOptions messy = Options();
  messy.hours = {{840, 1050}, {720, 510}, {600, 700}, {510, 720}, {-30, -10}, {1400, 2000}};
  const WorkCalendar tidy(messy);
  EXPECT_EQ(tidy.day_length_ms(), 7 * kHour + 40 * kMinute);
  EXPECT_EQ(tidy.AddWorking(At("2026-12-01T23:30:00+08:00"), 40 * kMinute), At("2026-12-02T08:40:00+08:00"));
}

TEST(WorkCalendar, ParsesSlaLimits) {
  using B = SlaLimit::Basis;
  EXPECT_EQ(ParseSlaLimit("30m"), (SlaLimit{B::kWall, 30 * kMinute}));
  EXPECT_EQ(ParseSlaLimit("4h"), (SlaLimit{B::kWall, 4 * kHour}));
  EXPECT_EQ(ParseSlaLimit("2d"), (SlaLimit{B::kWall, 2 * 86400000LL}));
  EXPECT_EQ(ParseSlaLimit("90s"), (SlaLimit{B::kWall, 90000}));
  EXPECT_EQ(ParseSlaLimit("250ms"), (SlaLimit{B::kWall, 250}));
  EXPECT_EQ(ParseSlaLimit("4wh"), (SlaLimit{B::kWorkingMs, 4 * kHour}));
  EXPECT_EQ(ParseSlaLimit("1.5wh"), (SlaLimit{B::kWorkingMs, 90 * kMinute}));
  EXPECT_EQ(ParseSlaLimit("90wm"), (SlaLimit{B::kWorkingMs, 90 * kMinute}));
  EXPECT_EQ(ParseSlaLimit("0.5wm"), (SlaLimit{B::kWorkingMs, 30000}));
  EXPECT_EQ(ParseSlaLimit("1wd"), (SlaLimit{B::kWorkingDays, 1}));
  EXPECT_EQ(ParseSlaLimit("3wd"), (SlaLimit{B::kWorkingDays, 3}));
  for (const char* bad : {"", "0m", "0wh", "0.0wh", "0wd", "-4h", "-4wh", "1.5wd", "wh", "wd", "wm", ".wh", "4w",
                          "4 wh", " 4wh", "4whx", "4WH", "1..5wh", "1.5.2wh", "abc", "0.0001ms",
                          "99999999999999999999d", "99999999999999999999wh", "99999999999999999999wd"}) {
    EXPECT_FALSE(ParseSlaLimit(bad)) << bad;
  }
}

void CrossCheck(const WorkCalendarOptions& options, int64_t from, int64_t to, uint32_t seed) {
  const WorkCalendar cal(options);
  const Reference ref(options);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> instant(from, to);
  std::uniform_int_distribution<int64_t> amount(1, 8 * cal.day_length_ms());
  for (int i = 0; i < 300; ++i) {
    int64_t start = instant(rng);
    int64_t work = amount(rng);
    // A third on whole minutes, a third on half hours: the work often ends exactly at a segment end.
    if (const int64_t grain = i % 3 == 0 ? kMinute : i % 3 == 1 ? 30 * kMinute : 0; grain != 0) {
      start -= (start % grain + grain) % grain;
      work += grain - work % grain;
    }
    const int64_t end = cal.AddWorking(start, work);
    ASSERT_EQ(end, ref.Add(start, work)) << "start " << FormatRfc3339Ms(start) << " work " << work;
    ASSERT_EQ(cal.WorkingBetween(start, end), work);
    ASSERT_LT(cal.WorkingBetween(start, end - 1), work);
    const int64_t other = instant(rng);
    ASSERT_EQ(cal.WorkingBetween(start, other), ref.Between(start, other))
        << FormatRfc3339Ms(start) << " to " << FormatRfc3339Ms(other);
  }
}

TEST(WorkCalendar, MatchesMinuteSteppingInAMonthWithHolidays) {
  // December 2026 into the New Year: a Monday off, a Thursday and Friday off, a worked Saturday, a Sunday
  // holiday, a weekday listed as extra, and a date both off and worked.
  const WorkCalendarOptions options =
      Options({Day(2026, 12, 7), Day(2026, 12, 13), Day(2026, 12, 21), Day(2026, 12, 31), Day(2027, 1, 1)},
              {Day(2026, 12, 12), Day(2026, 12, 15), Day(2026, 12, 21)});
  CrossCheck(options, At("2026-11-28T00:00:00+08:00"), At("2027-01-05T00:00:00+08:00"), 20261201);
}

TEST(WorkCalendar, MatchesMinuteSteppingBeforeTheEpochWestOfUtc) {
  // Hours touching midnight, a six-day week, UTC-5, around 1970-01-01.
  WorkCalendarOptions options;
  options.workdays = {true, true, true, false, true, true, true};
  options.hours = {{0, 60}, {9 * 60, 9 * 60 + 1}, {23 * 60, 1440}};
  options.utc_offset_minutes = -300;
  options.holidays = {-2, 1};
  options.extra_workdays = {0};
  CrossCheck(options, -20 * 86400000LL, 10 * 86400000LL, 1969);
}

}  // namespace
}  // namespace cityloop

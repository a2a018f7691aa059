#include "dispatch/kpi.h"

#include <map>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "core/time_util.h"

namespace cityloop::dispatch {
namespace {

constexpr int kOffset = 480;  // +08:00
constexpr int64_t kMinute = 60000, kHour = 60 * kMinute, kDay = 24 * kHour;

int64_t At(const char* rfc3339) { return *ParseRfc3339Ms(rfc3339); }
int32_t DayOf(const char* rfc3339) { return LocalDay(At(rfc3339), kOffset); }

// A case registered at `registered`, in drainage/furong/cell C1/waterlogging.
Case MakeCase(const std::string& id, int64_t registered, const std::string& dept = "drainage") {
  Case c;
  c.id = id;
  c.category = "waterlogging";
  c.cell_code = "C1";
  c.district = "furong";
  c.department = dept;
  c.first_event_ms = registered - kMinute;
  c.registered_ms = registered;
  c.status = CaseStatus::kRegistered;
  return c;
}

Task& Dispatch(Case& c, const std::string& dept, int64_t at) {
  if (c.dispatched_ms == 0) c.dispatched_ms = at;
  if (c.status == CaseStatus::kRegistered) c.status = CaseStatus::kDispatched;
  Task t;
  t.department = dept;
  t.lead = c.tasks.empty();
  t.dispatched_ms = at;
  c.tasks.push_back(t);
  return c.tasks.back();
}

void Close(Case& c, int64_t at, int64_t deadline) {
  c.status = CaseStatus::kClosed;
  c.closed_ms = at;
  c.close.deadline_ms = deadline;
}

// The one part of a contribution for `dept`.
KpiCounts PartOf(const KpiContribution& k, const std::string& dept) {
  for (const auto& [key, counts] : k.parts) {
    if (key.department == dept) return counts;
  }
  ADD_FAILURE() << "no part for " << dept;
  return {};
}

KpiBook BookOf(const std::vector<Case>& cases, KpiOptions options = {}) {
  KpiBook book(std::move(options));
  for (const Case& c : cases) book.Replace({}, Contribute(c, kOffset));
  return book;
}

KpiCounts Total(const KpiBook& book) {
  auto rows = book.Query(KpiGroup::kTotal, INT32_MIN, INT32_MAX);
  return rows.empty() ? KpiCounts{} : rows[0].counts;
}

std::optional<double> RateOf(const KpiCounts& c, std::string_view name) {
  for (const KpiRateFormula& r : kKpiRates) {
    if (r.name == name) return KpiRate(c, r);
  }
  ADD_FAILURE() << "no rate " << name;
  return std::nullopt;
}

TEST(KpiBins, EdgesAreAtMostTenPercentWideFromOneSecondToSixtyDays) {
  EXPECT_EQ(DurationStats::UpperEdgeMs(0), 1000);
  EXPECT_GE(DurationStats::kTopEdgeMs, 60 * kDay);
  EXPECT_LE(DurationStats::kBinCount, 256);
  for (int b = 1; b < DurationStats::kBinCount - 1; ++b) {
    const int64_t lo = DurationStats::UpperEdgeMs(b - 1), hi = DurationStats::UpperEdgeMs(b);
    EXPECT_GT(hi, lo);
    EXPECT_LE(hi * 10, lo * 11) << "bin " << b;
    EXPECT_EQ(DurationStats::BinOf(lo), b);
    EXPECT_EQ(DurationStats::BinOf(hi - 1), b);
  }
  EXPECT_EQ(DurationStats::BinOf(0), 0);
  EXPECT_EQ(DurationStats::BinOf(999), 0);
  EXPECT_EQ(DurationStats::BinOf(365 * kDay), DurationStats::kBinCount - 1);
  EXPECT_EQ(DurationStats::UpperEdgeMs(DurationStats::kBinCount - 1), DurationStats::kTopEdgeMs);
}

TEST(KpiFormulas, MergedCaseContributesNothing) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms + kMinute);
  c.status = CaseStatus::kMerged;
  c.merged_into = "CL-2";
  EXPECT_TRUE(Contribute(c, kOffset).parts.empty());
  EXPECT_EQ(BookOf({c}).bucket_count(), 0u);
}

TEST(KpiFormulas, CaseLevelCountsOfAClosedCase) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Task& t = Dispatch(c, "drainage", c.registered_ms + 2 * kMinute);
  t.acknowledged_ms = t.dispatched_ms + 5 * kMinute;
  t.arrived_ms = t.dispatched_ms + 20 * kMinute;
  t.handled_ms = t.dispatched_ms + kHour;
  t.status = TaskStatus::kHandled;
  c.reworks = 1;
  c.extensions = 2;
  Close(c, c.registered_ms + 2 * kHour, 0);

  const KpiContribution k = Contribute(c, kOffset);
  ASSERT_EQ(k.parts.size(), 1u);
  const KpiKey& key = k.parts[0].first;
  EXPECT_EQ(key.day, DayOf("2026-11-28T02:00:00Z"));
  EXPECT_EQ(key.department, "drainage");
  EXPECT_EQ(key.district, "furong");
  EXPECT_EQ(key.cell, "C1");
  EXPECT_EQ(key.category, "waterlogging");
  const KpiCounts& n = k.parts[0].second;
  EXPECT_EQ(n.accepted, 1);
  EXPECT_EQ(n.registered, 1);
  EXPECT_EQ(n.dispatched, 1);
  EXPECT_EQ(n.due_to_close, 1);
  EXPECT_EQ(n.closed, 1);
  EXPECT_EQ(n.closed_on_time, 1);  // no close deadline: on time
  EXPECT_EQ(n.reworked, 1);
  EXPECT_EQ(n.extended, 1);
  EXPECT_EQ(n.reopened, 0);
  EXPECT_EQ(n.deferred, 0);
  EXPECT_EQ(n.dispatches, 1);
  EXPECT_EQ(n.acknowledged_on_time, 1);
  EXPECT_EQ(n.not_returned, 1);
  EXPECT_EQ(n.ack.count, 1);
  EXPECT_EQ(n.ack.sum_ms, 5 * kMinute);
  EXPECT_EQ(n.arrive.sum_ms, 20 * kMinute);
  EXPECT_EQ(n.handle.sum_ms, kHour);
  EXPECT_EQ(n.close.sum_ms, 2 * kHour);  // from registration
}

TEST(KpiFormulas, UnregisteredCaseCountsOnItsFirstEventDay) {
  Case c;
  c.status = CaseStatus::kInvalid;
  c.department = "drainage";
  c.first_event_ms = At("2026-11-27T15:59:59Z");  // 23:59:59 local
  const KpiContribution k = Contribute(c, kOffset);
  ASSERT_EQ(k.parts.size(), 1u);
  EXPECT_EQ(k.parts[0].first.day, DayOf("2026-11-27T08:00:00Z"));
  EXPECT_EQ(k.parts[0].second.accepted, 1);
  EXPECT_EQ(k.parts[0].second.registered, 0);
  EXPECT_EQ(k.parts[0].second.due_to_close, 0);

  c.first_event_ms = At("2026-11-27T16:00:00Z");  // local midnight: the next day
  EXPECT_EQ(Contribute(c, kOffset).parts[0].first.day, DayOf("2026-11-28T08:00:00Z"));
}

TEST(KpiFormulas, InvalidatedAfterDispatchIsNotDueToClose) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms + kMinute).status = TaskStatus::kCancelled;
  c.status = CaseStatus::kInvalid;
  const KpiCounts n = PartOf(Contribute(c, kOffset), "drainage");
  EXPECT_EQ(n.dispatched, 1);
  EXPECT_EQ(n.due_to_close, 0);
  EXPECT_EQ(n.dispatches, 1);
}

TEST(KpiFormulas, DeferredCaseIsOutOfDueToClose) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms + kMinute);
  c.deferred = true;
  c.status = CaseStatus::kDispatched;  // resumed: still out of the denominators
  Close(c, c.registered_ms + kDay, c.registered_ms + kHour);
  const KpiCounts n = PartOf(Contribute(c, kOffset), "drainage");
  EXPECT_EQ(n.deferred, 1);
  EXPECT_EQ(n.dispatched, 1);
  EXPECT_EQ(n.due_to_close, 0);
  EXPECT_EQ(n.closed, 1);
  EXPECT_FALSE(RateOf(n, "close_rate"));
  EXPECT_FALSE(RateOf(n, "on_time_close_rate"));
  EXPECT_FALSE(RateOf(n, "rework_rate"));
  EXPECT_EQ(RateOf(n, "reopen_rate"), 0.0);
}

TEST(KpiFormulas, OnTimeAndLateCloseAndAcknowledge) {
  const int64_t t0 = At("2026-11-28T02:00:00Z");
  std::vector<Case> cases;
  for (int i = 0; i < 4; ++i) {
    Case c = MakeCase("CL-" + std::to_string(i), t0);
    Task& t = Dispatch(c, "drainage", t0);
    t.acknowledge.deadline_ms = t0 + 10 * kMinute;
    t.acknowledged_ms = t0 + (i % 2 == 0 ? 10 : 11) * kMinute;  // at the deadline: on time
    Close(c, t0 + (i < 2 ? 4 : 5) * kHour, t0 + 4 * kHour);
    cases.push_back(c);
  }
  cases[3].tasks[0].acknowledged_ms = 0;  // never acknowledged: not on time
  const KpiCounts n = Total(BookOf(cases));
  EXPECT_EQ(n.closed, 4);
  EXPECT_EQ(n.closed_on_time, 2);
  EXPECT_EQ(n.acknowledged_on_time, 2);
  EXPECT_EQ(n.ack.count, 3);
  EXPECT_EQ(RateOf(n, "close_rate"), 1.0);
  EXPECT_EQ(RateOf(n, "on_time_close_rate"), 0.5);
  EXPECT_EQ(RateOf(n, "on_time_ack_rate"), 0.5);
}

TEST(KpiFormulas, ReturnedTaskCountsAgainstItsDepartment) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"), "municipal");
  Task& wrong = Dispatch(c, "drainage", c.registered_ms + kMinute);
  wrong.status = TaskStatus::kReturned;
  wrong.lead = false;
  c.returns = 1;
  c.returned_by = {"drainage"};
  Task& right = Dispatch(c, "municipal", c.registered_ms + 30 * kMinute);
  right.lead = true;
  right.acknowledged_ms = right.dispatched_ms + kMinute;

  const KpiContribution k = Contribute(c, kOffset);
  ASSERT_EQ(k.parts.size(), 2u);
  EXPECT_EQ(k.parts[0].first.department, "drainage");  // ascending by key
  const KpiCounts drainage = PartOf(k, "drainage"), municipal = PartOf(k, "municipal");
  EXPECT_EQ(drainage.accepted, 0);  // case-level counts go to the lead
  EXPECT_EQ(drainage.dispatches, 1);
  EXPECT_EQ(drainage.not_returned, 0);
  EXPECT_EQ(RateOf(drainage, "accurate_dispatch_rate"), 0.0);
  EXPECT_EQ(municipal.accepted, 1);
  EXPECT_EQ(municipal.dispatches, 1);
  EXPECT_EQ(municipal.not_returned, 1);
  EXPECT_EQ(RateOf(municipal, "accurate_dispatch_rate"), 1.0);
  EXPECT_EQ(RateOf(drainage, "registration_rate"), std::nullopt);

  const auto rows = BookOf({c}).Query(KpiGroup::kDepartment, INT32_MIN, INT32_MAX);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "drainage");
  EXPECT_EQ(rows[0].counts, drainage);
  EXPECT_EQ(rows[1].group, "municipal");
}

TEST(KpiFormulas, TwoTasksOfOneDepartmentShareItsPart) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms + kMinute).status = TaskStatus::kReturned;
  Dispatch(c, "drainage", c.registered_ms + 2 * kMinute);
  const KpiContribution k = Contribute(c, kOffset);
  ASSERT_EQ(k.parts.size(), 1u);
  EXPECT_EQ(k.parts[0].second.dispatches, 2);
  EXPECT_EQ(k.parts[0].second.not_returned, 1);
}

TEST(KpiFormulas, ReopenRateIsReopenedOverClosed) {
  const int64_t t0 = At("2026-11-28T02:00:00Z");
  std::vector<Case> cases;
  for (int i = 0; i < 4; ++i) {
    Case c = MakeCase("CL-" + std::to_string(i), t0);
    Dispatch(c, "drainage", t0);
    Close(c, t0 + kHour, 0);
    cases.push_back(c);
  }
  cases[0].reopens = 1;           // reopened and closed again
  cases[1].reopens = 1;           // reopened, still open: not in closed
  cases[1].status = CaseStatus::kDispatched;
  const KpiCounts n = Total(BookOf(cases));
  EXPECT_EQ(n.closed, 3);
  EXPECT_EQ(n.reopened, 2);
  EXPECT_DOUBLE_EQ(*RateOf(n, "reopen_rate"), 2.0 / 3);
  EXPECT_EQ(RateOf(KpiCounts{}, "reopen_rate"), std::nullopt);
}

TEST(KpiScore, NegativeWeightMeansLowerIsBetterAndAbsentRatesDropOut) {
  KpiOptions options;
  options.weights = {{"close_rate", 0.6}, {"rework_rate", -0.2}, {"reopen_rate", -0.2}};
  KpiCounts n;
  n.due_to_close = 10;
  n.reworked = 2;  // close_rate 0, rework_rate 0.2, reopen_rate absent (nothing closed)
  EXPECT_DOUBLE_EQ(*KpiScore(n, options), 100 * (0.6 * 0.0 + 0.2 * (1 - 0.2)) / (0.6 + 0.2));
  n.closed = 8;
  n.reopened = 4;  // close_rate 0.8, reopen_rate 0.5 now present
  EXPECT_DOUBLE_EQ(*KpiScore(n, options), 100 * (0.6 * 0.8 + 0.2 * (1 - 0.2) + 0.2 * (1 - 0.5)) / 1.0);

  KpiCounts none;
  none.accepted = 1;  // only registration_rate, which is unweighted
  EXPECT_EQ(KpiScore(none, options), std::nullopt);
  options.weights["registration_rate"] = 0;  // a zero weight counts for nothing
  EXPECT_EQ(KpiScore(none, options), std::nullopt);
}

TEST(KpiScore, DefaultWeightsOnAPerfectDepartmentGiveOneHundred) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms).acknowledged_ms = c.registered_ms + kMinute;
  Close(c, c.registered_ms + kHour, c.registered_ms + 2 * kHour);
  EXPECT_DOUBLE_EQ(*KpiScore(Total(BookOf({c})), KpiOptions{}), 100.0);
}

TEST(KpiQuery, GroupsByEachKeyAndHonoursTheDayRange) {
  const int64_t d1 = At("2026-11-01T00:00:00Z"), d2 = At("2026-11-02T00:00:00Z"), d3 = At("2026-11-03T00:00:00Z");
  Case a = MakeCase("A", d1, "drainage");
  Case b = MakeCase("B", d2, "gas");
  b.district = "yuelu";
  b.cell_code = "C2";
  b.category = "gas_leak";
  Case c = MakeCase("C", d3, "drainage");
  c.cell_code = "C3";
  const KpiBook book = BookOf({a, b, c});
  EXPECT_EQ(book.bucket_count(), 3u);
  const int64_t first = LocalDay(d1, kOffset), last = LocalDay(d3, kOffset);

  auto groups = [&](KpiGroup g, int64_t from, int64_t to) {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const KpiRow& r : book.Query(g, from, to)) out.emplace_back(r.group, r.counts.accepted);
    return out;
  };
  using V = std::vector<std::pair<std::string, int64_t>>;
  EXPECT_EQ(groups(KpiGroup::kDepartment, first, last), (V{{"drainage", 2}, {"gas", 1}}));
  EXPECT_EQ(groups(KpiGroup::kDistrict, first, last), (V{{"furong", 2}, {"yuelu", 1}}));
  EXPECT_EQ(groups(KpiGroup::kCell, first, last), (V{{"C1", 1}, {"C2", 1}, {"C3", 1}}));
  EXPECT_EQ(groups(KpiGroup::kCategory, first, last), (V{{"gas_leak", 1}, {"waterlogging", 2}}));
  EXPECT_EQ(groups(KpiGroup::kDay, first, last),
            (V{{"2026-11-01", 1}, {"2026-11-02", 1}, {"2026-11-03", 1}}));
  EXPECT_EQ(groups(KpiGroup::kTotal, first, last), (V{{"total", 3}}));
  // Inclusive boundaries.
  EXPECT_EQ(groups(KpiGroup::kDay, first + 1, last), (V{{"2026-11-02", 1}, {"2026-11-03", 1}}));
  EXPECT_EQ(groups(KpiGroup::kDay, first, last - 1), (V{{"2026-11-01", 1}, {"2026-11-02", 1}}));
  EXPECT_EQ(groups(KpiGroup::kDay, first + 1, first + 1), (V{{"2026-11-02", 1}}));
  EXPECT_EQ(groups(KpiGroup::kTotal, last + 1, last + 30), V{});
  EXPECT_EQ(groups(KpiGroup::kTotal, last, first), V{});  // empty range
}

TEST(KpiQuery, ParseGroupNames) {
  EXPECT_EQ(ParseKpiGroup("dept"), KpiGroup::kDepartment);
  EXPECT_EQ(ParseKpiGroup("department"), KpiGroup::kDepartment);
  EXPECT_EQ(ParseKpiGroup("district"), KpiGroup::kDistrict);
  EXPECT_EQ(ParseKpiGroup("grid"), KpiGroup::kCell);
  EXPECT_EQ(ParseKpiGroup("cell"), KpiGroup::kCell);
  EXPECT_EQ(ParseKpiGroup("category"), KpiGroup::kCategory);
  EXPECT_EQ(ParseKpiGroup("day"), KpiGroup::kDay);
  EXPECT_EQ(ParseKpiGroup("total"), KpiGroup::kTotal);
  EXPECT_EQ(ParseKpiGroup("street"), std::nullopt);
  EXPECT_STREQ(KpiGroupName(KpiGroup::kDepartment), "department");
  EXPECT_STREQ(KpiGroupName(KpiGroup::kCell), "cell");
}

TEST(KpiQuery, JsonHasRatesTimesScoreAndFormulas) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Dispatch(c, "drainage", c.registered_ms).acknowledged_ms = c.registered_ms + 90000;
  const KpiBook book = BookOf({c});
  const int64_t day = LocalDay(c.registered_ms, kOffset);
  const nlohmann::json j = book.QueryJson(KpiGroup::kDepartment, day, day);
  EXPECT_EQ(j["group_by"], "department");
  EXPECT_EQ(j["from"], "2026-11-28");
  ASSERT_EQ(j["rows"].size(), 1u);
  const nlohmann::json& row = j["rows"][0];
  EXPECT_EQ(row["group"], "drainage");
  EXPECT_EQ(row["counts"]["dispatches"], 1);
  EXPECT_EQ(row["rates"]["dispatch_rate"], 1.0);
  EXPECT_TRUE(row["rates"]["close_rate"].is_number());  // 0 closed of 1 due
  EXPECT_TRUE(row["rates"]["reopen_rate"].is_null());   // nothing closed
  EXPECT_EQ(row["times"]["acknowledge"]["count"], 1);
  EXPECT_EQ(row["times"]["acknowledge"]["mean_ms"], 90000.0);
  EXPECT_GE(row["times"]["acknowledge"]["p90_ms"].get<int64_t>(), 90000);
  EXPECT_TRUE(row["times"]["close"]["p90_ms"].is_null());
  EXPECT_TRUE(row["score"].is_number());
  for (const char* name : kKpiRateNames) {
    ASSERT_TRUE(j["formulas"].contains(name)) << name;
    EXPECT_TRUE(row["rates"].contains(name)) << name;
  }
  EXPECT_EQ(j["formulas"]["on_time_close_rate"]["numerator"], "closed_on_time");
  EXPECT_EQ(j["formulas"]["on_time_close_rate"]["denominator"], "due_to_close");
  EXPECT_EQ(j["weights"]["rework_rate"], -0.1);
}

TEST(KpiTimes, P90OfAKnownDistributionIsWithinOneBin) {
  DurationStats d;
  for (int s = 1; s <= 1000; ++s) d.Record(s * 1000LL);  // 1 s .. 1000 s
  EXPECT_EQ(d.count, 1000);
  EXPECT_EQ(d.sum_ms, 500500LL * 1000);
  EXPECT_DOUBLE_EQ(*d.MeanMs(), 500500.0);
  const int64_t p90 = *d.P90Ms(), truth = 900000;  // nearest rank 900
  EXPECT_GT(p90, truth);
  EXPECT_LE(p90, truth * 11 / 10);
  EXPECT_EQ(p90, DurationStats::UpperEdgeMs(DurationStats::BinOf(truth)));

  DurationStats small;
  small.Record(0);
  small.Record(400);
  EXPECT_EQ(small.P90Ms(), 1000);  // below the first edge reads 1 s
  DurationStats huge;
  huge.Record(400 * kDay);
  EXPECT_EQ(huge.P90Ms(), DurationStats::kTopEdgeMs);
  EXPECT_EQ(DurationStats{}.P90Ms(), std::nullopt);
  EXPECT_EQ(DurationStats{}.MeanMs(), std::nullopt);
}

TEST(KpiTimes, NegativeOrHalfSetSpansAreNotRecorded) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"));
  Task& t = Dispatch(c, "drainage", c.registered_ms + kHour);
  t.acknowledged_ms = t.dispatched_ms - 1;  // clock skew
  t.handled_ms = t.dispatched_ms;           // zero is a time
  Close(c, c.registered_ms - 1, 0);
  const KpiCounts n = PartOf(Contribute(c, kOffset), "drainage");
  EXPECT_EQ(n.ack.count, 0);
  EXPECT_EQ(n.arrive.count, 0);
  EXPECT_EQ(n.handle.count, 1);
  EXPECT_EQ(n.close.count, 0);
}

TEST(KpiBook, ReplaceMovesAReassignedCaseBetweenDepartments) {
  Case c = MakeCase("CL-1", At("2026-11-28T02:00:00Z"), "drainage");
  Dispatch(c, "drainage", c.registered_ms + kMinute);
  KpiBook book(KpiOptions{});
  book.Replace({}, Contribute(c, kOffset));
  const KpiContribution before = Contribute(c, kOffset);
  c.tasks[0].status = TaskStatus::kReturned;
  c.department = "municipal";
  Dispatch(c, "municipal", c.registered_ms + kHour);
  book.Replace(before, Contribute(c, kOffset));

  const auto rows = book.Query(KpiGroup::kDepartment, INT32_MIN, INT32_MAX);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].group, "drainage");
  EXPECT_EQ(rows[0].counts.accepted, 0);
  EXPECT_EQ(rows[0].counts.dispatches, 1);
  EXPECT_EQ(rows[0].counts.not_returned, 0);
  EXPECT_EQ(rows[1].group, "municipal");
  EXPECT_EQ(rows[1].counts.accepted, 1);
  EXPECT_EQ(rows[1].counts.not_returned, 1);
  EXPECT_EQ(book, BookOf({c}));

  // The case goes away (merged into another): every bucket it made is erased.
  Case merged = c;
  merged.status = CaseStatus::kMerged;
  book.Replace(Contribute(c, kOffset), Contribute(merged, kOffset));
  EXPECT_EQ(book.bucket_count(), 0u);
  EXPECT_TRUE(book.Query(KpiGroup::kTotal, INT32_MIN, INT32_MAX).empty());
}

TEST(KpiBook, KeysHashAndOrder) {
  const KpiKey a{1, "drainage", "furong", "C1", "waterlogging"}, b{1, "gas", "furong", "C1", "waterlogging"};
  std::unordered_set<KpiKey, KpiKeyHash> keys{a, b, a};
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_LT(a, b);
  EXPECT_LT(b, (KpiKey{2, "drainage", "", "", ""}));  // day first
}

TEST(KpiBook, EqualityIgnoresInterningOrder) {
  Case a = MakeCase("A", At("2026-11-28T02:00:00Z"), "drainage");
  Case b = MakeCase("B", At("2026-11-28T02:00:00Z"), "gas");
  EXPECT_EQ(BookOf({a, b}), BookOf({b, a}));
  EXPECT_FALSE(BookOf({a}) == BookOf({b}));
  EXPECT_FALSE(BookOf({a}) == BookOf({a, b}));
}

using StateMap = std::map<std::string, std::string>;

void Persist(KpiBook& book, StateMap* store) {
  std::vector<std::pair<std::string, std::string>> dirty;
  book.TakeDirty(&dirty);
  for (auto& [k, v] : dirty) {
    ASSERT_TRUE(k.starts_with(KpiBook::kStatePrefix)) << k;
    if (v.empty()) store->erase(k);
    else (*store)[k] = v;
  }
}

KpiBook RestoreFrom(const StateMap& store) {
  KpiBook book(KpiOptions{});
  for (const auto& [k, v] : store) {
    const Status st = book.Restore(k, v);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return book;
}

TEST(KpiPersistence, TakeDirtyAndRestoreRoundTrip) {
  Case a = MakeCase("A", At("2026-11-28T02:00:00Z"), "drainage");
  Task& t = Dispatch(a, "drainage", a.registered_ms + kMinute);
  t.acknowledged_ms = t.dispatched_ms + 3 * kMinute;
  t.handled_ms = t.dispatched_ms + 3 * kHour;
  Close(a, a.registered_ms + 4 * kHour, a.registered_ms + 5 * kHour);
  Case b = MakeCase("B", At("2026-11-29T02:00:00Z"), "dept/with%odd");  // escaped in keys
  b.category = "";                                                       // empty names survive too
  KpiBook book = BookOf({a, b});
  StateMap store;
  Persist(book, &store);
  ASSERT_EQ(store.size(), 2u);
  EXPECT_TRUE(store.count("kpi/" + std::to_string(LocalDay(b.registered_ms, kOffset)) +
                          "/dept%2Fwith%25odd/furong/C1/"));
  KpiBook restored = RestoreFrom(store);
  EXPECT_EQ(restored, book);
  std::vector<std::pair<std::string, std::string>> none;
  restored.TakeDirty(&none);
  EXPECT_TRUE(none.empty());  // restoring marks nothing dirty

  // Nothing changed since: nothing to write. Then a removal is a delete.
  book.TakeDirty(&none);
  EXPECT_TRUE(none.empty());
  book.Replace(Contribute(b, kOffset), {});
  book.TakeDirty(&none);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_TRUE(none[0].second.empty());

  // A book rebuilt from cases the store already holds need not rewrite them.
  KpiBook rebuilt = BookOf({a});
  rebuilt.ClearDirty();
  none.clear();
  rebuilt.TakeDirty(&none);
  EXPECT_TRUE(none.empty());

  // Restoring the same key again replaces the bucket.
  const auto& [key, value] = *store.begin();
  EXPECT_TRUE(restored.Restore(key, value).ok());
  EXPECT_EQ(restored.bucket_count(), 2u);
}

TEST(KpiPersistence, RestoreRejectsMalformedEntries) {
  KpiBook book(KpiOptions{});
  const std::string good_value = R"({"accepted":1})";
  EXPECT_TRUE(book.Restore("kpi/20000/d/x/c/k", good_value).ok());
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"other/20000/d/x/c/k", good_value},
           {"kpi/20000/d/x/c", good_value},
           {"kpi/20000/d/x/c/k/extra", good_value},
           {"kpi/day/d/x/c/k", good_value},
           {"kpi/20000/d%2/x/c/k", good_value},
           {"kpi/20000/d/x/c/k", ""},
           {"kpi/20000/d/x/c/k", "{"},
           {"kpi/20000/d/x/c/k", "{}"},
           {"kpi/20000/d/x/c/k", R"({"bogus":1})"},
           {"kpi/20000/d/x/c/k", R"({"accepted":"1"})"},
           {"kpi/20000/d/x/c/k", R"({"close":[1]})"},
           {"kpi/20000/d/x/c/k", R"({"close":[1,5,999,1]})"},
           {"kpi/20000/d/x/c/k", R"({"close":[2,5,3,1,3,1]})"},
       }) {
    EXPECT_EQ(book.Restore(k, v).code(), StatusCode::kDataLoss) << k << " = " << v;
  }
  EXPECT_EQ(book.bucket_count(), 1u);
}

// ---- randomised: incremental == recomputed

struct RandomCases {
  std::mt19937_64 rng;
  explicit RandomCases(uint64_t seed) : rng(seed) {}

  int64_t Int(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[static_cast<size_t>(Int(0, static_cast<int64_t>(v.size()) - 1))]; }
  // A time near `base`, or 0 (not happened).
  int64_t Maybe(int64_t base, double p = 0.7) { return Chance(p) ? base + Int(-kMinute, 3 * kDay) : 0; }

  const std::vector<std::string> depts{"drainage", "gas", "municipal", "fire", "traffic"};
  const std::vector<std::string> districts{"furong", "yuelu", "tianxin", ""};
  const std::vector<std::string> cells{"C1", "C2", "C3", "C4", "C5", "C6"};
  const std::vector<std::string> categories{"waterlogging", "gas_leak", "pothole"};
  const std::vector<CaseStatus> statuses{CaseStatus::kDetected,  CaseStatus::kRegistered, CaseStatus::kDispatched,
                                         CaseStatus::kHandled,   CaseStatus::kClosed,     CaseStatus::kClosed,
                                         CaseStatus::kInvalid,   CaseStatus::kMerged,     CaseStatus::kReturned,
                                         CaseStatus::kSuspended, CaseStatus::kDeferred};
  const std::vector<TaskStatus> task_statuses{TaskStatus::kDispatched, TaskStatus::kAcknowledged, TaskStatus::kHandled,
                                              TaskStatus::kReturned, TaskStatus::kCancelled};

  SlaClock Clock(int64_t base) {
    SlaClock s;
    if (Chance(0.7)) s.deadline_ms = base + Int(0, 2 * kDay);
    return s;
  }

  // Redraws a random subset of the KPI-relevant fields of c.
  void Mutate(Case& c) {
    const int64_t base = At("2026-10-01T00:00:00Z") + Int(0, 60) * kDay + Int(0, kDay);
    if (Chance(0.3)) c.department = Pick(depts);
    if (Chance(0.1)) c.district = Pick(districts);
    if (Chance(0.1)) c.cell_code = Pick(cells);
    if (Chance(0.1)) c.category = Pick(categories);
    if (Chance(0.5)) c.status = Pick(statuses);
    if (Chance(0.2)) c.first_event_ms = base;
    if (Chance(0.2)) c.registered_ms = Maybe(base, 0.8);
    if (Chance(0.3)) c.dispatched_ms = Maybe(c.registered_ms != 0 ? c.registered_ms : base);
    if (Chance(0.3)) c.closed_ms = Maybe(c.dispatched_ms != 0 ? c.dispatched_ms : base);
    if (Chance(0.3)) c.close = Clock(c.dispatched_ms != 0 ? c.dispatched_ms : base);
    if (Chance(0.2)) c.reworks = static_cast<uint8_t>(Int(0, 2));
    if (Chance(0.2)) c.extensions = static_cast<uint8_t>(Int(0, 2));
    if (Chance(0.2)) c.reopens = static_cast<uint8_t>(Int(0, 2));
    if (Chance(0.1)) c.deferred = !c.deferred;
    if (Chance(0.3) || c.tasks.size() > 4) c.tasks.clear();
    for (int64_t n = Chance(0.5) ? Int(0, 2) : 0; n > 0; --n) {
      Task t;
      t.department = Chance(0.7) ? c.department : Pick(depts);
      t.status = Pick(task_statuses);
      t.dispatched_ms = Maybe(base, 0.9);
      t.acknowledged_ms = Maybe(t.dispatched_ms);
      t.arrived_ms = Maybe(t.dispatched_ms);
      t.handled_ms = Maybe(t.dispatched_ms);
      t.acknowledge = Clock(t.dispatched_ms);
      c.tasks.push_back(t);
    }
    if (Chance(0.2) && !c.tasks.empty()) c.tasks[0].status = Pick(task_statuses);
  }
};

TEST(KpiRandomised, IncrementalEqualsRecomputedFromTheFinalCases) {
  RandomCases r(20261128);
  KpiOptions options;
  KpiBook live(options);
  StateMap store;
  std::vector<Case> cases(3000);
  for (size_t i = 0; i < cases.size(); ++i) {
    cases[i].id = "CL-" + std::to_string(i);
    r.Mutate(cases[i]);
    live.Replace({}, Contribute(cases[i], kOffset));
  }
  for (int round = 0; round < 5; ++round) {
    for (Case& c : cases) {
      if (!r.Chance(0.8)) continue;
      const KpiContribution before = Contribute(c, kOffset);
      r.Mutate(c);
      live.Replace(before, Contribute(c, kOffset));
    }
    Persist(live, &store);
  }
  const KpiBook fresh = BookOf(cases, options);
  EXPECT_GT(fresh.bucket_count(), 1000u);
  EXPECT_EQ(live.bucket_count(), fresh.bucket_count());
  EXPECT_TRUE(live == fresh);
  EXPECT_TRUE(RestoreFrom(store) == fresh);
  for (KpiGroup g : {KpiGroup::kDepartment, KpiGroup::kDistrict, KpiGroup::kCell, KpiGroup::kCategory,
                     KpiGroup::kDay, KpiGroup::kTotal}) {
    const int64_t from = DayOf("2026-10-10T00:00:00Z"), to = DayOf("2026-11-10T00:00:00Z");
    EXPECT_EQ(live.QueryJson(g, from, to), fresh.QueryJson(g, from, to)) << KpiGroupName(g);
  }

  // Every case gone: nothing left, and the store is empty after persisting.
  for (const Case& c : cases) live.Replace(Contribute(c, kOffset), {});
  EXPECT_EQ(live.bucket_count(), 0u);
  Persist(live, &store);
  EXPECT_TRUE(store.empty());
}

}  // namespace
}  // namespace cityloop::dispatch

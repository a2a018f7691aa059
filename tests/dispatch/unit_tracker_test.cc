#include "dispatch/unit_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/geo.h"
#include "tests/support/test_city.h"

namespace cityloop::dispatch {
namespace {

using cityloop::testing::TestCellCenter;
using cityloop::testing::TestCity;
using cityloop::testing::TestConfig;

constexpr int64_t kT0 = 1764316800000;  // 2025-11-28T08:00Z
constexpr int64_t kMin = 60000;

UnitUpdate Update(const std::string& id, const std::string& dept, UnitStatus status, int64_t ts) {
  UnitUpdate u;
  u.unit_id = id;
  u.department = dept;
  u.status = status;
  u.ts_ms = ts;
  return u;
}

UnitUpdate Moved(const std::string& id, const std::string& dept, UnitStatus status, int64_t ts, LatLon at) {
  UnitUpdate u = Update(id, dept, status, ts);
  u.has_position = true;
  u.position = at;
  return u;
}

std::vector<std::string> Ids(const std::vector<UnitRecommendation>& r) {
  std::vector<std::string> out;
  for (const auto& u : r) out.push_back(u.unit_id);
  return out;
}

// The eta the tracker promises: distance over km/h, in ms, rounded.
int64_t Eta(double meters, double kmh) { return std::llround(meters / (kmh / 3.6) * 1000.0); }

// A point `m` metres east of p.
LatLon East(LatLon p, double m) {
  return {p.lat, p.lon + m / (111320.0 * std::cos(p.lat * 3.14159265358979323846 / 180))};
}

const CellInfo& CellOf(const CityModel& city, int row, int col) { return *city.CellAt(TestCellCenter(row, col)); }

// The test city's units: drain-1 at (0,1) anywhere, drain-2 at (3,3) east only, gas-u1 at (3,0).
class UnitTrackerTest : public ::testing::Test {
 protected:
  UnitTrackerTest() : city_(TestCity()), units_(city_) {}
  std::shared_ptr<const CityModel> city_;
  UnitTracker units_;
};

TEST_F(UnitTrackerTest, UnitsThatNeverReportedAreAvailableAtTheirBase) {
  const UnitView* v = units_.Find("drain-2");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->unit->id, "drain-2");
  EXPECT_EQ(v->status, UnitStatus::kAvailable);
  EXPECT_EQ(v->position, TestCellCenter(3, 3));
  EXPECT_EQ(v->position_ms, 0);
  EXPECT_EQ(v->assigned_case, "");
  EXPECT_EQ(units_.Find("nobody"), nullptr);

  const LatLon to = TestCellCenter(2, 3);
  auto r = units_.Recommend("drainage", CellOf(*city_, 2, 3), to, kT0, 3);
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"drain-2", "drain-1"}));
  EXPECT_DOUBLE_EQ(r[0].distance_m, DistanceMeters(TestCellCenter(3, 3), to));
  EXPECT_EQ(r[0].eta_ms, Eta(r[0].distance_m, 30));  // dispatch.default_speed
  EXPECT_EQ(units_.EtaMs("drain-1", to, kT0), Eta(DistanceMeters(TestCellCenter(0, 1), to), 30));
  EXPECT_EQ(units_.EtaMs("nobody", to, kT0), -1);

  auto all = units_.All();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].unit->id, "drain-1");  // config order
  EXPECT_EQ(all[2].unit->id, "gas-u1");
}

TEST_F(UnitTrackerTest, OnlyEligibleUnitsAreRecommended) {
  const LatLon east_to = TestCellCenter(2, 3);
  const CellInfo& east = CellOf(*city_, 2, 3);
  // Department: gas has one unit; a department without units gets none.
  EXPECT_EQ(Ids(units_.Recommend("gas", east, east_to, kT0, 3)), (std::vector<std::string>{"gas-u1"}));
  EXPECT_TRUE(units_.Recommend("city_management", east, east_to, kT0, 3).empty());
  EXPECT_TRUE(units_.Recommend("nobody", east, east_to, kT0, 3).empty());
  // Service area: drain-2 covers only the east district, even when it is the nearest.
  const CellInfo& west = CellOf(*city_, 3, 1);
  EXPECT_EQ(Ids(units_.Recommend("drainage", west, TestCellCenter(3, 1), kT0, 3)),
            (std::vector<std::string>{"drain-1"}));
  // A cell with no district (never one of the city's) is covered by whole-city units only.
  const CellInfo nowhere;
  EXPECT_EQ(Ids(units_.Recommend("drainage", nowhere, east_to, kT0, 3)), (std::vector<std::string>{"drain-1"}));
  // Availability: any reported status but available takes a unit out, and back.
  for (UnitStatus s : {UnitStatus::kEnroute, UnitStatus::kOnScene, UnitStatus::kReturning, UnitStatus::kUnavailable}) {
    ASSERT_EQ(units_.Apply(Update("drain-2", "drainage", s, kT0)), "");
    EXPECT_EQ(Ids(units_.Recommend("drainage", east, east_to, kT0, 3)), (std::vector<std::string>{"drain-1"}))
        << UnitStatusName(s);
  }
  ASSERT_EQ(units_.Apply(Update("drain-2", "drainage", UnitStatus::kAvailable, kT0 + kMin)), "");
  EXPECT_EQ(Ids(units_.Recommend("drainage", east, east_to, kT0, 3)),
            (std::vector<std::string>{"drain-2", "drain-1"}));
  // Assigned: skipped while it still reports available; Release of another case leaves it.
  units_.Assign("drain-2", "CL-1");
  EXPECT_EQ(units_.Find("drain-2")->assigned_case, "CL-1");
  EXPECT_EQ(units_.Find("drain-2")->status, UnitStatus::kAvailable);
  EXPECT_EQ(Ids(units_.Recommend("drainage", east, east_to, kT0, 3)), (std::vector<std::string>{"drain-1"}));
  units_.Release("drain-2", "CL-2");
  EXPECT_EQ(units_.Find("drain-2")->assigned_case, "CL-1");
  units_.Assign("drain-2", "CL-3");  // a new assignment replaces the old
  units_.Release("drain-2", "CL-1");
  EXPECT_EQ(units_.Find("drain-2")->assigned_case, "CL-3");
  units_.Release("drain-2", "CL-3");
  EXPECT_EQ(units_.Find("drain-2")->assigned_case, "");
  EXPECT_EQ(Ids(units_.Recommend("drainage", east, east_to, kT0, 3)),
            (std::vector<std::string>{"drain-2", "drain-1"}));
  units_.Assign("nobody", "CL-1");  // unknown and empty ids are ignored
  units_.Release("", "CL-1");
}

TEST_F(UnitTrackerTest, AlternativesBoundTheAnswer) {
  const CellInfo& east = CellOf(*city_, 2, 3);
  EXPECT_EQ(units_.Recommend("drainage", east, TestCellCenter(2, 3), kT0, 0).size(), 1u);
  EXPECT_EQ(units_.Recommend("drainage", east, TestCellCenter(2, 3), kT0, -5).size(), 1u);
  EXPECT_EQ(units_.Recommend("drainage", east, TestCellCenter(2, 3), kT0, 1).size(), 2u);
  EXPECT_EQ(units_.Recommend("drainage", east, TestCellCenter(2, 3), kT0, 1000).size(), 2u);
}

TEST_F(UnitTrackerTest, BadUpdatesChangeNothing) {
  EXPECT_EQ(units_.Apply(Update("nobody", "drainage", UnitStatus::kEnroute, kT0)), "unknown_unit");
  EXPECT_EQ(units_.Apply(Update("drain-1", "gas", UnitStatus::kEnroute, kT0)), "department_mismatch");
  EXPECT_EQ(units_.Apply(Update("drain-1", "", UnitStatus::kEnroute, kT0)), "department_mismatch");
  EXPECT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kEnroute, kT0, {NAN, 112.95})), "bad_position");
  EXPECT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kEnroute, kT0, {91, 112.95})), "bad_position");
  const UnitView* v = units_.Find("drain-1");
  EXPECT_EQ(v->status, UnitStatus::kAvailable);
  EXPECT_EQ(v->position, TestCellCenter(0, 1));
  std::vector<std::pair<std::string, std::string>> dirty;
  units_.TakeDirty(&dirty);
  EXPECT_TRUE(dirty.empty());
}

TEST_F(UnitTrackerTest, UpdatesApplyInEventTimeOrder) {
  const LatLon p1 = TestCellCenter(1, 1), p2 = TestCellCenter(2, 2);
  ASSERT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kEnroute, kT0 + 10 * kMin, p1)), "");
  // Older than the newest: ignored, position and status alike.
  EXPECT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kAvailable, kT0 + 5 * kMin, p2)), "stale");
  const UnitView* v = units_.Find("drain-1");
  EXPECT_EQ(v->status, UnitStatus::kEnroute);
  EXPECT_EQ(v->position, p1);
  EXPECT_EQ(v->position_ms, kT0 + 10 * kMin);
  // The same event time applies (log order decides).
  EXPECT_EQ(units_.Apply(Update("drain-1", "drainage", UnitStatus::kOnScene, kT0 + 10 * kMin)), "");
  EXPECT_EQ(v->status, UnitStatus::kOnScene);
  // Without a position only the status changes; the live position keeps its own time.
  EXPECT_EQ(units_.Apply(Update("drain-1", "drainage", UnitStatus::kAvailable, kT0 + 12 * kMin)), "");
  EXPECT_EQ(v->status, UnitStatus::kAvailable);
  EXPECT_EQ(v->position, p1);
  EXPECT_EQ(v->position_ms, kT0 + 10 * kMin);
  // A position-only report older than the status report is stale too.
  EXPECT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kAvailable, kT0 + 11 * kMin, p2)), "stale");
  EXPECT_EQ(v->position, p1);
}

TEST_F(UnitTrackerTest, LivePositionsMoveTheRankingAndOldOnesFallBackToTheBase) {
  const CellInfo& east = CellOf(*city_, 0, 3);
  const LatLon to = TestCellCenter(0, 3);
  // At their bases drain-1 (0,1) is 1 km from (0,3), drain-2 (3,3) is 1.5 km.
  EXPECT_EQ(Ids(units_.Recommend("drainage", east, to, kT0, 1)), (std::vector<std::string>{"drain-1", "drain-2"}));
  const LatLon near = East(to, -100);
  ASSERT_EQ(units_.Apply(Moved("drain-2", "drainage", UnitStatus::kAvailable, kT0, near)), "");
  auto r = units_.Recommend("drainage", east, to, kT0 + kMin, 1);
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"drain-2", "drain-1"}));
  EXPECT_DOUBLE_EQ(r[0].distance_m, DistanceMeters(near, to));
  // position_max_age (30 min by default): trusted up to and including it, not past it.
  const int64_t max_age = city_->config().dispatch.position_max_age_ms;
  r = units_.Recommend("drainage", east, to, kT0 + max_age, 1);
  EXPECT_EQ(r[0].unit_id, "drain-2");
  EXPECT_EQ(units_.EtaMs("drain-2", to, kT0 + max_age), Eta(DistanceMeters(near, to), 30));
  r = units_.Recommend("drainage", east, to, kT0 + max_age + 1, 1);
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"drain-1", "drain-2"}));
  EXPECT_DOUBLE_EQ(r[1].distance_m, DistanceMeters(TestCellCenter(3, 3), to));
  EXPECT_EQ(units_.EtaMs("drain-2", to, kT0 + max_age + 1), Eta(DistanceMeters(TestCellCenter(3, 3), to), 30));
  // The view still shows the newest live position and its time.
  EXPECT_EQ(units_.Find("drain-2")->position, near);
  EXPECT_EQ(units_.Find("drain-2")->position_ms, kT0);
  // A fresh report moves it again (the old tree entry goes).
  const LatLon far = East(TestCellCenter(3, 3), 3000);
  ASSERT_EQ(units_.Apply(Moved("drain-2", "drainage", UnitStatus::kAvailable, kT0 + 40 * kMin, far)), "");
  r = units_.Recommend("drainage", east, to, kT0 + 41 * kMin, 1);
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"drain-1", "drain-2"}));
  EXPECT_DOUBLE_EQ(r[1].distance_m, DistanceMeters(far, to));
}

// Several drainage units at one depot, of different types.
Config SpeedConfig() {
  Config c = TestConfig();
  c.dispatch.default_speed_kmh = 20;
  c.dispatch.speed_kmh = {{"truck", 20}, {"motorbike", 60}, {"bad", -1}};
  const LatLon to = TestCellCenter(1, 1);
  c.city.units = {{"truck-near", "drainage", "", East(to, 500), {}, "truck"},
                  {"bike-far", "drainage", "", East(to, 1200), {}, "motorbike"},
                  {"walker", "drainage", "", East(to, 100), {}, "unknown-type"},
                  {"bad-speed", "drainage", "", East(to, 3000), {}, "bad"}};
  return c;
}

TEST(UnitTrackerSpeedTest, AFasterUnitFurtherAwayWins) {
  auto city = TestCity(SpeedConfig());
  UnitTracker units(city);
  const LatLon to = TestCellCenter(1, 1);
  EXPECT_DOUBLE_EQ(units.SpeedMps(*units.Find("bike-far")->unit), 60 / 3.6);
  EXPECT_DOUBLE_EQ(units.SpeedMps(*units.Find("truck-near")->unit), 20 / 3.6);
  EXPECT_DOUBLE_EQ(units.SpeedMps(*units.Find("walker")->unit), 20 / 3.6);     // no speeds.<type>: the default
  EXPECT_DOUBLE_EQ(units.SpeedMps(*units.Find("bad-speed")->unit), 20 / 3.6);  // not a speed: the default
  auto r = units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 3);
  // bike: 1200 m at 60 km/h = 72 s; walker: 100 m at 20 = 18 s; truck: 500 m = 90 s; bad-speed: 540 s.
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"walker", "bike-far", "truck-near", "bad-speed"}));
  EXPECT_NEAR(r[1].eta_ms, 72000, 100);
  EXPECT_EQ(r[1].eta_ms, Eta(r[1].distance_m, 60));
  EXPECT_EQ(r[2].eta_ms, Eta(r[2].distance_m, 20));
  // Only the best two: the nearest-by-distance truck loses its place to the bike.
  EXPECT_EQ(Ids(units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 1)),
            (std::vector<std::string>{"walker", "bike-far"}));
  ASSERT_EQ(units.Apply(Update("walker", "drainage", UnitStatus::kUnavailable, kT0)), "");
  EXPECT_EQ(Ids(units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 0)), (std::vector<std::string>{"bike-far"}));
}

TEST(UnitTrackerTieTest, EqualEtasGoByUnitId) {
  Config c = TestConfig();
  const LatLon depot = TestCellCenter(0, 0);
  c.city.units = {{"u-c", "drainage", "", depot, {}}, {"u-a", "drainage", "", depot, {}},
                  {"u-b", "drainage", "", depot, {}}, {"u-d", "drainage", "", East(depot, 2000), {}}};
  auto city = TestCity(c);
  UnitTracker units(city);
  const LatLon to = TestCellCenter(1, 1);
  auto r = units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 3);
  ASSERT_EQ(Ids(r), (std::vector<std::string>{"u-a", "u-b", "u-c", "u-d"}));
  EXPECT_EQ(r[0].eta_ms, r[2].eta_ms);
  EXPECT_EQ(Ids(units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 1)),
            (std::vector<std::string>{"u-a", "u-b"}));
  // One moving to the same spot from elsewhere ties too.
  ASSERT_EQ(units.Apply(Moved("u-d", "drainage", UnitStatus::kAvailable, kT0, depot)), "");
  EXPECT_EQ(Ids(units.Recommend("drainage", CellOf(*city, 1, 1), to, kT0, 3)),
            (std::vector<std::string>{"u-a", "u-b", "u-c", "u-d"}));
}

void ExpectSameViews(const UnitTracker& a, const UnitTracker& b) {
  auto va = a.All(), vb = b.All();
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) {
    SCOPED_TRACE(va[i].unit->id);
    EXPECT_EQ(va[i].unit->id, vb[i].unit->id);
    EXPECT_EQ(va[i].status, vb[i].status);
    EXPECT_EQ(va[i].position, vb[i].position);  // bit for bit
    EXPECT_EQ(va[i].position_ms, vb[i].position_ms);
    EXPECT_EQ(va[i].assigned_case, vb[i].assigned_case);
  }
}

// Every changed unit's state, restored into a fresh tracker.
void RoundTrip(UnitTracker& from, UnitTracker& to) {
  std::vector<std::pair<std::string, std::string>> dirty;
  from.TakeDirty(&dirty);
  for (const auto& [k, v] : dirty) ASSERT_TRUE(to.Restore(k, v).ok()) << k << " " << v;
}

TEST_F(UnitTrackerTest, StateRoundTrips) {
  const LatLon p = East(TestCellCenter(2, 2), 123.456789);
  ASSERT_EQ(units_.Apply(Moved("drain-2", "drainage", UnitStatus::kEnroute, kT0 + 5 * kMin, p)), "");
  ASSERT_EQ(units_.Apply(Update("drain-2", "drainage", UnitStatus::kAvailable, kT0 + 7 * kMin)), "");
  units_.Assign("drain-1", "CL-20251128-000001");
  ASSERT_EQ(units_.Apply(Update("gas-u1", "gas", UnitStatus::kUnavailable, kT0)), "");

  std::vector<std::pair<std::string, std::string>> dirty;
  units_.TakeDirty(&dirty);
  ASSERT_EQ(dirty.size(), 3u);  // each unit once, in the order they first changed
  EXPECT_EQ(dirty[0].first, "unit/drain-2");
  EXPECT_EQ(dirty[1].first, "unit/drain-1");
  EXPECT_EQ(dirty[2].first, "unit/gas-u1");
  std::vector<std::pair<std::string, std::string>> again;
  units_.TakeDirty(&again);
  EXPECT_TRUE(again.empty());

  UnitTracker restored(city_);
  for (const auto& [k, v] : dirty) ASSERT_TRUE(restored.Restore(k, v).ok()) << v;
  ExpectSameViews(units_, restored);
  // Restoring is no change to persist.
  restored.TakeDirty(&again);
  EXPECT_TRUE(again.empty());
  // The same recommendations, and the newest event time survives: older updates stay stale.
  const CellInfo& cell = CellOf(*city_, 2, 2);
  for (int64_t now : {kT0 + 10 * kMin, kT0 + 60 * kMin}) {
    auto a = units_.Recommend("drainage", cell, TestCellCenter(2, 2), now, 3);
    auto b = restored.Recommend("drainage", cell, TestCellCenter(2, 2), now, 3);
    ASSERT_EQ(Ids(a), Ids(b));
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].eta_ms, b[i].eta_ms);
  }
  EXPECT_EQ(restored.Apply(Update("drain-2", "drainage", UnitStatus::kOnScene, kT0 + 6 * kMin)), "stale");
  // A release after the restore is a change to persist, and its value wins over the older one.
  restored.Release("drain-1", "CL-20251128-000001");
  EXPECT_EQ(restored.Find("drain-1")->assigned_case, "");
  restored.TakeDirty(&again);
  ASSERT_EQ(again.size(), 1u);
  UnitTracker twice(city_);
  for (const auto& [k, v] : dirty) ASSERT_TRUE(twice.Restore(k, v).ok());
  ASSERT_TRUE(twice.Restore(again[0].first, again[0].second).ok());  // a later value replaces the earlier
  EXPECT_EQ(twice.Find("drain-1")->assigned_case, "");
}

TEST_F(UnitTrackerTest, RestoreRejectsWhatItCannotRead) {
  EXPECT_EQ(units_.Restore("case/drain-1", R"({"status":"available"})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(units_.Restore("unit/drain-1", "not json").code(), StatusCode::kDataLoss);
  EXPECT_EQ(units_.Restore("unit/drain-1", R"({"status":"flying"})").code(), StatusCode::kDataLoss);
  EXPECT_EQ(units_.Restore("unit/drain-1", R"({"status":"available","lat":28.1})").code(), StatusCode::kDataLoss);
  EXPECT_EQ(units_.Restore("unit/drain-1", R"({"status":"available","lat":128,"lon":1,"position_ts":5})").code(),
            StatusCode::kDataLoss);
  EXPECT_EQ(units_.Restore("unit/drain-1", R"({"status":"available","ts":"x"})").code(), StatusCode::kDataLoss);
  EXPECT_EQ(units_.Find("drain-1")->position, TestCellCenter(0, 1));  // untouched
  // A unit removed from the config while the engine was down: skipped.
  EXPECT_TRUE(units_.Restore("unit/gone", R"({"status":"available"})").ok());
  EXPECT_EQ(units_.Find("gone"), nullptr);
}

TEST_F(UnitTrackerTest, MemoryGrowsWithState) {
  const size_t before = units_.MemoryBytes();
  EXPECT_GT(before, sizeof(UnitTracker));
  ASSERT_EQ(units_.Apply(Moved("drain-1", "drainage", UnitStatus::kAvailable, kT0, TestCellCenter(1, 1))), "");
  units_.Assign("drain-1", "CL-20251128-000001-with-a-long-id");
  EXPECT_GT(units_.MemoryBytes(), before);
}

// ---- Randomised: the tracker against a brute-force scan. ----

// An 8x8 grid of 500 m cells in four districts (quadrants), three departments.
Config RandomConfig(std::mt19937_64& rng, int unit_count) {
  Config c;
  c.city.name = "randomville";
  c.city.grid = {{28.17, 112.95}, 500, 8, 8};
  for (int q = 0; q < 4; ++q) {
    const std::string d = "d" + std::to_string(q);
    const int r0 = (q / 2) * 4, c0 = (q % 2) * 4;
    c.city.districts.push_back({d, d, std::to_string(430100 + q), "city_management"});
    c.city.streets.push_back({d + "s", d, "001", d});
    c.city.communities.push_back({d + "c", d, "001", d + "s", d, r0, r0 + 3, c0, c0 + 3});
  }
  c.city.departments = {{"drainage", ""}, {"gas", ""}, {"municipal", ""}, {"city_management", ""}};
  c.dispatch.default_speed_kmh = 30;
  c.dispatch.speed_kmh = {{"truck", 25}, {"car", 45}, {"motorbike", 60}, {"walk", 5}};
  c.dispatch.position_max_age_ms = 30 * kMin;
  const std::vector<std::string> depts = {"drainage", "gas", "municipal"};
  const std::vector<std::string> types = {"", "truck", "car", "motorbike", "walk", "unlisted"};
  std::uniform_real_distribution<double> lat(28.15, 28.22), lon(112.93, 113.01);  // beyond the grid too
  std::vector<LatLon> depots;
  for (int i = 0; i < 6; ++i) depots.push_back({lat(rng), lon(rng)});
  for (int i = 0; i < unit_count; ++i) {
    Unit u;
    u.id = "u" + std::to_string(rng() % 100000) + "-" + std::to_string(i);  // config order is not id order
    u.department = depts[rng() % depts.size()];
    u.base = rng() % 4 == 0 ? depots[rng() % depots.size()] : LatLon{lat(rng), lon(rng)};
    if (rng() % 3 != 0) {
      for (int q = 0; q < 4; ++q) {
        if (rng() % 3 == 0) u.districts.push_back("d" + std::to_string(q));
      }
      if (u.districts.empty()) u.districts.push_back("d" + std::to_string(rng() % 4));
    }
    u.type = types[rng() % types.size()];
    c.city.units.push_back(u);
  }
  return c;
}

// Where a unit is at now_ms and how long it takes to `to`, from the rules alone.
double ExpectedDistance(const Config& c, const UnitView& v, LatLon to, int64_t now_ms) {
  const bool live = v.position_ms != 0 && now_ms - v.position_ms <= c.dispatch.position_max_age_ms;
  return DistanceMeters(live ? v.position : v.unit->base, to);
}
int64_t ExpectedEta(const Config& c, const UnitView& v, LatLon to, int64_t now_ms) {
  auto speed = c.dispatch.speed_kmh.find(v.unit->type);
  const double kmh = speed == c.dispatch.speed_kmh.end() ? c.dispatch.default_speed_kmh : speed->second;
  return Eta(ExpectedDistance(c, v, to, now_ms), kmh);
}

std::vector<UnitRecommendation> BruteForce(const Config& c, const UnitTracker& units, std::string_view dept,
                                           const CellInfo& cell, LatLon to, int64_t now_ms, int alternatives) {
  std::vector<UnitRecommendation> all;
  for (const UnitView& v : units.All()) {
    if (v.unit->department != dept || v.status != UnitStatus::kAvailable || !v.assigned_case.empty()) continue;
    const auto& area = v.unit->districts;
    if (!area.empty() && std::find(area.begin(), area.end(), cell.district->id) == area.end()) continue;
    all.push_back({v.unit->id, ExpectedDistance(c, v, to, now_ms), ExpectedEta(c, v, to, now_ms)});
  }
  std::sort(all.begin(), all.end(), [](const UnitRecommendation& a, const UnitRecommendation& b) {
    return a.eta_ms != b.eta_ms ? a.eta_ms < b.eta_ms : a.unit_id < b.unit_id;
  });
  all.resize(std::min(all.size(), static_cast<size_t>(1 + std::max(0, alternatives))));
  return all;
}

void ExpectSame(const std::vector<UnitRecommendation>& got, const std::vector<UnitRecommendation>& want) {
  ASSERT_EQ(Ids(got), Ids(want));
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].eta_ms, want[i].eta_ms) << got[i].unit_id;
    EXPECT_DOUBLE_EQ(got[i].distance_m, want[i].distance_m) << got[i].unit_id;
  }
}

TEST(UnitTrackerRandomTest, MatchesABruteForceScan) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    const Config config = RandomConfig(rng, 300);
    auto city = TestCity(config);
    UnitTracker units(city);
    const auto& cfg_units = config.city.units;
    std::uniform_real_distribution<double> lat(28.15, 28.22), lon(112.93, 113.01);
    std::uniform_int_distribution<int64_t> when(kT0, kT0 + 120 * kMin);
    const std::vector<UnitStatus> statuses = {UnitStatus::kAvailable, UnitStatus::kAvailable, UnitStatus::kAvailable,
                                              UnitStatus::kEnroute,   UnitStatus::kOnScene,   UnitStatus::kUnavailable};
    const std::vector<std::string> depts = {"drainage", "gas", "municipal", "city_management"};
    int queries = 0, applied = 0, stale = 0;
    for (int step = 0; step < 3000; ++step) {
      const Unit& u = cfg_units[rng() % cfg_units.size()];
      switch (rng() % 4) {
        case 0:
        case 1: {  // a report, sometimes without a position, sometimes out of order
          UnitUpdate up = Update(u.id, u.department, statuses[rng() % statuses.size()], when(rng));
          if (rng() % 4 != 0) {
            up.has_position = true;
            up.position = rng() % 5 == 0 ? u.base : LatLon{lat(rng), lon(rng)};
          }
          const UnitView before = *units.Find(u.id);
          const std::string r = units.Apply(up);
          if (r.empty()) {
            ++applied;
          } else {
            ASSERT_EQ(r, "stale");
            ++stale;
            const UnitView* after = units.Find(u.id);
            EXPECT_EQ(after->status, before.status);
            EXPECT_EQ(after->position, before.position);
          }
          break;
        }
        case 2:
          if (rng() % 2) units.Assign(u.id, "CL-" + std::to_string(rng() % 50));
          else units.Release(u.id, units.Find(u.id)->assigned_case);
          break;
        default: {
          const std::string dept = depts[rng() % depts.size()];
          const CellInfo& cell = city->Cell(static_cast<int>(rng() % 64));
          const LatLon to = rng() % 2 ? cell.center : LatLon{lat(rng), lon(rng)};
          const int64_t now = when(rng) + 30 * kMin;
          const int alternatives = rng() % 10 == 0 ? 400 : static_cast<int>(rng() % 6);
          ExpectSame(units.Recommend(dept, cell, to, now, alternatives),
                     BruteForce(config, units, dept, cell, to, now, alternatives));
          const Unit& other = cfg_units[rng() % cfg_units.size()];  // any status
          EXPECT_EQ(units.EtaMs(other.id, to, now), ExpectedEta(config, *units.Find(other.id), to, now));
          ++queries;
        }
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_GT(queries, 500);
    EXPECT_GT(applied, 500);
    EXPECT_GT(stale, 50);

    // The whole state survives a restart: the same answers from a restored tracker.
    UnitTracker restored(city);
    RoundTrip(units, restored);
    ExpectSameViews(units, restored);
    for (int i = 0; i < 200; ++i) {
      const std::string dept = depts[rng() % depts.size()];
      const CellInfo& cell = city->Cell(static_cast<int>(rng() % 64));
      const LatLon to{lat(rng), lon(rng)};
      const int64_t now = when(rng) + 30 * kMin;
      ExpectSame(restored.Recommend(dept, cell, to, now, 3), units.Recommend(dept, cell, to, now, 3));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace cityloop::dispatch

#include "dispatch/case_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tests/support/test_city.h"

namespace cityloop::dispatch {
namespace {

using nlohmann::json;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestCity;

constexpr int64_t kT0 = 1764316800000;  // 2025-11-28T08:00Z = 16:00 local
constexpr int64_t kMin = 60000;

Signal MakeSignal(const std::string& category, int row, int col, int64_t ts, const std::string& device = "wl-1") {
  Signal s;
  s.id = "rule:" + device + ":" + std::to_string(ts);
  s.category = category;
  s.priority = category == "gas_leak" ? Priority::kUrgent : Priority::kHigh;
  s.cell = row * 4 + col;
  s.position = TestCellCenter(row, col);
  s.ts_ms = ts;
  s.fired_ms = ts + kMin;
  s.device_id = device;
  s.rule_id = "rule";
  s.value = 0.5;
  s.threshold = 0.3;
  return s;
}

std::vector<json> EventsOf(const Effects& fx, const std::string& topic) {
  std::vector<json> out;
  for (const auto& r : fx.records) {
    if (r.topic == topic) out.push_back(json::parse(r.value));
  }
  return out;
}

class CaseEngineTest : public ::testing::Test {
 protected:
  CaseEngineTest() : city_(TestCity()), engine_(city_) {}
  std::shared_ptr<const CityModel> city_;
  CaseEngine engine_;
  Effects fx_;
};

TEST_F(CaseEngineTest, ANewSignalOpensRoutesAndDispatchesACase) {
  engine_.OnSignal(MakeSignal("waterlogging", 2, 3, kT0), &fx_);
  ASSERT_EQ(fx_.opened_cases.size(), 1u);
  const Case* c = engine_.Find(fx_.opened_cases[0]);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, "CL-20251128-000001");
  EXPECT_EQ(c->status, CaseStatus::kDispatched);
  EXPECT_EQ(c->district, "east");
  EXPECT_EQ(c->department, "drainage");
  EXPECT_EQ(c->cell_code, city_->Cell(11).code);
  EXPECT_EQ(c->recommended_unit, "drain-2");  // nearest eligible drainage unit to (2,3)
  ASSERT_EQ(c->tasks.size(), 1u);
  EXPECT_EQ(c->tasks[0].acknowledge.deadline_ms, kT0 + kMin + 30 * kMin);  // high priority, wall clock
  EXPECT_EQ(c->tasks[0].handle.deadline_ms, kT0 + kMin + 4 * 60 * kMin);

  auto cases = EventsOf(fx_, "cityloop.cases");
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(cases[0]["type"], "city.case.opened");
  EXPECT_EQ(cases[0]["id"], c->id + ":1");
  EXPECT_EQ(cases[0]["specversion"], "1.0");
  EXPECT_EQ(cases[0]["subject"], c->id);
  EXPECT_EQ(cases[0]["data"]["signal"]["rule"], "rule");  // explainability
  EXPECT_EQ(cases[1]["type"], "city.case.dispatched");
  auto orders = EventsOf(fx_, "cityloop.dispatch");
  ASSERT_EQ(orders.size(), 1u);
  EXPECT_EQ(orders[0]["type"], "city.dispatch.order");
  EXPECT_EQ(orders[0]["data"]["department"], "drainage");
  EXPECT_EQ(orders[0]["data"]["recommended_unit"]["unit_id"], "drain-2");
  EXPECT_TRUE(orders[0]["data"]["deadlines"].contains("acknowledge"));
  for (const auto& r : fx_.records) {
    if (r.topic == "cityloop.dispatch") {
      EXPECT_EQ(r.key, "drainage");
    }
  }
  EXPECT_EQ(fx_.audit.size(), 3u);
}

TEST_F(CaseEngineTest, SignalsOfOneCategoryInOneCellMergeWithinTheWindow) {
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0, "wl-1"), &fx_);
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0 + 10 * kMin, "wl-9"), &fx_);
  EXPECT_EQ(engine_.case_count(), 1u);
  const Case* c = engine_.Find("CL-20251128-000001");
  ASSERT_EQ(c->signals.size(), 2u);
  EXPECT_EQ(EventsOf(fx_, "cityloop.cases").back()["type"], "city.case.signal_added");
  // Another category in the same cell, or the same category elsewhere, is another case.
  engine_.OnSignal(MakeSignal("gas_leak", 0, 0, kT0, "gas-1"), &fx_);
  engine_.OnSignal(MakeSignal("waterlogging", 0, 1, kT0, "wl-3"), &fx_);
  EXPECT_EQ(engine_.case_count(), 3u);
  // Past the merge window a new case opens.
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0 + 120 * kMin, "wl-1"), &fx_);
  EXPECT_EQ(engine_.case_count(), 4u);
}

// A camera event's END follows its START into the START's case, even past
// the merge window and from another cell; it never opens a case.
TEST_F(CaseEngineTest, AFollowUpJoinsTheCaseOfTheSignalItFollows) {
  Signal start = MakeSignal("waterlogging", 0, 0, kT0, "cam-1");
  engine_.OnSignal(start, &fx_);
  ASSERT_EQ(engine_.case_count(), 1u);
  Signal end = MakeSignal("waterlogging", 3, 3, kT0 + 90 * kMin, "cam-1");
  end.id = start.id + ":end";
  end.follows = start.id;
  engine_.OnSignal(end, &fx_);
  EXPECT_EQ(engine_.case_count(), 1u);
  const Case* c = engine_.Find("CL-20251128-000001");
  ASSERT_EQ(c->signals.size(), 2u);
  EXPECT_EQ(c->signals[1].follows, start.id);
  engine_.OnSignal(end, &fx_);  // again: applied once
  EXPECT_EQ(c->signals.size(), 2u);
  // A follow-up of a signal no open case holds is dropped and counted.
  Signal orphan = end;
  orphan.id = "x:end";
  orphan.follows = "x";
  engine_.OnSignal(orphan, &fx_);
  EXPECT_EQ(engine_.case_count(), 1u);
  EXPECT_EQ(engine_.stats().orphan_followups, 1);
}

TEST_F(CaseEngineTest, ARepeatedSignalIsAppliedOnce) {
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0), &fx_);
  const size_t records = fx_.records.size();
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0), &fx_);
  EXPECT_EQ(fx_.records.size(), records);
  EXPECT_EQ(engine_.stats().duplicate_signals, 1);
}

TEST_F(CaseEngineTest, CategoriesOutsideTheCatalogueFallToTheDistrict) {
  engine_.OnSignal(MakeSignal("graffiti", 1, 0, kT0), &fx_);
  const Case* c = engine_.Find(fx_.opened_cases.at(0));
  EXPECT_EQ(c->department, "city_management");
  EXPECT_EQ(c->district, "west");
  EXPECT_TRUE(c->recommended_unit.empty());
  EXPECT_TRUE(EventsOf(fx_, "cityloop.dispatch")[0]["data"]["recommended_unit"].is_null());
}

TEST_F(CaseEngineTest, RestoredCasesKeepMergingAndNumbering) {
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0), &fx_);
  CaseEngine restored(city_);
  restored.Restore(*engine_.Find("CL-20251128-000001"));
  restored.RestoreCaseSequence(engine_.next_case_number());
  Effects fx;
  restored.OnSignal(MakeSignal("waterlogging", 0, 0, kT0 + 5 * kMin, "wl-7"), &fx);
  EXPECT_TRUE(fx.opened_cases.empty());
  auto events = EventsOf(fx, "cityloop.cases");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["id"], "CL-20251128-000001:4");  // ids continue the case's sequence
  restored.OnSignal(MakeSignal("gas_leak", 3, 3, kT0, "gas-2"), &fx);
  EXPECT_EQ(fx.opened_cases.at(0), "CL-20251128-000002");
}

TEST_F(CaseEngineTest, CaseIdsUseTheLocalDateOfTheEvent) {
  // 2025-11-28T20:00Z is 04:00 on the 29th in UTC+8.
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0 + 12 * 60 * kMin), &fx_);
  EXPECT_EQ(fx_.opened_cases.at(0), "CL-20251129-000001");
}

// A point `cells` cell widths east of the centre of (row, col).
LatLon EastOf(int row, int col, double cells) {
  const LatLon c = TestCellCenter(row, col);
  const double dlon = 500.0 / (111320.0 * std::cos(28.17 * 3.14159265358979323846 / 180));
  return {c.lat, c.lon + cells * dlon};
}

Signal At(Signal s, LatLon p, int cell) {
  s.position = p;
  s.cell = cell;
  return s;
}

std::vector<std::string> TypesOf(const Effects& fx) {
  std::vector<std::string> out;
  for (const auto& e : EventsOf(fx, "cityloop.cases")) out.push_back(e["type"].get<std::string>() + "@" +
                                                                      e["subject"].get<std::string>());
  return out;
}

TEST_F(CaseEngineTest, ASignalInANeighbouringCellJoinsWithinTheRadius) {
  engine_.OnSignal(MakeSignal("waterlogging", 0, 0, kT0, "wl-1"), &fx_);
  // 260 m east of the case, just across the cell border: within merge.radius_m (300 m).
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 1, kT0 + kMin, "wl-x"), EastOf(0, 0, 0.52), 1), &fx_);
  EXPECT_EQ(engine_.case_count(), 1u);
  // 600 m east, still the neighbouring cell: too far.
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 1, kT0 + 2 * kMin, "wl-y"), EastOf(0, 0, 1.2), 1), &fx_);
  EXPECT_EQ(engine_.case_count(), 2u);
}

TEST_F(CaseEngineTest, ASignalThatBridgesTwoCasesMergesTheYoungerIntoTheOlder) {
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 0, kT0, "a"), EastOf(0, 0, -0.05), 0), &fx_);
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 1, kT0 + kMin, "b"), EastOf(0, 0, 0.95), 1), &fx_);
  ASSERT_EQ(engine_.case_count(), 2u);  // 500 m apart: two cases
  fx_.Clear();
  // 250 m from each case (cells are 500 m wide, centred on 0): it belongs with both.
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 0, kT0 + 2 * kMin, "c"), EastOf(0, 0, 0.45), 0), &fx_);
  const Case* older = engine_.Find("CL-20251128-000001");
  const Case* younger = engine_.Find("CL-20251128-000002");
  ASSERT_NE(older, nullptr);
  ASSERT_NE(younger, nullptr);
  EXPECT_EQ(younger->status, CaseStatus::kMerged);
  EXPECT_EQ(younger->merged_into, older->id);
  EXPECT_EQ(older->absorbed, std::vector<std::string>{younger->id});
  EXPECT_EQ(older->signals.size(), 3u);
  EXPECT_EQ(engine_.open_count(), 1u);
  const auto types = TypesOf(fx_);
  EXPECT_NE(std::find(types.begin(), types.end(), "city.case.merged@CL-20251128-000002"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "city.case.merged@CL-20251128-000001"), types.end());
  // The merged case takes no more signals; the survivor does.
  engine_.OnSignal(At(MakeSignal("waterlogging", 0, 0, kT0 + 4 * kMin, "e"), EastOf(0, 0, 0.2), 0), &fx_);
  EXPECT_EQ(engine_.case_count(), 2u);
  EXPECT_EQ(older->signals.size(), 4u);
}

TEST_F(CaseEngineTest, ACorrelationAbsorbsTheCasesOfItsMembersAndRaisesThePriority) {
  Signal gas = MakeSignal("waterlogging", 1, 1, kT0, "gas-1");
  gas.priority = Priority::kHigh;
  Signal lid = MakeSignal("gas_leak", 1, 2, kT0 + kMin, "lid-1");
  lid.category = "manhole_displaced";
  lid.priority = Priority::kNormal;
  engine_.OnSignal(gas, &fx_);
  engine_.OnSignal(lid, &fx_);
  ASSERT_EQ(engine_.open_count(), 2u);
  Signal both = MakeSignal("waterlogging", 1, 1, kT0 + 2 * kMin, "gas-1");
  both.id = "combo:5:" + std::to_string(kT0);
  both.source = SignalSource::kCorrelation;
  both.priority = Priority::kUrgent;
  both.members = {gas.id, lid.id};
  both.absorb_members = true;
  fx_.Clear();
  engine_.OnSignal(both, &fx_);
  EXPECT_EQ(engine_.open_count(), 1u);
  const Case* c = engine_.Find("CL-20251128-000001");
  EXPECT_EQ(c->priority, Priority::kUrgent);
  EXPECT_EQ(c->signals.size(), 3u);
  EXPECT_EQ(engine_.Find("CL-20251128-000002")->merged_into, c->id);
  const auto events = EventsOf(fx_, "cityloop.cases");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["type"], "city.case.signal_added");
  EXPECT_EQ(events[0]["data"]["priority_changed"]["to"], "urgent");
}

TEST_F(CaseEngineTest, ACitizenReportJoinsTheCaseSensorsFound) {
  engine_.OnSignal(MakeSignal("waterlogging", 2, 2, kT0), &fx_);
  Signal report = MakeSignal("waterlogging", 2, 2, kT0 + 5 * kMin, "");
  report.id = "report:r-1";
  report.source = SignalSource::kReport;
  report.rule_id = "report";
  report.attributes = {{"channel", "hotline12345"}, {"report_id", "r-1"}};
  engine_.OnSignal(report, &fx_);
  EXPECT_EQ(engine_.case_count(), 1u);
  const Case* c = engine_.Find("CL-20251128-000001");
  ASSERT_EQ(c->signals.size(), 2u);
  EXPECT_EQ(c->signals[1].source, SignalSource::kReport);
  EXPECT_EQ(c->signals[1].attributes.at("channel"), "hotline12345");
}

}  // namespace
}  // namespace cityloop::dispatch

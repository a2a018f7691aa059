#include "detect/correlation_detector.h"

#include <gtest/gtest.h>

#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kT0;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestConfig;

CorrelationRule GasAndLid(CorrelationScope scope = CorrelationScope::kNeighbours) {
  CorrelationRule r;
  r.id = "gas-confirmed";
  r.category = "gas_leak";
  r.priority = Priority::kUrgent;
  r.when = {{"gas-high", ""}, {"", "manhole_displaced"}};
  r.within_ms = 15 * kMin;
  r.scope = scope;
  r.radius_m = 600;
  r.absorb = true;
  return r;
}

Signal Member(const std::string& rule, const std::string& category, int row, int col, int64_t ts) {
  Signal s;
  s.id = rule + ":" + std::to_string(row) + std::to_string(col) + ":" + std::to_string(ts);
  s.rule_id = rule;
  s.category = category;
  s.cell = row * 4 + col;
  s.position = TestCellCenter(row, col);
  s.ts_ms = ts;
  s.fired_ms = ts;
  return s;
}

struct Row {
  const char* name;
  CorrelationScope scope;
  int lid_row, lid_col;
  int64_t lid_after_ms;  // lid signal time relative to the gas signal
  bool fires;
};

class CorrelationTable : public ::testing::TestWithParam<Row> {};

TEST_P(CorrelationTable, FiresOnlyInTimeAndInScope) {
  const Row& row = GetParam();
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(row.scope), h.city(), h.devices());
  Signal gas = Member("gas-high", "gas_leak", 1, 1, kT0);
  Signal lid = Member("manhole-tilt", "manhole_displaced", row.lid_row, row.lid_col, kT0 + row.lid_after_ms);
  // The member that comes second in event time may come first in arrival.
  EXPECT_TRUE(h.Offer(rule, lid).empty());
  const auto out = h.Offer(rule, gas);
  ASSERT_EQ(out.size(), row.fires ? 1u : 0u);
  if (!row.fires) return;
  const Signal& s = out[0];
  EXPECT_EQ(s.source, SignalSource::kCorrelation);
  EXPECT_EQ(s.category, "gas_leak");
  EXPECT_EQ(s.priority, Priority::kUrgent);
  EXPECT_TRUE(s.absorb_members);
  EXPECT_EQ(s.members, (std::vector<std::string>{gas.id, lid.id}));
  EXPECT_EQ(s.cell, gas.cell);  // placed by the first member
  EXPECT_EQ(s.ts_ms, std::min(gas.ts_ms, lid.ts_ms));
  EXPECT_NE(s.explanation.find("gas-high + manhole_displaced"), std::string::npos) << s.explanation;
}

INSTANTIATE_TEST_SUITE_P(
    Scopes, CorrelationTable,
    ::testing::Values(Row{"SameCell", CorrelationScope::kCell, 1, 1, 5 * kMin, true},
                      Row{"NeighbourIsNotTheSameCell", CorrelationScope::kCell, 1, 2, 5 * kMin, false},
                      Row{"NeighbourCell", CorrelationScope::kNeighbours, 2, 2, 5 * kMin, true},
                      Row{"TwoCellsAway", CorrelationScope::kNeighbours, 1, 3, 5 * kMin, false},
                      Row{"SameDistrict", CorrelationScope::kDistrict, 3, 0, 5 * kMin, true},
                      Row{"OtherDistrict", CorrelationScope::kDistrict, 1, 2, 5 * kMin, false},
                      Row{"WithinRadius", CorrelationScope::kRadius, 1, 2, 5 * kMin, true},
                      Row{"BeyondRadius", CorrelationScope::kRadius, 2, 2, 5 * kMin, false},
                      Row{"EarlierWithinTheWindow", CorrelationScope::kNeighbours, 1, 2, -14 * kMin, true},
                      Row{"TooLate", CorrelationScope::kNeighbours, 1, 2, 16 * kMin, false}),
    [](const ::testing::TestParamInfo<Row>& p) { return std::string(p.param.name); });

TEST(Correlation, AMemberSignalIsUsedOnceAndDuplicatesAreIgnored) {
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(), h.city(), h.devices());
  Signal gas = Member("gas-high", "gas_leak", 1, 1, kT0);
  EXPECT_TRUE(h.Offer(rule, gas).empty());
  EXPECT_TRUE(h.Offer(rule, gas).empty());
  ASSERT_EQ(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + kMin)).size(), 1u);
  // A second lid signal finds no unused gas signal.
  EXPECT_TRUE(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + 2 * kMin)).empty());
  // A new gas episode pairs with the waiting lid signal.
  EXPECT_EQ(h.Offer(rule, Member("gas-high", "gas_leak", 1, 1, kT0 + 3 * kMin)).size(), 1u);
}

TEST(Correlation, SignalsOfOtherRulesAndCorrelationsAreIgnored) {
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(), h.city(), h.devices());
  EXPECT_TRUE(h.Offer(rule, Member("road-waterlogging", "waterlogging", 1, 1, kT0)).empty());
  Signal combined = Member("gas-high", "gas_leak", 1, 1, kT0);
  combined.source = SignalSource::kCorrelation;
  EXPECT_TRUE(h.Offer(rule, combined).empty());
  EXPECT_TRUE(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 1, kT0)).empty());
}

TEST(Correlation, AMemberSignalWaitsForTheOtherMembersNotForTheWatermark) {
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(), h.city(), h.devices());
  h.Offer(rule, Member("gas-high", "gas_leak", 1, 1, kT0));
  std::vector<StateEntry> state;
  rule.TakeDirty(&state);
  ASSERT_FALSE(state.empty());
  EXPECT_GT(rule.StateBytes(), 0u);
  // The sensors' event time runs 3 h ahead (a backlog); the lids' topic has
  // not been read yet: the gas signal still waits for its partner.
  h.AdvanceTo(rule, kT0 + 180 * kMin);
  EXPECT_EQ(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + kMin)).size(), 1u);
}

TEST(Correlation, OldMemberSignalsAreForgottenOnceInputAndTheOtherMembersMovedOn) {
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(), h.city(), h.devices());
  h.Offer(rule, Member("gas-high", "gas_leak", 1, 1, kT0));
  h.AdvanceTo(rule, kT0 + 20 * kMin);
  // A lid signal 20 min later: too late to pair, and it shows the lids moved on.
  EXPECT_TRUE(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + 20 * kMin)).empty());
  // A lid signal inside the window arriving now finds the gas signal gone.
  EXPECT_TRUE(h.Offer(rule, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + kMin)).empty());
}

TEST(Correlation, RememberedSignalsSurviveARestore) {
  RuleHarness h;
  CorrelationDetector rule(GasAndLid(), h.city(), h.devices());
  h.Offer(rule, Member("gas-high", "gas_leak", 1, 1, kT0));
  RuleHarness fresh;
  CorrelationDetector restored(GasAndLid(), fresh.city(), fresh.devices());
  ASSERT_TRUE(RuleHarness::CarryOverState(rule, restored).ok());
  EXPECT_EQ(restored.state_prefix(), "corr/");
  EXPECT_EQ(fresh.Offer(restored, Member("manhole-tilt", "manhole_displaced", 1, 2, kT0 + kMin)).size(), 1u);
  EXPECT_FALSE(restored.Restore("0", "not json").ok());
}

}  // namespace
}  // namespace cityloop::detect

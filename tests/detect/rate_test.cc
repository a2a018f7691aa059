#include "detect/rate_detector.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kSec;
using cityloop::testing::kT0;
using cityloop::testing::RecordingGate;
using cityloop::testing::RuleHarness;
using cityloop::testing::Transitions;

// water_level rising faster than 0.10 per 10 min, clear below 0.05.
RateRule RisingRule() {
  RateRule r;
  r.id = "wl-rising";
  r.sensor_kind = "water_level";
  r.category = "waterlogging";
  r.rate = 0.10;
  r.clear = 0.05;
  r.per_ms = 10 * kMin;
  return r;
}

// --- Table ------------------------------------------------------------------

struct Row {
  int64_t t;  // event time after kT0
  double value;
  const char* device = "wl-1";
  bool fires = false;  // this reading raises "<rule>:<device>:<ts>"
};

struct RateCase {
  const char* name;
  std::vector<Row> rows;
  std::function<void(RateRule&)> setup = nullptr;
  int64_t lateness_ms = 0;
  bool suppress = false;  // the gate suppresses every raise
  std::optional<Transitions> transitions = std::nullopt;
  int64_t out_of_order = 0;
  int late = 0;  // dropped by the harness as older than the watermark
};

const Transitions kHysteresisTransitions = {
    {5 * kMin, true}, {25 * kMin, false}, {30 * kMin, true}};

// 0.06 in 5m is 0.12 per 10m: raises; 0.10, 0.08, 0.06 hold (>= clear 0.05);
// 0.03 clears; 0.14 raises again.
const std::vector<Row> kHysteresisRows = {
    {0, 0.00},        {5 * kMin, 0.06, "wl-1", true}, {10 * kMin, 0.10},
    {15 * kMin, 0.14}, {20 * kMin, 0.16},             {25 * kMin, 0.17},
    {30 * kMin, 0.30, "wl-1", true}};

std::vector<Row> WithoutSignals(std::vector<Row> rows) {
  for (Row& r : rows) r.fires = false;
  return rows;
}

const RateCase kRateCases[] = {
    {.name = "RiseOverTheLookBackRaisesOnce",
     .rows = {{0, 0.00}, {2 * kMin, 0.01}, {4 * kMin, 0.02}, {6 * kMin, 0.08, "wl-1", true}, {8 * kMin, 0.12}}},
    {.name = "SlowRiseStaysNormal",
     .rows = {{0, 0.00}, {5 * kMin, 0.04}, {10 * kMin, 0.09}, {15 * kMin, 0.13}}},
    {.name = "LookBackForgetsReadingsOlderThanPer",
     // At 15m the oldest within 10m is the 5m reading: 0.09 per 10m. At 16m it is the 10m one: 0.12 in 6m.
     .rows = {{0, 0.0}, {5 * kMin, 0.0}, {10 * kMin, 0.0}, {15 * kMin, 0.09}, {16 * kMin, 0.12, "wl-1", true}}},
    {.name = "MinSpanDefaultsToHalfOfPer",
     .rows = {{0, 0.0}, {1 * kMin, 0.2}, {5 * kMin - kSec, 0.2}, {5 * kMin, 0.25, "wl-1", true}}},
    {.name = "MinSpanGiven",
     .rows = {{0, 0.0}, {30 * kSec, 0.2}, {1 * kMin, 0.2, "wl-1", true}},
     .setup = [](RateRule& r) { r.min_span_ms = kMin; }},
    {.name = "HysteresisHoldsTheAlarmUntilBelowClear",
     .rows = kHysteresisRows,
     .transitions = kHysteresisTransitions},
    {.name = "ADipBetweenClearAndRateHoldsTheAlarm",
     // 0.08 per 10m at 15m: still at least clear (0.05), so 0.17 at 20m raises nothing.
     .rows = {{0, 0.0}, {5 * kMin, 0.06, "wl-1", true}, {10 * kMin, 0.13}, {15 * kMin, 0.14}, {20 * kMin, 0.30}},
     .transitions = std::vector<std::pair<int64_t, bool>>{{5 * kMin, true}}},
    {.name = "WithoutHysteresisTheSameDipClears",
     .rows = {{0, 0.0}, {5 * kMin, 0.06, "wl-1", true}, {10 * kMin, 0.13}, {15 * kMin, 0.14},
              {20 * kMin, 0.30, "wl-1", true}},
     .setup = [](RateRule& r) { r.clear = r.rate; },
     .transitions = std::vector<std::pair<int64_t, bool>>{{5 * kMin, true}, {15 * kMin, false}, {20 * kMin, true}}},
    {.name = "FallRulesMeasureTheDrop",
     .rows = {{0, 1.0}, {5 * kMin, 1.25}, {10 * kMin, 0.75, "wl-1", true}},
     .setup = [](RateRule& r) { r.direction = ThresholdDirection::kBelow; }},
    {.name = "OverridesReplaceTheRateOfADevice",
     .rows = {{0, 0.0, "wl-1"},
              {0, 0.0, "wl-2"},
              {5 * kMin, 0.1, "wl-1", true},
              {5 * kMin, 0.1, "wl-2"},  // 0.2 per 10m < its 0.30
              {10 * kMin, 0.4, "wl-2", true}},
     .setup = [](RateRule& r) { r.overrides["wl-2"] = 0.30; }},
    {.name = "RestrictedToItsDevices",
     .rows = {{0, 0.0, "wl-2"}, {0, 0.0, "wl-1"}, {5 * kMin, 0.5, "wl-2"}, {5 * kMin, 0.5, "wl-1", true}},
     .setup = [](RateRule& r) { r.devices = {"wl-1"}; }},
    {.name = "OutOfOrderAndDuplicateReadingsAreIgnored",
     .rows = {{0, 0.0}, {5 * kMin, 0.02}, {3 * kMin, 0.9}, {5 * kMin, 0.9}, {6 * kMin, 0.03}},
     .lateness_ms = 5 * kMin,
     .out_of_order = 2},
    {.name = "LateReadingsNeverReachTheRule",
     .rows = {{0, 0.0}, {5 * kMin, 0.02}, {3 * kMin, 0.9}, {6 * kMin, 0.03}},
     .lateness_ms = kMin,
     .late = 1},
    {.name = "ASuppressingGateHidesTheSignalsButKeepsTheAlarm",
     .rows = WithoutSignals(kHysteresisRows),
     .suppress = true,
     .transitions = kHysteresisTransitions},
};

class RateTableTest : public ::testing::TestWithParam<RateCase> {};

TEST_P(RateTableTest, RaisesTheExpectedSignals) {
  const RateCase& c = GetParam();
  RateRule rule = RisingRule();
  if (c.setup) c.setup(rule);
  RuleHarness h(cityloop::testing::TestConfig(), c.lateness_ms);
  RateDetector det(rule, h.city(), h.devices());
  RecordingGate gate(c.suppress);
  h.set_gate(&gate);
  int64_t fired = 0;
  for (const Row& row : c.rows) {
    SCOPED_TRACE(std::string(row.device) + " at " + FormatSpanMs(row.t));
    const auto signals = h.Feed(det, row.device, "water_level", kT0 + row.t, row.value);
    if (!row.fires) {
      EXPECT_TRUE(signals.empty()) << signals[0].explanation;
      continue;
    }
    ++fired;
    ASSERT_EQ(signals.size(), 1u);
    EXPECT_EQ(signals[0].id, rule.id + ":" + row.device + ":" + std::to_string(kT0 + row.t));
  }
  EXPECT_EQ(det.stats().fired, fired);
  EXPECT_EQ(det.stats().out_of_order, c.out_of_order);
  EXPECT_EQ(h.late(), c.late);
  if (c.transitions) {
    EXPECT_EQ(gate.seen(), *c.transitions);
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, RateTableTest, ::testing::ValuesIn(kRateCases),
                         [](const ::testing::TestParamInfo<RateCase>& param) { return std::string(param.param.name); });

// --- Details ----------------------------------------------------------------

TEST(RateDetectorTest, TheSignalCarriesTheScaledChange) {
  RuleHarness h;
  RateDetector det(RisingRule(), h.city(), h.devices());
  h.Feed(det, "wl-1", "water_level", kT0, 0.0);
  const auto s = h.Feed(det, "wl-1", "water_level", kT0 + 6 * kMin, 0.08, /*partition=*/1);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "wl-rising:wl-1:" + std::to_string(kT0 + 6 * kMin));
  EXPECT_EQ(s[0].rule_id, "wl-rising");
  EXPECT_EQ(s[0].category, "waterlogging");
  EXPECT_EQ(s[0].priority, Priority::kHigh);  // the catalogue's
  EXPECT_EQ(s[0].device_id, "wl-1");
  EXPECT_EQ(s[0].sensor_kind, "water_level");
  EXPECT_EQ(s[0].ts_ms, kT0 + 6 * kMin);
  EXPECT_EQ(s[0].fired_ms, kT0 + 6 * kMin);
  EXPECT_EQ(s[0].cell, h.city().CellAt(h.city().FindDevice("wl-1")->position)->index);
  EXPECT_EQ(s[0].input.partition, 1);
  EXPECT_NEAR(s[0].value, 0.08 * 10 / 6, 1e-12);
  EXPECT_DOUBLE_EQ(s[0].threshold, 0.10);
  EXPECT_EQ(s[0].explanation, "water_level rose 0.133333 per 10m (>= 0.1)");
  EXPECT_EQ(s[0].attributes.at("per"), "10m");
  EXPECT_EQ(s[0].attributes.at("change"), "0.08");
  EXPECT_EQ(s[0].attributes.at("span"), "6m");
  EXPECT_TRUE(s[0].opens_case);

  RateRule fall = RisingRule();
  fall.id = "wl-falling";
  fall.direction = ThresholdDirection::kBelow;
  RateDetector down(fall, h.city(), h.devices());
  h.Feed(down, "wl-2", "water_level", kT0, 1.0);
  const auto f = h.Feed(down, "wl-2", "water_level", kT0 + 5 * kMin, 0.75);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_DOUBLE_EQ(f[0].value, -0.5);
  EXPECT_EQ(f[0].explanation, "water_level fell 0.5 per 10m (>= 0.1)");
}

TEST(RateDetectorTest, StateSurvivesARestoreMidEpisode) {
  RuleHarness h;
  const RateRule rule = RisingRule();
  auto det = std::make_unique<RateDetector>(rule, h.city(), h.devices());
  auto roll_over = [&] {  // persist, and carry on in a fresh detector
    auto fresh = std::make_unique<RateDetector>(rule, h.city(), h.devices());
    size_t moved = 0;
    EXPECT_TRUE(RuleHarness::CarryOverState(*det, *fresh, &moved).ok());
    det = std::move(fresh);
    return moved;
  };
  h.Feed(*det, "wl-1", "water_level", kT0, 0.0);
  h.Feed(*det, "wl-1", "water_level", kT0 + 2 * kMin, 0.01);
  EXPECT_EQ(roll_over(), 1u);
  // The look-back reaches the reading of 0.0 made before the restore.
  EXPECT_EQ(h.Feed(*det, "wl-1", "water_level", kT0 + 6 * kMin, 0.08).size(), 1u);
  EXPECT_EQ(roll_over(), 1u);
  ASSERT_NE(det->StateFor("wl-1"), nullptr);
  EXPECT_EQ(det->StateFor("wl-1")->phase, RateState::Phase::kAlarm);
  EXPECT_EQ(det->StateFor("wl-1")->samples.size(), 3u);
  // Still in alarm: no second signal; out of order is still out of order.
  EXPECT_TRUE(h.Feed(*det, "wl-1", "water_level", kT0 + 8 * kMin, 0.12).empty());
  EXPECT_TRUE(h.Feed(*det, "wl-1", "water_level", kT0 + 8 * kMin, 0.50).empty());
  EXPECT_EQ(det->stats().out_of_order, 1);
  EXPECT_EQ(roll_over(), 1u);
  std::vector<StateEntry> none;
  det->TakeDirty(&none);
  EXPECT_TRUE(none.empty());  // a restore changes nothing to persist

  EXPECT_FALSE(det->Restore("wl-1", "garbage").ok());
}

TEST(RateDetectorTest, RestoresEveryKeyItListsAndReportsItsSize) {
  RuleHarness h;
  RateDetector det(RisingRule(), h.city(), h.devices());
  for (const char* d : {"wl-1", "wl-2"}) {
    for (int i = 0; i < 5; ++i) h.Feed(det, d, "water_level", kT0 + i * kMin, 0.01 * i);
  }
  std::vector<std::string> keys;
  det.ForEachStateKey([&](std::string k) { keys.push_back(std::move(k)); });
  EXPECT_EQ(keys, (std::vector<std::string>{"rate/wl-rising/wl-1", "rate/wl-rising/wl-2"}));
  EXPECT_GT(det.StateBytes(), 2 * 5 * sizeof(Sample));
  auto state = RateState::Decode(det.StateFor("wl-2")->Encode());
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->samples, det.StateFor("wl-2")->samples);
}

TEST(RateDetectorTest, TheFactoryBuildsOneRulePerEntry) {
  RuleHarness h;
  RulesOptions rules;
  rules.rate = {RisingRule(), RisingRule()};
  rules.rate[1].id = "wl-rising-fast";
  rules.rate[1].rate = 0.5;
  auto built = BuildRateRules(rules, h.city(), h.devices());
  ASSERT_EQ(built.size(), 2u);
  EXPECT_EQ(built[0]->id(), "wl-rising");
  EXPECT_EQ(built[1]->id(), "wl-rising-fast");
  EXPECT_EQ(built[0]->state_prefix(), "rate/");
  EXPECT_EQ(built[0]->WatchedSensorKinds(), std::vector<std::string>{"water_level"});
  EXPECT_FALSE(built[0]->SameConfig(*built[1]));
  EXPECT_TRUE(built[0]->SameConfig(RateDetector(RisingRule(), h.city(), h.devices())));
}

}  // namespace
}  // namespace cityloop::detect

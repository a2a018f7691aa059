#include "detect/threshold_detector.h"

#include <gtest/gtest.h>

#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kT0;
using cityloop::testing::RecordingGate;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestConfig;
using cityloop::testing::Transitions;

class ThresholdDetectorTest : public ::testing::Test {
 protected:
  // An hour of allowed lateness: out-of-order readings reach the rule.
  explicit ThresholdDetectorTest(Config config = TestConfig()) : h_(config, 3600000) {
    for (const ThresholdRule& r : config.rules.threshold) {
      rules_.push_back(std::make_unique<ThresholdDetector>(r, h_.city(), h_.devices()));
    }
  }

  ThresholdDetector* For(const std::string& kind) {
    for (auto& r : rules_) {
      if (r->config().sensor_kind == kind) return r.get();
    }
    return nullptr;
  }

  // The reading goes to the rule watching its kind (none: nothing is raised).
  std::vector<Signal> Feed(const std::string& device, const std::string& kind, int64_t ts, double value) {
    ThresholdDetector* rule = For(kind);
    return rule ? h_.Feed(*rule, device, kind, ts, value) : std::vector<Signal>{};
  }

  RuleHarness h_;
  std::vector<std::unique_ptr<ThresholdDetector>> rules_;
};

TEST_F(ThresholdDetectorTest, FiresOnlyAfterTheMinimumDuration) {
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0, 0.35).empty());
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + kMin, 0.50).empty());
  auto s = Feed("wl-1", "water_level", kT0 + 2 * kMin, 0.40);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].category, "waterlogging");
  EXPECT_EQ(s[0].rule_id, "road-waterlogging");
  EXPECT_EQ(s[0].ts_ms, kT0);
  EXPECT_EQ(s[0].fired_ms, kT0 + 2 * kMin);
  EXPECT_DOUBLE_EQ(s[0].value, 0.50);  // the peak that made it fire
  EXPECT_DOUBLE_EQ(s[0].threshold, 0.30);
  EXPECT_EQ(s[0].priority, Priority::kHigh);  // from the catalogue
  EXPECT_EQ(s[0].id, "road-waterlogging:wl-1:" + std::to_string(kT0));
  // Still in alarm: no second signal.
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + 3 * kMin, 0.45).empty());
}

TEST_F(ThresholdDetectorTest, ADipBelowRaiseRestartsTheDuration) {
  Feed("wl-1", "water_level", kT0, 0.35);
  Feed("wl-1", "water_level", kT0 + kMin, 0.25);  // below raise
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + 2 * kMin, 0.35).empty());
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + 3 * kMin, 0.35).empty());
  EXPECT_EQ(Feed("wl-1", "water_level", kT0 + 4 * kMin, 0.35).size(), 1u);
}

TEST_F(ThresholdDetectorTest, HysteresisNeedsTheClearLevelToReset) {
  Feed("wl-1", "water_level", kT0, 0.35);
  ASSERT_EQ(Feed("wl-1", "water_level", kT0 + 2 * kMin, 0.35).size(), 1u);
  // 0.25 is below raise but above clear: still in alarm, so no new signal after it.
  Feed("wl-1", "water_level", kT0 + 3 * kMin, 0.25);
  Feed("wl-1", "water_level", kT0 + 4 * kMin, 0.35);
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + 7 * kMin, 0.35).empty());
  // Below clear resets; a new episode fires again after the duration.
  Feed("wl-1", "water_level", kT0 + 8 * kMin, 0.10);
  Feed("wl-1", "water_level", kT0 + 9 * kMin, 0.40);
  EXPECT_EQ(Feed("wl-1", "water_level", kT0 + 11 * kMin, 0.40).size(), 1u);
}

TEST_F(ThresholdDetectorTest, ZeroDurationFiresOnTheFirstReadingAndDevicesAreIndependent) {
  EXPECT_EQ(Feed("gas-1", "gas_ppm", kT0, 900).size(), 1u);
  EXPECT_TRUE(Feed("wl-2", "water_level", kT0, 0.9).empty());
  EXPECT_TRUE(Feed("gas-1", "gas_ppm", kT0 + 1000, 950).empty());
}

TEST_F(ThresholdDetectorTest, OutOfOrderAndDuplicateReadingsDoNotMoveTheState) {
  Feed("wl-1", "water_level", kT0 + 5 * kMin, 0.35);
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0, 0.9).empty());
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0 + 5 * kMin, 0.9).empty());  // same timestamp: a duplicate
  ThresholdDetector* wl = For("water_level");
  EXPECT_EQ(wl->stats().out_of_order, 2);
  EXPECT_EQ(wl->StateFor("wl-1")->since_ms, kT0 + 5 * kMin);
  EXPECT_DOUBLE_EQ(wl->StateFor("wl-1")->peak, 0.35);
}

TEST_F(ThresholdDetectorTest, UnwatchedKindsRaiseNothing) {
  EXPECT_TRUE(Feed("x-1", "mystery_kind", kT0, 1e9).empty());
  EXPECT_EQ(For("water_level")->WatchedSensorKinds(), std::vector<std::string>{"water_level"});
}

TEST_F(ThresholdDetectorTest, StateSurvivesARestoreMidEpisode) {
  Feed("wl-1", "water_level", kT0, 0.35);
  std::vector<StateEntry> dirty;
  For("water_level")->TakeDirty(&dirty);
  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(dirty[0].key, "thr/road-waterlogging/wl-1");
  RuleHarness fresh;
  ThresholdDetector restored(TestConfig().rules.threshold[0], fresh.city(), fresh.devices());
  ASSERT_TRUE(restored.Restore("wl-1", *dirty[0].value).ok());
  auto out = fresh.Feed(restored, "wl-1", "water_level", kT0 + 2 * kMin, 0.4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].ts_ms, kT0);
  dirty.clear();
  For("water_level")->TakeDirty(&dirty);
  EXPECT_TRUE(dirty.empty());
  EXPECT_FALSE(restored.Restore("wl-9", "garbage").ok());
}

TEST_F(ThresholdDetectorTest, TransitionsGoThroughTheGateWhichMaySuppressTheAlarm) {
  RecordingGate gate(/*suppress=*/true);
  h_.set_gate(&gate);
  EXPECT_TRUE(Feed("gas-1", "gas_ppm", kT0, 900).empty());
  EXPECT_TRUE(Feed("gas-1", "gas_ppm", kT0 + kMin, 100).empty());
  EXPECT_TRUE(Feed("gas-1", "gas_ppm", kT0 + 2 * kMin, 900).empty());
  EXPECT_EQ(gate.seen(), (Transitions{{0, true}, {kMin, false}, {2 * kMin, true}}));
}

class BelowRuleTest : public ThresholdDetectorTest {
 protected:
  static Config LampConfig() {
    Config c = TestConfig();
    c.city.sensor_kinds["streetlight_current"] = {"streetlight_current", "A", 0, 50, 60000};
    ThresholdRule lamp;
    lamp.id = "lamp-dead";
    lamp.sensor_kind = "streetlight_current";
    lamp.category = "waterlogging";
    lamp.direction = ThresholdDirection::kBelow;
    lamp.raise = 0.3;
    lamp.clear = 0.8;
    lamp.min_duration_ms = 10 * kMin;
    lamp.active_hours = std::make_pair(18, 6);
    lamp.overrides["lamp-2"] = ThresholdOverride{0.5, std::nullopt, std::nullopt};
    c.rules.threshold.push_back(lamp);
    return c;
  }
  BelowRuleTest() : ThresholdDetectorTest(LampConfig()) {}
};

TEST_F(BelowRuleTest, BelowRulesRespectActiveHoursAndOverrides) {
  // 08:00Z is 16:00 local: inactive, a dark lamp is normal by day.
  Feed("lamp-1", "streetlight_current", kT0, 0.0);
  EXPECT_TRUE(Feed("lamp-1", "streetlight_current", kT0 + 30 * kMin, 0.0).empty());
  // 12:00Z is 20:00 local: active.
  const int64_t night = kT0 + 4 * 3600000;
  Feed("lamp-1", "streetlight_current", night, 0.1);
  EXPECT_EQ(Feed("lamp-1", "streetlight_current", night + 10 * kMin, 0.1).size(), 1u);
  // lamp-2's raise level is 0.5 by override.
  Feed("lamp-2", "streetlight_current", night, 0.45);
  EXPECT_EQ(Feed("lamp-2", "streetlight_current", night + 10 * kMin, 0.45).size(), 1u);
  Feed("lamp-3", "streetlight_current", night, 0.45);
  EXPECT_TRUE(Feed("lamp-3", "streetlight_current", night + 10 * kMin, 0.45).empty());
}

}  // namespace
}  // namespace cityloop::detect

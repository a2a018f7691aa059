#include "detect/threshold_detector.h"

#include <gtest/gtest.h>

#include "tests/support/test_city.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::TestCity;
using cityloop::testing::TestConfig;

constexpr int64_t kT0 = 1764316800000;  // 2025-11-28T08:00Z
constexpr int64_t kMin = 60000;

class ThresholdDetectorTest : public ::testing::Test {
 protected:
  explicit ThresholdDetectorTest(Config config = TestConfig()) : city_(TestCity(config)), det_(city_) {}

  std::vector<Signal> Feed(const std::string& device, const std::string& kind, int64_t ts, double value) {
    Reading r;
    r.device_id = device;
    r.kind = kind;
    r.ts_ms = ts;
    r.value = value;
    r.cell = 0;
    r.input = {"city.sensors", 0, offset_++};
    std::vector<Signal> out;
    det_.OnReading(r, &out);
    return out;
  }

  std::shared_ptr<const CityModel> city_;
  ThresholdDetector det_;
  int64_t offset_ = 0;
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

TEST_F(ThresholdDetectorTest, OutOfOrderReadingsDoNotMoveTheState) {
  Feed("wl-1", "water_level", kT0 + 5 * kMin, 0.35);
  EXPECT_TRUE(Feed("wl-1", "water_level", kT0, 0.9).empty());
  EXPECT_EQ(det_.stats().out_of_order, 1);
  EXPECT_EQ(det_.StateFor("road-waterlogging", "wl-1")->since_ms, kT0 + 5 * kMin);
}

TEST_F(ThresholdDetectorTest, UnwatchedKindsRaiseNothing) {
  EXPECT_TRUE(Feed("x-1", "mystery_kind", kT0, 1e9).empty());
  EXPECT_FALSE(det_.Watches("mystery_kind"));
}

TEST_F(ThresholdDetectorTest, StateSurvivesARestoreMidEpisode) {
  Feed("wl-1", "water_level", kT0, 0.35);
  auto dirty = det_.TakeDirty();
  ASSERT_EQ(dirty.size(), 1u);
  ThresholdDetector restored(city_);
  ASSERT_TRUE(restored.Restore(dirty[0].first, dirty[0].second).ok());
  Reading r;
  r.device_id = "wl-1";
  r.kind = "water_level";
  r.ts_ms = kT0 + 2 * kMin;
  r.value = 0.4;
  std::vector<Signal> out;
  restored.OnReading(r, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].ts_ms, kT0);
  EXPECT_TRUE(det_.TakeDirty().empty());
  EXPECT_FALSE(restored.Restore("thr/x/y", "garbage").ok());
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

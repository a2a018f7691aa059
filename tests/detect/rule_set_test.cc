#include "detect/rule_set.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "detect/threshold_detector.h"
#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kSec;
using cityloop::testing::kT0;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestCity;
using cityloop::testing::TestConfig;

Config RuleSetConfig(LatePolicy policy = LatePolicy::kDrop) {
  Config c = TestConfig();
  c.city.catalogue.push_back({"device_silent", "Device silent", "0901", "city_management", Priority::kLow});
  c.city.catalogue.push_back({"device_flapping", "Device flapping", "0902", "city_management", Priority::kLow});
  c.event_time.allowed_lateness_ms = 30 * kSec;
  c.event_time.late_policy = policy;
  c.event_time.idle_timeout_ms = 10 * kSec;
  NoSignalRule quiet;
  quiet.id = "quiet";
  quiet.category = "device_silent";
  quiet.factor = 3;
  quiet.sensor_kinds = {"gas_ppm"};
  c.rules.no_signal = {quiet};
  CorrelationRule gas_and_water;
  gas_and_water.id = "gas-and-water";
  gas_and_water.category = "gas_leak";
  gas_and_water.when = {{"gas-high", ""}, {"", "waterlogging"}};
  gas_and_water.scope = CorrelationScope::kDistrict;
  c.rules.correlation = {gas_and_water};
  return c;
}

class RuleSetTest : public ::testing::Test {
 protected:
  explicit RuleSetTest(Config c = RuleSetConfig(), bool live = false) : city_(TestCity(c)), rules_(city_, live) {}

  Reading At(const std::string& device, const std::string& kind, int64_t ts, double value, int partition = 0) {
    Reading r;
    r.device_id = device;
    r.kind = kind;
    r.ts_ms = ts;
    r.value = value;
    r.position = city_->FindDevice(device)->position;
    r.cell = city_->CellAt(r.position)->index;
    r.input = {"city.sensors", partition, offset_++};
    return r;
  }
  std::vector<Signal> Feed(const Reading& r, Admission want = Admission::kOnTime, int64_t wall = 0) {
    std::vector<Signal> out;
    EXPECT_EQ(rules_.OnReading(r, wall, &out), want) << r.device_id << " @" << r.ts_ms;
    return out;
  }
  std::map<std::string, std::optional<std::string>> Dirty() {
    std::vector<StateEntry> entries;
    rules_.TakeDirty(&entries);
    std::map<std::string, std::optional<std::string>> out;
    for (auto& e : entries) out[e.key] = e.value;
    return out;
  }

  std::shared_ptr<const CityModel> city_;
  RuleSet rules_;
  int64_t offset_ = 0;
};

TEST_F(RuleSetTest, BuildsEveryConfiguredRuleByKind) {
  std::vector<std::string> ids;
  for (const auto& r : rules_.rules()) ids.push_back(r->id());
  EXPECT_EQ(ids, (std::vector<std::string>{"road-waterlogging", "gas-high", "quiet", "gas-and-water"}));
}

TEST_F(RuleSetTest, LateInputIsDroppedUnderTheDropPolicy) {
  Feed(At("wl-1", "water_level", kT0 + 5 * kMin, 0.1));
  // 20 s behind its partition: within the allowed lateness.
  Feed(At("wl-1", "water_level", kT0 + 5 * kMin - 20 * kSec, 0.1));
  // 40 s behind: late. Another partition has its own watermark.
  Feed(At("gas-1", "gas_ppm", kT0 + 5 * kMin - 40 * kSec, 900), Admission::kLateDropped);
  EXPECT_EQ(Feed(At("gas-1", "gas_ppm", kT0 + 5 * kMin - 40 * kSec, 900, 1)).size(), 1u);
}

class ApplyLateTest : public RuleSetTest {
 protected:
  ApplyLateTest() : RuleSetTest(RuleSetConfig(LatePolicy::kApply)) {}
};

TEST_F(ApplyLateTest, LateInputIsAppliedUnderTheApplyPolicy) {
  Feed(At("wl-1", "water_level", kT0 + 5 * kMin, 0.1));
  EXPECT_EQ(Feed(At("gas-1", "gas_ppm", kT0, 900), Admission::kLateApplied).size(), 1u);
}

TEST_F(RuleSetTest, SignalsFeedCorrelationsAndReportsAreSignals) {
  auto gas = Feed(At("gas-1", "gas_ppm", kT0, 900));
  ASSERT_EQ(gas.size(), 1u);
  Report rep;
  rep.report_id = "r-1";
  rep.channel = "hotline12345";
  rep.ts_ms = kT0 + kMin;
  rep.category = "waterlogging";
  rep.text = "water on the road";
  rep.position = TestCellCenter(3, 0);
  rep.cell = 12;
  rep.input = {"city.reports", 0, 0};
  std::vector<Signal> out;
  EXPECT_EQ(rules_.OnReport(rep, 0, &out), Admission::kOnTime);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].id, "report:r-1");
  EXPECT_EQ(out[0].source, SignalSource::kReport);
  EXPECT_EQ(out[0].priority, Priority::kHigh);  // the catalogue's
  EXPECT_EQ(out[0].attributes.at("text"), "water on the road");
  EXPECT_EQ(out[1].source, SignalSource::kCorrelation);
  EXPECT_EQ(out[1].members, (std::vector<std::string>{gas[0].id, "report:r-1"}));
}

TEST_F(RuleSetTest, TimersRunOnTheWatermarkOfTheDevicesOwnPartition) {
  Feed(At("gas-1", "gas_ppm", kT0, 10, 0));
  // Partition 1 runs far ahead; gas-1's partition 0 does not: no silence yet.
  EXPECT_TRUE(Feed(At("wl-1", "water_level", kT0 + 10 * kMin, 0.1, 1)).empty());
  // Partition 0 moves past 3 x 30 s (+ 30 s lateness): gas-1 is silent.
  auto out = Feed(At("wl-2", "water_level", kT0 + 2 * kMin + kSec, 0.1, 0));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].category, "device_silent");
  EXPECT_EQ(out[0].device_id, "gas-1");
}

TEST_F(RuleSetTest, StateAndEventTimeSurviveARestore) {
  Feed(At("wl-1", "water_level", kT0, 0.5));
  Feed(At("wl-1", "water_level", kT0 + kMin, 0.5));
  auto dirty = Dirty();
  EXPECT_TRUE(dirty.count("thr/road-waterlogging/wl-1"));
  EXPECT_TRUE(dirty.count("wm/city.sensors/0"));
  RuleSet restored(city_, false);
  for (const auto& [k, v] : dirty) ASSERT_TRUE(restored.Restore(k, *v, 0).ok()) << k;
  EXPECT_EQ(restored.time().MaxWatermark(), kT0 + kMin - 30 * kSec);
  std::vector<Signal> out;
  restored.OnReading(At("wl-1", "water_level", kT0 + 2 * kMin, 0.5), 0, &out);
  ASSERT_EQ(out.size(), 1u);  // the 2 min started before the restore
  EXPECT_EQ(out[0].ts_ms, kT0);
  // State of a rule that is gone is deleted.
  ASSERT_TRUE(restored.Restore("thr/removed-rule/wl-1", "0 0 0 0", 0).ok());
  std::vector<StateEntry> entries;
  restored.TakeDirty(&entries);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries[0].key, "thr/removed-rule/wl-1");
  EXPECT_FALSE(entries[0].value.has_value());
}

TEST_F(RuleSetTest, ReloadKeepsUnchangedRulesAndReleasesTheOthers) {
  Feed(At("wl-1", "water_level", kT0, 0.5));
  Feed(At("gas-1", "gas_ppm", kT0, 100));
  Dirty();
  Config next = RuleSetConfig();
  next.rules.threshold[1].raise = 400;  // gas-high changed
  next.rules.no_signal.clear();         // quiet removed
  ThresholdRule lamp;                   // lamp added
  lamp.id = "lamp";
  lamp.sensor_kind = "streetlight_current";
  lamp.category = "waterlogging";
  lamp.direction = ThresholdDirection::kBelow;
  lamp.raise = lamp.clear = 0.3;
  next.rules.threshold.push_back(lamp);
  const ReloadSummary s = rules_.Reload(TestCity(next));
  EXPECT_EQ(s.kept, 2);  // road-waterlogging, gas-and-water
  EXPECT_EQ(s.changed, 1);
  EXPECT_EQ(s.removed, 1);
  EXPECT_EQ(s.added, 1);
  auto dirty = Dirty();
  EXPECT_FALSE(dirty.at("thr/gas-high/gas-1").has_value());
  EXPECT_FALSE(dirty.at("nosig/quiet/gas-1").has_value());
  EXPECT_FALSE(dirty.count("thr/road-waterlogging/wl-1"));  // kept, unchanged
  // The kept rule is mid-episode: its 2 min end without starting over.
  auto out = Feed(At("wl-1", "water_level", kT0 + 2 * kMin, 0.5));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rule_id, "road-waterlogging");
  // The changed rule runs with its new level (and the kept correlation pairs it with the water).
  out = Feed(At("gas-1", "gas_ppm", kT0 + 2 * kMin, 450));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].rule_id, "gas-high");
  EXPECT_EQ(out[1].rule_id, "gas-and-water");
}

class FlappingSetTest : public RuleSetTest {
 protected:
  static Config WithFlapping() {
    Config c = RuleSetConfig();
    c.rules.no_signal.clear();
    c.rules.correlation.clear();
    FlappingRule f;
    f.id = "flap";
    f.category = "device_flapping";
    f.rules = {"gas-high"};
    f.transitions = 3;
    f.within_ms = 30 * kMin;
    c.rules.flapping = {f};
    return c;
  }
  FlappingSetTest() : RuleSetTest(WithFlapping()) {}
};

TEST_F(FlappingSetTest, AFlappingDeviceRaisesOneSignalAndItsAlarmsAreHeldBack) {
  std::vector<Signal> all;
  for (int i = 0; i < 8; ++i) {
    for (Signal& s : Feed(At("gas-1", "gas_ppm", kT0 + i * kMin, i % 2 == 0 ? 900 : 100))) all.push_back(s);
  }
  // raise, clear, raise, clear (4 transitions > 3): flapping; later raises suppressed.
  std::vector<std::string> rules;
  for (const Signal& s : all) rules.push_back(s.rule_id);
  EXPECT_EQ(rules, (std::vector<std::string>{"gas-high", "gas-high", "flap"}));
}

class LiveRuleSetTest : public RuleSetTest {
 protected:
  LiveRuleSetTest() : RuleSetTest(RuleSetConfig(), /*live=*/true) {}
};

TEST_F(LiveRuleSetTest, IdleInputMovesEventTimeOnFromTheWallClock) {
  const int64_t wall = 5'000'000;
  Feed(At("gas-1", "gas_ppm", kT0, 10), Admission::kOnTime, wall);
  std::vector<Signal> out;
  rules_.Tick(wall + 5 * kSec, &out);  // not idle long enough
  EXPECT_TRUE(out.empty());
  rules_.Tick(wall + 60 * kSec, &out);  // event time now kT0 + 60 s - 30 s lateness
  EXPECT_TRUE(out.empty());
  rules_.Tick(wall + 2 * kMin + kSec, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].category, "device_silent");
}

TEST_F(RuleSetTest, ReplayModeNeverMovesOnFromTheWallClock) {
  Feed(At("gas-1", "gas_ppm", kT0, 10));
  std::vector<Signal> out;
  rules_.Tick(int64_t{1} << 50, &out);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace cityloop::detect

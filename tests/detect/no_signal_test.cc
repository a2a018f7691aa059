#include "detect/no_signal_detector.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kSec;
using cityloop::testing::kT0;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestCellCenter;

// The test city plus the device_silent category and a slow sensor kind.
Config SilentConfig() {
  Config c = cityloop::testing::TestConfig();
  c.city.catalogue.push_back({"device_silent", "设备离线", "0901", "city_management", Priority::kNormal});
  c.city.sensor_kinds["noise_db"] = {"noise_db", "dB", 0, 200, 2 * kMin};
  return c;
}

NoSignalRule SilentRule() {
  NoSignalRule rule;
  rule.id = "sensor-silent";
  rule.category = "device_silent";
  rule.factor = 3;
  return rule;
}

// A reading of "mobile-7", a device not in the registry.
Reading Unregistered(const std::string& kind, int64_t ts, LatLon position) {
  Reading r;
  r.device_id = "mobile-7";
  r.kind = kind;
  r.ts_ms = ts;
  r.position = position;
  return r;
}

struct Fixture {
  explicit Fixture(const NoSignalRule& rule = SilentRule(), int64_t lateness_ms = 0)
      : h(SilentConfig(), lateness_ms), det(rule, h.city(), h.devices()) {}
  RuleHarness h;
  NoSignalDetector det;
};

// The expected interval: override -> rule interval -> kind's report interval -> 60 s.
struct IntervalCase {
  const char* name;
  std::function<void(NoSignalRule&)> tweak;
  const char* device;
  const char* kind;
  int64_t silent_after_ms;  // factor x interval
};

TEST(NoSignalDetectorTest, SilenceIsDetectedAtExactlyFactorTimesTheInterval) {
  const auto rule_and_override = [](NoSignalRule& r) {
    r.interval_ms = 10 * kSec;
    r.overrides["wl-1"] = 5 * kSec;
  };
  const std::vector<IntervalCase> cases = {
      {"kind interval (water_level 30s)", [](NoSignalRule&) {}, "wl-1", "water_level", 90 * kSec},
      {"another kind (noise_db 2m)", [](NoSignalRule&) {}, "nz-1", "noise_db", 6 * kMin},
      {"unknown kind: 60s", [](NoSignalRule&) {}, "x-1", "mystery", 3 * kMin},
      {"rule interval beats the kind's", [](NoSignalRule& r) { r.interval_ms = 10 * kSec; }, "wl-1", "water_level",
       30 * kSec},
      {"device override beats the rule's", rule_and_override, "wl-1", "water_level", 15 * kSec},
      {"override is per device", rule_and_override, "wl-2", "water_level", 30 * kSec},
      {"fractional factor", [](NoSignalRule& r) { r.factor = 2.5; }, "wl-1", "water_level", 75 * kSec},
  };
  for (const IntervalCase& c : cases) {
    SCOPED_TRACE(c.name);
    NoSignalRule rule = SilentRule();
    c.tweak(rule);
    Fixture f(rule);
    EXPECT_TRUE(f.h.Feed(f.det, c.device, c.kind, kT0, 1).empty());
    EXPECT_EQ(f.det.DeadlineOf(c.device), kT0 + c.silent_after_ms);
    EXPECT_TRUE(f.h.AdvanceTo(f.det, kT0 + c.silent_after_ms - 1).empty());
    auto s = f.h.AdvanceTo(f.det, kT0 + c.silent_after_ms);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].device_id, c.device);
    EXPECT_EQ(s[0].ts_ms, kT0 + c.silent_after_ms);
    EXPECT_DOUBLE_EQ(s[0].threshold, static_cast<double>(c.silent_after_ms));
  }
}

TEST(NoSignalDetectorTest, TheSignalDescribesTheSilence) {
  Fixture f;
  f.h.Feed(f.det, "wl-1", "water_level", kT0, 0.1);
  auto s = f.h.AdvanceTo(f.det, kT0 + 2 * kMin);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "sensor-silent:wl-1:" + std::to_string(kT0));
  EXPECT_EQ(s[0].rule_id, "sensor-silent");
  EXPECT_EQ(s[0].category, "device_silent");
  EXPECT_EQ(s[0].priority, Priority::kNormal);  // from the catalogue
  EXPECT_EQ(s[0].source, SignalSource::kSensor);
  EXPECT_EQ(s[0].sensor_kind, "water_level");
  EXPECT_EQ(s[0].cell, 0);  // wl-1 is registered in cell (0, 0)
  EXPECT_DOUBLE_EQ(s[0].position.lat, TestCellCenter(0, 0).lat);
  EXPECT_EQ(s[0].ts_ms, kT0 + 90 * kSec);     // the deadline: silence confirmed
  EXPECT_EQ(s[0].fired_ms, kT0 + 90 * kSec);  // not the watermark that noticed it
  EXPECT_DOUBLE_EQ(s[0].value, 90000);        // silent for, in ms
  EXPECT_DOUBLE_EQ(s[0].threshold, 90000);
  // kT0 is 08:00Z, 16:00 at the test city's +08:00.
  EXPECT_EQ(s[0].explanation, "wl-1 (water_level) silent since 16:00:00, expected every 30s x 3");
  EXPECT_EQ(s[0].attributes.at("last_seen"), "2025-11-28T08:00:00.000Z");
  EXPECT_EQ(s[0].attributes.at("expected_interval"), "30s");
  EXPECT_TRUE(s[0].opens_case);
  EXPECT_EQ(f.det.stats().fired, 1);
}

TEST(NoSignalDetectorTest, RulePriorityAndUnregisteredDevicesTakeTheReadingsPlace) {
  NoSignalRule rule = SilentRule();
  rule.priority = Priority::kHigh;
  Fixture f(rule);
  f.h.FeedReading(f.det, Unregistered("water_level", kT0, TestCellCenter(2, 1)));
  auto s = f.h.AdvanceTo(f.det, kT0 + 90 * kSec);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].priority, Priority::kHigh);
  EXPECT_EQ(s[0].cell, 2 * 4 + 1);
  EXPECT_DOUBLE_EQ(s[0].position.lon, TestCellCenter(2, 1).lon);
}

TEST(NoSignalDetectorTest, OneSignalPerSilenceAndANewReadingClearsIt) {
  Fixture f;
  f.h.Feed(f.det, "wl-1", "water_level", kT0, 0.1);
  ASSERT_EQ(f.h.AdvanceTo(f.det, kT0 + 90 * kSec).size(), 1u);
  EXPECT_TRUE(f.h.AdvanceTo(f.det, kT0 + 10 * kMin).empty());
  EXPECT_TRUE(f.h.AdvanceTo(f.det, kT0 + 60 * kMin).empty());
  EXPECT_EQ(f.det.StateFor("wl-1")->phase, NoSignalState::Phase::kSilent);
  // Back: reporting again, and a new silence is a new signal.
  const int64_t back = kT0 + 61 * kMin;
  EXPECT_TRUE(f.h.Feed(f.det, "wl-1", "water_level", back, 0.1).empty());
  EXPECT_EQ(f.det.StateFor("wl-1")->phase, NoSignalState::Phase::kReporting);
  EXPECT_EQ(f.det.stats().cleared, 1);
  EXPECT_TRUE(f.h.AdvanceTo(f.det, back + 89 * kSec).empty());
  auto s = f.h.AdvanceTo(f.det, back + 90 * kSec);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "sensor-silent:wl-1:" + std::to_string(back));
}

TEST(NoSignalDetectorTest, EachReadingPushesTheDeadlineOn) {
  Fixture f;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(f.h.Feed(f.det, "wl-1", "water_level", kT0 + i * 30 * kSec, 0.1).empty());
  }
  EXPECT_EQ(f.det.DeadlineOf("wl-1"), kT0 + 9 * 30 * kSec + 90 * kSec);
  EXPECT_EQ(f.det.stats().fired, 0);
}

TEST(NoSignalDetectorTest, OutOfOrderAndDuplicateReadingsDoNotMoveTheDeadline) {
  Fixture f(SilentRule(), /*lateness_ms=*/5 * kMin);  // older readings are not late
  f.h.Feed(f.det, "wl-1", "water_level", kT0 + kMin, 0.1);
  f.h.Feed(f.det, "wl-1", "water_level", kT0 + 30 * kSec, 0.1);  // older
  f.h.Feed(f.det, "wl-1", "water_level", kT0 + kMin, 0.1);       // duplicate
  EXPECT_EQ(f.h.late(), 0);
  EXPECT_EQ(f.det.stats().out_of_order, 2);
  EXPECT_EQ(f.det.stats().evaluated, 1);
  const int64_t deadline = kT0 + kMin + 90 * kSec;
  EXPECT_EQ(f.det.DeadlineOf("wl-1"), deadline);
  // The watermark trails the newest event by the lateness.
  EXPECT_TRUE(f.h.AdvanceTo(f.det, deadline + 5 * kMin - 1).empty());
  auto s = f.h.AdvanceTo(f.det, deadline + 5 * kMin);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "sensor-silent:wl-1:" + std::to_string(kT0 + kMin));
}

TEST(NoSignalDetectorTest, ALaggingPartitionDoesNotMakeItsDevicesSilent) {
  Fixture f;
  f.h.Feed(f.det, "wl-1", "water_level", kT0, 0.1, /*partition=*/0);
  f.h.Feed(f.det, "wl-2", "water_level", kT0, 0.1, /*partition=*/1);
  // Partition 0 runs an hour ahead; partition 1 (catching up) is still at kT0.
  auto s = f.h.AdvanceTo(f.det, kT0 + 60 * kMin, 0);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].device_id, "wl-1");
  EXPECT_EQ(f.det.DeadlineOf("wl-2"), kT0 + 90 * kSec);
  EXPECT_TRUE(f.h.AdvanceTo(f.det, kT0 + 89 * kSec, 1).empty());
  s = f.h.AdvanceTo(f.det, kT0 + 90 * kSec, 1);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].device_id, "wl-2");
}

TEST(NoSignalDetectorTest, ADeviceThatMovesPartitionRunsOnItsNewSource) {
  Fixture f;
  f.h.Feed(f.det, "wl-1", "water_level", kT0, 0.1, 0);
  f.h.Feed(f.det, "wl-1", "water_level", kT0 + 30 * kSec, 0.1, 1);
  EXPECT_TRUE(f.h.AdvanceTo(f.det, kT0 + 60 * kMin, 0).empty());
  EXPECT_EQ(f.h.AdvanceTo(f.det, kT0 + 2 * kMin, 1).size(), 1u);
}

TEST(NoSignalDetectorTest, SensorKindAndDeviceFilters) {
  NoSignalRule rule = SilentRule();
  rule.sensor_kinds = {"water_level"};
  rule.devices = {"wl-1", "wl-2"};
  Fixture f(rule);
  EXPECT_FALSE(f.det.WatchesEverySensor());
  EXPECT_EQ(f.det.WatchedSensorKinds(), std::vector<std::string>{"water_level"});
  EXPECT_TRUE(Fixture().det.WatchesEverySensor());
  f.h.Feed(f.det, "wl-1", "water_level", kT0, 0.1);
  f.h.Feed(f.det, "gas-1", "gas_ppm", kT0, 10);         // kind not watched
  f.h.Feed(f.det, "wl-9", "water_level", kT0, 0.1);     // device not listed
  auto s = f.h.AdvanceTo(f.det, kT0 + 60 * kMin);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].device_id, "wl-1");
  EXPECT_EQ(f.det.StateFor("gas-1"), nullptr);
  EXPECT_EQ(f.det.StateFor("wl-9"), nullptr);
}

TEST(NoSignalDetectorTest, ARestoreMidSilenceStillFiresTheDeadline) {
  Fixture before;
  before.h.Feed(before.det, "wl-1", "water_level", kT0, 0.1, /*partition=*/2);
  EXPECT_TRUE(before.h.AdvanceTo(before.det, kT0 + 60 * kSec, 2).empty());

  // A restart: new event time and device table; partition 5 is seen first, so
  // city.sensors/2 gets another source id than before.
  Fixture after;
  after.h.AdvanceTo(after.det, kT0 + 60 * kMin, 5);
  size_t moved = 0;
  ASSERT_TRUE(RuleHarness::CarryOverState(before.det, after.det, &moved).ok());
  EXPECT_EQ(moved, 1u);
  EXPECT_EQ(after.det.pending_rearm(), 1u);
  EXPECT_EQ(after.det.StateFor("wl-1")->last_ts_ms, kT0);
  // Partition 5 is far ahead, but wl-1 reports on partition 2.
  EXPECT_TRUE(after.h.AdvanceTo(after.det, kT0 + 61 * kMin, 5).empty());
  EXPECT_EQ(after.det.pending_rearm(), 0u);
  EXPECT_EQ(after.det.DeadlineOf("wl-1"), kT0 + 90 * kSec);
  EXPECT_TRUE(after.h.AdvanceTo(after.det, kT0 + 89 * kSec, 2).empty());
  auto s = after.h.AdvanceTo(after.det, kT0 + 90 * kSec, 2);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "sensor-silent:wl-1:" + std::to_string(kT0));
  EXPECT_EQ(s[0].sensor_kind, "water_level");
}

TEST(NoSignalDetectorTest, ARestoredSilenceDoesNotFireAgainAndClearsOnTheNextReading) {
  Fixture before;
  Reading r = Unregistered("noise_db", kT0, TestCellCenter(3, 2));
  before.h.FeedReading(before.det, r);
  ASSERT_EQ(before.h.AdvanceTo(before.det, kT0 + 6 * kMin).size(), 1u);

  Fixture after(SilentRule(), /*lateness_ms=*/2 * 60 * kMin);  // so that an old reading is not late
  ASSERT_TRUE(RuleHarness::CarryOverState(before.det, after.det).ok());
  const NoSignalState* st = after.det.StateFor("mobile-7");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->phase, NoSignalState::Phase::kSilent);
  EXPECT_EQ(st->cell, 3 * 4 + 2);
  EXPECT_EQ(st->topic, "city.sensors");
  EXPECT_EQ(st->kind, "noise_db");
  EXPECT_EQ(after.det.pending_rearm(), 0u);
  // A reading not newer than the restored one does not clear it.
  after.h.FeedReading(after.det, r);
  EXPECT_EQ(after.det.stats().out_of_order, 1);
  EXPECT_EQ(after.det.StateFor("mobile-7")->phase, NoSignalState::Phase::kSilent);
  const int64_t lateness = 2 * 60 * kMin;
  EXPECT_TRUE(after.h.AdvanceTo(after.det, kT0 + 60 * kMin + lateness).empty());
  r.ts_ms = kT0 + 61 * kMin;
  EXPECT_TRUE(after.h.FeedReading(after.det, r).empty());
  EXPECT_EQ(after.det.StateFor("mobile-7")->phase, NoSignalState::Phase::kReporting);
  EXPECT_TRUE(after.h.AdvanceTo(after.det, kT0 + 67 * kMin + lateness - 1).empty());
  EXPECT_EQ(after.h.AdvanceTo(after.det, kT0 + 67 * kMin + lateness).size(), 1u);
}

TEST(NoSignalDetectorTest, StateEncodingRoundTripsAndRejectsGarbage) {
  NoSignalState s;
  s.phase = NoSignalState::Phase::kSilent;
  s.last_ts_ms = kT0 + 17;
  s.cell = 9;
  s.position = {28.123456789012345, 112.98765432109876};
  s.partition = 3;
  s.topic = "city.sensors";
  s.kind = "water_level";
  auto back = NoSignalState::Decode(s.Encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->phase, s.phase);
  EXPECT_EQ(back->last_ts_ms, s.last_ts_ms);
  EXPECT_EQ(back->cell, 9);
  EXPECT_DOUBLE_EQ(back->position.lat, s.position.lat);
  EXPECT_DOUBLE_EQ(back->position.lon, s.position.lon);
  EXPECT_EQ(back->partition, 3);
  EXPECT_EQ(back->topic, "city.sensors");
  EXPECT_EQ(back->kind, "water_level");
  for (const char* bad : {"", "garbage", "2 0 0 0 0 0 k t", "0 x 0 0 0 0 k t", "0 0 0 0 0 0 k"}) {
    EXPECT_FALSE(NoSignalState::Decode(bad).has_value()) << bad;
  }
  Fixture f;
  EXPECT_FALSE(f.det.Restore("wl-1", "garbage").ok());
}

TEST(NoSignalDetectorTest, FactoryKeysAndConfigIdentity) {
  Config c = SilentConfig();
  NoSignalRule other = SilentRule();
  other.id = "noise-silent";
  other.sensor_kinds = {"noise_db"};
  c.rules.no_signal = {SilentRule(), other};
  RuleHarness h(c);
  auto rules = BuildNoSignalRules(c.rules, h.city(), h.devices());
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0]->id(), "sensor-silent");
  EXPECT_EQ(rules[1]->id(), "noise-silent");
  EXPECT_EQ(rules[0]->state_prefix(), "nosig/");
  EXPECT_FALSE(rules[0]->SameConfig(*rules[1]));
  NoSignalDetector same(SilentRule(), h.city(), h.devices());
  EXPECT_TRUE(rules[0]->SameConfig(same));

  h.Feed(*rules[0], "wl-1", "water_level", kT0, 0.1);
  std::vector<std::string> keys;
  rules[0]->ForEachStateKey([&](std::string k) { keys.push_back(std::move(k)); });
  EXPECT_EQ(keys, std::vector<std::string>{"nosig/sensor-silent/wl-1"});
  EXPECT_GT(rules[0]->StateBytes(), 0u);
}

}  // namespace
}  // namespace cityloop::detect

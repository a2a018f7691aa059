#include "detect/flapping_detector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "detect/threshold_detector.h"
#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kMin;
using cityloop::testing::kT0;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestCellCenter;

Config FlapConfig() {
  Config c = cityloop::testing::TestConfig();
  c.city.catalogue.push_back({"device_flapping", "设备抖动", "0902", "city_management", Priority::kNormal});
  return c;
}

FlappingRule FlapRule() {
  FlappingRule rule;
  rule.id = "flap";
  rule.category = "device_flapping";
  rule.rules = {"gas-high", "road-waterlogging"};
  rule.transitions = 4;
  rule.within_ms = 30 * kMin;
  return rule;
}

// Drives a FlappingDetector's transitions directly, on the harness's event time.
struct Fixture {
  explicit Fixture(const FlappingRule& rule = FlapRule()) : h(FlapConfig()), flap(rule, h.city(), h.devices()) {}

  // A transition of rule_id at ts, as if a reading on `partition` caused it;
  // then the watermark is offered. Returns whether it was suppressed.
  bool Transition(const std::string& rule_id, const std::string& device, int64_t ts, bool raised,
                  int partition = 0) {
    h.time().Observe(h.time().Source("city.sensors", partition), ts, 0);
    RuleContext ctx = h.ContextFor(&signals, partition);
    const bool suppressed = flap.OnTransition(rule_id, h.devices().Intern(device), ts, raised, ctx);
    Advance(ts, partition);
    return suppressed;
  }
  void Advance(int64_t ts, int partition = 0) {
    for (Signal& s : h.AdvanceTo(flap, ts, partition)) signals.push_back(std::move(s));
  }

  RuleHarness h;
  FlappingDetector flap;
  std::vector<Signal> signals;
};

struct WindowCase {
  const char* name;
  std::vector<int64_t> at;  // transition times after kT0, raise/clear alternating
  int fires_at;             // index of the transition that starts the flapping, or -1
  int64_t first_ms;         // the signal's ts: first transition in the window (after kT0)
};

TEST(FlappingDetectorTest, FlapsOnMoreThanNTransitionsWithinTheWindow) {
  const std::vector<WindowCase> cases = {
      {"N + 1 within", {0, kMin, 2 * kMin, 3 * kMin, 4 * kMin}, 4, 0},
      {"N is not enough", {0, kMin, 2 * kMin, 3 * kMin}, -1, 0},
      {"N + 1 spanning just under `within`", {0, 5 * kMin, 10 * kMin, 15 * kMin, 30 * kMin - 1}, 4, 0},
      {"N + 1 spanning exactly `within`: the first has left", {0, 5 * kMin, 10 * kMin, 15 * kMin, 30 * kMin}, -1, 0},
      {"old transitions drop out of the window",
       {0, 20 * kMin, 40 * kMin, 41 * kMin, 42 * kMin, 43 * kMin},
       5,
       20 * kMin},
      {"out of order", {0, 3 * kMin, kMin, 2 * kMin, 4 * kMin}, 4, 0},
  };
  for (const WindowCase& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f;
    for (size_t i = 0; i < c.at.size(); ++i) {
      f.Transition("gas-high", "gas-1", kT0 + c.at[i], /*raised=*/i % 2 == 0);
      EXPECT_EQ(f.signals.size(), static_cast<int>(i) >= c.fires_at && c.fires_at >= 0 ? 1u : 0u) << i;
    }
    EXPECT_EQ(f.flap.IsFlapping("gas-1"), c.fires_at >= 0);
    if (c.fires_at >= 0) {
      ASSERT_EQ(f.signals.size(), 1u);
      EXPECT_EQ(f.signals[0].ts_ms, kT0 + c.first_ms);
      EXPECT_DOUBLE_EQ(f.signals[0].value, 5);
    }
  }
}

TEST(FlappingDetectorTest, TheSignalDescribesTheFlapping) {
  Fixture f;
  f.Transition("gas-high", "wl-2", kT0, true);
  f.Transition("road-waterlogging", "wl-2", kT0 + kMin, true);
  f.Transition("gas-high", "wl-2", kT0 + 2 * kMin, false);
  f.Transition("gas-high", "wl-2", kT0 + 3 * kMin, true);
  f.Transition("unwatched", "wl-2", kT0 + 3 * kMin, false);  // ignored
  EXPECT_TRUE(f.signals.empty());
  f.Transition("road-waterlogging", "wl-2", kT0 + 4 * kMin, false);
  ASSERT_EQ(f.signals.size(), 1u);
  const Signal& s = f.signals[0];
  EXPECT_EQ(s.id, "flap:wl-2:" + std::to_string(kT0));
  EXPECT_EQ(s.rule_id, "flap");
  EXPECT_EQ(s.category, "device_flapping");
  EXPECT_EQ(s.priority, Priority::kNormal);
  EXPECT_EQ(s.device_id, "wl-2");
  EXPECT_EQ(s.sensor_kind, "water_level");  // from the registry
  EXPECT_EQ(s.cell, 2 * 4 + 3);
  EXPECT_DOUBLE_EQ(s.position.lat, TestCellCenter(2, 3).lat);
  EXPECT_EQ(s.ts_ms, kT0);
  EXPECT_EQ(s.fired_ms, kT0 + 4 * kMin);
  EXPECT_DOUBLE_EQ(s.value, 5);
  EXPECT_DOUBLE_EQ(s.threshold, 4);
  EXPECT_EQ(s.explanation, "wl-2 toggled 5 times in 30m (gas-high,road-waterlogging)");
  EXPECT_EQ(s.attributes.at("rules"), "gas-high,road-waterlogging");
  EXPECT_EQ(s.attributes.at("transitions"), "5");
  EXPECT_EQ(f.flap.stats().transitions, 5);
  EXPECT_TRUE(f.flap.Watches("gas-high"));
  EXPECT_FALSE(f.flap.Watches("unwatched"));
}

TEST(FlappingDetectorTest, RaisesAreSuppressedWhileFlappingAndCountAsTransitions) {
  Fixture f;
  EXPECT_FALSE(f.Transition("gas-high", "gas-1", kT0, true));
  EXPECT_FALSE(f.Transition("gas-high", "gas-1", kT0 + kMin, false));
  EXPECT_FALSE(f.Transition("gas-high", "gas-1", kT0 + 2 * kMin, true));
  EXPECT_FALSE(f.Transition("gas-high", "gas-1", kT0 + 3 * kMin, false));
  // The fifth starts the flapping: the raise it brings is already suppressed.
  EXPECT_TRUE(f.Transition("gas-high", "gas-1", kT0 + 4 * kMin, true));
  EXPECT_EQ(f.signals.size(), 1u);
  EXPECT_FALSE(f.Transition("gas-high", "gas-1", kT0 + 5 * kMin, false));  // a clear is never suppressed
  // A suppressed raise 20 minutes on still counts: it keeps the device flapping.
  EXPECT_TRUE(f.Transition("gas-high", "gas-1", kT0 + 25 * kMin, true));
  f.Advance(kT0 + 5 * kMin + 30 * kMin);
  EXPECT_TRUE(f.flap.IsFlapping("gas-1"));
  f.Advance(kT0 + 25 * kMin + 30 * kMin - 1);
  EXPECT_TRUE(f.flap.IsFlapping("gas-1"));
  f.Advance(kT0 + 25 * kMin + 30 * kMin);
  EXPECT_FALSE(f.flap.IsFlapping("gas-1"));
  EXPECT_EQ(f.flap.stats().suppressed, 2);
  EXPECT_EQ(f.flap.stats().recovered, 1);
  EXPECT_EQ(f.signals.size(), 1u);  // recovery raises nothing
  // Other devices are not affected.
  EXPECT_FALSE(f.Transition("gas-high", "wl-1", kT0 + 56 * kMin, true));
}

TEST(FlappingDetectorTest, StableAgainAfterWithinQuietAndCountingStartsOver) {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.Transition("gas-high", "gas-1", kT0 + i * kMin, i % 2 == 0);
  ASSERT_TRUE(f.flap.IsFlapping("gas-1"));
  const int64_t quiet = kT0 + 4 * kMin + 30 * kMin;
  f.Advance(quiet - 1);
  EXPECT_TRUE(f.flap.IsFlapping("gas-1"));
  f.Advance(quiet);
  EXPECT_FALSE(f.flap.IsFlapping("gas-1"));
  EXPECT_TRUE(f.flap.StateFor("gas-1")->recent.empty());
  // Four more transitions are not a new flapping; the fifth is, with a second signal.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(f.Transition("gas-high", "gas-1", quiet + i * kMin, i % 2 == 0));
  EXPECT_EQ(f.signals.size(), 1u);
  EXPECT_TRUE(f.Transition("gas-high", "gas-1", quiet + 4 * kMin, true));
  ASSERT_EQ(f.signals.size(), 2u);
  EXPECT_EQ(f.signals[1].id, "flap:gas-1:" + std::to_string(quiet));
}

TEST(FlappingDetectorTest, StabilityRunsOnTheSourceOfTheDevicesInput) {
  Fixture f;
  for (int i = 0; i < 5; ++i) f.Transition("gas-high", "gas-1", kT0 + i * kMin, i % 2 == 0, /*partition=*/1);
  ASSERT_TRUE(f.flap.IsFlapping("gas-1"));
  f.Advance(kT0 + 3 * 60 * kMin, /*partition=*/0);  // another partition far ahead
  EXPECT_TRUE(f.flap.IsFlapping("gas-1"));
  f.Advance(kT0 + 34 * kMin, /*partition=*/1);
  EXPECT_FALSE(f.flap.IsFlapping("gas-1"));
}

TEST(FlappingDetectorTest, ARestoredFlappingDeviceStillSuppressesAndRecovers) {
  Fixture before;
  for (int i = 0; i < 5; ++i) before.Transition("gas-high", "gas-1", kT0 + i * kMin, i % 2 == 0, 1);
  ASSERT_TRUE(before.flap.IsFlapping("gas-1"));

  Fixture after;
  ASSERT_TRUE(RuleHarness::CarryOverState(before.flap, after.flap).ok());
  ASSERT_TRUE(after.flap.IsFlapping("gas-1"));
  EXPECT_EQ(after.flap.StateFor("gas-1")->recent.size(), 5u);
  // The source is not known after a restart: stable once every source is past the deadline.
  after.Advance(kT0 + 10 * kMin, 0);
  after.Advance(kT0 + 60 * kMin, 1);
  EXPECT_TRUE(after.flap.IsFlapping("gas-1"));  // partition 0 lags
  after.Advance(kT0 + 34 * kMin - 1, 0);
  EXPECT_TRUE(after.flap.IsFlapping("gas-1"));
  after.Advance(kT0 + 34 * kMin, 0);
  EXPECT_FALSE(after.flap.IsFlapping("gas-1"));
  EXPECT_EQ(after.flap.stats().recovered, 1);
}

TEST(FlappingDetectorTest, ARestoredDeviceIsReArmedByItsNextTransition) {
  Fixture before;
  for (int i = 0; i < 5; ++i) before.Transition("gas-high", "gas-1", kT0 + i * kMin, i % 2 == 0, 1);
  Fixture after;
  ASSERT_TRUE(RuleHarness::CarryOverState(before.flap, after.flap).ok());
  after.Advance(kT0 + 5 * kMin, 0);  // partition 0 lags behind
  // A transition on partition 1: suppressed, and the deadline now runs on partition 1.
  EXPECT_TRUE(after.Transition("gas-high", "gas-1", kT0 + 6 * kMin, true, 1));
  after.Advance(kT0 + 36 * kMin, 1);
  EXPECT_FALSE(after.flap.IsFlapping("gas-1"));
}

TEST(FlappingDetectorTest, StateEncodingRoundTripsAndRejectsGarbage) {
  FlappingState s;
  s.phase = FlappingState::Phase::kFlapping;
  s.flapping_since_ms = kT0 + 4;
  s.last_transition_ms = kT0 + 9;
  s.recent = {{kT0, 0}, {kT0 + 9, 1}};
  auto back = FlappingState::Decode(s.Encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->phase, s.phase);
  EXPECT_EQ(back->flapping_since_ms, s.flapping_since_ms);
  EXPECT_EQ(back->last_transition_ms, s.last_transition_ms);
  ASSERT_EQ(back->recent.size(), 2u);
  EXPECT_EQ(back->recent[1].ts_ms, kT0 + 9);
  EXPECT_EQ(back->recent[1].rule, 1);
  EXPECT_TRUE(FlappingState::Decode("0 0 0 0").has_value());
  for (const char* bad : {"", "x", "2 0 0 0", "0 0 0 1", "0 0 0 1 5", "0 0 0 1 5:x", "0 0 0 0 junk"}) {
    EXPECT_FALSE(FlappingState::Decode(bad).has_value()) << bad;
  }
  Fixture f;
  EXPECT_FALSE(f.flap.Restore("gas-1", "garbage").ok());
}

TEST(FlappingDetectorTest, FactoryKeysAndConfigIdentity) {
  Config c = FlapConfig();
  FlappingRule other = FlapRule();
  other.id = "flap-2";
  other.transitions = 6;
  c.rules.flapping = {FlapRule(), other};
  RuleHarness h(c);
  auto rules = BuildFlappingRules(c.rules, h.city(), h.devices());
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[1]->id(), "flap-2");
  EXPECT_EQ(rules[0]->state_prefix(), "flap/");
  EXPECT_FALSE(rules[0]->SameConfig(*rules[1]));
  auto* flap = dynamic_cast<FlappingDetector*>(rules[0].get());
  ASSERT_NE(flap, nullptr);
  std::vector<Signal> out;
  RuleContext ctx = h.ContextFor(&out);
  flap->OnTransition("gas-high", h.devices().Intern("gas-1"), kT0, true, ctx);
  std::vector<std::string> keys;
  flap->ForEachStateKey([&](std::string k) { keys.push_back(std::move(k)); });
  EXPECT_EQ(keys, std::vector<std::string>{"flap/flap/gas-1"});
  EXPECT_GT(flap->StateBytes(), 0u);
}

// The RuleSet's gate in small: forwards each transition to the flapping
// detector, with the context of the input that caused it.
class ForwardingGate : public TransitionGate {
 public:
  ForwardingGate(RuleHarness& h, FlappingDetector& flap) : h_(h), flap_(flap) {}
  bool OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised) override {
    if (!flap_.Watches(rule_id)) return false;
    RuleContext ctx = h_.ContextFor(&signals, partition);
    return flap_.OnTransition(rule_id, device, ts_ms, raised, ctx);
  }
  std::vector<Signal> signals;  // raised by the flapping detector
  int partition = 0;            // of the reading being fed

 private:
  RuleHarness& h_;
  FlappingDetector& flap_;
};

TEST(FlappingDetectorTest, EndToEndAFlappingGasSensorStopsRaisingAlarms) {
  RuleHarness h(FlapConfig());
  ThresholdDetector gas(h.city().config().rules.threshold[1], h.city(), h.devices());  // gas-high: 500, for 0
  ASSERT_EQ(gas.id(), "gas-high");
  FlappingDetector flap(FlapRule(), h.city(), h.devices());
  ForwardingGate gate(h, flap);
  h.set_gate(&gate);
  std::vector<Signal> alarms;
  auto feed = [&](int64_t ts, double ppm) {
    for (Signal& s : h.Feed(gas, "gas-1", "gas_ppm", ts, ppm)) alarms.push_back(std::move(s));
    EXPECT_TRUE(h.AdvanceTo(flap, ts).empty());  // flapping signals go through the gate
  };
  // Toggling every minute: raise, clear, raise, clear, then the fifth transition flaps.
  for (int i = 0; i < 4; ++i) feed(kT0 + i * kMin, i % 2 == 0 ? 900 : 100);
  EXPECT_EQ(alarms.size(), 2u);
  EXPECT_TRUE(gate.signals.empty());
  feed(kT0 + 4 * kMin, 900);
  EXPECT_EQ(alarms.size(), 2u);  // suppressed
  ASSERT_EQ(gate.signals.size(), 1u);
  EXPECT_EQ(gate.signals[0].category, "device_flapping");
  EXPECT_EQ(gate.signals[0].explanation, "gas-1 toggled 5 times in 30m (gas-high)");
  // Still toggling: no alarm, no second flapping signal.
  for (int i = 5; i < 12; ++i) feed(kT0 + i * kMin, i % 2 == 0 ? 900 : 100);
  EXPECT_EQ(alarms.size(), 2u);
  EXPECT_EQ(gate.signals.size(), 1u);
  // The suppressed raise at 10 min held the alarm; its clear at 11 min is the last transition.
  EXPECT_EQ(flap.stats().suppressed, 4);
  EXPECT_EQ(flap.stats().transitions, 12);
  // Quiet (normal readings) for 30 minutes: stable again, and a real alarm gets through.
  for (int64_t t = 12; t <= 40; t += 4) feed(kT0 + t * kMin, 100);
  EXPECT_TRUE(flap.IsFlapping("gas-1"));
  feed(kT0 + 41 * kMin, 100);
  EXPECT_FALSE(flap.IsFlapping("gas-1"));
  feed(kT0 + 42 * kMin, 950);
  ASSERT_EQ(alarms.size(), 3u);
  EXPECT_EQ(alarms[2].rule_id, "gas-high");
  EXPECT_EQ(alarms[2].ts_ms, kT0 + 42 * kMin);
}

}  // namespace
}  // namespace cityloop::detect

#include "detect/window_detector.h"

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

// mean(water_level) over tumbling 10 min windows >= 0.30.
WindowRule MeanRule() {
  WindowRule r;
  r.id = "wl-mean";
  r.sensor_kind = "water_level";
  r.category = "waterlogging";
  r.size_ms = 10 * kMin;
  r.aggregate = Aggregate::kMean;
  r.level = 0.30;
  return r;
}

// --- Table ------------------------------------------------------------------

// One step: a reading, or (device null) event time moving on.
struct Step {
  const char* device;
  int64_t t;  // event time after kT0
  double value = 0;
  int partition = 0;
  std::vector<std::string> fires = {};  // raised by this step: "<device>@<window end after kT0>"
};

Step Read(const char* device, int64_t t, double value, std::vector<std::string> fires = {}, int partition = 0) {
  return {device, t, value, partition, std::move(fires)};
}
Step Wm(int64_t t, std::vector<std::string> fires = {}, int partition = 0) {
  return {nullptr, t, 0, partition, std::move(fires)};
}
// Readings of wl-1 one a minute from `from`, then `last` (the step that fires).
std::vector<Step> EveryMinute(int64_t from, const std::vector<double>& values, Step last) {
  std::vector<Step> out;
  int64_t t = from;
  for (double v : values) {
    out.push_back(Read("wl-1", t, v));
    t += kMin;
  }
  out.push_back(std::move(last));
  return out;
}
std::vector<Step> Then(std::vector<Step> a, const std::vector<Step>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
// A setup judging `aggregate` against level.
std::function<void(WindowRule&)> Judging(Aggregate aggregate, ThresholdDirection direction, double level,
                                         int min_samples = 1, double percentile = 95) {
  return [=](WindowRule& r) {
    r.aggregate = aggregate;
    r.direction = direction;
    r.level = level;
    r.min_samples = min_samples;
    r.percentile = percentile;
  };
}
constexpr ThresholdDirection kAbove = ThresholdDirection::kAbove;
constexpr ThresholdDirection kBelow = ThresholdDirection::kBelow;

struct WindowCase {
  const char* name;
  std::vector<Step> steps;
  std::function<void(WindowRule&)> setup = nullptr;
  int64_t lateness_ms = 0;
  bool suppress = false;
  std::optional<Transitions> transitions = std::nullopt;
  WindowRuleStats stats = {};  // only late_samples, duplicates, outside and skipped are compared
  int late = 0;                // dropped by the harness
};

// [0, 10m) mean 0.37 raises at 10m, [10m, 20m) mean 0.13 clears, [20m, 30m) raises.
const std::vector<Step> kEpisodes = {
    Read("wl-1", 0, 0.2),          Read("wl-1", 3 * kMin, 0.4),  Read("wl-1", 6 * kMin, 0.5),
    Read("wl-1", 10 * kMin, 0.1, {"wl-1@10m"}), Read("wl-1", 13 * kMin, 0.1), Read("wl-1", 16 * kMin, 0.2),
    Read("wl-1", 20 * kMin, 0.9),  Read("wl-1", 25 * kMin, 0.9), Wm(30 * kMin, {"wl-1@30m"})};

std::vector<Step> Silenced(std::vector<Step> steps) {
  for (Step& s : steps) s.fires.clear();
  return steps;
}

std::vector<WindowCase> WindowCases() {
  return {
      {.name = "TumblingWindowsAreJudgedWhenTheyClose",
       .steps = kEpisodes,
       .transitions = Transitions{{10 * kMin, true}, {20 * kMin, false}, {30 * kMin, true}}},
      {.name = "ASuppressingGateHidesTheSignalsButKeepsTheAlarm",
       .steps = Silenced(kEpisodes),
       .suppress = true,
       .transitions = Transitions{{10 * kMin, true}, {20 * kMin, false}, {30 * kMin, true}}},
      {.name = "OutOfOrderReadingsWithinTheLatenessCount",
       // The 1.0 at 9m45s arrives after 10m30s (watermark 9m30s): in time, mean 0.4.
       // The one at 9m50s arrives after the window closed (watermark 10m): dropped.
       .steps = {Read("wl-1", 0, 0.1), Read("wl-1", 5 * kMin, 0.1), Read("wl-1", 10 * kMin + 30 * kSec, 0.1),
                 Read("wl-1", 9 * kMin + 45 * kSec, 1.0), Read("wl-1", 11 * kMin, 0.1, {"wl-1@10m"}),
                 Read("wl-1", 9 * kMin + 50 * kSec, 1.0)},
       .lateness_ms = kMin,
       .late = 1},
      {.name = "AReadingAheadOfTheWatermarkKeepsEarlierWindowsOpen",
       // The device is quiet from 0 to 50m; when it reports at 50m (watermark 40m) the
       // windows it skips end at [30m, 40m): [40m, 50m) is still open for the 45m reading.
       .steps = {Read("wl-1", 0, 0.1), Wm(21 * kMin), Wm(45 * kMin), Read("wl-1", 50 * kMin, 0.1),
                 Read("wl-1", 45 * kMin, 0.9), Wm(60 * kMin, {"wl-1@50m"})},
       .lateness_ms = 10 * kMin},
      {.name = "ADuplicateKeepsTheFirstValue",
       .steps = {Read("wl-1", 0, 0.1), Read("wl-1", kMin, 0.1), Read("wl-1", kMin, 0.9), Wm(10 * kMin)},
       .stats = {.duplicates = 1}},
      {.name = "SlidingWindowsOverlap",
       // Windows [e - 10m, e) every 5m: [-5m, 5m) 0.1; [0, 10m) 0.37 raises; [5m, 15m) 0.4 holds;
       // [10m, 20m) 0.2 clears; [15m, 25m) 0.53 raises.
       .steps = {Read("wl-1", kMin, 0.1), Read("wl-1", 6 * kMin, 0.5), Read("wl-1", 8 * kMin, 0.5),
                 Read("wl-1", 11 * kMin, 0.2, {"wl-1@10m"}), Read("wl-1", 16 * kMin, 0.2),
                 Read("wl-1", 21 * kMin, 0.7), Read("wl-1", 23 * kMin, 0.7), Wm(25 * kMin, {"wl-1@25m"})},
       .setup = [](WindowRule& r) { r.slide_ms = 5 * kMin; },
       .transitions = Transitions{{10 * kMin, true}, {20 * kMin, false}, {25 * kMin, true}}},
      {.name = "HoppingWindowsIgnoreReadingsInTheirGaps",
       // Windows [5m, 10m), [15m, 20m), ...: the 0.0 at 1m and 12m count nowhere.
       .steps = {Read("wl-1", kMin, 0.0), Read("wl-1", 6 * kMin, 0.5), Wm(10 * kMin, {"wl-1@10m"}),
                 Read("wl-1", 12 * kMin, 0.0), Read("wl-1", 16 * kMin, 0.4), Wm(20 * kMin)},
       .setup = [](WindowRule& r) { r.size_ms = 5 * kMin; r.slide_ms = 10 * kMin; },
       .stats = {.outside = 2}},
      {.name = "MinSamplesGatesTheJudgement",
       // Two readings in [0, 10m): not judged. Three in [10m, 20m): raises. One low one in
       // [20m, 30m) is not judged either, so it does not clear.
       .steps = {Read("wl-1", 0, 0.9), Read("wl-1", 5 * kMin, 0.9), Wm(10 * kMin), Read("wl-1", 11 * kMin, 0.9),
                 Read("wl-1", 12 * kMin, 0.9), Read("wl-1", 13 * kMin, 0.9), Wm(20 * kMin, {"wl-1@20m"}),
                 Read("wl-1", 21 * kMin, 0.0), Wm(30 * kMin), Read("wl-1", 31 * kMin, 0.9),
                 Read("wl-1", 32 * kMin, 0.9), Read("wl-1", 33 * kMin, 0.9), Wm(40 * kMin)},
       .setup = Judging(Aggregate::kMean, kAbove, 0.30, /*min_samples=*/3),
       .transitions = Transitions{{20 * kMin, true}},
       .stats = {.skipped = 2}},
      {.name = "CountBelowJudgesEmptyWindows",
       // Every window is judged, min_samples or not: the silence of [10m, 20m) raises.
       .steps = {Read("wl-1", 0, 1), Read("wl-1", 2 * kMin, 1), Read("wl-1", 4 * kMin, 1),
                 Read("wl-1", 6 * kMin, 1), Read("wl-1", 8 * kMin, 1), Wm(20 * kMin, {"wl-1@20m"}), Wm(30 * kMin),
                 Read("wl-1", 31 * kMin, 1), Read("wl-1", 33 * kMin, 1), Read("wl-1", 35 * kMin, 1),
                 Read("wl-1", 37 * kMin, 1), Wm(40 * kMin)},
       .setup = Judging(Aggregate::kCount, kBelow, 2, /*min_samples=*/3),
       .transitions = Transitions{{20 * kMin, true}, {40 * kMin, false}}},
      {.name = "PercentileIsNearestRank",
       // p90 of 0.1..1.0 is the 9th: 0.9 raises; p90 of nine 0.1 and one 1.0 is 0.1: clears.
       .steps = Then(EveryMinute(0, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0},
                                 Read("wl-1", 10 * kMin, 1.0, {"wl-1@10m"})),
                     EveryMinute(11 * kMin, std::vector<double>(9, 0.1), Wm(20 * kMin))),
       .setup = Judging(Aggregate::kPercentile, kAbove, 0.8, 1, /*percentile=*/90),
       .transitions = Transitions{{10 * kMin, true}, {20 * kMin, false}}},
      {.name = "MaxSeesASingleSpike",
       .steps = {Read("wl-1", 0, 0.1), Read("wl-1", kMin, 0.95), Read("wl-1", 2 * kMin, 0.1),
                 Wm(10 * kMin, {"wl-1@10m"})},
       .setup = Judging(Aggregate::kMax, kAbove, 0.9)},
      {.name = "MinBelow",
       .steps = {Read("wl-1", 0, 0.5), Read("wl-1", kMin, 0.05), Wm(10 * kMin, {"wl-1@10m"}),
                 Read("wl-1", 11 * kMin, 0.5), Wm(20 * kMin)},
       .setup = Judging(Aggregate::kMin, kBelow, 0.1),
       .transitions = Transitions{{10 * kMin, true}, {20 * kMin, false}}},
      {.name = "SumAdds",
       .steps = {Read("wl-1", 0, 0.5), Read("wl-1", kMin, 0.25), Wm(10 * kMin), Read("wl-1", 11 * kMin, 0.5),
                 Read("wl-1", 12 * kMin, 0.5), Wm(20 * kMin, {"wl-1@20m"})},
       .setup = Judging(Aggregate::kSum, kAbove, 1.0)},
      {.name = "OverridesSetTheLevelPerDevice",
       .steps = {Read("wl-1", 0, 0.5), Read("wl-2", 0, 0.5), Wm(10 * kMin, {"wl-1@10m"})},
       .setup = [](WindowRule& r) { r.overrides["wl-2"] = 0.6; }},
      {.name = "RestrictedToItsDevices",
       .steps = {Read("wl-1", 0, 0.5), Read("wl-2", 0, 0.5), Wm(10 * kMin, {"wl-2@10m"})},
       .setup = [](WindowRule& r) { r.devices = {"wl-2"}; }},
      {.name = "EachDeviceRunsOnTheWatermarkOfItsSource",
       .steps = {Read("wl-1", 0, 0.5), Read("wl-2", 0, 0.5, {}, 1), Wm(10 * kMin, {"wl-1@10m"}),
                 Wm(9 * kMin, {}, 1), Wm(10 * kMin, {"wl-2@10m"}, 1)}},
      {.name = "AReadingForAJudgedWindowIsLate",
       // Partition 1 has no watermark yet, so the harness lets the 5m reading through; its
       // window was judged on partition 0. The device now runs on partition 1.
       .steps = {Read("wl-1", 0, 0.1), Read("wl-1", 10 * kMin, 0.1), Read("wl-1", 5 * kMin, 0.9, {}, 1),
                 Wm(20 * kMin, {}, 0), Read("wl-1", 15 * kMin, 0.9, {}, 1), Wm(20 * kMin, {"wl-1@20m"}, 1)},
       .stats = {.late_samples = 1}},
  };
}

class WindowTableTest : public ::testing::TestWithParam<WindowCase> {};

TEST_P(WindowTableTest, RaisesTheExpectedSignals) {
  const WindowCase& c = GetParam();
  WindowRule rule = MeanRule();
  if (c.setup) c.setup(rule);
  RuleHarness h(cityloop::testing::TestConfig(), c.lateness_ms);
  WindowDetector det(rule, h.city(), h.devices());
  RecordingGate gate(c.suppress);
  h.set_gate(&gate);
  for (const Step& step : c.steps) {
    SCOPED_TRACE((step.device ? std::string(step.device) : std::string("watermark")) + " at " +
                 FormatSpanMs(step.t) + " on partition " + std::to_string(step.partition));
    const auto signals = step.device ? h.Feed(det, step.device, "water_level", kT0 + step.t, step.value, step.partition)
                                     : h.AdvanceTo(det, kT0 + step.t, step.partition);
    std::vector<std::string> got;
    for (const Signal& s : signals) {
      got.push_back(s.device_id + "@" + FormatSpanMs(s.fired_ms - kT0));
      EXPECT_EQ(s.id, rule.id + ":" + s.device_id + ":" + std::to_string(s.fired_ms));
      EXPECT_EQ(s.ts_ms, s.fired_ms - rule.size_ms);
    }
    EXPECT_EQ(got, step.fires);
  }
  if (c.transitions) {
    EXPECT_EQ(gate.seen(), *c.transitions);
  }
  EXPECT_EQ(det.stats().late_samples, c.stats.late_samples);
  EXPECT_EQ(det.stats().duplicates, c.stats.duplicates);
  EXPECT_EQ(det.stats().outside, c.stats.outside);
  EXPECT_EQ(det.stats().skipped, c.stats.skipped);
  EXPECT_EQ(h.late(), c.late);
}

INSTANTIATE_TEST_SUITE_P(Steps, WindowTableTest, ::testing::ValuesIn(WindowCases()),
                         [](const ::testing::TestParamInfo<WindowCase>& param) { return std::string(param.param.name); });

// --- Details ----------------------------------------------------------------

TEST(WindowDetectorTest, TheSignalDescribesTheWindow) {
  RuleHarness h;
  WindowDetector det(MeanRule(), h.city(), h.devices());
  h.Feed(det, "wl-1", "water_level", kT0, 0.2);
  h.Feed(det, "wl-1", "water_level", kT0 + 3 * kMin, 0.4);
  h.Feed(det, "wl-1", "water_level", kT0 + 6 * kMin, 0.5, /*partition=*/0);
  const auto s = h.AdvanceTo(det, kT0 + 10 * kMin);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "wl-mean:wl-1:" + std::to_string(kT0 + 10 * kMin));
  EXPECT_EQ(s[0].rule_id, "wl-mean");
  EXPECT_EQ(s[0].category, "waterlogging");
  EXPECT_EQ(s[0].priority, Priority::kHigh);
  EXPECT_EQ(s[0].device_id, "wl-1");
  EXPECT_EQ(s[0].sensor_kind, "water_level");
  EXPECT_EQ(s[0].source, SignalSource::kSensor);
  EXPECT_EQ(s[0].ts_ms, kT0);
  EXPECT_EQ(s[0].fired_ms, kT0 + 10 * kMin);
  const Device* wl1 = h.city().FindDevice("wl-1");
  EXPECT_EQ(s[0].cell, h.city().CellAt(wl1->position)->index);
  EXPECT_DOUBLE_EQ(s[0].position.lat, wl1->position.lat);
  EXPECT_EQ(s[0].input.offset, 2);  // the device's newest reading
  EXPECT_NEAR(s[0].value, 1.1 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(s[0].threshold, 0.30);
  // kT0 is 08:00Z: 16:00 in the city (+08:00).
  EXPECT_EQ(s[0].explanation, "mean(water_level) over [16:00, 16:10) = 0.366667 >= 0.3 (3 readings)");
  EXPECT_EQ(s[0].attributes.at("aggregate"), "mean");
  EXPECT_EQ(s[0].attributes.at("window"), "10m");
  EXPECT_EQ(s[0].attributes.at("count"), "3");

  WindowRule p95 = MeanRule();
  p95.id = "wl-p95";
  p95.aggregate = Aggregate::kPercentile;
  p95.percentile = 95;
  p95.size_ms = 90 * kSec;
  p95.slide_ms = 30 * kSec;
  p95.direction = ThresholdDirection::kBelow;
  p95.level = 0.1;
  WindowDetector below(p95, h.city(), h.devices());
  h.Feed(below, "wl-9", "water_level", kT0 + 11 * kMin, 0.05);  // not registered: no position
  const auto b = h.AdvanceTo(below, kT0 + 11 * kMin + 30 * kSec);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].explanation, "p95(water_level) over [16:10, 16:11:30) = 0.05 <= 0.1 (1 readings)");
  EXPECT_EQ(b[0].attributes.at("aggregate"), "p95");
  EXPECT_EQ(b[0].attributes.at("window"), "90s/30s");
}

// Persists every dirty state of det and restores it into a fresh detector.
std::unique_ptr<WindowDetector> RollOver(WindowDetector& det, RuleHarness& h, size_t* entries_out = nullptr) {
  auto fresh = std::make_unique<WindowDetector>(det.config(), h.city(), h.devices());
  EXPECT_TRUE(RuleHarness::CarryOverState(det, *fresh, entries_out).ok());
  return fresh;
}

TEST(WindowDetectorTest, StateSurvivesARestoreMidEpisode) {
  RuleHarness h;
  RecordingGate gate;
  h.set_gate(&gate);
  auto det = std::make_unique<WindowDetector>(MeanRule(), h.city(), h.devices());
  h.Feed(*det, "wl-1", "water_level", kT0, 0.9);
  ASSERT_EQ(h.Feed(*det, "wl-1", "water_level", kT0 + 10 * kMin, 0.1).size(), 1u);  // [0, 10m) raises
  h.Feed(*det, "wl-1", "water_level", kT0 + 12 * kMin, 0.1);
  size_t n = 0;
  det = RollOver(*det, h, &n);
  EXPECT_EQ(n, 1u);
  ASSERT_NE(det->StateFor("wl-1"), nullptr);
  EXPECT_EQ(det->StateFor("wl-1")->phase, WindowState::Phase::kAlarm);
  EXPECT_EQ(det->StateFor("wl-1")->next_end, kT0 + 20 * kMin);
  EXPECT_FALSE(det->DeadlineOf("wl-1").has_value());  // its source id is not known yet
  // Another device reporting on partition 0 binds it: the deadline is back.
  h.Feed(*det, "wl-2", "water_level", kT0 + 15 * kMin, 0.1);
  EXPECT_EQ(det->DeadlineOf("wl-1"), kT0 + 20 * kMin);
  // [10m, 20m) holds the readings of both sides of the restore: mean 0.1 clears, no signal.
  EXPECT_TRUE(h.AdvanceTo(*det, kT0 + 20 * kMin).empty());
  EXPECT_EQ(gate.seen(), (Transitions{{10 * kMin, true}, {20 * kMin, false}}));
  h.Feed(*det, "wl-1", "water_level", kT0 + 21 * kMin, 0.9);
  det = RollOver(*det, h);
  const auto s = h.Feed(*det, "wl-1", "water_level", kT0 + 30 * kMin, 0.9);  // its own reading binds it
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].fired_ms, kT0 + 30 * kMin);
  EXPECT_DOUBLE_EQ(s[0].value, 0.9);  // [20m, 30m) holds the 21m reading alone
  EXPECT_FALSE(det->Restore("wl-1", "garbage").ok());
}

TEST(WindowDetectorTest, ARestoredDeviceThatNeverReportsIsJudgedOnTheLowestWatermark) {
  RuleHarness h;
  auto det = std::make_unique<WindowDetector>(MeanRule(), h.city(), h.devices());
  h.AdvanceTo(*det, kT0 + 5 * kMin, /*partition=*/0);
  h.Feed(*det, "wl-2", "water_level", kT0 + kMin, 0.9, /*partition=*/1);
  h.Feed(*det, "wl-2", "water_level", kT0 + 2 * kMin, 0.9, /*partition=*/1);
  det = RollOver(*det, h);
  // No reading reaches the rule again: only event time moves. Partition 1 is past
  // the window's end but partition 0 is not, and the device's source is not known.
  EXPECT_TRUE(h.AdvanceTo(*det, kT0 + 12 * kMin, 1).empty());
  const auto s = h.AdvanceTo(*det, kT0 + 11 * kMin, 0);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "wl-mean:wl-2:" + std::to_string(kT0 + 10 * kMin));
  EXPECT_EQ(s[0].input.partition, 1);
}

TEST(WindowDetectorTest, KeepsOnlyWhatOpenWindowsNeed) {
  RuleHarness h;
  WindowRule rule = MeanRule();
  rule.slide_ms = 5 * kMin;
  WindowDetector det(rule, h.city(), h.devices());
  for (int i = 0; i <= 60; ++i) h.Feed(det, "wl-1", "water_level", kT0 + i * kMin, 0.1);
  // Watermark 60m: the oldest window not judged is [55m, 65m).
  const WindowState* st = det.StateFor("wl-1");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->next_end, kT0 + 65 * kMin);
  EXPECT_EQ(st->samples.oldest().ts_ms, kT0 + 55 * kMin);
  EXPECT_EQ(st->samples.size(), 6u);
  EXPECT_EQ(det.DeadlineOf("wl-1"), kT0 + 65 * kMin);
  EXPECT_EQ(det.stats().judged, 12);  // ends 5m .. 60m: the first reading opened [-5m, 5m)
  std::vector<std::string> keys;
  det.ForEachStateKey([&](std::string k) { keys.push_back(std::move(k)); });
  EXPECT_EQ(keys, std::vector<std::string>{"win/wl-mean/wl-1"});
  EXPECT_GT(det.StateBytes(), 0u);
  // A device with nothing left to judge holds no deadline until it reports again.
  WindowDetector quiet(MeanRule(), h.city(), h.devices());
  h.Feed(quiet, "wl-2", "water_level", kT0 + 61 * kMin, 0.1);
  h.AdvanceTo(quiet, kT0 + 75 * kMin);
  EXPECT_FALSE(quiet.DeadlineOf("wl-2").has_value());
  EXPECT_EQ(quiet.StateFor("wl-2")->next_end, kT0 + 80 * kMin);
  h.Feed(quiet, "wl-2", "water_level", kT0 + 76 * kMin, 0.9);
  EXPECT_EQ(quiet.DeadlineOf("wl-2"), kT0 + 80 * kMin);
  EXPECT_EQ(h.AdvanceTo(quiet, kT0 + 80 * kMin).size(), 1u);
}

TEST(WindowDetectorTest, TheFactoryBuildsOneRulePerEntry) {
  RuleHarness h;
  RulesOptions rules;
  rules.window = {MeanRule(), MeanRule()};
  rules.window[1].id = "wl-max";
  rules.window[1].aggregate = Aggregate::kMax;
  auto built = BuildWindowRules(rules, h.city(), h.devices());
  ASSERT_EQ(built.size(), 2u);
  EXPECT_EQ(built[0]->id(), "wl-mean");
  EXPECT_EQ(built[1]->id(), "wl-max");
  EXPECT_EQ(built[0]->state_prefix(), "win/");
  EXPECT_EQ(built[1]->WatchedSensorKinds(), std::vector<std::string>{"water_level"});
  EXPECT_FALSE(built[0]->SameConfig(*built[1]));
}

}  // namespace
}  // namespace cityloop::detect

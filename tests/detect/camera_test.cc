#include "detect/camera_detector.h"

#include <gtest/gtest.h>

#include "tests/detect/rule_harness.h"

namespace cityloop::detect {
namespace {

using cityloop::testing::kSec;
using cityloop::testing::kT0;
using cityloop::testing::RuleHarness;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestConfig;

Config CameraCity() {
  Config c = TestConfig();
  c.city.cameras = {{"cam-1", TestCellCenter(1, 1), "Cam 1"}, {"cam-2", TestCellCenter(2, 2), "Cam 2"}};
  c.city.catalogue.push_back({"fire_candidate", "Fire candidate", "0602", "city_management", Priority::kHigh});
  return c;
}

CameraRule FireRule() {
  CameraRule r;
  r.id = "camera-fire";
  r.category = "fire_candidate";
  r.labels = {"fire", "smoke"};
  r.min_score = 0.6;
  r.min_detections = 3;
  r.min_duration_ms = 10 * kSec;
  r.cooldown_ms = 60 * kSec;
  return r;
}

class CameraTest : public ::testing::Test {
 protected:
  CameraTest() : h_(CameraCity()), rule_(FireRule(), h_.city(), h_.devices()) {}

  // One message from camera at ts with one detection (label, score, bbox).
  std::vector<Signal> See(const std::string& camera, int64_t ts, const std::string& label, double score,
                          std::array<double, 4> bbox = {0.4, 0.4, 0.1, 0.1}) {
    CameraDetections d;
    d.camera_id = camera;
    d.ts_ms = ts;
    d.position = h_.city().FindCamera(camera)->position;
    d.cell = h_.city().CellAt(d.position)->index;
    d.input = {"city.camera.detections", 0, offset_++};
    if (!label.empty()) d.detections.push_back({label, score, {bbox[0], bbox[1], bbox[2], bbox[3]}, "t1"});
    const uint16_t source = h_.time().Source("city.camera.detections", 0);
    h_.time().Observe(source, ts, 0);
    std::vector<Signal> out;
    RuleContext ctx;
    ctx.city = &h_.city();
    ctx.devices = &h_.devices();
    ctx.time = &h_.time();
    ctx.source = source;
    ctx.signals = &out;
    rule_.OnDetections(d, h_.devices().Intern(camera), ctx);
    return out;
  }

  RuleHarness h_;
  CameraDetector rule_;
  int64_t offset_ = 0;
};

TEST_F(CameraTest, FiresAfterEnoughMatchingFramesOverTheMinimumDuration) {
  EXPECT_TRUE(See("cam-1", kT0, "fire", 0.7).empty());
  EXPECT_TRUE(See("cam-1", kT0 + 4 * kSec, "smoke", 0.9).empty());
  EXPECT_TRUE(See("cam-1", kT0 + 8 * kSec, "fire", 0.8).empty());  // three frames but only 8 s
  auto s = See("cam-1", kT0 + 10 * kSec, "fire", 0.65);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].source, SignalSource::kCamera);
  EXPECT_EQ(s[0].category, "fire_candidate");
  EXPECT_EQ(s[0].device_id, "cam-1");
  EXPECT_EQ(s[0].ts_ms, kT0);
  EXPECT_EQ(s[0].fired_ms, kT0 + 10 * kSec);
  EXPECT_DOUBLE_EQ(s[0].value, 0.9);  // the best score of the episode
  EXPECT_EQ(s[0].id, "camera-fire:cam-1:" + std::to_string(kT0));
  EXPECT_EQ(s[0].attributes.at("label"), "fire");
  EXPECT_EQ(s[0].attributes.at("track_id"), "t1");
  EXPECT_EQ(s[0].cell, 5);
  // Still burning: no second signal.
  EXPECT_TRUE(See("cam-1", kT0 + 20 * kSec, "fire", 0.9).empty());
}

TEST_F(CameraTest, LowScoresOtherLabelsAndOtherCamerasDoNotCount) {
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(See("cam-1", kT0 + i * 5 * kSec, "fire", 0.5).empty());
    EXPECT_TRUE(See("cam-2", kT0 + i * 5 * kSec, "vehicle", 0.99).empty());
  }
}

TEST_F(CameraTest, CooldownEndsTheEpisodeSoANewOneFiresAgain) {
  See("cam-1", kT0, "fire", 0.7);
  See("cam-1", kT0 + 5 * kSec, "fire", 0.7);
  ASSERT_EQ(See("cam-1", kT0 + 10 * kSec, "fire", 0.7).size(), 1u);
  EXPECT_TRUE(See("cam-1", kT0 + 30 * kSec, "", 0).empty());  // nothing seen
  // 70 s after the last match: the episode is over; a new one builds up.
  EXPECT_TRUE(See("cam-1", kT0 + 80 * kSec, "fire", 0.7).empty());
  EXPECT_TRUE(See("cam-1", kT0 + 85 * kSec, "fire", 0.7).empty());
  EXPECT_EQ(See("cam-1", kT0 + 90 * kSec, "fire", 0.7).size(), 1u);
}

TEST_F(CameraTest, OutOfOrderAndDuplicateMessagesAreIgnored) {
  See("cam-1", kT0 + 5 * kSec, "fire", 0.7);
  EXPECT_TRUE(See("cam-1", kT0, "fire", 0.7).empty());
  EXPECT_TRUE(See("cam-1", kT0 + 5 * kSec, "fire", 0.7).empty());
  EXPECT_EQ(rule_.StateFor("cam-1")->matches, 1);
}

TEST(CameraZone, OnlyObjectsStandingInTheZoneCount) {
  CameraRule r = FireRule();
  r.min_detections = 1;
  r.min_duration_ms = 0;
  r.zone = std::vector<double>{0.0, 0.5, 0.5, 0.5};  // the lower-left quarter
  RuleHarness h(CameraCity());
  CameraDetector rule(r, h.city(), h.devices());
  CameraDetections d;
  d.camera_id = "cam-1";
  d.ts_ms = kT0;
  d.cell = 5;
  // Bottom-centre (0.75, 0.6): outside; then (0.25, 0.9): inside.
  d.detections = {{"fire", 0.9, {0.7, 0.4, 0.1, 0.2}, ""}};
  std::vector<Signal> out;
  RuleContext ctx;
  ctx.city = &h.city();
  ctx.devices = &h.devices();
  ctx.signals = &out;
  rule.OnDetections(d, h.devices().Intern("cam-1"), ctx);
  EXPECT_TRUE(out.empty());
  d.ts_ms += kSec;
  d.detections = {{"fire", 0.9, {0.2, 0.7, 0.1, 0.2}, ""}};
  rule.OnDetections(d, h.devices().Intern("cam-1"), ctx);
  EXPECT_EQ(out.size(), 1u);
}

}  // namespace
}  // namespace cityloop::detect

// Frame analytics against rendered scenes with ground truth: each detector
// raises its event within a stated delay, in the right zone and category,
// and the scenes with only noise, lighting changes and traffic raise nothing.
#include "detect/camera/frame_analyzer.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/camera_scene.h"
#include "core/city.h"
#include "core/config.h"
#include "detect/camera/camera_analytics.h"
#include "detect/camera/scene_renderer.h"

namespace cityloop::detect::camera {
namespace {

constexpr int64_t kT0 = 1764316800000;  // 16:00 in the city (UTC+8)
constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;

// The example config's camera zones, drawn against the renderer's street.
constexpr const char* kCity = R"(city:
  utc_offset: "+08:00"
  grid: {origin: {lat: 28.17, lon: 112.95}, cell_size_m: 500, rows: 2, cols: 2}
  districts:
    - id: furong
      code: "430102"
      default_department: city_management
      streets:
        - id: s1
          code: "001"
          communities:
            - {id: c1, code: "001", rows: [0, 1], cols: [0, 1]}
  departments:
    - {id: city_management}
  catalogue:
    - {id: illegal_parking, department: city_management}
    - {id: road_obstacle, department: city_management}
    - {id: crowd_gathering, department: city_management}
    - {id: traffic_congestion, department: city_management}
    - {id: wrong_way_driving, department: city_management}
    - {id: fire_candidate, department: city_management, confirm: true}
    - {id: zone_intrusion, department: city_management}
    - {id: camera_fault, department: city_management}
  cameras:
    - id: square
      lat: 28.171
      lon: 112.951
      zones:
        - id: kerb
          polygon: [[0.02, 0.66], [0.28, 0.66], [0.28, 0.86], [0.02, 0.86]]
          detectors: [stationary]
          min_area: 0.006
          dwell: 30s
        - id: plaza
          polygon: [[0.32, 0.66], [0.98, 0.66], [0.98, 1.0], [0.32, 1.0]]
          detectors: [crowd]
          min_area: 0.01
        - id: walk
          polygon: [[0.0, 0.86], [1.0, 0.86], [1.0, 1.0], [0.0, 1.0]]
          detectors: [intrusion]
          schedule: [0, 1]
      masks:
        - [[0.0, 0.0], [0.32, 0.0], [0.32, 0.06], [0.0, 0.06]]
    - id: yard
      lat: 28.171
      lon: 112.951
      zones:
        - id: footway
          polygon: [[0.0, 0.86], [1.0, 0.86], [1.0, 1.0], [0.0, 1.0]]
          detectors: [intrusion]
          category: zone_intrusion
          schedule: [16, 17]
          dwell: 2s
    - id: street
      lat: 28.171
      lon: 112.951
      zones:
        - id: shopfronts
          polygon: [[0.0, 0.0], [1.0, 0.0], [1.0, 0.45], [0.0, 0.45]]
          detectors: [fire]
    - id: road
      lat: 28.171
      lon: 112.951
      zones:
        - id: northbound
          polygon: [[0.0, 0.46], [1.0, 0.46], [1.0, 0.64], [0.0, 0.64]]
          detectors: [congestion, wrong_way]
          direction: [-1, 0]
          min_area: 0.004
        - id: southbound
          polygon: [[0.30, 0.66], [1.0, 0.66], [1.0, 0.84], [0.30, 0.84]]
          detectors: [stationary]
          category: road_obstacle
          min_area: 0.002
          dwell: 30s
        - id: southbound-flow
          polygon: [[0.30, 0.66], [1.0, 0.66], [1.0, 0.84], [0.30, 0.84]]
          detectors: [wrong_way]
          direction: [1, 0]
          min_area: 0.004
camera:
  snapshots: {keep: 3}
)";

std::shared_ptr<const CityModel> TestCity() {
  static const std::shared_ptr<const CityModel> city = [] {
    auto loaded = LoadConfigText(kCity, "cameras.yaml");
    if (!loaded.config) {
      std::string errors;
      for (const auto& e : loaded.errors) errors += e.ToString() + "\n";
      throw std::runtime_error(errors);
    }
    return CityModel::Build(*loaded.config).value();
  }();
  return city;
}

struct Seen {
  int64_t ts_ms;
  FrameEvent event;
};

// One camera, its renderer and analyzer, driven frame by frame at 5 fps.
class Scene {
 public:
  explicit Scene(const std::string& camera_id, double traffic = 1.0, uint64_t seed = 7)
      : camera_(*TestCity()->FindCamera(camera_id)),
        renderer_(Spec(camera_id, traffic, seed)),
        analyzer_(std::make_unique<CameraAnalyzer>(camera_, TestCity()->config().camera, 480)) {}

  void Add(SceneEventKind kind, SceneBox region, int64_t start, int64_t end) {
    events_.push_back({kind, region, start, end});
  }
  // Renders and analyses every frame in [from, to).
  void Run(int64_t from, int64_t to, int64_t step = 200) {
    for (int64_t t = from; t < to; t += step) Frame(t, renderer_.RenderJpeg(t, events_));
  }
  FrameResult Frame(int64_t t, const std::string& jpeg) {
    std::vector<FrameEvent> out;
    FrameResult r = analyzer_->Analyze(jpeg, t, &out);
    for (auto& e : out) seen_.push_back({t, std::move(e)});
    return r;
  }
  std::string Jpeg(int64_t t) const { return renderer_.RenderJpeg(t, events_); }
  void Restart() {
    auto fresh = std::make_unique<CameraAnalyzer>(camera_, TestCity()->config().camera, 480);
    for (const auto& e : analyzer_->TakeDirty()) {
      if (e.value) fresh->Restore(e.key, *e.value);
    }
    analyzer_ = std::move(fresh);
  }

  CameraAnalyzer& analyzer() { return *analyzer_; }
  const std::vector<Seen>& seen() const { return seen_; }
  // Events of a detector and phase.
  std::vector<Seen> Of(const std::string& detector, EventTransition::Kind kind) const {
    std::vector<Seen> out;
    for (const Seen& s : seen_) {
      if (s.event.detector == detector && s.event.transition.kind == kind) out.push_back(s);
    }
    return out;
  }
  std::string Describe() const {
    std::string d;
    for (const Seen& s : seen_) {
      d += "  +" + std::to_string((s.ts_ms - kT0) / 1000) + "s " + s.event.zone + " " + s.event.detector + " " +
           TransitionName(s.event.transition.kind) + " (" + s.event.value_text + ")\n";
    }
    return d.empty() ? "  (none)\n" : d;
  }

 private:
  static SceneSpec Spec(const std::string& id, double traffic, uint64_t seed) {
    SceneSpec s;
    s.camera_id = id;
    s.seed = seed;
    s.traffic = traffic;
    return s;
  }
  const Camera& camera_;
  SceneRenderer renderer_;
  std::unique_ptr<CameraAnalyzer> analyzer_;
  std::vector<SceneEvent> events_;
  std::vector<Seen> seen_;
};

using K = EventTransition::Kind;

// Every camera's detectors over traffic, sensor noise, the slow daylight
// drift and a light switched on and off: nothing to report.
TEST(FrameAnalyzer, TrafficNoiseAndLightingRaiseNothing) {
  for (const char* camera : {"square", "street", "road"}) {
    SCOPED_TRACE(camera);
    Scene scene(camera);
    scene.Add(SceneEventKind::kLightSwitch, {0, 0, 1, 1}, kT0 + 90 * kSec, kT0 + 150 * kSec);
    scene.Run(kT0, kT0 + 200 * kSec);
    EXPECT_TRUE(scene.seen().empty()) << scene.Describe();
    EXPECT_GE(scene.analyzer().recalibrations(), 2) << "the light switched on and off";
  }
}

TEST(FrameAnalyzer, ParkedCarIsHeldPastDwellPlusTenMinutesThenEnds) {
  Scene scene("square");
  const SceneBox kerb{0.08, 0.75, 0.14, 0.10};
  const int64_t parked = kT0 + 30 * kSec, leaves = parked + 12 * kMin;
  scene.Add(SceneEventKind::kParkedCar, kerb, parked, leaves);
  scene.Run(kT0, leaves + 40 * kSec);
  const auto starts = scene.Of("stationary", K::kStart);
  ASSERT_EQ(starts.size(), 1u) << scene.Describe();
  EXPECT_EQ(starts[0].event.zone, "kerb");
  EXPECT_EQ(starts[0].event.category, "illegal_parking");
  // Drives in for 4 s, then the 30 s dwell; within 10 s of that.
  EXPECT_GE(starts[0].ts_ms, parked + 30 * kSec);
  EXPECT_LE(starts[0].ts_ms, parked + 44 * kSec) << scene.Describe();
  const auto ends = scene.Of("stationary", K::kEnd);
  ASSERT_EQ(ends.size(), 1u) << scene.Describe();
  EXPECT_GE(ends[0].ts_ms, leaves) << "held for the whole stay (dwell + more than ten minutes)";
  EXPECT_LE(ends[0].ts_ms, leaves + 35 * kSec);
  EXPECT_GE(ends[0].event.transition.duration_ms(), 11 * kMin);
}

// The first event of a detector, which must START within [from, to].
Seen StartOf(const Scene& scene, const std::string& detector, int64_t from, int64_t to) {
  const auto starts = scene.Of(detector, K::kStart);
  EXPECT_EQ(starts.size(), 1u) << scene.Describe();
  if (starts.empty()) return {};
  EXPECT_GE(starts[0].ts_ms, from) << scene.Describe();
  EXPECT_LE(starts[0].ts_ms, to) << scene.Describe();
  return starts[0];
}

// The street's daylight drifts with the clock: a parked car is found
// whenever it parks (these starts once lost it to the ghost check).
TEST(FrameAnalyzer, ParkedCarIsFoundWhateverTheTimeOfDay) {
  for (int64_t base : {int64_t{1796090330000}, int64_t{1796090337300}, int64_t{1796090344600},
                       int64_t{1796090351900}, kT0 + 3 * 3600 * kSec}) {
    SCOPED_TRACE(base);
    Scene scene("square", 0);
    const int64_t parked = base + 20 * kSec;
    scene.Add(SceneEventKind::kParkedCar, {0.08, 0.75, 0.14, 0.10}, parked, parked + 5 * kMin);
    scene.Run(base, parked + 50 * kSec);
    StartOf(scene, "stationary", parked + 30 * kSec, parked + 44 * kSec);
  }
}

// A car parked since before the camera started is learnt as background;
// when it leaves, the road it uncovers is no new object. (This scene stays
// quiet even without the ghost check; ParkedCarIsFoundWhateverTheTimeOfDay
// is what guards the check against eating real objects.)
TEST(FrameAnalyzer, TheGapALongParkedCarLeavesIsNoObject) {
  Scene scene("square");
  const int64_t leaves = kT0 + 40 * kSec;
  scene.Add(SceneEventKind::kParkedCar, {0.08, 0.75, 0.14, 0.10}, kT0 - 10 * kMin, leaves);
  scene.Run(kT0, leaves + 2 * kMin);
  EXPECT_TRUE(scene.Of("stationary", K::kStart).empty()) << scene.Describe();
}

TEST(FrameAnalyzer, CrowdGatheringInThePlaza) {
  Scene scene("square");
  const int64_t forms = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kCrowd, {0.36, 0.70, 0.58, 0.28}, forms, forms + 3 * kMin);
  scene.Run(kT0, forms + 3 * kMin + 30 * kSec);
  // People walk in for up to 20 s, then stand: crowd.dwell is 30 s.
  const Seen s = StartOf(scene, "crowd", forms + 30 * kSec, forms + 70 * kSec);
  EXPECT_EQ(s.event.zone, "plaza");
  EXPECT_EQ(s.event.category, "crowd_gathering");
  EXPECT_TRUE(s.event.attributes.count("people")) << "HOG counted the people";
  EXPECT_EQ(scene.Of("crowd", K::kEnd).size(), 1u) << scene.Describe();
  EXPECT_TRUE(scene.Of("stationary", K::kStart).empty()) << scene.Describe();
}

TEST(FrameAnalyzer, BoxDroppedOnTheLane) {
  Scene scene("road");
  const int64_t drops = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kDroppedBox, {0.60, 0.74, 0.07, 0.06}, drops, drops + 3 * kMin);
  scene.Run(kT0, drops + 2 * kMin);
  const Seen s = StartOf(scene, "stationary", drops + 30 * kSec, drops + 45 * kSec);
  EXPECT_EQ(s.event.zone, "southbound");
  EXPECT_EQ(s.event.category, "road_obstacle");
  EXPECT_TRUE(scene.Of("wrong_way", K::kStart).empty()) << scene.Describe();
}

TEST(FrameAnalyzer, WrongWayVehicle) {
  Scene scene("road");
  const int64_t from = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kWrongWay, {0.30, 0.66, 0.70, 0.18}, from, from + 10 * kSec);
  scene.Run(kT0, from + 40 * kSec);
  const Seen s = StartOf(scene, "wrong_way", from + 1500, from + 6 * kSec);
  EXPECT_EQ(s.event.zone, "southbound-flow");
  EXPECT_EQ(s.event.category, "wrong_way_driving");
}

TEST(FrameAnalyzer, CongestedLane) {
  Scene scene("road");
  const int64_t from = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kTrafficJam, {0.0, 0.47, 1.0, 0.16}, from, from + 3 * kMin);
  scene.Run(kT0, from + 2 * kMin);
  const Seen s = StartOf(scene, "congestion", from + 60 * kSec, from + 80 * kSec);
  EXPECT_EQ(s.event.zone, "northbound");
  EXPECT_EQ(s.event.category, "traffic_congestion");
}

TEST(FrameAnalyzer, FireCandidateFlickersAndGrows) {
  Scene scene("street");
  const int64_t from = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kFire, {0.44, 0.14, 0.12, 0.16}, from, from + 90 * kSec);
  scene.Run(kT0, from + 60 * kSec);
  const Seen s = StartOf(scene, "fire", from + 5 * kSec, from + 20 * kSec);
  EXPECT_EQ(s.event.zone, "shopfronts");
  EXPECT_EQ(s.event.category, "fire_candidate");
  EXPECT_EQ(s.event.attributes.at("needs_confirmation"), "true");
}

TEST(FrameAnalyzer, CoveredLensIsTamper) {
  Scene scene("square");
  const int64_t from = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kLensCovered, {0, 0, 1, 1}, from, from + 40 * kSec);
  scene.Run(kT0, from + 90 * kSec);
  const Seen s = StartOf(scene, "tamper.covered", from + 10 * kSec, from + 12 * kSec);
  EXPECT_EQ(s.event.zone, "frame");
  EXPECT_EQ(s.event.category, "camera_fault");
  EXPECT_EQ(scene.Of("tamper.covered", K::kEnd).size(), 1u) << scene.Describe();
  // Blind frames train nothing: uncovering raises no zone event.
  for (const Seen& e : scene.seen()) EXPECT_EQ(e.event.detector.rfind("tamper.", 0), 0u) << scene.Describe();
}

// People walk along the footway all day; the zone is armed 16-17 h only.
TEST(FrameAnalyzer, IntrusionInAnArmedZone) {
  Scene scene("yard");
  scene.Run(kT0, kT0 + 30 * kSec);  // 16:00 local: armed
  const auto starts = scene.Of("intrusion", K::kStart);
  ASSERT_FALSE(starts.empty()) << scene.Describe();
  EXPECT_EQ(starts[0].event.zone, "footway");
  EXPECT_EQ(starts[0].event.category, "zone_intrusion");
  Scene later("yard");
  later.Run(kT0 + 2 * 3600 * kSec, kT0 + 2 * 3600 * kSec + 30 * kSec);  // 18:00: not armed
  EXPECT_TRUE(later.seen().empty()) << later.Describe();
}

// The test decodes, alters and re-encodes rendered frames: what a blurred
// lens or a knocked camera sends.
std::string Altered(const std::string& jpeg, const std::function<void(cv::Mat&)>& alter) {
  cv::Mat img = cv::imdecode(cv::Mat(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data())),
                             cv::IMREAD_COLOR);
  alter(img);
  std::vector<uchar> out;
  cv::imencode(".jpg", img, out, {cv::IMWRITE_JPEG_QUALITY, 80});
  return std::string(out.begin(), out.end());
}

TEST(FrameAnalyzer, DefocusedAndMovedCamerasAreTamper) {
  Scene blurred("square");
  blurred.Run(kT0, kT0 + 20 * kSec);
  for (int64_t t = kT0 + 20 * kSec; t < kT0 + 40 * kSec; t += 200) {
    blurred.Frame(t, Altered(blurred.Jpeg(t), [](cv::Mat& m) { cv::GaussianBlur(m, m, cv::Size(0, 0), 6); }));
  }
  StartOf(blurred, "tamper.defocused", kT0 + 30 * kSec, kT0 + 32 * kSec);

  Scene moved("square");
  moved.Run(kT0, kT0 + 20 * kSec);
  const cv::Mat shift = (cv::Mat_<double>(2, 3) << 1, 0, 60, 0, 1, 25);  // knocked: 60 px right, 25 px down
  for (int64_t t = kT0 + 20 * kSec; t < kT0 + 40 * kSec; t += 200) {
    moved.Frame(t, Altered(moved.Jpeg(t), [&](cv::Mat& m) {
      cv::warpAffine(m, m, shift, m.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    }));
  }
  StartOf(moved, "tamper.moved", kT0 + 30 * kSec, kT0 + 33 * kSec);
}

TEST(FrameAnalyzer, FrozenFeedAndSilentCamera) {
  Scene scene("square");
  scene.Run(kT0, kT0 + 10 * kSec);
  const std::string still = scene.Jpeg(kT0 + 10 * kSec);
  for (int64_t t = kT0 + 10 * kSec; t < kT0 + 25 * kSec; t += 200) scene.Frame(t, still);
  StartOf(scene, "tamper.frozen", kT0 + 20 * kSec, kT0 + 22 * kSec);
  const auto silent = [&](int64_t now) {
    std::vector<FrameEvent> out, found;
    scene.analyzer().Expire(now, &out);
    for (auto& e : out) {
      if (e.detector == "tamper.no_frames") found.push_back(std::move(e));
    }
    return found;
  };
  EXPECT_TRUE(silent(kT0 + 25 * kSec + 59 * kSec).empty());
  const auto found = silent(kT0 + 25 * kSec + 61 * kSec);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].transition.kind, K::kStart);
  EXPECT_EQ(found[0].category, "camera_fault");
}

TEST(FrameAnalyzer, SnapshotsAreTheOriginalFrameAndAnAnnotatedCopy) {
  Scene scene("road");
  const int64_t drops = kT0 + 20 * kSec;
  scene.Add(SceneEventKind::kDroppedBox, {0.60, 0.74, 0.07, 0.06}, drops, drops + 3 * kMin);
  scene.Run(kT0, drops + 45 * kSec);
  const auto starts = scene.Of("stationary", K::kStart);
  ASSERT_EQ(starts.size(), 1u) << scene.Describe();
  const FrameEvent& e = starts[0].event;
  const auto decode = [](const std::string& jpeg) {
    return cv::imdecode(cv::Mat(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data())),
                        cv::IMREAD_COLOR);
  };
  const cv::Mat snap = decode(e.snapshot_jpeg), annotated = decode(e.annotated_jpeg);
  ASSERT_FALSE(snap.empty());
  ASSERT_FALSE(annotated.empty());
  EXPECT_EQ(snap.cols, 640) << "the original, not the analysis size";
  EXPECT_EQ(annotated.size(), snap.size());
  EXPECT_NE(e.snapshot_jpeg, e.annotated_jpeg);
  EXPECT_GT(e.transition.box[2], 0.0);
}

TEST(FrameAnalyzer, RestartKeepsTheEventAndItsTemplate) {
  Scene scene("square");
  const SceneBox kerb{0.08, 0.75, 0.14, 0.10};
  const int64_t parked = kT0 + 30 * kSec, leaves = parked + 3 * kMin;
  scene.Add(SceneEventKind::kParkedCar, kerb, parked, leaves);
  scene.Run(kT0, parked + 80 * kSec);
  ASSERT_EQ(scene.Of("stationary", K::kStart).size(), 1u) << scene.Describe();
  scene.Restart();  // models are re-learnt; the event and the template are state
  scene.Run(parked + 80 * kSec, leaves + 40 * kSec);
  EXPECT_EQ(scene.Of("stationary", K::kStart).size(), 1u) << "no second START after the restart\n" << scene.Describe();
  const auto ends = scene.Of("stationary", K::kEnd);
  ASSERT_EQ(ends.size(), 1u) << scene.Describe();
  EXPECT_GE(ends[0].ts_ms, leaves);
}

TEST(FrameAnalyzer, RateLimitAndOrder) {
  Scene scene("square", 0);
  int analysed = 0, skipped = 0;
  for (int64_t t = kT0; t < kT0 + 2 * kSec; t += 40) {  // 25 fps
    const FrameResult r = scene.Frame(t, scene.Jpeg(t));
    analysed += r.outcome == FrameOutcome::kAnalysed;
    skipped += r.outcome == FrameOutcome::kSkippedRate;
  }
  EXPECT_EQ(analysed, 10) << "5 fps of 25";
  EXPECT_EQ(skipped, 40);
  EXPECT_EQ(scene.Frame(kT0, scene.Jpeg(kT0)).outcome, FrameOutcome::kSkippedOld);
  // A broken frame is dead-lettered even where the rate would skip it.
  const std::string jpeg = scene.Jpeg(kT0 + 2 * kSec);
  const FrameResult broken = scene.Frame(kT0 + 2 * kSec, jpeg.substr(0, jpeg.size() - 100));
  EXPECT_EQ(broken.outcome, FrameOutcome::kRejected);
  EXPECT_EQ(broken.reason, "truncated_jpeg");
}

TEST(FrameAnalyzer, BadJpegsAreRejectedWithAReason) {
  Scene scene("square");
  const std::string good = scene.Jpeg(kT0);
  int64_t t = kT0;
  const auto reason = [&](const std::string& bytes) {
    t += kSec;
    const FrameResult r = scene.Frame(t, bytes);
    return r.outcome == FrameOutcome::kRejected ? r.reason : std::string("accepted");
  };
  EXPECT_EQ(reason(""), "corrupt_jpeg");
  EXPECT_EQ(reason("not a jpeg at all"), "corrupt_jpeg");
  EXPECT_EQ(reason(good.substr(0, good.size() / 2)), "truncated_jpeg");
  std::string garbled = good;
  for (size_t i = 600; i < garbled.size() - 2; i += 7) garbled[i] = static_cast<char>(garbled[i] ^ 0x5a);
  const std::string g = reason(garbled);
  EXPECT_TRUE(g == "corrupt_jpeg" || g == "accepted") << g;  // libjpeg may decode garbage pixels
  std::vector<uchar> png;
  cv::imencode(".png", cv::Mat(48, 64, CV_8UC3, cv::Scalar(1, 2, 3)), png);
  EXPECT_EQ(reason(std::string(png.begin(), png.end())), "corrupt_jpeg");
  EXPECT_EQ(reason(good), "accepted") << "a good frame after bad ones";
}

TEST(JpegDimensions, ReadsTheFrameHeader) {
  SceneSpec spec;
  spec.width = 320;
  spec.height = 200;
  const std::string jpeg = SceneRenderer(spec).RenderJpeg(kT0, {});
  int w = 0, h = 0;
  ASSERT_TRUE(JpegDimensions(jpeg, &w, &h));
  EXPECT_EQ(w, 320);
  EXPECT_EQ(h, 200);
  EXPECT_FALSE(JpegDimensions(jpeg.substr(0, 20), &w, &h));
  EXPECT_FALSE(JpegDimensions("\xff\xd8\xff\xd9", &w, &h));
}

// Snapshots of every START and END (and their annotated copies) go to the
// store; beyond camera.snapshots.keep per camera the oldest are dropped, and
// the index survives a restart.
TEST(CameraAnalytics, SnapshotsAreKeptUpToTheLimitAcrossARestart) {
  const auto city = TestCity();
  SceneSpec spec;
  spec.camera_id = "square";
  spec.seed = 7;
  const SceneRenderer renderer(spec);
  const std::vector<SceneEvent> covers = {{SceneEventKind::kLensCovered, {0, 0, 1, 1}, kT0 + 20 * kSec, kT0 + 35 * kSec},
                                          {SceneEventKind::kLensCovered, {0, 0, 1, 1}, kT0 + 70 * kSec, kT0 + 85 * kSec}};
  auto analytics = std::make_unique<CameraAnalytics>(city);
  std::vector<Signal> signals;
  const auto feed = [&](int64_t from, int64_t to) {
    for (int64_t t = from; t < to; t += 200) {
      const std::string jpeg = renderer.RenderJpeg(t, covers);
      CameraFrame f{"square", t, jpeg, {"city.camera.frames", 0, t}, t};
      analytics->OnFrame(f, 0, &signals);
    }
  };
  feed(kT0, kT0 + 60 * kSec);  // the first cover: START and END, two snapshots each
  std::vector<std::string> stored;
  for (const auto& snap : analytics->TakeSnapshots()) stored.push_back(snap.id);
  ASSERT_EQ(stored.size(), 4u);
  std::vector<std::string> dropped = analytics->TakeDroppedSnapshots();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0], stored[0]) << "the oldest goes first";
  ASSERT_FALSE(signals.empty());
  EXPECT_EQ(signals[0].attributes.at("snapshot"), stored[0]);
  EXPECT_EQ(signals[0].attributes.at("snapshot_annotated"), stored[1]);

  // Restart from the state; the second cover's snapshots push out the rest.
  std::vector<StateEntry> state;
  analytics->TakeDirty(&state);
  analytics = std::make_unique<CameraAnalytics>(city);
  for (const auto& e : state) {
    if (e.value) analytics->Restore(e.key, *e.value);
  }
  feed(kT0 + 60 * kSec, kT0 + 110 * kSec);
  const auto fresh = analytics->TakeSnapshots();
  ASSERT_EQ(fresh.size(), 4u);
  dropped = analytics->TakeDroppedSnapshots();
  EXPECT_EQ(dropped, (std::vector<std::string>{stored[1], stored[2], stored[3], fresh[0].id}))
      << "seven known, three kept: the newest";
}

}  // namespace
}  // namespace cityloop::detect::camera

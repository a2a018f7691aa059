#include "detect/camera/scene_renderer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cityloop::detect::camera {
namespace {

constexpr int64_t kSec = 1000;
constexpr int64_t kT0 = 1'700'000'000'000;  // a city time (Nov 2023), so large t_ms are exercised

SceneSpec Spec(double traffic, uint64_t seed = 7) {
  SceneSpec s;
  s.camera_id = "cam-test";
  s.seed = seed;
  s.traffic = traffic;
  return s;
}

SceneEvent Event(SceneEventKind kind, SceneBox region, int64_t start, int64_t end) {
  SceneEvent e;
  e.kind = kind;
  e.region = region;
  e.start_ms = start;
  e.end_ms = end;
  return e;
}

cv::Mat Decode(const std::string& jpeg) {
  const std::vector<uchar> buf(jpeg.begin(), jpeg.end());
  return cv::imdecode(buf, cv::IMREAD_COLOR);
}

cv::Mat Frame(const SceneRenderer& r, int64_t t, const std::vector<SceneEvent>& events = {}) {
  return Decode(r.RenderJpeg(t, events));
}

// Exact pixels, for comparisons that JPEG ringing would blur.
cv::Mat RawFrame(const SceneRenderer& r, int64_t t, const std::vector<SceneEvent>& events = {}) {
  std::string bgr = r.RenderBgr(t, events);
  return cv::Mat(r.spec().height, r.spec().width, CV_8UC3, bgr.data()).clone();
}

cv::Mat Grey(const cv::Mat& bgr) {
  cv::Mat g;
  cv::cvtColor(bgr, g, cv::COLOR_BGR2GRAY);
  return g;
}

cv::Rect Pixels(const SceneBox& b, const cv::Mat& m) {
  return cv::Rect(static_cast<int>(b.x * m.cols), static_cast<int>(b.y * m.rows), static_cast<int>(b.w * m.cols),
                  static_cast<int>(b.h * m.rows));
}

double MeanAbsDiff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(Grey(a), Grey(b), d);
  return cv::mean(d)[0];
}

// Fraction of pixels whose grey level differs by more than 25.
double ChangedFraction(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(Grey(a), Grey(b), d);
  return static_cast<double>(cv::countNonZero(d > 25)) / static_cast<double>(d.total());
}

double LaplacianVariance(const cv::Mat& bgr) {
  cv::Mat lap;
  cv::Laplacian(Grey(bgr), lap, CV_64F);
  cv::Scalar mean, sd;
  cv::meanStdDev(lap, mean, sd);
  return sd[0] * sd[0];
}

double GreyStdDev(const cv::Mat& bgr) {
  cv::Scalar mean, sd;
  cv::meanStdDev(Grey(bgr), mean, sd);
  return sd[0];
}

int HighCrPixels(const cv::Mat& bgr) {
  cv::Mat ycc;
  cv::cvtColor(bgr, ycc, cv::COLOR_BGR2YCrCb);
  cv::Mat cr;
  cv::extractChannel(ycc, cr, 1);
  return cv::countNonZero(cr > 150);
}

// Centroid x (pixels) of where `frame` differs from `empty`.
double ChangeCentroidX(const cv::Mat& frame, const cv::Mat& empty) {
  cv::Mat d;
  cv::absdiff(Grey(frame), Grey(empty), d);
  const cv::Moments m = cv::moments(d > 25, true);
  return m.m00 > 0 ? m.m10 / m.m00 : -1;
}

TEST(SceneRendererTest, JpegDecodesToTheSpecSizeAsBgr) {
  const SceneRenderer r(Spec(1.0));
  const cv::Mat f = Frame(r, kT0);
  ASSERT_FALSE(f.empty());
  EXPECT_EQ(f.cols, 640);
  EXPECT_EQ(f.rows, 480);
  EXPECT_EQ(f.type(), CV_8UC3);
  EXPECT_EQ(r.RenderBgr(kT0, {}).size(), 640u * 480u * 3u);

  SceneSpec small = Spec(1.0);
  small.width = 320;
  small.height = 240;
  const cv::Mat s = Frame(SceneRenderer(small), kT0);
  EXPECT_EQ(s.cols, 320);
  EXPECT_EQ(s.rows, 240);
}

TEST(SceneRendererTest, RejectsTinyFrames) {
  SceneSpec s = Spec(1.0);
  s.width = 0;
  EXPECT_THROW(SceneRenderer{s}, std::invalid_argument);
}

TEST(SceneRendererTest, IsDeterministic) {
  const std::vector<SceneEvent> events = {
      Event(SceneEventKind::kFire, {0.7, 0.1, 0.12, 0.2}, kT0, kT0 + 60 * kSec),
      Event(SceneEventKind::kCrowd, {0.05, 0.26, 0.25, 0.19}, kT0, kT0 + 60 * kSec)};
  const SceneRenderer a(Spec(1.0)), b(Spec(1.0)), other_seed(Spec(1.0, 8));
  const int64_t t = kT0 + 12 * kSec;
  EXPECT_EQ(a.RenderJpeg(t, events), b.RenderJpeg(t, events));
  EXPECT_EQ(a.RenderJpeg(t, events), a.RenderJpeg(t, events));
  EXPECT_EQ(a.RenderBgr(t, events), b.RenderBgr(t, events));
  EXPECT_NE(a.RenderJpeg(t, events), a.RenderJpeg(t + 1, events));
  EXPECT_NE(a.RenderJpeg(t, events), a.RenderJpeg(t + kSec, events));
  EXPECT_NE(a.RenderJpeg(t, events), other_seed.RenderJpeg(t, events));
  EXPECT_NE(a.RenderJpeg(t, events), a.RenderJpeg(t, {}));
}

TEST(SceneRendererTest, EmptyStreetChangesOnlyByNoise) {
  const SceneRenderer r(Spec(0.0));
  for (int64_t t = kT0; t < kT0 + 10 * kSec; t += kSec) {
    const cv::Mat a = Frame(r, t), b = Frame(r, t + kSec);
    EXPECT_NE(r.RenderJpeg(t, {}), r.RenderJpeg(t + kSec, {}));
    EXPECT_LT(MeanAbsDiff(a, b), 4.0) << "t=" << t;
  }
}

TEST(SceneRendererTest, BackgroundIsTextured) {
  const SceneRenderer r(Spec(0.0));
  const cv::Mat f = Frame(r, kT0);
  EXPECT_GT(LaplacianVariance(f), 300.0);
  EXPECT_GT(GreyStdDev(f), 20.0);
}

TEST(SceneRendererTest, TrafficVehiclesAreInFrameAndMove) {
  const SceneRenderer busy(Spec(1.0)), empty(Spec(0.0));
  const cv::Rect lanes(0, static_cast<int>(0.45 * 480), 640, static_cast<int>(0.40 * 480));
  int vehicles = 0;
  const int frames = 30;
  for (int k = 0; k < frames; ++k) {
    const int64_t t = kT0 + k * 7 * kSec;
    // Same seed, so the same background and noise: the difference is exactly the traffic.
    cv::Mat d;
    cv::absdiff(Grey(RawFrame(busy, t)(lanes)), Grey(RawFrame(empty, t)(lanes)), d);
    cv::Mat mask = d > 30, labels, stats, centroids;
    cv::morphologyEx(mask, mask, cv::MORPH_CLOSE, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(7, 7)));
    const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids);
    for (int i = 1; i < n; ++i) {
      if (stats.at<int>(i, cv::CC_STAT_AREA) > 600 && stats.at<int>(i, cv::CC_STAT_HEIGHT) > 30) ++vehicles;
    }
    EXPECT_GT(MeanAbsDiff(Frame(busy, t)(lanes), Frame(busy, t + kSec)(lanes)), 0.5) << "t=" << t;
  }
  const double per_frame = static_cast<double>(vehicles) / frames;
  EXPECT_GT(per_frame, 1.0);
  EXPECT_LT(per_frame, 6.0);
}

TEST(SceneRendererTest, NormalTrafficHasAlmostNoFireColours) {
  const SceneRenderer r(Spec(1.0));
  for (int k = 0; k < 40; ++k) {
    const cv::Mat f = Frame(r, kT0 + k * 3 * kSec);
    EXPECT_LT(HighCrPixels(f), static_cast<int>(0.001 * static_cast<double>(f.total()))) << "frame " << k;
  }
}

TEST(SceneRendererTest, ParkedCarStandsStillInItsRegion) {
  const SceneBox box{0.40, 0.70, 0.14, 0.11};
  const int64_t end = kT0 + 300 * kSec;
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kParkedCar, box, kT0, end)};
  const SceneRenderer r(Spec(0.0));
  const cv::Rect region = Pixels(box, Frame(r, kT0));

  const cv::Mat parked_a = Frame(r, kT0 + 60 * kSec, events), parked_b = Frame(r, kT0 + 90 * kSec, events);
  EXPECT_LT(MeanAbsDiff(parked_a(region), parked_b(region)), 6.0);
  EXPECT_GT(MeanAbsDiff(parked_a(region), Frame(r, kT0 + 60 * kSec)(region)), 20.0);

  // Still on its way in after 1 s: the region is still empty street.
  EXPECT_LT(MeanAbsDiff(Frame(r, kT0 + kSec, events)(region), Frame(r, kT0 + kSec)(region)), 6.0);
  // Drives out after end: moving right of the region, then gone.
  const double out_x = ChangeCentroidX(RawFrame(r, end + 2 * kSec, events), RawFrame(r, end + 2 * kSec));
  EXPECT_GT(out_x, region.x + region.width);
  EXPECT_EQ(r.RenderBgr(end + 4 * kSec, events), r.RenderBgr(end + 4 * kSec, {}));
  EXPECT_EQ(r.RenderBgr(kT0 - 1, events), r.RenderBgr(kT0 - 1, {}));
}

// Passing traffic is drawn behind a parked car: it shows only around the
// cabin, above the body, so the body band stays still.
TEST(SceneRendererTest, ParkedCarBodyStaysVisibleInTraffic) {
  const SceneBox box{0.40, 0.70, 0.14, 0.11};
  const SceneBox body{box.x, box.y + 0.4 * box.h, box.w, 0.45 * box.h};
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kParkedCar, box, kT0, kT0 + 600 * kSec)};
  const SceneRenderer r(Spec(1.0));
  const cv::Rect band = Pixels(body, Frame(r, kT0));
  const cv::Mat first = Frame(r, kT0 + 30 * kSec, events);
  for (int k = 1; k <= 20; ++k) {
    EXPECT_LT(MeanAbsDiff(first(band), Frame(r, kT0 + (30 + 2 * k) * kSec, events)(band)), 6.0) << k;
  }
}

TEST(SceneRendererTest, LensCoveredFrameIsDarkAndFlat) {
  const SceneRenderer r(Spec(1.0));
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kLensCovered, {0, 0, 1, 1}, kT0, kT0 + 60 * kSec)};
  const cv::Mat normal = Frame(r, kT0 + 10 * kSec), covered = Frame(r, kT0 + 10 * kSec, events);
  EXPECT_LT(LaplacianVariance(covered), 0.01 * LaplacianVariance(normal));
  EXPECT_LT(GreyStdDev(covered), 3.0);
  EXPECT_GT(GreyStdDev(normal), 20.0);
  const double mean = cv::mean(Grey(covered))[0];
  EXPECT_GE(mean, 15.0);
  EXPECT_LE(mean, 30.0);
  EXPECT_EQ(r.RenderBgr(kT0 + 60 * kSec, events), r.RenderBgr(kT0 + 60 * kSec, {}));  // uncovered at end
}

TEST(SceneRendererTest, FireIsFireColouredFlickersAndGrows) {
  const SceneBox box{0.70, 0.10, 0.12, 0.20};
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kFire, box, kT0, kT0 + 120 * kSec)};
  const SceneRenderer r(Spec(1.0));
  const cv::Mat grown = Frame(r, kT0 + 25 * kSec, events), early = Frame(r, kT0 + kSec, events);
  const cv::Rect region = Pixels(box, grown);
  const int grown_fire = HighCrPixels(grown(region));
  EXPECT_GT(grown_fire, static_cast<int>(0.25 * region.area()));
  EXPECT_LT(HighCrPixels(early(region)), grown_fire * 2 / 3);
  EXPECT_GT(HighCrPixels(early(region)), 0);
  // The flame shape changes every frame.
  EXPECT_GT(MeanAbsDiff(grown(region), Frame(r, kT0 + 26 * kSec, events)(region)), 5.0);
  const cv::Mat normal = Frame(r, kT0 + 25 * kSec);
  EXPECT_LT(HighCrPixels(normal), static_cast<int>(0.001 * static_cast<double>(normal.total())));
}

TEST(SceneRendererTest, LightSwitchRaisesBrightness) {
  const SceneRenderer r(Spec(1.0));
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kLightSwitch, {0, 0, 1, 1}, kT0, kT0 + 60 * kSec)};
  const double normal = cv::mean(Grey(Frame(r, kT0 + 5 * kSec)))[0];
  const double lit = cv::mean(Grey(Frame(r, kT0 + 5 * kSec, events)))[0];
  EXPECT_GT(lit, 1.3 * normal);
}

TEST(SceneRendererTest, SlowLightingDriftIsSmallPerMinute) {
  const SceneRenderer r(Spec(0.0));
  const double a = cv::mean(Grey(Frame(r, kT0)))[0], b = cv::mean(Grey(Frame(r, kT0 + 60 * kSec)))[0];
  EXPECT_LT(std::abs(a - b) / a, 0.06);
}

TEST(SceneRendererTest, DroppedBoxAppearsAtStartAndStays) {
  const SceneBox box{0.80, 0.55, 0.05, 0.06};
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kDroppedBox, box, kT0, kT0 + 100 * kSec)};
  const SceneRenderer r(Spec(0.0));
  const cv::Rect region = Pixels(box, Frame(r, kT0));
  EXPECT_EQ(r.RenderBgr(kT0 - 1, events), r.RenderBgr(kT0 - 1, {}));
  const cv::Mat first = RawFrame(r, kT0, events);
  EXPECT_GT(MeanAbsDiff(first(region), RawFrame(r, kT0)(region)), 20.0);
  EXPECT_LT(MeanAbsDiff(first(region), RawFrame(r, kT0 + 99 * kSec, events)(region)), 6.0);
  EXPECT_EQ(r.RenderBgr(kT0 + 100 * kSec, events), r.RenderBgr(kT0 + 100 * kSec, {}));
}

TEST(SceneRendererTest, CrowdGathersAndStandsInRegion) {
  const SceneBox box{0.05, 0.26, 0.25, 0.19};
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kCrowd, box, kT0, kT0 + 120 * kSec)};
  const SceneRenderer r(Spec(0.0));
  const cv::Rect region = Pixels(box, Frame(r, kT0));
  const double gathering =
      ChangedFraction(RawFrame(r, kT0 + 2 * kSec, events)(region), RawFrame(r, kT0 + 2 * kSec)(region));
  const cv::Mat standing = RawFrame(r, kT0 + 30 * kSec, events);
  const double gathered = ChangedFraction(standing(region), RawFrame(r, kT0 + 30 * kSec)(region));
  EXPECT_GT(gathered, 0.3);
  EXPECT_LT(gathering, gathered);
  // Standing people only sway by a pixel or two.
  EXPECT_LT(ChangedFraction(standing(region), RawFrame(r, kT0 + 40 * kSec, events)(region)), 0.3 * gathered);
}

TEST(SceneRendererTest, TrafficJamFillsTheLaneAndCrawls) {
  const SceneBox box{0.30, 0.50, 0.20, 0.10};  // far lane
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kTrafficJam, box, kT0, kT0 + 300 * kSec)};
  const SceneRenderer r(Spec(0.0));
  const cv::Rect lane(0, static_cast<int>(0.50 * 480), 640, static_cast<int>(0.10 * 480));
  const cv::Mat jam = RawFrame(r, kT0 + 10 * kSec, events)(lane), later = RawFrame(r, kT0 + 11 * kSec, events)(lane);
  EXPECT_GT(ChangedFraction(jam, RawFrame(r, kT0 + 10 * kSec)(lane)), 0.5);
  // The shift that best maps the frame onto the one a second later: a few
  // pixels (<= 0.01 widths/s) right to left, the far lane's direction.
  constexpr int kMaxShift = 12;
  const cv::Rect inner(kMaxShift, 0, lane.width - 2 * kMaxShift, lane.height);
  int best_shift = 0;
  double best = 1e9;
  for (int s = -kMaxShift; s <= kMaxShift; ++s) {
    const double mad = MeanAbsDiff(jam(inner + cv::Point(s, 0)), later(inner));
    if (mad < best) {
      best = mad;
      best_shift = s;
    }
  }
  EXPECT_GE(best_shift, 1);
  EXPECT_LE(best_shift, 6);
}

TEST(SceneRendererTest, WrongWayVehicleDrivesAgainstTheNearLane) {
  const SceneBox box{0.60, 0.70, 0.10, 0.10};
  const std::vector<SceneEvent> events = {Event(SceneEventKind::kWrongWay, box, kT0, kT0 + 60 * kSec)};
  const SceneRenderer r(Spec(0.0));
  const double x0 = ChangeCentroidX(RawFrame(r, kT0 + 500, events), RawFrame(r, kT0 + 500));
  const double x1 = ChangeCentroidX(RawFrame(r, kT0 + 1500, events), RawFrame(r, kT0 + 1500));
  EXPECT_GT(x0, 0);
  EXPECT_GT(x0 - x1, 100.0);  // 0.22 widths/s is ~140 px/s, right to left
  EXPECT_LT(x0 - x1, 180.0);
  // Once it has left the frame it is gone, though the event lasts.
  EXPECT_EQ(r.RenderBgr(kT0 + 30 * kSec, events), r.RenderBgr(kT0 + 30 * kSec, {}));
}

}  // namespace
}  // namespace cityloop::detect::camera

#include "detect/camera/frame_analyzer.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <sstream>

#include "detect/camera/frame_models.h"
#include "detect/camera/zone_geometry.h"

namespace cityloop::detect::camera {

namespace {

// HOG is costly (tens of ms on a full-size zone): it counts when a crowd is
// about to be reported, then at most this often while it stays.
constexpr int64_t kHogRetryMs = 5000;
constexpr int64_t kHogEveryMs = 30000;
constexpr int kMovedEvery = 5;          // analysed frames between two phase correlations
constexpr double kCoveredEntropy = 3.5; // bits (of 6): a normal street scene has over 5
constexpr double kCoveredStddev = 12;
constexpr double kDefocusRatio = 0.25;  // sharpness under this share of the learnt normal
constexpr double kMovedShare = 0.05;    // shift over this share of the frame width
constexpr double kStillMoving = 0.3;    // crowd: at most this share of the occupied pixels moving

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

ImageBox Normalise(const cv::Rect& r, cv::Size size) {
  return {static_cast<double>(r.x) / size.width, static_cast<double>(r.y) / size.height,
          static_cast<double>(r.width) / size.width, static_cast<double>(r.height) / size.height};
}

// One (zone, detector) or whole-frame check and its event.
struct Track {
  std::string zone, detector, category, what;
  LifecycleTimes times;
  int inertia = 1;
  EventLifecycle life;
  int streak = 0;
  std::string value_text;
  std::map<std::string, std::string> attributes;
  std::string best_jpeg, last_jpeg;
  double best_value = -1;
};

struct Blob {
  cv::Rect rect;
  int area = 0;
};

std::vector<Blob> Blobs(const cv::Mat& mask) {
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
  std::vector<Blob> blobs;
  for (int i = 1; i < n; ++i) {
    blobs.push_back({cv::Rect(stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                              stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT)),
                     stats.at<int>(i, cv::CC_STAT_AREA)});
  }
  return blobs;
}

// The largest blob whose box covers at least min_px, standing (bottom-centre) in the zone.
const Blob* LargestInZone(const std::vector<Blob>& blobs, const CameraZone& zone, cv::Size size, int min_px,
                          int* count) {
  const Blob* best = nullptr;
  *count = 0;
  for (const Blob& b : blobs) {
    // Sized by its box, as Frigate does: a car's windows may look like the road.
    if (b.rect.area() < min_px || !InPolygon(zone.polygon, FootPoint(Normalise(b.rect, size)))) continue;
    ++*count;
    if (!best || b.rect.area() > best->rect.area()) best = &b;
  }
  return best;
}

struct ZoneCheck {
  ZoneDetector kind = ZoneDetector::kIntrusion;
  Track track;
  cv::Rect last_box;            // stationary: the candidate of the last frame (analysis px)
  cv::Mat tpl;                  // stationary: the confirmed object, grey analysis scale
  cv::Rect tpl_box;
  bool tpl_dirty = false;
  int64_t last_hog_ms = INT64_MIN / 2;
  int people = -1;
  cv::Mat prev_fire;            // fire: last frame's fire pixels in the zone
  double flicker = 0;
  std::deque<std::pair<int64_t, int>> areas;  // fire: (ts, pixels) over the last 10 s
};

struct ZoneRuntime {
  const CameraZone* zone = nullptr;
  cv::Mat mask;                 // inside the zone and not masked
  int pixels = 1;
  std::vector<ZoneCheck> checks;
};

const char* TamperNames[] = {"covered", "defocused", "moved", "frozen", "no_frames"};
const char* TamperWhat[] = {"lens covered", "image out of focus", "camera moved", "frozen image", "no frames"};

}  // namespace

struct CameraAnalyzer::Impl {
  Impl(const Camera& c, const CameraOptions& o, int utc) : camera(c), opt(o), utc_offset(utc) {
    for (const CameraZone& z : camera.zones) {
      ZoneRuntime zr;
      zr.zone = &z;
      for (ZoneDetector d : z.detectors) {
        ZoneCheck zc;
        zc.kind = d;
        Track& t = zc.track;
        t.zone = z.id;
        t.detector = ZoneDetectorName(d);
        t.category = ZoneCategory(z, opt, t.detector.c_str());
        t.inertia = z.inertia;
        t.times = Times(z.dwell_ms.value_or(DefaultDwell(d)));
        t.what = What(d);
        needs_fg = needs_fg || d == ZoneDetector::kIntrusion || d == ZoneDetector::kWrongWay;
        needs_flow = needs_flow || d == ZoneDetector::kCongestion;
        needs_fire = needs_fire || d == ZoneDetector::kFire;
        zr.checks.push_back(std::move(zc));
      }
      zones.push_back(std::move(zr));
    }
    for (size_t i = 0; i < std::size(TamperNames); ++i) {
      Track t;
      t.zone = "frame";
      t.detector = std::string("tamper.") + TamperNames[i];
      auto it = opt.categories.find("tamper");
      t.category = it == opt.categories.end() ? "camera_fault" : it->second;
      t.what = TamperWhat[i];
      t.times = Times(i == 4 ? 0 : opt.tamper_dwell_ms);
      tamper.push_back(std::move(t));
    }
  }

  LifecycleTimes Times(int64_t dwell) const {
    LifecycleTimes t;
    t.dwell_ms = dwell;
    t.cooldown_ms = opt.cooldown_ms;
    t.pending_gap_ms = std::max<int64_t>(1000, static_cast<int64_t>(3000 / opt.fps));
    return t;
  }
  int64_t DefaultDwell(ZoneDetector d) const {
    switch (d) {
      case ZoneDetector::kIntrusion: return 0;
      case ZoneDetector::kStationary: return opt.stationary_dwell_ms;
      case ZoneDetector::kCrowd: return opt.crowd_dwell_ms;
      case ZoneDetector::kCongestion: return opt.congestion_dwell_ms;
      case ZoneDetector::kWrongWay: return opt.wrong_way_dwell_ms;
      case ZoneDetector::kFire: return opt.fire_dwell_ms;
    }
    return 0;
  }
  static const char* What(ZoneDetector d) {
    switch (d) {
      case ZoneDetector::kIntrusion: return "an object in the zone";
      case ZoneDetector::kStationary: return "a stationary object";
      case ZoneDetector::kCrowd: return "a crowd gathering";
      case ZoneDetector::kCongestion: return "congested traffic";
      case ZoneDetector::kWrongWay: return "a vehicle driving against the lane";
      case ZoneDetector::kFire: return "a fire/smoke candidate (needs confirmation)";
    }
    return "";
  }

  // (Re)builds the masks for frames of this analysis size.
  void Geometry(cv::Size size) {
    if (size == analysis_size) return;
    analysis_size = size;
    small_size = cv::Size(std::max(1, size.width / 2), std::max(1, size.height / 2));
    const auto valid_at = [&](cv::Size s) {
      cv::Mat v(s, CV_8U, cv::Scalar(255));
      for (const ImagePolygon& m : camera.masks) v.setTo(0, PolygonMask(m, s));
      return v;
    };
    valid = valid_at(analysis_size);
    valid_small = valid_at(small_size);
    // Dense flow and fire colours only where a zone needs them.
    flow_roi = fire_roi = cv::Rect();
    for (const CameraZone& z : camera.zones) {
      const auto has = [&](ZoneDetector d) { return std::count(z.detectors.begin(), z.detectors.end(), d) > 0; };
      if (has(ZoneDetector::kCongestion)) flow_roi |= PolygonBounds(z.polygon, analysis_size);
      if (has(ZoneDetector::kFire)) fire_roi |= PolygonBounds(z.polygon, analysis_size);
    }
    for (ZoneRuntime& z : zones) {
      cv::bitwise_and(PolygonMask(z.zone->polygon, analysis_size), valid, z.mask);
      z.pixels = std::max(1, cv::countNonZero(z.mask));
      for (ZoneCheck& c : z.checks) {
        if (!c.tpl.empty() && (c.tpl_box & cv::Rect(cv::Point(), size)) != c.tpl_box) c.tpl.release();
        c.prev_fire.release();
      }
    }
    models = BackgroundModels();
  }

  int ReduceFlag(int width) const {
    if (width / 8 >= opt.analysis_width) return cv::IMREAD_REDUCED_COLOR_8;
    if (width / 4 >= opt.analysis_width) return cv::IMREAD_REDUCED_COLOR_4;
    if (width / 2 >= opt.analysis_width) return cv::IMREAD_REDUCED_COLOR_2;
    return cv::IMREAD_COLOR;
  }

  void Feed(Track& t, Evidence e, const FrameImages* f, int64_t ts, std::vector<FrameEvent>* out) {
    if (e.present) {
      if (++t.streak < t.inertia) e.present = false;
    } else {
      t.streak = 0;
    }
    if (e.present && f) {
      if (!t.life.active() && e.value >= t.best_value) {
        t.best_jpeg.assign(f->jpeg);
        t.best_value = e.value;
      }
      t.last_jpeg.assign(f->jpeg);
    }
    const auto tr = t.life.Observe(ts, e, t.times);
    if (tr) Emit(t, *tr, out);
    if (t.life.phase() == EventLifecycle::Phase::kIdle) {
      t.best_jpeg.clear();
      t.last_jpeg.clear();
      t.best_value = -1;
    }
  }

  void Emit(const Track& t, const EventTransition& tr, std::vector<FrameEvent>* out) {
    FrameEvent ev;
    ev.zone = t.zone;
    ev.detector = t.detector;
    ev.category = t.category;
    ev.transition = tr;
    ev.what = t.what;
    ev.value_text = t.value_text;
    ev.attributes = t.attributes;
    if (tr.kind != EventTransition::Kind::kUpdate) {
      ev.snapshot_jpeg = tr.kind == EventTransition::Kind::kStart ? t.best_jpeg : t.last_jpeg;
      if (ev.snapshot_jpeg.empty()) ev.snapshot_jpeg = t.last_jpeg;
      if (!ev.snapshot_jpeg.empty()) {
        ev.annotated_jpeg = Annotate(ev.snapshot_jpeg, camera, tr.box, t.detector + " " + t.zone);
      }
    }
    out->push_back(std::move(ev));
  }

  // --- the zone detectors: each turns this frame's measurements into evidence

  Evidence Intrusion(ZoneRuntime& z, ZoneCheck& c) {
    int count = 0;
    const int min_px = std::max(4, static_cast<int>(z.zone->min_area * small_size.area()));
    const Blob* b = LargestInZone(fg_blobs, *z.zone, small_size, min_px, &count);
    if (!b) return {};
    const double share = static_cast<double>(b->area) / small_size.area();
    c.track.value_text = std::to_string(count) + " object(s), the largest " + Fmt("%.1f", share * 100) + " % of the frame";
    return {true, share, Normalise(b->rect, small_size)};
  }

  Evidence Stationary(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    const double held_s = c.track.life.phase() == EventLifecycle::Phase::kIdle
                              ? 0
                              : static_cast<double>(f.ts_ms - c.track.life.start_ms()) / 1000;
    if (c.track.life.active() && !c.tpl.empty()) {
      // A confirmed object is followed by its template until it leaves: the
      // backgrounds would otherwise let it fade in within minutes.
      const cv::Rect search =
          cv::Rect(c.tpl_box.x - 4, c.tpl_box.y - 4, c.tpl_box.width + 8, c.tpl_box.height + 8) &
          cv::Rect(cv::Point(), analysis_size);
      cv::Mat score;
      cv::matchTemplate(f.grey(search), c.tpl, score, cv::TM_CCOEFF_NORMED);
      double best = 0;
      cv::minMaxLoc(score, nullptr, &best);
      c.track.attributes["match"] = Fmt("%.2f", best);
      if (best < opt.stationary_match) return {};
      c.track.value_text = "still for " + std::to_string(static_cast<long long>(held_s)) + " s";
      return {true, held_s, Normalise(c.tpl_box, analysis_size)};
    }
    int count = 0;
    const int min_px = std::max(4, static_cast<int>(z.zone->min_area * analysis_size.area()));
    const Blob* b = LargestInZone(still_blobs, *z.zone, analysis_size, min_px, &count);
    cv::Mat blob;
    if (b) {
      blob = cv::Mat::zeros(analysis_size, CV_8U);
      still(b->rect).copyTo(blob(b->rect));
    }
    if (b && IsGhost(f, models.long_bg(), blob, b->rect)) {
      // Something the background remembers left: learn the road again.
      models.Forget(f, blob);
      c.track.attributes["ghosts"] = std::to_string(++ghosts);
      b = nullptr;
    }
    if (!b) return {};
    if (!c.last_box.empty() && (c.last_box & b->rect).area() < 0.3 * std::min(c.last_box.area(), b->rect.area())) {
      c.track.streak = 0;  // a different object: its dwell starts again
      c.track.life = EventLifecycle();
    }
    c.last_box = b->rect;
    c.track.value_text = "still for " + std::to_string(static_cast<long long>(held_s)) + " s, " +
                         Fmt("%.1f", 100.0 * b->area / analysis_size.area()) + " % of the frame";
    return {true, held_s, Normalise(b->rect, analysis_size)};
  }

  double Occupancy(const ZoneRuntime& z) const {
    cv::Mat in;
    cv::bitwise_and(occupied, z.mask, in);
    return static_cast<double>(cv::countNonZero(in)) / z.pixels;
  }

  Evidence Crowd(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    const double occ = Occupancy(z);
    cv::Mat moving, in;
    cv::absdiff(f.grey, models.prev_grey(), moving);
    cv::threshold(moving, moving, opt.motion_threshold, 255, cv::THRESH_BINARY);
    cv::bitwise_and(moving, occupied, in);
    cv::bitwise_and(in, z.mask, in);
    const double moving_share = static_cast<double>(cv::countNonZero(in)) / std::max(1.0, occ * z.pixels);
    const bool dense = occ >= opt.crowd_occupancy && moving_share < kStillMoving;
    const int64_t frame_ms = static_cast<int64_t>(1000 / opt.fps);
    const bool near_start = c.track.life.phase() == EventLifecycle::Phase::kPending &&
                            f.ts_ms - c.track.life.start_ms() >= c.track.times.dwell_ms - frame_ms;
    const int64_t since_hog = f.ts_ms - c.last_hog_ms;
    if (dense && ((near_start && since_hog >= kHogRetryMs) || (c.track.life.active() && since_hog >= kHogEveryMs))) {
      c.people = CountPeople(f.jpeg, z.zone->polygon);
      c.last_hog_ms = f.ts_ms;
      c.track.attributes["people"] = std::to_string(c.people);
    }
    c.track.attributes["occupancy"] = Fmt("%.2f", occ);
    if (!dense || (opt.crowd_min_people > 0 && near_start && c.people < opt.crowd_min_people)) return {};
    c.track.value_text = Fmt("occupancy %.0f %%", occ * 100) +
                         (c.people >= 0 ? ", " + std::to_string(c.people) + " people counted" : std::string());
    return {true, c.people >= 0 ? c.people : occ, Normalise(PolygonBounds(z.zone->polygon, analysis_size), analysis_size)};
  }

  // The lane's unit direction.
  static cv::Point2d LaneDirection(const CameraZone& zone) {
    const double norm = std::hypot(zone.direction[0], zone.direction[1]);
    return norm > 0 ? cv::Point2d(zone.direction[0] / norm, zone.direction[1] / norm) : cv::Point2d(0, 0);
  }

  // Flow along dir, in analysis pixels per frame, of the moving pixels in
  // rect (where mask, when given, is set): the median, robust to the edges
  // optical flow smears. NaN when nothing there moves.
  double MedianAlong(const cv::Rect& rect, cv::Point2d dir, const cv::Mat* mask) const {
    std::vector<float> along;
    for (int y = rect.y; y < rect.y + rect.height; ++y) {
      const cv::Point2f* row = flow.ptr<cv::Point2f>(y);
      const uchar* m = mask ? mask->ptr<uchar>(y) : nullptr;
      for (int x = rect.x; x < rect.x + rect.width; ++x) {
        if ((m && !m[x]) || std::abs(row[x].x) + std::abs(row[x].y) < 0.5f) continue;
        along.push_back(static_cast<float>(row[x].x * dir.x + row[x].y * dir.y));
      }
    }
    if (along.empty()) return std::nan("");
    auto mid = along.begin() + static_cast<std::ptrdiff_t>(along.size() / 2);
    std::nth_element(along.begin(), mid, along.end());
    return *mid;
  }

  double ToWidthsPerSecond(double px_per_frame, const FrameImages& f) const {
    return px_per_frame / analysis_size.width / f.dt_s;
  }

  Evidence Congestion(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    // Vehicles of the road's own grey show only by their windows, wheels and
    // outlines: close those into bodies before measuring the lane.
    static const cv::Mat kBody = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(9, 9));
    cv::Mat bodies, where;
    cv::morphologyEx(occupied, bodies, cv::MORPH_CLOSE, kBody);
    cv::bitwise_and(bodies, z.mask, where);
    const double occ = static_cast<double>(cv::countNonZero(where)) / z.pixels;
    double speed = 0;
    if (!flow.empty() && f.dt_s > 0) {
      const double along = MedianAlong(cv::boundingRect(where), LaneDirection(*z.zone), &where);
      speed = std::isnan(along) ? 0 : std::abs(ToWidthsPerSecond(along, f));
    }
    c.track.attributes["speed"] = Fmt("%.3f", speed);
    if (occ < opt.congestion_occupancy || speed > opt.congestion_max_speed) return {};
    c.track.value_text = Fmt("lane %.0f %% occupied", occ * 100) + Fmt(", moving %.3f frame widths/s", speed);
    return {true, occ, Normalise(PolygonBounds(z.zone->polygon, analysis_size), analysis_size)};
  }

  // A moving object (a MOG2 blob) in the lane whose track runs against it.
  // Tracked by blob, not by dense flow: at 5 fps a car moves more than its
  // own length's worth of texture, and the flow inside a uniform body is
  // close to zero.
  Evidence WrongWay(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    if (f.dt_s <= 0) return {};
    const cv::Point2d dir = LaneDirection(*z.zone);
    const int min_px = std::max(4, static_cast<int>(z.zone->min_area * small_size.area()));
    const double max_jump = 0.1 * small_size.width;
    const auto centre = [](const cv::Rect& r) { return cv::Point2d(r.x + r.width / 2.0, r.y + r.height / 2.0); };
    double fastest = 0;
    cv::Rect where;
    for (const Blob& b : fg_blobs) {
      if (b.rect.area() < min_px || !InPolygon(z.zone->polygon, FootPoint(Normalise(b.rect, small_size)))) continue;
      const Blob* before = nullptr;
      double nearest = max_jump;
      for (const Blob& p : prev_fg_blobs) {
        const double d = cv::norm(centre(p.rect) - centre(b.rect));
        const double ratio = static_cast<double>(p.rect.area()) / b.rect.area();
        if (d < nearest && ratio > 0.5 && ratio < 2) {
          nearest = d;
          before = &p;
        }
      }
      if (!before) continue;
      const cv::Point2d moved = centre(b.rect) - centre(before->rect);
      const double speed = -(moved.x * dir.x + moved.y * dir.y) / small_size.width / f.dt_s;
      if (speed >= opt.wrong_way_min_speed && speed > fastest) {
        fastest = speed;
        where = b.rect;
      }
    }
    if (fastest == 0) return {};
    c.track.value_text = Fmt("%.2f frame widths/s against the lane", fastest);
    return {true, fastest, Normalise(where, small_size)};
  }

  Evidence Fire(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    cv::Mat in;
    cv::bitwise_and(fire, z.mask, in);
    const int area = cv::countNonZero(in);
    if (!c.prev_fire.empty()) {
      cv::Mat changed, either;
      cv::bitwise_xor(in, c.prev_fire, changed);
      cv::bitwise_or(in, c.prev_fire, either);
      const double f_now = static_cast<double>(cv::countNonZero(changed)) / std::max(1, cv::countNonZero(either));
      c.flicker = 0.7 * c.flicker + 0.3 * f_now;
    }
    c.prev_fire = in;
    while (!c.areas.empty() && c.areas.front().first < f.ts_ms - 10000) c.areas.pop_front();
    if (area > 0) c.areas.emplace_back(f.ts_ms, area);
    int smallest = area;
    for (const auto& [ts, a] : c.areas) smallest = std::min(smallest, a);
    const double growth = smallest > 0 ? static_cast<double>(area) / smallest : 0;
    c.track.attributes["flicker"] = Fmt("%.2f", c.flicker);
    c.track.attributes["growth"] = Fmt("%.2f", growth);
    c.track.attributes["needs_confirmation"] = "true";
    const int min_px = std::max(4, static_cast<int>(z.zone->min_area * analysis_size.area()));
    // Colour alone is a red car; flicker alone is a blinking light; a fire
    // flickers and grows (once confirmed, flicker is enough).
    if (area < min_px || c.flicker < 0.08 || (!c.track.life.active() && growth < 1.15)) return {};
    const double share = static_cast<double>(area) / analysis_size.area();
    c.track.value_text = Fmt("fire colours on %.1f %% of the frame", share * 100) + Fmt(", flicker %.2f", c.flicker);
    return {true, share, Normalise(cv::boundingRect(in), analysis_size)};
  }

  Evidence Check(const FrameImages& f, ZoneRuntime& z, ZoneCheck& c) {
    switch (c.kind) {
      case ZoneDetector::kIntrusion: return Intrusion(z, c);
      case ZoneDetector::kStationary: return Stationary(f, z, c);
      case ZoneDetector::kCrowd: return Crowd(f, z, c);
      case ZoneDetector::kCongestion: return Congestion(f, z, c);
      case ZoneDetector::kWrongWay: return WrongWay(f, z, c);
      case ZoneDetector::kFire: return Fire(f, z, c);
    }
    return {};
  }

  // After a START or an END the stationary template follows the event.
  void FollowTemplate(const FrameImages& f, ZoneCheck& c, size_t events_before, const std::vector<FrameEvent>& out) {
    for (size_t i = events_before; i < out.size(); ++i) {
      if (out[i].zone != c.track.zone || out[i].detector != c.track.detector) continue;
      if (out[i].transition.kind == EventTransition::Kind::kStart && !c.last_box.empty()) {
        c.tpl_box = c.last_box;
        c.tpl = f.grey(c.tpl_box).clone();
        c.tpl_dirty = true;
      } else if (out[i].transition.kind == EventTransition::Kind::kEnd) {
        c.tpl.release();
        c.last_box = cv::Rect();
        c.tpl_dirty = true;
      }
    }
  }

  // Where the long-term background must not learn: under a confirmed
  // stationary object, and over a crowd or congestion zone while its event
  // is on (elsewhere occupied pixels learn slowly; see BackgroundModels).
  cv::Mat Frozen() const {
    cv::Mat frozen = cv::Mat::zeros(analysis_size, CV_8U);
    for (const ZoneRuntime& z : zones) {
      for (const ZoneCheck& c : z.checks) {
        if (!c.track.life.active()) continue;
        if (c.kind == ZoneDetector::kStationary && !c.tpl.empty()) {
          const cv::Rect grown = cv::Rect(c.tpl_box.x - 2, c.tpl_box.y - 2, c.tpl_box.width + 4, c.tpl_box.height + 4) &
                                 cv::Rect(cv::Point(), analysis_size);
          frozen(grown).setTo(255);
        } else if (c.kind == ZoneDetector::kCrowd || c.kind == ZoneDetector::kCongestion) {
          frozen.setTo(255, z.mask);
        }
      }
    }
    return frozen;
  }

  FrameResult Analyze(std::string_view jpeg, int64_t ts, std::vector<FrameEvent>* out);
  void AnalyzeZones(const FrameImages& f, std::vector<FrameEvent>* out);
  void TamperChecks(const FrameImages& f, const TamperReadings& r, std::vector<FrameEvent>* out);

  const Camera& camera;
  const CameraOptions& opt;
  int utc_offset;
  bool needs_fg = false, needs_flow = false, needs_fire = false;
  BackgroundModels models;
  cv::Size analysis_size, small_size;
  cv::Rect flow_roi, fire_roi;
  cv::Mat valid, valid_small;
  std::vector<ZoneRuntime> zones;
  std::vector<Track> tamper;  // TamperNames order
  int64_t last_seen_ms = 0, last_analysed_ms = 0, frames = 0, recalibrations = 0, ghosts = 0;
  int warmup_left = 0;
  size_t last_hash = 0;
  double sharpness_ref = 0, shift_px = 0;
  bool dirty = false;
  // This frame's measurements.
  cv::Mat fg, occupied, still, fire, flow;
  std::vector<Blob> fg_blobs, prev_fg_blobs, still_blobs;
};

void CameraAnalyzer::Impl::TamperChecks(const FrameImages& f, const TamperReadings& r, std::vector<FrameEvent>* out) {
  const bool covered = r.entropy < kCoveredEntropy && r.stddev < kCoveredStddev;
  const bool defocused = !covered && sharpness_ref > 0 && r.sharpness < kDefocusRatio * sharpness_ref;
  const bool moved = shift_px > kMovedShare * small_size.width;
  const bool seen[] = {covered, defocused, moved, r.identical};
  const std::string texts[] = {Fmt("entropy %.1f bits", r.entropy),
                               Fmt("sharpness %.0f", r.sharpness) + Fmt(" of a normal %.0f", sharpness_ref),
                               Fmt("shifted %.1f px", shift_px * 2), "identical frames"};
  const ImageBox whole{0, 0, 1, 1};
  for (size_t i = 0; i < 4; ++i) {  // no_frames is decided by time, in Expire
    if (seen[i]) tamper[i].value_text = texts[i];
    Feed(tamper[i], {seen[i], seen[i] ? 1.0 : 0.0, whole}, &f, f.ts_ms, out);
  }
  if (!covered && !defocused && !r.identical) {
    sharpness_ref = sharpness_ref == 0 ? r.sharpness : 0.98 * sharpness_ref + 0.02 * r.sharpness;
  }
}

void CameraAnalyzer::Impl::AnalyzeZones(const FrameImages& f, std::vector<FrameEvent>* out) {
  for (ZoneRuntime& z : zones) {
    const bool armed = ZoneArmed(*z.zone, f.ts_ms, utc_offset);
    for (ZoneCheck& c : z.checks) {
      const size_t before = out->size();
      Feed(c.track, armed ? Check(f, z, c) : Evidence{}, &f, f.ts_ms, out);
      if (c.kind == ZoneDetector::kStationary) FollowTemplate(f, c, before, *out);
    }
  }
}

FrameResult CameraAnalyzer::Impl::Analyze(std::string_view jpeg, int64_t ts, std::vector<FrameEvent>* out) {
  // The structure first (cheap: markers only), so a broken frame is dead-
  // lettered even when the rate limit would have skipped it.
  int width = 0, height = 0;
  if (!JpegDimensions(jpeg, &width, &height)) {
    return {FrameOutcome::kRejected, "corrupt_jpeg", "not a JPEG: no SOI or frame header"};
  }
  // A header of a few hundred bytes can claim 65535 x 65535 pixels; decoded
  // (libjpeg fills what is missing) that would be gigabytes of models.
  constexpr int kMaxSide = 8192;
  if (width > kMaxSide || height > kMaxSide) {
    return {FrameOutcome::kRejected, "oversized",
            "frame of " + std::to_string(width) + " x " + std::to_string(height) + " pixels, more than " +
                std::to_string(kMaxSide) + " on a side"};
  }
  size_t end = jpeg.size();
  while (end > 2 && jpeg[end - 1] == '\0') --end;  // some encoders pad
  if (end < 2 || static_cast<uint8_t>(jpeg[end - 2]) != 0xFF || static_cast<uint8_t>(jpeg[end - 1]) != 0xD9) {
    return {FrameOutcome::kRejected, "truncated_jpeg", "the JPEG ends before its EOI marker"};
  }
  if (last_seen_ms > 0 && ts <= last_seen_ms) return {FrameOutcome::kSkippedOld, {}, {}};
  const int64_t min_gap = static_cast<int64_t>(900 / opt.fps);  // 10 % slack for jittery clocks
  if (last_analysed_ms > 0 && ts - last_analysed_ms < min_gap) {
    last_seen_ms = ts;
    dirty = true;
    return {FrameOutcome::kSkippedRate, {}, {}};
  }
  FrameImages f;
  f.jpeg = jpeg;
  f.ts_ms = ts;
  try {
    const cv::Mat buf(1, static_cast<int>(jpeg.size()), CV_8U, const_cast<char*>(jpeg.data()));
    f.colour = cv::imdecode(buf, ReduceFlag(width));
  } catch (const cv::Exception& e) {
    return {FrameOutcome::kRejected, "corrupt_jpeg", std::string("undecodable: ") + e.what()};
  }
  if (f.colour.empty() || f.colour.channels() != 3) {
    return {FrameOutcome::kRejected, "corrupt_jpeg", "the JPEG could not be decoded"};
  }
  last_seen_ms = ts;
  f.dt_s = last_analysed_ms > 0 ? static_cast<double>(ts - last_analysed_ms) / 1000 : 1 / opt.fps;
  last_analysed_ms = ts;
  ++frames;
  dirty = true;
  Geometry(f.colour.size());
  cv::cvtColor(f.colour, f.grey, cv::COLOR_BGR2GRAY);
  cv::resize(f.grey, f.small, small_size, 0, 0, cv::INTER_AREA);
  // Frames again: a no_frames event cools down.
  if (auto tr = tamper[4].life.Observe(ts, {}, tamper[4].times)) Emit(tamper[4], *tr, out);

  TamperReadings r = ReadTamper(f);
  const size_t hash = std::hash<std::string_view>()(jpeg);
  r.identical = frames > 1 && hash == last_hash;
  last_hash = hash;
  if (!models.ready()) {
    models.Reset(f, opt.warmup_frames);
    warmup_left = opt.warmup_frames;
    return {};
  }
  if (frames % kMovedEvery == 0) shift_px = models.MovedShift(f);
  TamperChecks(f, r, out);
  if (tamper[0].streak > 0 || r.identical) return {};  // blind: keep the models for when it sees again

  cv::Mat changed;
  const double share = models.UpdateMotion(f, valid_small, opt.motion_threshold, opt.motion_alpha, &changed);
  if (share > opt.recalibrate_ratio) {
    // Light switched, IR mode, auto exposure: re-learn rather than alarm.
    models.Reset(f, opt.warmup_frames);
    warmup_left = opt.warmup_frames;
    ++recalibrations;
    return {};
  }
  const bool motion = cv::countNonZero(changed) >= 10;
  if (needs_fg && (motion || fg.empty())) {
    models.Foreground(f, valid_small, &fg);
    prev_fg_blobs = std::move(fg_blobs);
    fg_blobs = Blobs(fg);
  }
  if (needs_flow && motion) {
    models.Flow(f, flow_roi, &flow);
  } else {
    flow = cv::Mat();
  }
  models.Differences(f, opt.motion_threshold, &occupied, &still);
  cv::bitwise_and(occupied, valid, occupied);
  cv::bitwise_and(still, valid, still);
  still_blobs = Blobs(still);
  if (needs_fire) {
    FireColour(f, fire_roi, &fire);
    cv::bitwise_and(fire, valid, fire);
  }
  if (warmup_left > 0) {
    --warmup_left;
  } else {
    AnalyzeZones(f, out);
  }
  models.Learn(f, occupied, Frozen());
  models.RememberFrame(f);
  return {};
}

CameraAnalyzer::CameraAnalyzer(const Camera& camera, const CameraOptions& options, int utc_offset_minutes)
    : impl_(std::make_unique<Impl>(camera, options, utc_offset_minutes)) {
  // Analysis runs on the engine thread: OpenCV's own pool would only make
  // results depend on scheduling and hide the per-core cost.
  static const bool sequential = [] {
    cv::setNumThreads(0);
    return true;
  }();
  (void)sequential;
}
CameraAnalyzer::~CameraAnalyzer() = default;

FrameResult CameraAnalyzer::Analyze(std::string_view jpeg, int64_t ts_ms, std::vector<FrameEvent>* events) {
  try {
    return impl_->Analyze(jpeg, ts_ms, events);
  } catch (const cv::Exception& e) {
    // A frame OpenCV cannot work with must not stop the stream: it goes to
    // the DLQ with the reason, and the camera's models start afresh.
    impl_->models = BackgroundModels();
    return {FrameOutcome::kRejected, "analysis_failed", e.what()};
  }
}

void CameraAnalyzer::Expire(int64_t now_ms, std::vector<FrameEvent>* events) {
  Impl& m = *impl_;
  if (m.last_seen_ms == 0) return;
  Track& silent = m.tamper[4];
  if (now_ms - m.last_seen_ms >= m.opt.no_frames_ms && !silent.life.active()) {
    silent.value_text = "no frame for " + std::to_string((now_ms - m.last_seen_ms) / 1000) + " s";
    m.Feed(silent, {true, static_cast<double>(now_ms - m.last_seen_ms) / 1000, {0, 0, 1, 1}}, nullptr, now_ms, events);
    m.dirty = true;
  }
  const auto expire = [&](Track& t) {
    if (&t == &silent || t.life.phase() == EventLifecycle::Phase::kIdle) return;
    if (auto tr = t.life.Expire(now_ms, t.times)) m.Emit(t, *tr, events);
    m.dirty = true;
  };
  for (Track& t : m.tamper) expire(t);
  for (ZoneRuntime& z : m.zones) {
    for (ZoneCheck& c : z.checks) {
      const size_t before = events->size();
      expire(c.track);
      if (events->size() > before && c.kind == ZoneDetector::kStationary) {
        c.tpl.release();
        c.last_box = cv::Rect();
        c.tpl_dirty = true;
      }
    }
  }
}

std::string CameraAnalyzer::StatePrefix(std::string_view camera_id) {
  return "camf/" + std::string(camera_id) + "/";
}

// camf/<camera>/main: "last_seen last_analysed frames" then one line per
// event not idle: "<zone> <detector> <lifecycle>".
// camf/<camera>/tpl/<zone>: "x y w h\n" and the template as PNG.
std::vector<StateEntry> CameraAnalyzer::TakeDirty() {
  Impl& m = *impl_;
  std::vector<StateEntry> out;
  if (!m.dirty) return out;
  m.dirty = false;
  std::ostringstream os;
  os << m.last_seen_ms << ' ' << m.last_analysed_ms << ' ' << m.frames << '\n';
  const auto line = [&](const Track& t) {
    if (t.life.phase() != EventLifecycle::Phase::kIdle) os << t.zone << ' ' << t.detector << ' ' << t.life.Encode() << '\n';
  };
  for (const Track& t : m.tamper) line(t);
  for (ZoneRuntime& z : m.zones) {
    for (ZoneCheck& c : z.checks) {
      line(c.track);
      if (!c.tpl_dirty) continue;
      c.tpl_dirty = false;
      const std::string key = StatePrefix(m.camera.id) + "tpl/" + z.zone->id;
      if (c.tpl.empty()) {
        out.push_back({key, std::nullopt});
        continue;
      }
      std::vector<uchar> png;
      cv::imencode(".png", c.tpl, png);
      std::string v = std::to_string(c.tpl_box.x) + ' ' + std::to_string(c.tpl_box.y) + ' ' +
                      std::to_string(c.tpl_box.width) + ' ' + std::to_string(c.tpl_box.height) + '\n';
      v.append(png.begin(), png.end());
      out.push_back({key, std::move(v)});
    }
  }
  out.push_back({StatePrefix(m.camera.id) + "main", os.str()});
  return out;
}

void CameraAnalyzer::Restore(std::string_view key, std::string_view value) {
  Impl& m = *impl_;
  const std::string prefix = StatePrefix(m.camera.id);
  if (key.substr(0, prefix.size()) != prefix) return;
  const std::string_view rest = key.substr(prefix.size());
  if (rest == "main") {
    std::istringstream is{std::string(value)};
    long long seen = 0, analysed = 0, frames = 0;
    if (!(is >> seen >> analysed >> frames)) return;
    m.last_seen_ms = seen;
    m.last_analysed_ms = analysed;
    m.frames = frames;
    std::string zone, detector, encoded;
    while (is >> zone >> detector && std::getline(is >> std::ws, encoded)) {
      auto life = EventLifecycle::Decode(encoded);
      if (!life) continue;
      for (Track& t : m.tamper) {
        if (t.zone == zone && t.detector == detector) t.life = *life;
      }
      for (ZoneRuntime& z : m.zones) {
        for (ZoneCheck& c : z.checks) {
          if (c.track.zone == zone && c.track.detector == detector) c.track.life = *life;
        }
      }
    }
    return;
  }
  if (rest.substr(0, 4) != "tpl/") return;
  const std::string_view zone = rest.substr(4);
  const size_t nl = value.find('\n');
  if (nl == std::string_view::npos) return;
  int x = 0, y = 0, w = 0, h = 0;
  if (std::sscanf(std::string(value.substr(0, nl)).c_str(), "%d %d %d %d", &x, &y, &w, &h) != 4) return;
  const std::string_view png = value.substr(nl + 1);
  const cv::Mat buf(1, static_cast<int>(png.size()), CV_8U, const_cast<char*>(png.data()));
  cv::Mat tpl;
  try {
    tpl = cv::imdecode(buf, cv::IMREAD_GRAYSCALE);
  } catch (const cv::Exception&) {
    return;
  }
  if (tpl.empty() || tpl.cols != w || tpl.rows != h) return;
  for (ZoneRuntime& z : m.zones) {
    if (z.zone->id != zone) continue;
    for (ZoneCheck& c : z.checks) {
      if (c.kind != ZoneDetector::kStationary) continue;
      c.tpl = tpl;
      c.tpl_box = cv::Rect(x, y, w, h);
      c.last_box = c.tpl_box;
    }
  }
}

const std::string& CameraAnalyzer::camera_id() const { return impl_->camera.id; }
int64_t CameraAnalyzer::last_frame_ms() const { return impl_->last_seen_ms; }
int64_t CameraAnalyzer::frames_analysed() const { return impl_->frames; }
int64_t CameraAnalyzer::recalibrations() const { return impl_->recalibrations; }

size_t CameraAnalyzer::MemoryBytes() const {
  const Impl& m = *impl_;
  const auto bytes = [](const cv::Mat& x) { return x.empty() ? size_t{0} : x.total() * x.elemSize(); };
  size_t n = m.models.Bytes() + bytes(m.valid) + bytes(m.valid_small) + bytes(m.fg) + bytes(m.occupied) +
             bytes(m.still) + bytes(m.fire) + bytes(m.flow);
  const auto track = [](const Track& t) { return t.best_jpeg.capacity() + t.last_jpeg.capacity(); };
  for (const Track& t : m.tamper) n += track(t);
  for (const ZoneRuntime& z : m.zones) {
    n += bytes(z.mask);
    for (const ZoneCheck& c : z.checks) n += track(c.track) + bytes(c.tpl) + bytes(c.prev_fire);
  }
  return n;
}

}  // namespace cityloop::detect::camera

#include "detect/camera/scene_renderer.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>
#include <variant>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cityloop::detect::camera {
namespace {

constexpr double kPi = std::numbers::pi;

constexpr int64_t kParkDriveMs = 4000;    // a parked car's drive in, and its drive out after end
constexpr double kCrowdArriveMinS = 6, kCrowdArriveMaxS = 20;
constexpr double kFireGrowS = 20;
constexpr double kLightPeriodMs = 600000, kLightAmplitude = 0.08;
constexpr double kLightSwitchGain = 1.6;
constexpr double kLensGrey = 22, kLensNoiseSigma = 1.5;

constexpr double kLaneSpeedMin = 0.18, kLaneSpeedMax = 0.28;  // frame widths per second
constexpr double kWrongWaySpeed = 0.22, kJamSpeed = 0.006;
// Vehicles run on a circular track in "forward" units that reaches this far
// past both frame edges: more than the widest vehicle, so wrapping is unseen.
constexpr double kLaneMargin = 0.2;
constexpr double kTrackLength = 6;        // 8 slots per lane at traffic 1 -> ~1.5 vehicles in frame
constexpr double kMinHeadway = 0.22;      // widest vehicle (0.16) plus a gap
constexpr int kVehicleSlotsAtOne = 8, kWalkerSlotsAtOne = 3;
constexpr double kWalkVisible = 1.1;      // a walker's visible run: -0.05 .. 1.05

constexpr int kNoiseImages = 4, kNoisePad = 32;  // offsets give 4 * 33 * 33 noise patterns
constexpr int kShift = 4;                         // sub-pixel bits for OpenCV drawing
constexpr double kSub = 1 << kShift;
constexpr double kStance = 0.25;  // a standing figure's leg spread: a visible gap between the legs

// Street rows (normalised y), from core/camera_scene.h.
constexpr double kFarSide = SceneLayout::kFarSidewalkTop, kFarLane = SceneLayout::kFarLaneTop,
                 kNearLane = SceneLayout::kNearLaneTop, kNearSide = SceneLayout::kNearSidewalkTop;

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t Hash(uint64_t a, uint64_t b) { return Mix(a ^ Mix(b + 0x632be59bd9b4e019ULL)); }

// Our own generator: <random> distributions differ between standard libraries,
// and frames must be the same bytes wherever they are rendered.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() { return Mix(s_++); }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  int Int(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  bool Chance(double p) { return Uniform(0, 1) < p; }

 private:
  uint64_t s_;
};

double Frac(double x) { return x - std::floor(x); }

// Palettes, BGR. All keep Cr (YCrCb) well below the fire rules' 150, even
// after the light switch: no reds, oranges or yellows outside the fire.
const std::array<cv::Scalar, 8> kBodyColours = {{
    {150, 80, 35}, {105, 55, 25}, {128, 128, 128}, {186, 186, 182},
    {232, 232, 228}, {32, 32, 34}, {50, 85, 40}, {95, 85, 72},
}};
const cv::Scalar kParkedColour(185, 160, 40);  // teal: no traffic vehicle has it
const std::array<cv::Scalar, 7> kFacadeColours = {{
    {175, 185, 192}, {150, 150, 152}, {165, 150, 135}, {140, 162, 175},
    {150, 165, 150}, {120, 125, 130}, {185, 182, 178},
}};
const std::array<cv::Scalar, 3> kSkin = {{{140, 160, 180}, {110, 132, 155}, {75, 92, 115}}};
const std::array<cv::Scalar, 8> kShirts = {{
    {80, 40, 30}, {60, 60, 60}, {40, 80, 70}, {35, 35, 38},
    {110, 90, 70}, {205, 205, 205}, {150, 168, 178}, {120, 60, 50},
}};
const std::array<cv::Scalar, 4> kTrousers = {{{40, 40, 40}, {110, 70, 40}, {55, 55, 60}, {30, 45, 50}}};
const cv::Scalar kGlass(72, 58, 46), kTyre(24, 24, 26), kHub(125, 125, 128), kHeadlight(225, 238, 242);

cv::Point P(double x, double y) {
  return {static_cast<int>(std::lround(x * kSub)), static_cast<int>(std::lround(y * kSub))};
}

void FillPoly(cv::Mat& img, const std::vector<cv::Point>& pts, const cv::Scalar& c) {
  const cv::Point* p = pts.data();
  const int n = static_cast<int>(pts.size());
  cv::fillPoly(img, &p, &n, 1, c, cv::LINE_AA, kShift);
}
void FillRect(cv::Mat& img, double x0, double y0, double x1, double y1, const cv::Scalar& c) {
  FillPoly(img, {P(x0, y0), P(x1, y0), P(x1, y1), P(x0, y1)}, c);
}
void FillCircle(cv::Mat& img, double x, double y, double r, const cv::Scalar& c) {
  cv::circle(img, P(x, y), static_cast<int>(std::lround(r * kSub)), c, cv::FILLED, cv::LINE_AA, kShift);
}
void Line(cv::Mat& img, double x0, double y0, double x1, double y1, double thickness, const cv::Scalar& c) {
  cv::line(img, P(x0, y0), P(x1, y1), c, std::max(1, static_cast<int>(std::lround(thickness))), cv::LINE_AA, kShift);
}
// Whole-pixel rectangle for the background (no anti-aliasing needed).
void Block(cv::Mat& img, double x0, double y0, double x1, double y1, const cv::Scalar& c, int thickness = cv::FILLED) {
  cv::rectangle(img, cv::Point(static_cast<int>(x0), static_cast<int>(y0)),
                cv::Point(static_cast<int>(x1) - 1, static_cast<int>(y1) - 1), c, thickness);
}

// Adds zero-mean Gaussian texture (per-channel sigma, plus a shared grey part)
// to an 8-bit image region, saturating.
void AddTexture(cv::Mat roi, cv::RNG& rng, double grey_sigma, double colour_sigma) {
  cv::Mat acc;
  roi.convertTo(acc, CV_16SC3);
  if (grey_sigma > 0) {
    cv::Mat g(roi.size(), CV_16SC1);
    rng.fill(g, cv::RNG::NORMAL, 0, grey_sigma);
    cv::Mat g3;
    cv::merge(std::vector<cv::Mat>{g, g, g}, g3);
    acc += g3;
  }
  if (colour_sigma > 0) {
    cv::Mat c(roi.size(), CV_16SC3);
    rng.fill(c, cv::RNG::NORMAL, 0, colour_sigma);
    acc += c;
  }
  acc.convertTo(roi, CV_8UC3);
}

// ---- what a frame is made of, in pixels -------------------------------------------------------

struct VehicleSprite {
  double x, y, w, h;  // box
  cv::Scalar body;
  bool van;
  bool facing_right;
};

struct Look {
  cv::Scalar skin, hair, shirt, trousers;
};

struct PersonSprite {
  double fx, fy, h;  // feet (bottom centre) and height
  Look look;
  double swing;      // -1..1: leg and arm spread while walking; kStance standing
};

struct BoxSprite {
  double x, y, w, h;
};

// Drawn back to front by the bottom edge, so nearer things hide farther ones.
struct Sprite {
  double bottom;  // pixels
  std::variant<VehicleSprite, PersonSprite, BoxSprite> shape;
};

void DrawVehicle(cv::Mat& img, const VehicleSprite& v) {
  // f runs along the vehicle from its rear (0) to its front (1).
  const auto X = [&](double f) { return v.facing_right ? v.x + f * v.w : v.x + (1 - f) * v.w; };
  const auto Y = [&](double g) { return v.y + g * v.h; };
  const auto Quad = [&](double f0, double g0, double f1, double g1, double f2, double g2, double f3, double g3,
                        const cv::Scalar& c) {
    FillPoly(img, {P(X(f0), Y(g0)), P(X(f1), Y(g1)), P(X(f2), Y(g2)), P(X(f3), Y(g3))}, c);
  };
  const cv::Scalar trim = v.body * 0.72;
  if (v.van) {
    FillPoly(img, {P(X(0), Y(0)), P(X(0.9), Y(0)), P(X(1), Y(0.3)), P(X(1), Y(0.85)), P(X(0), Y(0.85))}, v.body);
    Quad(0.80, 0.08, 0.92, 0.08, 0.98, 0.34, 0.80, 0.42, kGlass);  // windscreen
    FillRect(img, X(0.06), Y(0.10), X(0.74), Y(0.36), kGlass);     // side windows
  } else {
    Quad(0.10, 0.40, 0.24, 0, 0.66, 0, 0.80, 0.40, v.body);        // cabin
    FillRect(img, X(0), Y(0.38), X(1), Y(0.85), v.body);           // body
    Quad(0.16, 0.38, 0.27, 0.07, 0.44, 0.07, 0.44, 0.38, kGlass);
    Quad(0.48, 0.38, 0.48, 0.07, 0.63, 0.07, 0.74, 0.38, kGlass);
  }
  FillRect(img, X(0), Y(0.60), X(1), Y(0.64), trim);               // side trim
  FillRect(img, X(0), Y(0.78), X(1), Y(0.85), v.body * 0.45);      // bumper line
  FillRect(img, X(0.95), Y(0.44), X(1), Y(0.54), kHeadlight);
  for (double f : {0.2, 0.8}) {
    FillCircle(img, X(f), Y(0.85), 0.15 * v.h, kTyre);
    FillCircle(img, X(f), Y(0.85), 0.07 * v.h, kHub);
  }
}

void DrawPerson(cv::Mat& img, const PersonSprite& p) {
  const double h = p.h, top = p.fy - h, x = p.fx, r = 0.075 * h;
  const double leg = std::max(1.5, 0.07 * h), arm = std::max(1.0, 0.055 * h);
  const double hip_y = top + 0.52 * h, shoulder_y = top + 0.2 * h;
  for (int s : {-1, 1}) {  // legs scissor one way, arms the other
    const double foot_x = x + s * (0.04 * h + p.swing * 0.12 * h);
    Line(img, x + s * 0.05 * h, hip_y, foot_x, p.fy - leg / 2, leg, p.look.trousers);
    Line(img, foot_x - 0.04 * h, p.fy - leg / 2, foot_x + 0.04 * h, p.fy - leg / 2, leg, p.look.hair);  // shoe
    Line(img, x + s * 0.12 * h, shoulder_y, x + s * (0.145 * h - p.swing * 0.09 * h), top + 0.5 * h, arm,
         p.look.shirt * 0.85);
  }
  FillPoly(img, {P(x - 0.13 * h, shoulder_y), P(x + 0.13 * h, shoulder_y), P(x + 0.095 * h, top + 0.55 * h),
                 P(x - 0.095 * h, top + 0.55 * h)},
           p.look.shirt);
  cv::ellipse(img, P(x, shoulder_y), cv::Size(static_cast<int>(0.13 * h * kSub), static_cast<int>(0.045 * h * kSub)),
              0, 180, 360, p.look.shirt, cv::FILLED, cv::LINE_AA, kShift);  // rounded shoulders
  FillRect(img, x - 0.03 * h, top + 1.7 * r, x + 0.03 * h, shoulder_y, p.look.skin);  // neck
  FillCircle(img, x, top + r, r, p.look.skin);
  cv::ellipse(img, P(x, top + 0.9 * r), cv::Size(static_cast<int>(r * kSub), static_cast<int>(0.8 * r * kSub)), 0,
              180, 360, p.look.hair, cv::FILLED, cv::LINE_AA, kShift);
}

void DrawBox(cv::Mat& img, const BoxSprite& b) {
  const cv::Scalar cardboard(95, 125, 150), top_face(118, 148, 170), edge(55, 78, 98), tape(150, 170, 185);
  FillRect(img, b.x, b.y, b.x + b.w, b.y + b.h, cardboard);
  FillRect(img, b.x, b.y, b.x + b.w, b.y + 0.22 * b.h, top_face);
  FillRect(img, b.x + 0.44 * b.w, b.y, b.x + 0.56 * b.w, b.y + b.h, tape);
  const double t = std::max(1.0, 0.06 * std::min(b.w, b.h));
  Line(img, b.x, b.y + 0.22 * b.h, b.x + b.w, b.y + 0.22 * b.h, std::max(1.0, t / 2), edge);  // lid seam
  cv::rectangle(img, P(b.x + t / 2, b.y + t / 2), P(b.x + b.w - t / 2, b.y + b.h - t / 2), edge,
                static_cast<int>(std::lround(t)), cv::LINE_AA, kShift);
}

struct SpriteDrawer {
  cv::Mat& img;
  void operator()(const VehicleSprite& v) const { DrawVehicle(img, v); }
  void operator()(const PersonSprite& p) const { DrawPerson(img, p); }
  void operator()(const BoxSprite& b) const { DrawBox(img, b); }
};

// Grey puffs rising from the fire's top, blended at 45 % over what is there.
void DrawSmoke(cv::Mat& img, double cx, double fire_top, double fw, double rh, double tau_s) {
  const double rise = 1.4 * rh, reach = 1.1 * fw;
  const cv::Rect area = cv::Rect(static_cast<int>(cx - reach), static_cast<int>(fire_top - rise - 0.5 * fw),
                                 static_cast<int>(2 * reach), static_cast<int>(rise + 0.5 * fw)) &
                        cv::Rect(0, 0, img.cols, img.rows);
  if (area.empty()) return;
  cv::Mat roi = img(area);
  cv::Mat overlay = roi.clone();
  constexpr int kPuffs = 6;
  for (int j = 0; j < kPuffs; ++j) {
    const double p = Frac(tau_s / 7 + static_cast<double>(j) / kPuffs);  // 0 at the flames, 1 at the top
    const double x = cx + 0.15 * fw * std::sin(2 * kPi * (p + 0.37 * j)) + 0.25 * fw * p - area.x;
    const double y = fire_top - p * rise - area.y;
    const double r = fw * (0.18 + 0.3 * p);
    cv::ellipse(overlay, P(x, y), cv::Size(static_cast<int>(r * kSub), static_cast<int>(0.8 * r * kSub)), 0, 0, 360,
                cv::Scalar::all(105 + 40 * p), cv::FILLED, cv::LINE_AA, kShift);
  }
  cv::addWeighted(overlay, 0.45, roi, 0.55, 0, roi);
}

// Tongued flame polygons in three nested layers; `grow` is the fraction of the
// region's area covered, `rng` is seeded per frame so the shape flickers.
void DrawFire(cv::Mat& img, double rx, double ry, double rw, double rh, double grow, double tau_s, Rng& rng) {
  const double s = std::sqrt(grow), fw = rw * s, fh = rh * s, cx = rx + rw / 2, yb = ry + rh;
  DrawSmoke(img, cx, yb - fh, fw, rh, tau_s);
  const int tongues = std::clamp(static_cast<int>(fw / 12), 3, 9);
  std::vector<double> peak(tongues), shift(tongues), valley(tongues + 1);
  for (int k = 0; k < tongues; ++k) {
    peak[k] = rng.Uniform(0.55, 1.0);
    shift[k] = rng.Uniform(-0.25, 0.25);
  }
  for (int k = 0; k <= tongues; ++k) {
    valley[k] = (k == 0 || k == tongues) ? rng.Uniform(0.02, 0.12) : rng.Uniform(0.12, 0.42);
  }
  const double flick = rng.Uniform(0, 1);
  const struct {
    double sw, sh;
    cv::Scalar colour;
  } layers[] = {
      {1.0, 1.0, cv::Scalar(10 + 25 * flick, 45 + 35 * flick, 225 + 30 * flick)},  // red-orange rim
      {0.72, 0.7, cv::Scalar(25, 135 + 40 * flick, 255)},                           // orange
      {0.42, 0.42, cv::Scalar(150 + 60 * flick, 236 + 16 * flick, 255)},           // yellow-white core
  };
  std::vector<cv::Point> pts;
  for (const auto& l : layers) {
    const double w = fw * l.sw, h = fh * l.sh;
    pts.clear();
    pts.push_back(P(cx - w / 2, yb));
    for (int k = 0; k < tongues; ++k) {
      pts.push_back(P(cx + (static_cast<double>(k) / tongues - 0.5) * w, yb - valley[k] * h));
      pts.push_back(P(cx + ((k + 0.5 + shift[k]) / tongues - 0.5) * w, yb - peak[k] * h));
    }
    pts.push_back(P(cx + w / 2, yb - valley[tongues] * h));
    pts.push_back(P(cx + w / 2, yb));
    FillPoly(img, pts, l.colour);
  }
  for (int k = 0; k < 3; ++k) {  // sparks just above the flames
    const double x = cx + rng.Uniform(-0.4, 0.4) * fw, y = yb - fh * rng.Uniform(0.9, 1.15);
    FillCircle(img, x, y, std::max(1.0, 0.012 * fw), cv::Scalar(120, 220, 255));
  }
}

// Depth key for a still event object whose bottom edge is in a lane: in front
// of all that lane's moving traffic (it stands at the kerb side, and a parked
// car or box must stay visible), behind the nearer lane and sidewalk.
double InFrontOfLane(double bottom) {
  if (bottom > kFarLane && bottom <= kNearLane) return std::max(bottom, kNearLane - 1e-3);
  if (bottom > kNearLane && bottom <= kNearSide) return std::max(bottom, kNearSide - 1e-3);
  return bottom;
}

// The lane (0 far, 1 near) a normalised y falls in; sidewalks go to the nearest lane.
int LaneAt(double y) { return y < kNearLane ? 0 : 1; }

uint64_t EventSeed(uint64_t seed, const SceneEvent& e) {
  uint64_t h = Hash(seed, static_cast<uint64_t>(e.kind));
  h = Hash(h, static_cast<uint64_t>(e.start_ms));
  for (double d : {e.region.x, e.region.y, e.region.w, e.region.h}) h = Hash(h, std::bit_cast<uint64_t>(d));
  return h;
}

}  // namespace

struct SceneRenderer::Impl {
  struct Slot {
    double offset, w, h, bottom;
    int colour;
    bool van;
  };
  struct Lane {
    int dir;                  // +1 left to right, -1 right to left
    double top, bottom, row;  // lane rows and the usual vehicle bottom
    double speed;
    std::vector<Slot> slots;
  };
  struct Walker {
    double x0, speed, track, feet_y, h;
    int dir;
    Look look;
  };

  SceneSpec spec;
  int W, H;
  cv::Mat background;
  std::array<cv::Mat, kNoiseImages> noise_pos, noise_neg;  // |noise| split by sign, so adding is two saturating ops
  std::array<Lane, 2> lanes;
  std::vector<Walker> walkers;
  double light_phase = 0;

  explicit Impl(SceneSpec s) : spec(std::move(s)), W(spec.width), H(spec.height) {
    if (W < 32 || H < 32) throw std::invalid_argument("SceneRenderer: frame must be at least 32x32");
    BuildBackground();
    BuildNoise();
    BuildTraffic();
  }

  double Px(double x) const { return x * W; }
  double Py(double y) const { return y * H; }

  static Look RandomLook(Rng& r) {
    return {kSkin[r.Int(kSkin.size())], cv::Scalar(28, 30, 34) + cv::Scalar::all(r.Int(20)),
            kShirts[r.Int(kShirts.size())], kTrousers[r.Int(kTrousers.size())]};
  }

  void BuildBackground() {
    Rng r(Hash(spec.seed, 1));
    cv::RNG cvrng(Hash(spec.seed, 2) | 1);
    background.create(H, W, CV_8UC3);
    cv::Mat& bg = background;
    const double far_side = Py(kFarSide), far_lane = Py(kFarLane), near_lane = Py(kNearLane), near_side = Py(kNearSide);

    // Sky, then facades of random width, height and colour with window grids and shop fronts.
    Block(bg, 0, 0, W, far_side, cv::Scalar(215, 200, 186));
    for (double x = 0; x < W;) {
      const double fw = r.Uniform(0.12, 0.28) * W, top = r.Uniform(0.0, 0.06) * H;
      const cv::Scalar& palette = kFacadeColours[r.Int(kFacadeColours.size())];
      const cv::Scalar base = palette + cv::Scalar::all(r.Uniform(-10, 10));
      const double x1 = std::min<double>(W, x + fw);
      Block(bg, x, top, x1, far_side, base);
      if (r.Chance(0.6)) {  // brick courses or panel joints
        const double course = r.Uniform(4, 7), joint = r.Uniform(10, 16);
        int row = 0;
        for (double y = top + course; y < far_side; y += course, ++row) {
          Block(bg, x, y, x1, y + 1, base * 0.88);
          for (double jx = x + (row % 2) * joint / 2; jx < x1; jx += joint) {
            Block(bg, jx, y - course + 1, jx + 1, y, base * 0.9);
          }
        }
      }
      Block(bg, x, top, x1, top + 3, base * 1.1);  // cornice
      const double cell_w = 0.045 * W, cell_h = 0.065 * H, shop_top = far_side - 0.07 * H;
      const int cols = std::max(1, static_cast<int>((x1 - x) / cell_w) - 1);
      const double x_margin = ((x1 - x) - cols * cell_w) / 2;
      for (double y = top + 0.025 * H; y + cell_h < shop_top; y += cell_h) {
        for (int c = 0; c < cols; ++c) {
          const double wx = x + x_margin + c * cell_w + 0.2 * cell_w, wy = y + 0.18 * cell_h;
          const double g = r.Chance(0.25) ? r.Uniform(110, 150) : r.Uniform(45, 85);  // reflecting sky or dark
          Block(bg, wx - 1, wy - 1, wx + 0.6 * cell_w + 1, wy + 0.62 * cell_h + 1, base * 1.15);
          Block(bg, wx, wy, wx + 0.6 * cell_w, wy + 0.62 * cell_h, cv::Scalar(g + 18, g + 8, g));
          Block(bg, wx + 0.3 * cell_w, wy, wx + 0.3 * cell_w + 1, wy + 0.62 * cell_h, base * 0.8);  // mullion
        }
      }
      Block(bg, x, shop_top, x1, far_side, base * 0.55);
      for (double sx = x + 4; sx + 20 < x1; sx += r.Uniform(24, 40)) {  // shop windows and doors
        const double sw = r.Uniform(14, 22), g = r.Uniform(0, 30);
        Block(bg, sx, shop_top + 4, sx + sw, far_side - 2, cv::Scalar(70 + g, 62 + g, 55 + g));
      }
      Block(bg, x, top, x + 2, far_side, base * 0.6);  // party wall
      x = x1;
    }
    AddTexture(bg(cv::Rect(0, 0, W, static_cast<int>(far_side))), cvrng, 5, 2);

    // Paving: staggered tiles of varied grey with dark joints.
    const auto Paving = [&](double y0, double y1, double tile_w, double tile_h) {
      Block(bg, 0, y0, W, y1, cv::Scalar::all(100));
      int row = 0;
      for (double y = y0; y < y1; y += tile_h, ++row) {
        for (double x = (row % 2) ? -tile_w / 2 : 0; x < W; x += tile_w) {
          const double g = r.Uniform(132, 168);
          Block(bg, std::max(0.0, x + 1), y + 1, std::min<double>(W, x + tile_w), std::min(y1, y + tile_h),
                cv::Scalar(g + 4, g + 2, g));
        }
      }
    };
    Paving(far_side, far_lane, W / 20.0, (far_lane - far_side) / 3);
    Paving(near_side, H, W / 13.0, (H - near_side) / 2.5);
    AddTexture(bg(cv::Rect(0, static_cast<int>(far_side), W, static_cast<int>(far_lane - far_side))), cvrng, 5, 1);
    AddTexture(bg(cv::Rect(0, static_cast<int>(near_side), W, H - static_cast<int>(near_side))), cvrng, 5, 1);

    // Asphalt: blotchy low-frequency tone, repair patches, cracks, then fine grain.
    const cv::Rect road(0, static_cast<int>(far_lane), W, static_cast<int>(near_side) - static_cast<int>(far_lane));
    cv::Mat asphalt = bg(road);
    asphalt.setTo(cv::Scalar(82, 80, 78));
    {
      cv::Mat coarse(std::max(2, road.height / 12), std::max(2, W / 12), CV_32FC1), big, big8;
      cvrng.fill(coarse, cv::RNG::NORMAL, 0, 8);
      cv::resize(coarse, big, road.size(), 0, 0, cv::INTER_CUBIC);
      cv::Mat big3;
      cv::merge(std::vector<cv::Mat>{big, big, big}, big3);
      cv::Mat acc;
      asphalt.convertTo(acc, CV_32FC3);
      acc += big3;
      acc.convertTo(asphalt, CV_8UC3);
    }
    for (int k = 0; k < 3; ++k) {
      const double px = r.Uniform(0, W), py = r.Uniform(road.y, road.y + road.height);  // repair patches
      const double pw = r.Uniform(0.05, 0.15) * W, ph = r.Uniform(0.02, 0.05) * H, g = r.Uniform(62, 72);
      Block(bg, px, py, px + pw, py + ph, cv::Scalar::all(g));
    }
    for (int k = 0; k < 6; ++k) {  // cracks
      double px = r.Uniform(0, W), py = r.Uniform(road.y, road.y + road.height);
      for (int seg = 0; seg < 5; ++seg) {
        const double nx = px + r.Uniform(-12, 12), ny = py + r.Uniform(-6, 6);
        cv::line(bg, cv::Point(static_cast<int>(px), static_cast<int>(py)),
                 cv::Point(static_cast<int>(nx), static_cast<int>(ny)), cv::Scalar::all(48), 1, cv::LINE_8);
        px = nx;
        py = ny;
      }
    }
    // Kerb stones and the solid edge lines at 0.45 and 0.85, dashed centre line at 0.65.
    const double line_t = std::max(2.0, 0.008 * H);
    Block(bg, 0, far_lane - 0.012 * H, W, far_lane, cv::Scalar::all(178));
    Block(bg, 0, far_lane, W, far_lane + 2, cv::Scalar::all(40));
    Block(bg, 0, far_lane + 0.012 * H, W, far_lane + 0.012 * H + line_t, cv::Scalar::all(212));
    Block(bg, 0, near_side, W, near_side + 0.016 * H, cv::Scalar::all(175));
    Block(bg, 0, near_side - 0.012 * H - line_t, W, near_side - 0.012 * H, cv::Scalar::all(212));
    const double dash = 0.05 * W, gap = 0.035 * W;
    for (double x = r.Uniform(-dash, 0); x < W; x += dash + gap) {
      Block(bg, std::max(0.0, x), near_lane - line_t / 2, std::min<double>(W, x + dash), near_lane + line_t / 2,
            cv::Scalar(212, 214, 214));
    }
    AddTexture(asphalt, cvrng, 9, 2);
  }

  void BuildNoise() {
    if (spec.noise_sigma <= 0) return;
    cv::RNG cvrng(Hash(spec.seed, 3) | 1);
    for (int i = 0; i < kNoiseImages; ++i) {
      cv::Mat n(H + kNoisePad, W + kNoisePad, CV_16SC3);
      cvrng.fill(n, cv::RNG::NORMAL, 0, spec.noise_sigma);
      n.convertTo(noise_pos[i], CV_8UC3);  // negatives saturate to 0
      cv::Mat neg = -n;
      neg.convertTo(noise_neg[i], CV_8UC3);
    }
  }

  void BuildTraffic() {
    Rng r(Hash(spec.seed, 4));
    light_phase = r.Uniform(0, 2 * kPi);
    const double traffic = std::max(0.0, spec.traffic);
    lanes[0] = {-1, kFarLane, kNearLane, 0.605, r.Uniform(kLaneSpeedMin, kLaneSpeedMax), {}};
    lanes[1] = {+1, kNearLane, kNearSide, 0.815, r.Uniform(kLaneSpeedMin, kLaneSpeedMax), {}};
    const int max_slots = static_cast<int>(kTrackLength / kMinHeadway);
    const int slots = std::min(max_slots, static_cast<int>(std::lround(kVehicleSlotsAtOne * traffic)));
    for (Lane& lane : lanes) {
      // One slot per equal segment of the track, jittered but never closer
      // than kMinHeadway; all share the lane's speed, so none ever overlap.
      const double segment = slots > 0 ? kTrackLength / slots : 0;
      for (int k = 0; k < slots; ++k) {
        lane.slots.push_back({k * segment + r.Uniform(0, segment - kMinHeadway), r.Uniform(0.10, 0.16),
                              r.Uniform(0.08, 0.12), lane.row + r.Uniform(-0.008, 0.008), r.Int(kBodyColours.size()),
                              r.Chance(0.15)});
      }
    }
    const int per_side = static_cast<int>(std::lround(kWalkerSlotsAtOne * traffic));
    for (int side = 0; side < 2; ++side) {
      for (int k = 0; k < per_side; ++k) {
        const double feet = side == 0 ? r.Uniform(0.36, 0.44) : r.Uniform(0.92, 0.99);
        const double h = (side == 0 ? 0.07 : 0.085) * r.Uniform(0.92, 1.08);
        walkers.push_back({r.Uniform(0, 3), r.Uniform(0.02, 0.04), kWalkVisible + r.Uniform(0.2, 1.0), feet, h,
                           r.Chance(0.5) ? 1 : -1, RandomLook(r)});
      }
    }
  }

  double LightGain(int64_t t) const {
    const auto period = static_cast<int64_t>(kLightPeriodMs);
    const double phase = static_cast<double>(((t % period) + period) % period) / kLightPeriodMs;
    return 1.0 + kLightAmplitude * std::sin(2 * kPi * phase + light_phase);
  }

  // A vehicle in pixels from its lane-forward position (xf: distance its rear
  // has travelled from the lane's entry edge, normalised).
  VehicleSprite LaneVehicle(const Lane& lane, double xf, double w, double h, double bottom, const cv::Scalar& colour,
                            bool van) const {
    const double left = lane.dir > 0 ? xf : 1 - xf - w;
    return {Px(left), Py(bottom - h), Px(w), Py(h), colour, van, lane.dir > 0};
  }

  void AddVehicle(std::vector<Sprite>& out, const VehicleSprite& v) const { out.push_back({v.y + v.h, v}); }
  void AddPerson(std::vector<Sprite>& out, const PersonSprite& p) const { out.push_back({p.fy, p}); }

  void AddTraffic(double t_s, const std::array<bool, 2>& lane_hidden, std::vector<Sprite>& out) const {
    for (int l = 0; l < 2; ++l) {
      if (lane_hidden[l]) continue;
      const Lane& lane = lanes[l];
      for (const Slot& s : lane.slots) {
        double u = std::fmod(s.offset + lane.speed * t_s, kTrackLength);
        if (u < 0) u += kTrackLength;
        const double xf = u - kLaneMargin;
        if (xf + s.w <= 0 || xf >= 1) continue;
        AddVehicle(out, LaneVehicle(lane, xf, s.w, s.h, s.bottom, kBodyColours[s.colour], s.van));
      }
    }
    for (const Walker& w : walkers) {
      double pos = std::fmod(w.x0 + w.speed * t_s, w.track);
      if (pos < 0) pos += w.track;
      if (pos >= kWalkVisible) continue;
      const double x = w.dir > 0 ? pos - 0.05 : 1.05 - pos;
      AddPerson(out, {Px(x), Py(w.feet_y), Py(w.h), w.look, std::sin(Px(x) / (0.55 * Py(w.h)) * kPi)});
    }
  }

  void AddParkedCar(const SceneEvent& e, int64_t t, std::vector<Sprite>& out) const {
    const SceneBox& b = e.region;
    double x = b.x;
    if (t < e.start_ms + kParkDriveMs) {  // decelerating in from off-frame left
      const double left = 1 - static_cast<double>(t - e.start_ms) / kParkDriveMs;
      x = b.x - (b.x + b.w) * left * left;
    } else if (t >= e.end_ms) {           // accelerating out past the right edge
      const double gone = static_cast<double>(t - e.end_ms) / kParkDriveMs;
      x = b.x + (1 - b.x) * gone * gone;
    }
    const VehicleSprite car{Px(x), Py(b.y), Px(b.w), Py(b.h), kParkedColour, false, true};
    out.push_back({Py(InFrontOfLane(b.y + b.h)), car});
  }

  void AddCrowd(const SceneEvent& e, int64_t t, std::vector<Sprite>& out) const {
    const SceneBox& b = e.region;
    Rng r(EventSeed(spec.seed, e));
    const int n = std::clamp(static_cast<int>(std::lround(b.w * b.h * 150)), 8, 15);
    const double ph = b.h >= 0.13 ? std::clamp(0.85 * b.h, 0.13, 0.20) : std::max(0.07, b.h);
    const double pw = 0.3 * ph * H / W;  // a figure's width, normalised
    const double tau = static_cast<double>(t - e.start_ms) / 1000;
    for (int i = 0; i < n; ++i) {
      // Stratified across the region's width, so the crowd does not clump.
      const double tx = b.w > pw ? b.x + pw / 2 + (b.w - pw) * (i + r.Uniform(0.2, 0.8)) / n : b.x + b.w / 2;
      const double ty = b.h >= ph ? r.Uniform(b.y + ph, b.y + b.h) : r.Uniform(b.y + b.h / 2, b.y + b.h);
      const double arrive = r.Uniform(kCrowdArriveMinS, kCrowdArriveMaxS), speed = r.Uniform(0.03, 0.05);
      const double from = r.Chance(0.5) ? -1 : 1, sway_period = r.Uniform(3, 5), sway_phase = r.Uniform(0, 2 * kPi);
      const Look look = RandomLook(r);
      if (tau < arrive) {
        const double x = tx + from * speed * (arrive - tau);
        if (x < -0.05 || x > 1.05) continue;
        AddPerson(out, {Px(x), Py(ty), Py(ph), look, std::sin(Px(x) / (0.55 * Py(ph)) * kPi)});
      } else {
        const double sway = 1.5 * std::sin(2 * kPi * tau / sway_period + sway_phase);
        AddPerson(out, {Px(tx) + sway, Py(ty), Py(ph), look, kStance});
      }
    }
  }

  void AddJam(const SceneEvent& e, int64_t t, const Lane& lane, std::vector<Sprite>& out) const {
    Rng r(EventSeed(spec.seed, e));
    struct Car {
      double at, w, h, bottom;
      int colour;
      bool van;
    };
    std::vector<Car> cars;
    double track = 0;
    while (track < 1 + 2 * kLaneMargin) {  // nose to tail, 0.015 apart
      const Car c{track, r.Uniform(0.10, 0.16), r.Uniform(0.08, 0.12), lane.row + r.Uniform(-0.006, 0.006),
                  r.Int(kBodyColours.size()), r.Chance(0.2)};
      cars.push_back(c);
      track += c.w + 0.015;
    }
    const double margin = (track - 1) / 2, moved = kJamSpeed * static_cast<double>(t - e.start_ms) / 1000;
    for (const Car& c : cars) {
      const double xf = std::fmod(c.at + moved, track) - margin;
      if (xf + c.w <= 0 || xf >= 1) continue;
      AddVehicle(out, LaneVehicle(lane, xf, c.w, c.h, c.bottom, kBodyColours[c.colour], c.van));
    }
  }

  // Returns false once the vehicle has left the frame.
  bool AddWrongWay(const SceneEvent& e, int64_t t, const Lane& lane, std::vector<Sprite>& out) const {
    Rng r(EventSeed(spec.seed, e));
    const double w = 0.13, h = 0.10, run = kWrongWaySpeed * static_cast<double>(t - e.start_ms) / 1000;
    const SceneBox& b = e.region;
    const double left = lane.dir > 0 ? b.x + b.w - run : b.x - w + run;
    if (left + w <= 0 || left >= 1) return false;
    const double bottom = std::clamp(b.y + b.h / 2 + h / 2, lane.top + h + 0.005, lane.bottom - 0.01);
    const cv::Scalar& colour = kBodyColours[r.Int(kBodyColours.size())];
    AddVehicle(out, {Px(left), Py(bottom - h), Px(w), Py(h), colour, false, lane.dir < 0});
    return true;
  }

  void AddNoise(cv::Mat& frame, int64_t t, double sigma) const {
    if (spec.noise_sigma <= 0 || sigma <= 0) return;
    const uint64_t h = Hash(Hash(spec.seed, 5), static_cast<uint64_t>(t));
    const int i = static_cast<int>(h % kNoiseImages);
    const cv::Rect roi(static_cast<int>((h >> 8) % (kNoisePad + 1)), static_cast<int>((h >> 24) % (kNoisePad + 1)),
                       W, H);
    const double scale = std::min(1.0, sigma / spec.noise_sigma);
    if (scale >= 1.0) {
      cv::add(frame, noise_pos[i](roi), frame);
      cv::subtract(frame, noise_neg[i](roi), frame);
    } else {
      cv::addWeighted(frame, 1, noise_pos[i](roi), scale, 0, frame);
      cv::addWeighted(frame, 1, noise_neg[i](roi), -scale, 0, frame);
    }
  }

  cv::Mat Render(int64_t t, const std::vector<SceneEvent>& events) const {
    std::vector<Sprite> sprites;
    std::vector<const SceneEvent*> fires;
    std::array<bool, 2> lane_hidden{};
    bool covered = false;
    double gain = LightGain(t);
    for (const SceneEvent& e : events) {
      if (e.kind == SceneEventKind::kParkedCar) {
        if (t >= e.start_ms && t < e.end_ms + kParkDriveMs) AddParkedCar(e, t, sprites);
        continue;
      }
      if (t < e.start_ms || t >= e.end_ms) continue;
      const int lane = LaneAt(e.region.y + e.region.h / 2);
      switch (e.kind) {
        case SceneEventKind::kCrowd: AddCrowd(e, t, sprites); break;
        case SceneEventKind::kDroppedBox:
          sprites.push_back({Py(InFrontOfLane(e.region.y + e.region.h)),
                             BoxSprite{Px(e.region.x), Py(e.region.y), Px(e.region.w), Py(e.region.h)}});
          break;
        case SceneEventKind::kFire: fires.push_back(&e); break;
        case SceneEventKind::kLensCovered: covered = true; break;
        case SceneEventKind::kLightSwitch: gain *= kLightSwitchGain; break;
        case SceneEventKind::kTrafficJam:
          AddJam(e, t, lanes[lane], sprites);
          lane_hidden[lane] = true;
          break;
        case SceneEventKind::kWrongWay:
          if (AddWrongWay(e, t, lanes[lane], sprites)) lane_hidden[lane] = true;
          break;
        case SceneEventKind::kParkedCar: break;
      }
    }
    if (covered) {
      cv::Mat frame(H, W, CV_8UC3, cv::Scalar::all(kLensGrey));
      AddNoise(frame, t, kLensNoiseSigma);
      return frame;
    }
    cv::Mat frame = background.clone();
    AddTraffic(static_cast<double>(t) / 1000, lane_hidden, sprites);
    std::stable_sort(sprites.begin(), sprites.end(),
                     [](const Sprite& a, const Sprite& b) { return a.bottom < b.bottom; });
    for (const Sprite& s : sprites) std::visit(SpriteDrawer{frame}, s.shape);
    for (const SceneEvent* e : fires) {
      const double tau_s = static_cast<double>(t - e->start_ms) / 1000;
      Rng r(Hash(EventSeed(spec.seed, *e), static_cast<uint64_t>(t)));
      DrawFire(frame, Px(e->region.x), Py(e->region.y), Px(e->region.w), Py(e->region.h),
               0.3 + 0.7 * std::min(1.0, tau_s / kFireGrowS), tau_s, r);
    }
    frame.convertTo(frame, -1, gain);
    AddNoise(frame, t, spec.noise_sigma);
    return frame;
  }
};

SceneRenderer::SceneRenderer(SceneSpec spec) : impl_(std::make_unique<Impl>(std::move(spec))) {}
SceneRenderer::~SceneRenderer() = default;

std::string SceneRenderer::RenderJpeg(int64_t t_ms, const std::vector<SceneEvent>& events) const {
  const cv::Mat frame = impl_->Render(t_ms, events);
  std::vector<uchar> buf;
  cv::imencode(".jpg", frame, buf, {cv::IMWRITE_JPEG_QUALITY, std::clamp(impl_->spec.jpeg_quality, 1, 100)});
  return std::string(buf.begin(), buf.end());
}

std::string SceneRenderer::RenderBgr(int64_t t_ms, const std::vector<SceneEvent>& events) const {
  const cv::Mat frame = impl_->Render(t_ms, events);  // freshly allocated, so continuous
  return std::string(reinterpret_cast<const char*>(frame.data), frame.total() * frame.elemSize());
}

const SceneSpec& SceneRenderer::spec() const { return impl_->spec; }

}  // namespace cityloop::detect::camera

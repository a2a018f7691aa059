#include "ingest/camera_scenes.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>
#include <random>
#include <string>

#include "ingest/simulator.h"

namespace cityloop::ingest {

namespace {

constexpr int64_t kSecond = 1000, kMinute = 60 * kSecond;
constexpr int64_t kExitMs = 6 * kSecond;  // a parked car drives out after its event ends

struct SceneOption {
  SceneEventKind kind;
  const CameraZone* zone;  // nullptr: the whole frame
  std::string category;
  int64_t dwell_ms;        // what the detector needs before it raises
};

SceneBox Bounds(const ImagePolygon& poly) {
  const auto b = BoundingBox(poly);
  return {b[0], b[1], b[2], b[3]};
}

// A w x h box centred in b, kept inside it where it fits.
SceneBox Centred(const SceneBox& b, double w, double h) {
  const double x = std::clamp(b.x + (b.w - w) / 2, 0.0, 1 - w);
  const double y = std::clamp(b.y + (b.h - h) / 2, 0.0, 1 - h);
  return {x, y, w, h};
}

SceneBox RegionFor(const SceneOption& o) {
  if (!o.zone) return {0, 0, 1, 1};
  const SceneBox b = Bounds(o.zone->polygon);
  switch (o.kind) {
    case SceneEventKind::kParkedCar: {
      const double w = 0.14, h = 0.10;
      SceneBox r = Centred(b, w, h);
      r.y = std::clamp(b.y + b.h - h - 0.01, 0.0, 1 - h);  // stands on the zone's far edge from the camera
      return r;
    }
    case SceneEventKind::kDroppedBox: return Centred(b, 0.07, 0.06);
    case SceneEventKind::kFire: return Centred(b, std::min(0.12, b.w), std::min(0.16, b.h));
    case SceneEventKind::kCrowd: return {b.x + b.w * 0.05, b.y + b.h * 0.05, b.w * 0.9, b.h * 0.9};
    default: return b;
  }
}

const char* TruthKind(SceneEventKind k) {
  switch (k) {
    case SceneEventKind::kParkedCar: return "camera_parked_car";
    case SceneEventKind::kDroppedBox: return "camera_dropped_box";
    case SceneEventKind::kCrowd: return "camera_crowd";
    case SceneEventKind::kFire: return "camera_fire";
    case SceneEventKind::kTrafficJam: return "camera_traffic_jam";
    case SceneEventKind::kWrongWay: return "camera_wrong_way";
    case SceneEventKind::kLensCovered: return "camera_lens_covered";
    case SceneEventKind::kLightSwitch: return "camera_light_switch";
  }
  return "camera";
}

uint64_t Hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  return h;
}

}  // namespace

SceneSpec SceneSpecFor(const Camera& camera, uint64_t seed) {
  SceneSpec spec;
  spec.camera_id = camera.id;
  spec.seed = seed ^ Hash(camera.id);
  return spec;
}

struct CameraScenes::Impl {
  struct Cam {
    const Camera* camera = nullptr;
    const CellInfo* cell = nullptr;
    std::vector<SceneOption> options;
    size_t next_option = 0;
    int64_t next_incident_ms = 0;
    std::vector<SceneEvent> events;  // scheduled, oldest first
  };
  using Slot = std::pair<int64_t, size_t>;

  std::shared_ptr<const CityModel> city;
  CameraScenesOptions opt;
  std::vector<Cam> cams;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<>> ticks;
  std::map<std::string, int64_t> category_free;  // category -> earliest start of its next incident
  std::vector<InjectedIncident> started;
  std::mt19937_64 rng;
  int64_t frame_ms = 200;
  int64_t spacing_ms = 0;

  Impl(std::shared_ptr<const CityModel> c, CameraScenesOptions o) : city(std::move(c)), opt(o), rng(o.seed ^ 0x7363656e6573ULL) {
    const Config& cfg = city->config();
    const CameraOptions& co = cfg.camera;
    spacing_ms = cfg.rules.merge_window_ms + 10 * kMinute;
    if (opt.fps <= 0) return;
    frame_ms = std::max<int64_t>(1, std::llround(1000 / opt.fps));
    for (const Camera& camera : cfg.city.cameras) {
      if (camera.zones.empty()) continue;
      Cam cam;
      cam.camera = &camera;
      cam.cell = city->CellAt(camera.position);
      if (!cam.cell) continue;
      for (const CameraZone& z : camera.zones) {
        for (ZoneDetector d : z.detectors) {
          const std::string cat = ZoneCategory(z, co, ZoneDetectorName(d));
          if (cat.empty() || !city->FindCategory(cat)) continue;
          switch (d) {
            case ZoneDetector::kStationary:
              cam.options.push_back({cat == "illegal_parking" ? SceneEventKind::kParkedCar : SceneEventKind::kDroppedBox,
                                     &z, cat, z.dwell_ms.value_or(co.stationary_dwell_ms)});
              break;
            case ZoneDetector::kCrowd:
              cam.options.push_back({SceneEventKind::kCrowd, &z, cat, z.dwell_ms.value_or(co.crowd_dwell_ms)});
              break;
            case ZoneDetector::kFire:
              cam.options.push_back({SceneEventKind::kFire, &z, cat, z.dwell_ms.value_or(co.fire_dwell_ms)});
              break;
            case ZoneDetector::kCongestion:
              cam.options.push_back({SceneEventKind::kTrafficJam, &z, cat, z.dwell_ms.value_or(co.congestion_dwell_ms)});
              break;
            case ZoneDetector::kWrongWay:
              cam.options.push_back({SceneEventKind::kWrongWay, &z, cat, z.dwell_ms.value_or(co.wrong_way_dwell_ms)});
              break;
            case ZoneDetector::kIntrusion: break;  // people walk through zones all day: no scene of its own
          }
        }
      }
      if (auto t = co.categories.find("tamper"); t != co.categories.end() && city->FindCategory(t->second)) {
        cam.options.push_back({SceneEventKind::kLensCovered, nullptr, t->second, co.tamper_dwell_ms});
      }
      std::shuffle(cam.options.begin(), cam.options.end(), rng);
      // Scenes start once the camera has been streaming a while (the models
      // learn the street first), cameras 40 s apart.
      cam.next_incident_ms = std::max(opt.start_ms, opt.frames_from_ms) + opt.first_incident_after_ms +
                             static_cast<int64_t>(cams.size()) * 40 * kSecond;
      const size_t index = cams.size();
      cams.push_back(std::move(cam));
      // Cameras tick out of step, as real ones do.
      const int64_t first = std::max(opt.start_ms, opt.frames_from_ms) + static_cast<int64_t>(index) * 37 % frame_ms;
      ticks.emplace(first, index);
    }
  }

  int64_t Duration(const SceneOption& o) {
    std::uniform_int_distribution<int64_t> extra;
    switch (o.kind) {
      case SceneEventKind::kParkedCar: extra = decltype(extra)(2 * kMinute, 5 * kMinute); break;
      case SceneEventKind::kDroppedBox: extra = decltype(extra)(2 * kMinute, 4 * kMinute); break;
      case SceneEventKind::kCrowd: extra = decltype(extra)(80 * kSecond, 3 * kMinute); break;
      case SceneEventKind::kFire: extra = decltype(extra)(40 * kSecond, 90 * kSecond); break;
      case SceneEventKind::kTrafficJam: extra = decltype(extra)(kMinute, 3 * kMinute); break;
      case SceneEventKind::kWrongWay: return 10 * kSecond;
      default: extra = decltype(extra)(30 * kSecond, 90 * kSecond); break;
    }
    return o.dwell_ms + extra(rng);
  }

  // Starts the camera's next scene incident when it is due and its category free.
  void MaybeSchedule(Cam& cam, int64_t ts) {
    if (cam.options.empty() || ts < cam.next_incident_ms) return;
    for (size_t tried = 0; tried < cam.options.size(); ++tried) {
      const SceneOption& o = cam.options[cam.next_option];
      cam.next_option = (cam.next_option + 1) % cam.options.size();
      if (ts < category_free[o.category]) continue;
      SceneEvent ev{o.kind, RegionFor(o), ts, ts + Duration(o)};
      cam.events.push_back(ev);
      category_free[o.category] = ev.end_ms + spacing_ms;
      cam.next_incident_ms = ev.end_ms + kExitMs + std::uniform_int_distribution<int64_t>(2 * kMinute, 5 * kMinute)(rng);
      InjectedIncident inc;
      inc.kind = TruthKind(o.kind);
      inc.category = o.category;
      inc.device_id = cam.camera->id;
      inc.sensor_kind = "camera";
      inc.cell_code = cam.cell->code;
      inc.district = cam.cell->district->id;
      inc.department = city->DepartmentFor(o.category, *cam.cell);
      inc.position = cam.camera->position;
      inc.start_ms = ev.start_ms;
      inc.end_ms = ev.end_ms;
      const Category* cat = city->FindCategory(o.category);
      inc.priority = PriorityName(cat ? cat->priority : Priority::kNormal);
      inc.devices = {cam.camera->id};
      inc.sources = {"camera"};
      inc.zone = o.zone ? o.zone->id : "frame";
      started.push_back(std::move(inc));
      return;
    }
    cam.next_incident_ms = ts + kMinute;  // every category busy elsewhere: look again later
  }

  FrameTick Next() {
    const auto [ts, index] = ticks.top();
    ticks.pop();
    ticks.emplace(ts + frame_ms, index);
    Cam& cam = cams[index];
    MaybeSchedule(cam, ts);
    FrameTick t;
    t.camera_id = cam.camera->id;
    t.ts_ms = ts;
    const int64_t now = ts;  // clang 14 cannot capture a structured binding
    std::erase_if(cam.events, [&](const SceneEvent& e) { return e.end_ms + kExitMs <= now; });
    for (const SceneEvent& e : cam.events) {
      if (e.start_ms <= ts) t.events.push_back(e);
    }
    return t;
  }
};

CameraScenes::CameraScenes(std::shared_ptr<const CityModel> city, CameraScenesOptions options)
    : impl_(std::make_unique<Impl>(std::move(city), options)) {}
CameraScenes::~CameraScenes() = default;

bool CameraScenes::empty() const { return impl_->cams.empty(); }

int64_t CameraScenes::next_ms() const {
  if (impl_->ticks.empty()) return INT64_MAX;
  const int64_t ts = impl_->ticks.top().first;
  return ts >= impl_->opt.stop_ms ? INT64_MAX : ts;
}

FrameTick CameraScenes::Next() { return impl_->Next(); }

std::vector<InjectedIncident> CameraScenes::TakeStarted(int64_t ts_ms) {
  std::vector<InjectedIncident> out;
  auto& s = impl_->started;
  auto it = std::stable_partition(s.begin(), s.end(), [&](const InjectedIncident& i) { return i.start_ms <= ts_ms; });
  out.assign(std::make_move_iterator(s.begin()), std::make_move_iterator(it));
  s.erase(s.begin(), it);
  return out;
}

}  // namespace cityloop::ingest

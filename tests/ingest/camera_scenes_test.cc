// CameraScenes, the simulator's camera streams, on the example config: which
// cameras tick and when, which scene incidents each camera's zones allow and
// where they are drawn, their spacing, determinism and their truth; and the
// Simulator interleaving the frame records with the rest.
#include "ingest/camera_scenes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/city.h"
#include "core/config.h"
#include "core/time_util.h"
#include "ingest/simulator.h"
#include "tests/support/test_support.h"

namespace cityloop::ingest {
namespace {

using nlohmann::json;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;

const int64_t kT0 = *ParseRfc3339Ms("2026-11-28T09:00:00+08:00");

std::shared_ptr<const CityModel> ExampleCity() {
  static const std::shared_ptr<const CityModel> city = []() -> std::shared_ptr<const CityModel> {
    ConfigLoadResult loaded = LoadConfigFile(testing::ExampleConfigPath());
    if (!loaded.config) {
      ADD_FAILURE() << (loaded.errors.empty() ? "no config" : loaded.errors[0].ToString());
      return nullptr;
    }
    auto built = CityModel::Build(*loaded.config);
    if (!built.ok()) {
      ADD_FAILURE() << built.status().ToString();
      return nullptr;
    }
    return *built;
  }();
  return city;
}

std::set<std::string> CamerasWithZones(const CityModel& city) {
  std::set<std::string> out;
  for (const Camera& c : city.config().city.cameras) {
    if (!c.zones.empty()) out.insert(c.id);
  }
  return out;
}

const CameraZone* FindZone(const CityModel& city, const std::string& camera, const std::string& zone) {
  const Camera* c = city.FindCamera(camera);
  if (!c) return nullptr;
  for (const CameraZone& z : c->zones) {
    if (z.id == zone) return &z;
  }
  return nullptr;
}

struct Bounds {
  double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
};
Bounds BoundsOf(const ImagePolygon& poly) {
  Bounds b;
  for (const ImagePoint& p : poly) {
    b.x0 = std::min(b.x0, p[0]);
    b.y0 = std::min(b.y0, p[1]);
    b.x1 = std::max(b.x1, p[0]);
    b.y1 = std::max(b.y1, p[1]);
  }
  return b;
}

// Everything a run of CameraScenes yields.
struct ScenesRun {
  std::vector<FrameTick> ticks;
  std::vector<InjectedIncident> incidents;
  // (camera, kind, start) -> the event as drawn, from the ticks.
  std::map<std::tuple<std::string, SceneEventKind, int64_t>, SceneEvent> drawn;
};

ScenesRun RunScenes(CameraScenesOptions o, int64_t until_ms, bool keep_ticks = true) {
  ScenesRun run;
  CameraScenes scenes(ExampleCity(), o);
  while (scenes.next_ms() < until_ms) {
    FrameTick t = scenes.Next();
    for (auto& inc : scenes.TakeStarted(t.ts_ms)) run.incidents.push_back(std::move(inc));
    for (const SceneEvent& e : t.events) run.drawn.emplace(std::make_tuple(t.camera_id, e.kind, e.start_ms), e);
    if (keep_ticks) run.ticks.push_back(std::move(t));
  }
  return run;
}

std::string Describe(const std::vector<InjectedIncident>& incidents) {
  std::string d;
  for (const auto& i : incidents) {
    d += "  +" + std::to_string((i.start_ms - kT0) / kSec) + "s.." + std::to_string((i.end_ms - kT0) / kSec) + "s " +
         i.device_id + " " + i.zone + " " + i.kind + " " + i.category + "\n";
  }
  return d.empty() ? "  (none)\n" : d;
}

TEST(CameraScenes, OnlyCamerasWithZonesTickEveryFrameIntervalInTsOrder) {
  ASSERT_NE(ExampleCity(), nullptr);
  const std::set<std::string> zoned = CamerasWithZones(*ExampleCity());
  ASSERT_EQ(zoned, (std::set<std::string>{"cam-031", "cam-032", "cam-034"}));
  ASSERT_GT(ExampleCity()->config().city.cameras.size(), zoned.size()) << "the example also has cameras without zones";

  CameraScenesOptions o;
  o.seed = 3;
  o.start_ms = kT0;
  o.fps = 5;
  const ScenesRun run = RunScenes(o, kT0 + 2 * kMin);
  ASSERT_FALSE(run.ticks.empty());
  std::map<std::string, std::vector<int64_t>> by_camera;
  int64_t prev = INT64_MIN;
  std::string prev_camera;
  for (const FrameTick& t : run.ticks) {
    EXPECT_TRUE(zoned.count(t.camera_id)) << "a camera without zones ticked: " << t.camera_id;
    EXPECT_GE(t.ts_ms, prev) << "out of ts order";
    if (t.ts_ms == prev) {
      EXPECT_GT(t.camera_id, prev_camera) << "ties go by camera";
    }
    EXPECT_GE(t.ts_ms, kT0);
    EXPECT_LT(t.ts_ms, kT0 + 2 * kMin);
    prev = t.ts_ms;
    prev_camera = t.camera_id;
    by_camera[t.camera_id].push_back(t.ts_ms);
  }
  ASSERT_EQ(by_camera.size(), 3u);
  for (const auto& [camera, ts] : by_camera) {
    SCOPED_TRACE(camera);
    // 5 fps for 2 minutes: 600 frames, one every 200 ms, the first within one interval of the start.
    EXPECT_EQ(ts.size(), 600u);
    EXPECT_LT(ts.front() - kT0, 200);
    for (size_t i = 1; i < ts.size(); ++i) {
      if (ts[i] - ts[i - 1] != 200) {
        ADD_FAILURE() << "frame " << i << " came " << ts[i] - ts[i - 1] << " ms after the one before";
        break;
      }
    }
  }
}

TEST(CameraScenes, FpsSetsTheIntervalAndStopEndsTheStream) {
  CameraScenesOptions o;
  o.start_ms = kT0;
  o.fps = 2;
  o.stop_ms = kT0 + 10 * kSec;
  CameraScenes scenes(ExampleCity(), o);
  ASSERT_FALSE(scenes.empty());
  std::map<std::string, std::vector<int64_t>> by_camera;
  for (int guard = 0; scenes.next_ms() != INT64_MAX && guard < 1000; ++guard) {
    const FrameTick t = scenes.Next();
    EXPECT_LT(t.ts_ms, o.stop_ms);
    by_camera[t.camera_id].push_back(t.ts_ms);
  }
  EXPECT_EQ(scenes.next_ms(), INT64_MAX) << "nothing at or after stop_ms";
  ASSERT_EQ(by_camera.size(), 3u);
  for (const auto& [camera, ts] : by_camera) {
    SCOPED_TRACE(camera);
    EXPECT_EQ(ts.size(), 20u);
    for (size_t i = 1; i < ts.size(); ++i) EXPECT_EQ(ts[i] - ts[i - 1], 500);
  }
}

TEST(CameraScenes, NoFpsOrNoZonesMeansNoTicks) {
  CameraScenesOptions o;
  o.start_ms = kT0;
  o.fps = 0;
  CameraScenes none(ExampleCity(), o);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.next_ms(), INT64_MAX);

  Config c = ExampleCity()->config();
  for (Camera& cam : c.city.cameras) cam.zones.clear();
  auto city = CityModel::Build(c);
  ASSERT_TRUE(city.ok()) << city.status().ToString();
  o.fps = 5;
  CameraScenes zoneless(*city, o);
  EXPECT_TRUE(zoneless.empty());
  EXPECT_EQ(zoneless.next_ms(), INT64_MAX);
}

TEST(CameraScenes, NoTicksBeforeFramesFrom) {
  CameraScenesOptions o;
  o.start_ms = kT0;
  o.fps = 5;
  o.frames_from_ms = kT0 + 10 * kMin;
  const ScenesRun run = RunScenes(o, kT0 + 11 * kMin);
  ASSERT_FALSE(run.ticks.empty());
  std::set<std::string> cameras;
  for (const FrameTick& t : run.ticks) {
    ASSERT_GE(t.ts_ms, o.frames_from_ms) << t.camera_id;
    cameras.insert(t.camera_id);
  }
  EXPECT_EQ(cameras.size(), 3u);
  EXPECT_LT(run.ticks.front().ts_ms - o.frames_from_ms, 200);
}

// What the example's zones allow, as (camera, zone, kind, category).
using Allowed = std::tuple<std::string, std::string, std::string, std::string>;
const std::set<Allowed>& ExampleAllowed() {
  static const std::set<Allowed> allowed = {
      {"cam-031", "no-parking-wuyi", "camera_parked_car", "illegal_parking"},
      {"cam-031", "plaza", "camera_crowd", "crowd_gathering"},
      {"cam-031", "frame", "camera_lens_covered", "camera_fault"},
      {"cam-032", "shopfronts", "camera_fire", "fire_candidate"},
      {"cam-032", "frame", "camera_lens_covered", "camera_fault"},
      {"cam-034", "northbound", "camera_traffic_jam", "traffic_congestion"},
      {"cam-034", "northbound", "camera_wrong_way", "wrong_way_driving"},
      {"cam-034", "southbound", "camera_dropped_box", "road_obstacle"},
      {"cam-034", "southbound-flow", "camera_wrong_way", "wrong_way_driving"},
      {"cam-034", "frame", "camera_lens_covered", "camera_fault"},
  };
  return allowed;
}

SceneEventKind KindOf(const std::string& truth_kind) {
  static const std::map<std::string, SceneEventKind> kinds = {
      {"camera_parked_car", SceneEventKind::kParkedCar},   {"camera_dropped_box", SceneEventKind::kDroppedBox},
      {"camera_crowd", SceneEventKind::kCrowd},            {"camera_fire", SceneEventKind::kFire},
      {"camera_traffic_jam", SceneEventKind::kTrafficJam}, {"camera_wrong_way", SceneEventKind::kWrongWay},
      {"camera_lens_covered", SceneEventKind::kLensCovered}};
  auto it = kinds.find(truth_kind);
  EXPECT_NE(it, kinds.end()) << "unexpected kind " << truth_kind;
  return it == kinds.end() ? SceneEventKind::kLightSwitch : it->second;
}

class CameraScenesDay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    CameraScenesOptions o;
    o.seed = 11;
    o.start_ms = kT0;
    o.fps = 1;  // incidents start on ticks: 1 s is fine enough, and quick
    run_ = new ScenesRun(RunScenes(o, kT0 + 10 * kHour, /*keep_ticks=*/false));
  }
  static void TearDownTestSuite() {
    delete run_;
    run_ = nullptr;
  }
  static ScenesRun* run_;
};
ScenesRun* CameraScenesDay::run_ = nullptr;

TEST_F(CameraScenesDay, EverySceneKindTheZonesAllowIsScheduledWithItsCategory) {
  const auto& incidents = run_->incidents;
  ASSERT_FALSE(incidents.empty());
  std::set<Allowed> seen;
  std::set<std::string> kinds;
  for (const InjectedIncident& i : incidents) {
    const Allowed a{i.device_id, i.zone, i.kind, i.category};
    EXPECT_TRUE(ExampleAllowed().count(a)) << "not allowed by the zones: " << i.device_id << " " << i.zone << " "
                                           << i.kind << " " << i.category;
    seen.insert(a);
    kinds.insert(i.kind);
    EXPECT_EQ(i.sensor_kind, "camera");
    EXPECT_EQ(i.devices, std::vector<std::string>{i.device_id});
    EXPECT_EQ(i.sources, std::vector<std::string>{"camera"});
    EXPECT_LT(i.start_ms, i.end_ms);
    EXPECT_GE(i.start_ms, kT0 + 60 * kSec) << "first_incident_after is a minute";
    const Camera* cam = ExampleCity()->FindCamera(i.device_id);
    ASSERT_NE(cam, nullptr);
    EXPECT_EQ(i.position, cam->position);
    const CellInfo* cell = ExampleCity()->CellAt(cam->position);
    ASSERT_NE(cell, nullptr);
    EXPECT_EQ(i.cell_code, cell->code);
    EXPECT_EQ(i.department, ExampleCity()->DepartmentFor(i.category, *cell));
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"camera_parked_car", "camera_crowd", "camera_fire", "camera_traffic_jam",
                                          "camera_wrong_way", "camera_dropped_box", "camera_lens_covered"}))
      << Describe(incidents);
  // The named ones: parked car in cam-031's no-parking zone, fire on cam-032, the lane ones on cam-034.
  for (const Allowed& a : std::vector<Allowed>{
           {"cam-031", "no-parking-wuyi", "camera_parked_car", "illegal_parking"},
           {"cam-031", "plaza", "camera_crowd", "crowd_gathering"},
           {"cam-032", "shopfronts", "camera_fire", "fire_candidate"},
           {"cam-034", "northbound", "camera_traffic_jam", "traffic_congestion"},
           {"cam-034", "southbound", "camera_dropped_box", "road_obstacle"}}) {
    EXPECT_TRUE(seen.count(a)) << std::get<0>(a) << " " << std::get<1>(a) << " " << std::get<2>(a) << "\n"
                               << Describe(incidents);
  }
}

TEST_F(CameraScenesDay, IncidentsAreDrawnInsideTheirZone) {
  ASSERT_FALSE(run_->incidents.empty());
  for (const InjectedIncident& i : run_->incidents) {
    SCOPED_TRACE(i.device_id + " " + i.zone + " " + i.kind);
    auto it = run_->drawn.find({i.device_id, KindOf(i.kind), i.start_ms});
    ASSERT_NE(it, run_->drawn.end()) << "the incident never appeared in its camera's ticks";
    const SceneEvent& e = it->second;
    EXPECT_EQ(e.end_ms, i.end_ms);
    const SceneBox& r = e.region;
    EXPECT_GT(r.w, 0);
    EXPECT_GT(r.h, 0);
    if (i.zone == "frame") {
      EXPECT_EQ(i.kind, "camera_lens_covered");
      EXPECT_DOUBLE_EQ(r.x, 0);
      EXPECT_DOUBLE_EQ(r.y, 0);
      EXPECT_DOUBLE_EQ(r.w, 1);
      EXPECT_DOUBLE_EQ(r.h, 1);
      continue;
    }
    const CameraZone* z = FindZone(*ExampleCity(), i.device_id, i.zone);
    ASSERT_NE(z, nullptr);
    const Bounds b = BoundsOf(z->polygon);
    constexpr double kEps = 1e-9;
    EXPECT_GE(r.x, b.x0 - kEps);
    EXPECT_GE(r.y, b.y0 - kEps);
    EXPECT_LE(r.x + r.w, b.x1 + kEps);
    EXPECT_LE(r.y + r.h, b.y1 + kEps);
  }
}

TEST_F(CameraScenesDay, TwoIncidentsOfOneCategoryAreNeverWithinTheMergeWindow) {
  const int64_t window = ExampleCity()->config().rules.merge_window_ms;
  ASSERT_GT(window, 0);
  std::map<std::string, std::vector<const InjectedIncident*>> by_category;
  for (const InjectedIncident& i : run_->incidents) by_category[i.category].push_back(&i);
  bool repeated = false;
  for (auto& [category, list] : by_category) {
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->start_ms < b->start_ms; });
    for (size_t k = 1; k < list.size(); ++k) {
      repeated = true;
      EXPECT_GE(list[k]->start_ms - list[k - 1]->end_ms, window)
          << category << ": " << list[k - 1]->device_id << " and " << list[k]->device_id << "\n"
          << Describe(run_->incidents);
    }
  }
  EXPECT_TRUE(repeated) << "ten hours should repeat some category\n" << Describe(run_->incidents);
}

TEST_F(CameraScenesDay, OneIncidentAtATimePerCameraAndTakenOnceInStartOrder) {
  std::map<std::string, const InjectedIncident*> last;
  int64_t prev_start = INT64_MIN;
  std::set<std::tuple<std::string, std::string, int64_t>> once;
  for (const InjectedIncident& i : run_->incidents) {
    EXPECT_GE(i.start_ms, prev_start) << "TakeStarted out of start order";
    prev_start = i.start_ms;
    EXPECT_TRUE(once.emplace(i.device_id, i.kind, i.start_ms).second) << "taken twice";
    if (auto it = last.find(i.device_id); it != last.end()) {
      EXPECT_GT(i.start_ms, it->second->end_ms) << i.device_id << " had two scenes at once";
    }
    last[i.device_id] = &i;
  }
}

TEST_F(CameraScenesDay, TruthJsonNamesTheZone) {
  ASSERT_FALSE(run_->incidents.empty());
  for (const InjectedIncident& i : run_->incidents) {
    const json j = json::parse(i.ToJson());
    ASSERT_TRUE(j.contains("zone")) << j.dump();
    EXPECT_EQ(j["zone"], i.zone);
    EXPECT_EQ(j["kind"], i.kind);
    EXPECT_EQ(j["category"], i.category);
    EXPECT_EQ(j["device_id"], i.device_id);
    EXPECT_EQ(j["start"], i.start_ms);
    EXPECT_EQ(j["end"], i.end_ms);
  }
}

TEST(CameraScenes, DeterministicForASeed) {
  CameraScenesOptions o;
  o.seed = 5;
  o.start_ms = kT0;
  o.fps = 1;
  auto digest = [](const ScenesRun& r) {
    std::string d;
    for (const FrameTick& t : r.ticks) {
      d += t.camera_id + "@" + std::to_string(t.ts_ms);
      for (const SceneEvent& e : t.events) {
        d += "/" + std::string(SceneEventKindName(e.kind)) + std::to_string(e.start_ms) + "-" +
             std::to_string(e.end_ms) + ":" + std::to_string(e.region.x) + "," + std::to_string(e.region.y) + "," +
             std::to_string(e.region.w) + "," + std::to_string(e.region.h);
      }
      d += ";";
    }
    for (const auto& i : r.incidents) d += i.ToJson() + "\n";
    return d;
  };
  const ScenesRun a = RunScenes(o, kT0 + 3 * kHour);
  const ScenesRun b = RunScenes(o, kT0 + 3 * kHour);
  ASSERT_FALSE(a.incidents.empty());
  EXPECT_TRUE(digest(a) == digest(b)) << "two runs with seed 5 differ";
  EXPECT_EQ(Describe(a.incidents), Describe(b.incidents));
  o.seed = 6;
  const ScenesRun c = RunScenes(o, kT0 + 3 * kHour);
  EXPECT_FALSE(digest(a) == digest(c)) << "seeds 5 and 6 gave the same scenes";
}

// --- The Simulator with frames -----------------------------------------------

struct SimRun {
  std::vector<SimulatedReading> records;
};

SimRun Simulate(double frame_fps, int64_t frames_from_ms, int64_t duration_ms) {
  SimulatorOptions o;
  o.seed = 9;
  o.start_ms = kT0;
  o.duration_ms = duration_ms;
  o.rate = 20;
  o.frame_fps = frame_fps;
  o.frames_from_ms = frames_from_ms;
  Simulator sim(ExampleCity(), o);
  SimRun run;
  SimulatedReading r;
  for (int guard = 0; guard < 1000000 && sim.Next(&r); ++guard) run.records.push_back(r);
  return run;
}

TEST(CameraScenesSimulator, FrameRecordsInterleaveInTsOrderWithTheOthers) {
  const std::string& frames_topic = ExampleCity()->config().kafka.topics.camera_frames;
  const int64_t from = kT0 + 30 * kSec;
  const SimRun run = Simulate(5, from, 2 * kMin);
  ASSERT_FALSE(run.records.empty());
  std::map<std::string, int64_t> frames_by_camera;
  std::set<std::string> other_topics;
  int64_t prev = INT64_MIN;
  bool other_after_frame = false, frame_seen = false;
  for (const SimulatedReading& r : run.records) {
    EXPECT_GE(r.ts_ms, prev) << "records out of ts order at " << r.topic << " " << r.key;
    prev = r.ts_ms;
    EXPECT_GE(r.ts_ms, kT0);
    EXPECT_LT(r.ts_ms, kT0 + 2 * kMin);
    if (r.frame) {
      EXPECT_EQ(r.topic, frames_topic);
      EXPECT_TRUE(r.value.empty()) << "the caller renders the frame";
      EXPECT_GE(r.ts_ms, from) << "a frame before frames_from_ms";
      ++frames_by_camera[r.key];
      frame_seen = true;
    } else {
      EXPECT_NE(r.topic, frames_topic) << "a record on the frames topic without frame=true";
      EXPECT_TRUE(r.scene.empty());
      EXPECT_FALSE(r.value.empty());
      other_topics.insert(r.topic);
      if (frame_seen) other_after_frame = true;
    }
  }
  EXPECT_TRUE(other_after_frame) << "frames and other records interleave";
  EXPECT_TRUE(other_topics.count(ExampleCity()->config().kafka.topics.sensors));
  ASSERT_EQ(frames_by_camera.size(), 3u);
  for (const auto& [camera, n] : frames_by_camera) {
    SCOPED_TRACE(camera);
    EXPECT_TRUE(CamerasWithZones(*ExampleCity()).count(camera));
    // 90 s at 5 fps.
    EXPECT_GE(n, 449);
    EXPECT_LE(n, 450);
  }
}

TEST(CameraScenesSimulator, NoFramesByDefault) {
  EXPECT_EQ(SimulatorOptions{}.frame_fps, 0);
  const std::string& frames_topic = ExampleCity()->config().kafka.topics.camera_frames;
  const SimRun run = Simulate(SimulatorOptions{}.frame_fps, 0, 2 * kMin);
  ASSERT_FALSE(run.records.empty());
  for (const SimulatedReading& r : run.records) {
    ASSERT_FALSE(r.frame) << r.key << " at " << r.ts_ms;
    ASSERT_NE(r.topic, frames_topic);
  }
}

}  // namespace
}  // namespace cityloop::ingest

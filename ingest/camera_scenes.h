// CameraScenes: the simulator's camera streams. For every camera with zones
// it yields a frame tick every 1/fps of city time, carrying the scene events
// then on view; the caller renders the JPEG (detect/camera/scene_renderer.h,
// app/simulation.cc) — ingest knows no pixels.
//
// Scene incidents are scheduled per camera from its zones, one at a time,
// each written to the truth with the case it should open:
//   camera_parked_car   a stationary zone of category illegal_parking: a car stops in it
//   camera_dropped_box  another stationary zone (a lane): a box falls and stays
//   camera_crowd        a crowd zone: people gather and stand
//   camera_fire         a fire zone: a flickering fire-coloured region (a candidate to confirm)
//   camera_traffic_jam  a congestion zone: the lane fills and crawls
//   camera_wrong_way    a wrong_way zone: one vehicle drives against the lane
//   camera_lens_covered any analysed camera: the lens is covered (camera.categories.tamper)
// Two incidents of one category start at least merge.window plus the
// longest scene apart, so each opens its own case.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/camera_scene.h"
#include "core/city.h"

namespace cityloop::ingest {

struct InjectedIncident;

struct CameraScenesOptions {
  uint64_t seed = 1;
  int64_t start_ms = 0;
  int64_t stop_ms = INT64_MAX;  // first ts not produced
  double fps = 5;               // frames per camera per second of city time; 0 = none
  int64_t frames_from_ms = 0;   // no frames before this (a run catching up skips the past)
  int64_t first_incident_after_ms = 60000;  // after the first frame
};

struct FrameTick {
  std::string camera_id;
  int64_t ts_ms = 0;
  std::vector<SceneEvent> events;  // on view at ts_ms (and those just ended, for their exits)
};

class CameraScenes {
 public:
  CameraScenes(std::shared_ptr<const CityModel> city, CameraScenesOptions options);
  ~CameraScenes();
  bool empty() const;            // no camera has zones, or fps is 0
  int64_t next_ms() const;       // ts of the next tick; INT64_MAX when none
  FrameTick Next();              // the next tick, in ts order (ties by camera)
  // Incidents that started at or before ts_ms, each once, in start order.
  std::vector<InjectedIncident> TakeStarted(int64_t ts_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The rendering spec of a configured camera (seeded by the run's seed).
SceneSpec SceneSpecFor(const Camera& camera, uint64_t seed);

}  // namespace cityloop::ingest

// Synthetic camera frames for the simulator and the camera-analytics tests:
// the street of core/camera_scene.h with traffic, lighting drift, sensor noise
// and the scene events drawn on it. A frame is a pure function of (spec,
// t_ms, events), so a replay renders the same bytes and tests need no clock.
//
// Event drawing conventions (region = SceneEvent::region, all times city ms):
//   kParkedCar    drives in from the left along the near lane during
//                 [start, start+4 s), stands with its box exactly at region
//                 until end, then drives out to the right during
//                 [end, end+4 s): the only event drawn outside [start, end).
//   kCrowd        8-15 people (by region area) walk in during the first
//                 ~20 s and stand with their feet in region, swaying 1-2 px;
//                 they are 0.13-0.20 of frame height when region is at least
//                 0.13 high, else region.h (at least 0.07) with heads above it.
//                 They vanish at end.
//   kDroppedBox   a cardboard box filling region, from start (no fade) to end.
//   kFire         flames anchored at region's bottom centre, reshaped every
//                 frame, growing from 30 % to 100 % of region's area over
//                 20 s, with translucent smoke rising above region.
//   kLensCovered  the whole frame is flat dark grey plus weak noise; nothing
//                 else is drawn while it lasts.
//   kLightSwitch  the whole frame's brightness times 1.6 (clamped).
//   kTrafficJam   the lane holding region's centre fills nose to tail with
//                 vehicles crawling at 0.006 frame widths/s in the lane's
//                 direction; that lane's normal traffic is not drawn meanwhile.
//   kWrongWay     one vehicle, centred vertically on region within its lane,
//                 starts just outside region's upstream edge (for the wrong
//                 direction) at start and drives against the lane at 0.22
//                 widths/s until it leaves the frame or end; that lane's
//                 normal traffic is not drawn while it is visible.
// A parked car or box standing in a lane is drawn in front of that lane's
// moving traffic (behind the nearer lane), so it is never occluded by it.
// Normal traffic never stops and never drives against its lane.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/camera_scene.h"

namespace cityloop::detect::camera {

class SceneRenderer {
 public:
  // Builds the static background and noise bank from spec.seed (tens of ms);
  // throws std::invalid_argument unless width and height are at least 32.
  explicit SceneRenderer(SceneSpec spec);
  ~SceneRenderer();
  SceneRenderer(const SceneRenderer&) = delete;
  SceneRenderer& operator=(const SceneRenderer&) = delete;

  // The frame at city time t_ms as JPEG (spec.jpeg_quality). Events whose
  // [start_ms, end_ms) holds t_ms are drawn (plus a parked car's drive-out),
  // the rest ignored. Same spec, t_ms and events give the same bytes.
  std::string RenderJpeg(int64_t t_ms, const std::vector<SceneEvent>& events) const;
  // The same frame as 8-bit BGR, row-major, width*height*3 bytes.
  std::string RenderBgr(int64_t t_ms, const std::vector<SceneEvent>& events) const;

  const SceneSpec& spec() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::detect::camera

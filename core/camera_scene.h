// Synthetic camera scenes: what the simulator asks the scene renderer
// (detect/camera/scene_renderer.h) to draw for one camera, and the ground
// truth it writes. Coordinates are normalised to the frame: x to the right,
// y down, both 0..1.
//
// Every scene has the same street layout, so zones in the config can be drawn
// against it (deploy/cityloop.example.yaml does):
//   y 0.00-0.30  buildings (textured facades)
//   y 0.30-0.45  far sidewalk (people walk both ways)
//   y 0.45-0.65  far lane: traffic moves right to left (direction [-1, 0])
//   y 0.65-0.85  near lane: traffic moves left to right (direction [1, 0])
//   y 0.85-1.00  near sidewalk (people walk both ways)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cityloop {

// The street layout above, for code that places things in a scene.
struct SceneLayout {
  static constexpr double kFarSidewalkTop = 0.30, kFarLaneTop = 0.45, kNearLaneTop = 0.65, kNearSidewalkTop = 0.85;
};

enum class SceneEventKind {
  kParkedCar,     // a car drives in along the near lane, stops with its box in `region`, leaves at end
  kCrowd,         // people walk into `region`, stand there (small movements), disperse at end
  kDroppedBox,    // a box appears in `region` (falls from a passing vehicle) and stays until end
  kFire,          // a flickering, growing fire-coloured region with smoke in `region`
  kLensCovered,   // from start to end the lens is covered: a near-uniform dark frame
  kLightSwitch,   // at start the whole frame's brightness jumps (street lights, IR switch); back at end
  kTrafficJam,    // from start to end the lane in `region` is full of vehicles crawling (or stopped)
  kWrongWay,      // one vehicle drives against the lane's direction through `region`
};
std::string_view SceneEventKindName(SceneEventKind k);  // "parked_car", "crowd", ...

struct SceneBox {
  double x = 0, y = 0, w = 0, h = 0;  // normalised; (x, y) is the top-left corner
};

struct SceneEvent {
  SceneEventKind kind = SceneEventKind::kParkedCar;
  SceneBox region;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
};

struct SceneSpec {
  std::string camera_id;
  uint64_t seed = 1;        // background texture, traffic and noise
  int width = 640;
  int height = 480;
  double traffic = 1.0;     // vehicles and people per frame relative to normal; 0 = empty street
  double noise_sigma = 3;   // sensor noise (grey levels)
  int jpeg_quality = 80;
};

}  // namespace cityloop

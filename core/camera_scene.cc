#include "core/camera_scene.h"

namespace cityloop {

std::string_view SceneEventKindName(SceneEventKind k) {
  switch (k) {
    case SceneEventKind::kParkedCar: return "parked_car";
    case SceneEventKind::kCrowd: return "crowd";
    case SceneEventKind::kDroppedBox: return "dropped_box";
    case SceneEventKind::kFire: return "fire";
    case SceneEventKind::kLensCovered: return "lens_covered";
    case SceneEventKind::kLightSwitch: return "light_switch";
    case SceneEventKind::kTrafficJam: return "traffic_jam";
    case SceneEventKind::kWrongWay: return "wrong_way";
  }
  return "unknown";
}

}  // namespace cityloop

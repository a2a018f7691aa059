// CameraDetector: a rules[] entry of kind camera, over edge-AI detections
// (city.camera.detections). Per camera:
//
//   idle --matching detection--> pending --seen min_detections times over
//   `for`--> alarm (Signal) --no match for `cooldown`--> idle
//
// A detection matches when its label is one of the rule's, its score is at
// least min_score and (with a zone) the bottom-centre of its box lies in the
// zone. Messages at or before the camera's newest timestamp are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "detect/rule.h"

namespace cityloop::detect {

struct CameraState {
  enum class Phase : uint8_t { kIdle = 0, kPending = 1, kAlarm = 2 };
  Phase phase = Phase::kIdle;
  int64_t since_ms = 0;       // first matching detection of the episode
  int64_t last_match_ms = 0;
  int64_t last_ts_ms = 0;     // newest message applied
  int32_t matches = 0;        // matching messages in the episode
  double best_score = 0;
  std::string Encode() const;
  static std::optional<CameraState> Decode(std::string_view text);
  size_t Bytes() const { return 0; }
};

class CameraDetector : public DeviceRule<CameraRule, CameraState> {
 public:
  static constexpr std::string_view kPrefix = "cam/";
  CameraDetector(const CameraRule& rule, const CityModel& city, DeviceTable& devices)
      : DeviceRule(rule, city, devices, kPrefix) {}

  bool WatchesDetections() const override { return true; }
  void OnDetections(const CameraDetections& d, uint32_t camera, RuleContext& ctx) override;

 private:
  // The best matching detection of d, or nullptr.
  const CameraDetection* BestMatch(const CameraDetections& d) const;
};

}  // namespace cityloop::detect

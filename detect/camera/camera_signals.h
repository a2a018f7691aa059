// Signals from camera events: one START signal opens (or joins) a case; the
// event's UPDATE and END follow it into the same case (Signal::follows).
// Shared by frame analytics and edge detections, so both feed the same
// incidents. No OpenCV.
#pragma once

#include <string>
#include <string_view>

#include "core/city.h"
#include "core/model.h"
#include "detect/camera/event_lifecycle.h"

namespace cityloop::detect::camera {

struct CameraEventSource {
  const Camera* camera = nullptr;
  std::string zone;        // zone or line id; "frame" for whole-frame checks (tamper)
  std::string detector;    // "stationary", "tamper.covered", "line", ...
  std::string category;
  InputRef input;          // the input that made the transition
  int64_t ingest_ms = 0;
};

// "<camera>:<zone>:<detector>:<start_ms>": stable across replays and restarts.
std::string CameraEventId(const CameraEventSource& src, int64_t start_ms);

// The signal for one transition. what: a short phrase for operators
// ("a stationary object", "a crowd"); value_text: the measure as words
// ("1.8 % of the frame"). Attributes: zone, detector, phase, peak, box and,
// for END, duration_s.
Signal CameraEventSignal(const CityModel& city, const CameraEventSource& src, const EventTransition& t,
                         std::string_view what, std::string_view value_text);

}  // namespace cityloop::detect::camera

#include "detect/camera/camera_signals.h"

#include <cstdio>

namespace cityloop::detect::camera {

std::string CameraEventId(const CameraEventSource& src, int64_t start_ms) {
  return src.camera->id + ":" + src.zone + ":" + src.detector + ":" + std::to_string(start_ms);
}

Signal CameraEventSignal(const CityModel& city, const CameraEventSource& src, const EventTransition& t,
                         std::string_view what, std::string_view value_text) {
  Signal s;
  const std::string event_id = CameraEventId(src, t.start_ms);
  s.source = SignalSource::kCamera;
  s.category = src.category;
  const Category* cat = city.FindCategory(src.category);
  s.priority = cat ? cat->priority : Priority::kNormal;
  const CellInfo* cell = city.CellAt(src.camera->position);
  s.cell = cell ? cell->index : -1;
  s.position = src.camera->position;
  s.ts_ms = t.start_ms;
  s.fired_ms = t.ts_ms;
  s.ingest_ms = src.ingest_ms;
  s.device_id = src.camera->id;
  s.sensor_kind = "camera";
  s.rule_id = "camera." + src.detector;
  s.value = t.value;
  s.input = src.input;
  switch (t.kind) {
    case EventTransition::Kind::kStart: s.id = event_id; break;
    case EventTransition::Kind::kUpdate: s.id = event_id + ":update:" + std::to_string(t.ts_ms); break;
    case EventTransition::Kind::kEnd: s.id = event_id + ":end"; break;
  }
  if (t.kind != EventTransition::Kind::kStart) s.follows = event_id;
  char box[96];
  std::snprintf(box, sizeof box, "[%.3f, %.3f, %.3f, %.3f]", t.box[0], t.box[1], t.box[2], t.box[3]);
  char peak[32];
  std::snprintf(peak, sizeof peak, "%.4g", t.peak);
  s.attributes = {{"zone", src.zone},
                  {"detector", src.detector},
                  {"phase", TransitionName(t.kind)},
                  {"peak", peak},
                  {"box", box},
                  {"event_id", event_id}};
  const std::string where = src.camera->id + (src.zone == "frame" ? "" : " zone " + src.zone);
  const long long secs = static_cast<long long>(t.duration_ms() / 1000);
  switch (t.kind) {
    case EventTransition::Kind::kStart:
      s.explanation = where + ": " + std::string(what) + " for " + std::to_string(secs) + "s (" +
                      std::string(value_text) + ")";
      break;
    case EventTransition::Kind::kUpdate:
      s.explanation = where + ": " + std::string(what) + " growing, " + std::string(value_text);
      break;
    case EventTransition::Kind::kEnd:
      s.attributes["duration_s"] = std::to_string(secs);
      s.explanation = where + ": " + std::string(what) + " gone after " + std::to_string(secs) + "s (peak " + peak + ")";
      break;
  }
  return s;
}

}  // namespace cityloop::detect::camera

#include "detect/camera_detector.h"

#include <algorithm>
#include <cstdio>

namespace cityloop::detect {

std::string CameraState::Encode() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%d %lld %lld %lld %d %.17g", static_cast<int>(phase),
                static_cast<long long>(since_ms), static_cast<long long>(last_match_ms),
                static_cast<long long>(last_ts_ms), matches, best_score);
  return buf;
}

std::optional<CameraState> CameraState::Decode(std::string_view text) {
  CameraState s;
  int phase = 0;
  long long since = 0, match = 0, last = 0;
  std::string copy(text);
  if (std::sscanf(copy.c_str(), "%d %lld %lld %lld %d %lg", &phase, &since, &match, &last, &s.matches,
                  &s.best_score) != 6 ||
      phase < 0 || phase > 2) {
    return std::nullopt;
  }
  s.phase = static_cast<CameraState::Phase>(phase);
  s.since_ms = since;
  s.last_match_ms = match;
  s.last_ts_ms = last;
  return s;
}

const CameraDetection* CameraDetector::BestMatch(const CameraDetections& d) const {
  const CameraRule& rule = config();
  const CameraDetection* best = nullptr;
  for (const CameraDetection& det : d.detections) {
    if (det.score < rule.min_score) continue;
    if (std::find(rule.labels.begin(), rule.labels.end(), det.label) == rule.labels.end()) continue;
    if (rule.zone) {
      // An object is where it stands: the bottom-centre of its box.
      const double x = det.bbox[0] + det.bbox[2] / 2, y = det.bbox[1] + det.bbox[3];
      const auto& z = *rule.zone;
      if (x < z[0] || x > z[0] + z[2] || y < z[1] || y > z[1] + z[3]) continue;
    }
    if (!best || det.score > best->score) best = &det;
  }
  return best;
}

void CameraDetector::OnDetections(const CameraDetections& d, uint32_t camera, RuleContext& ctx) {
  const CameraRule& rule = config();
  if (!AppliesTo(rule.cameras, d.camera_id)) return;
  const bool fresh = !states_.Has(camera);
  CameraState& st = states_.At(camera);
  if (!fresh && d.ts_ms <= st.last_ts_ms) return;
  st.last_ts_ms = d.ts_ms;
  states_.MarkDirty(camera);
  if (st.phase != CameraState::Phase::kIdle && d.ts_ms - st.last_match_ms >= rule.cooldown_ms) {
    st.phase = CameraState::Phase::kIdle;  // the episode ended while nothing matched
  }
  const CameraDetection* match = BestMatch(d);
  if (!match) return;
  if (st.phase == CameraState::Phase::kIdle) {
    st = {CameraState::Phase::kPending, d.ts_ms, d.ts_ms, d.ts_ms, 0, 0};
  }
  st.last_match_ms = d.ts_ms;
  ++st.matches;
  st.best_score = std::max(st.best_score, match->score);
  if (st.phase != CameraState::Phase::kPending || st.matches < rule.min_detections ||
      d.ts_ms - st.since_ms < rule.min_duration_ms) {
    return;
  }
  st.phase = CameraState::Phase::kAlarm;
  Signal s = RuleSignal(rule, city_, SignalSource::kCamera);
  s.id = rule.id + ":" + d.camera_id + ":" + std::to_string(st.since_ms);
  s.cell = d.cell;
  s.position = d.position;
  s.ts_ms = st.since_ms;
  s.fired_ms = d.ts_ms;
  s.ingest_ms = d.ingest_ms;
  s.device_id = d.camera_id;
  s.sensor_kind = "camera";
  s.value = st.best_score;
  s.threshold = rule.min_score;
  s.input = d.input;
  char bbox[96];
  std::snprintf(bbox, sizeof bbox, "[%.3f, %.3f, %.3f, %.3f]", match->bbox[0], match->bbox[1], match->bbox[2],
                match->bbox[3]);
  char score[32];
  std::snprintf(score, sizeof score, "%.2f", match->score);
  s.attributes = {{"label", match->label}, {"score", score}, {"bbox", bbox}, {"detections", std::to_string(st.matches)}};
  if (!match->track_id.empty()) s.attributes["track_id"] = match->track_id;
  s.explanation = d.camera_id + " saw " + match->label + " (score " + score + ", best " +
                  std::to_string(st.best_score).substr(0, 4) + ") in " + std::to_string(st.matches) +
                  " message(s) over " + std::to_string((d.ts_ms - st.since_ms) / 1000) + "s";
  ctx.signals->push_back(std::move(s));
}

}  // namespace cityloop::detect

// The one event model every camera detector shares, for frames and for edge
// detections alike (DOMAIN.md "Camera analytics"):
//
//   idle --evidence--> pending --evidence held for dwell--> active (START)
//   active --peak grows by a quarter, at most once per update_every--> (UPDATE)
//   active --no evidence for cooldown--> idle (END, with duration and peak)
//
// A pending event that loses its evidence for longer than pending_gap goes
// back to idle without a word: dwell must be continuous. "Cooldown" is the
// active phase after the last evidence. Pure logic on event time; no OpenCV.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cityloop::detect::camera {

using ImageBox = std::array<double, 4>;  // [x, y, w, h], normalised to the frame

// What one detector saw for one zone in one frame (or one detections message).
struct Evidence {
  bool present = false;
  double value = 0;   // the detector's measure (area share, people, speed, ...)
  ImageBox box{};     // where
};

struct LifecycleTimes {
  int64_t dwell_ms = 0;        // evidence held this long before START
  int64_t cooldown_ms = 15000; // no evidence this long after the last before END
  int64_t pending_gap_ms = 1000;  // a pending event survives gaps in its evidence up to this
  int64_t update_every_ms = 60000;
};

struct EventTransition {
  enum class Kind { kStart, kUpdate, kEnd };
  Kind kind = Kind::kStart;
  int64_t start_ms = 0;  // first evidence of the episode
  int64_t ts_ms = 0;     // when the transition happened (END: the last evidence)
  double value = 0;      // the latest value
  double peak = 0;
  ImageBox box{};        // of the peak
  int64_t duration_ms() const { return ts_ms - start_ms; }
};
const char* TransitionName(EventTransition::Kind k);  // "start", "update", "end"

class EventLifecycle {
 public:
  enum class Phase : uint8_t { kIdle = 0, kPending = 1, kActive = 2 };

  // One observation at ts_ms (non-decreasing). Absent evidence counts as a
  // look that saw nothing.
  std::optional<EventTransition> Observe(int64_t ts_ms, const Evidence& e, const LifecycleTimes& t);
  // Time passed with no look at all (no frames): may END an active event, or
  // drop a pending one.
  std::optional<EventTransition> Expire(int64_t now_ms, const LifecycleTimes& t);

  Phase phase() const { return phase_; }
  bool active() const { return phase_ == Phase::kActive; }
  int64_t start_ms() const { return start_ms_; }
  int64_t last_evidence_ms() const { return last_evidence_ms_; }
  double peak() const { return peak_; }
  const ImageBox& peak_box() const { return peak_box_; }

  std::string Encode() const;
  static std::optional<EventLifecycle> Decode(std::string_view text);
  bool operator==(const EventLifecycle&) const = default;

 private:
  EventTransition Make(EventTransition::Kind k, int64_t ts_ms) const;

  Phase phase_ = Phase::kIdle;
  int64_t start_ms_ = 0;
  int64_t last_evidence_ms_ = 0;
  int64_t last_update_ms_ = 0;
  double value_ = 0;
  double peak_ = 0;
  double reported_peak_ = 0;  // the peak the last START/UPDATE told
  ImageBox peak_box_{};
};

}  // namespace cityloop::detect::camera

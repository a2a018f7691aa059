// CameraAnalyzer: classical OpenCV analytics for one camera's JPEG frames
// (city.camera.frames), after DOMAIN.md "Camera analytics". Per analysed frame:
//
//   decode at reduced size (JPEG DCT scaling; the original bytes are kept for
//   snapshots) -> tamper checks (covered, defocused, moved, frozen) -> motion
//   gate (running average; a change over motion.recalibrate of the frame is a
//   light change: every model is re-learnt instead of alarming) -> foreground
//   (MOG2) and a short- and a long-term background -> the zone detectors:
//   intrusion, stationary, crowd, congestion, wrong_way, fire.
//
// Frames faster than camera.fps (event time) are skipped; the first
// camera.warmup frames, and a few after a recalibration, only train the
// models. Every detector reports evidence into one EventLifecycle per (zone,
// detector); a transition comes out as a FrameEvent with the best (START) or
// final (END) snapshot and an annotated copy.
//
// Durable state (lifecycles, a confirmed stationary object's template) goes
// out through TakeDirty; background models are soft state, re-learnt from the
// frames after a restart (see docs/ARCHITECTURE.md "Camera analytics").
// Not thread-safe: one engine thread owns it. The header has no OpenCV.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "detect/camera/event_lifecycle.h"
#include "detect/rule.h"

namespace cityloop::detect::camera {

struct FrameEvent {
  std::string zone;        // zone id, or "frame" for tamper
  std::string detector;    // "stationary", "tamper.covered", ...
  std::string category;
  EventTransition transition;
  std::string what;        // for operators: "a stationary object", "a crowd"
  std::string value_text;  // "1.8 % of the frame", "9 people"
  std::map<std::string, std::string> attributes;  // detector facts (people, flicker, shift_px, ...)
  std::string snapshot_jpeg;   // START: the best frame so far; END: the last frame with evidence
  std::string annotated_jpeg;  // the same with zone outlines and the event's box
};

enum class FrameOutcome {
  kAnalysed,
  kSkippedRate,   // within 1/fps of the last analysed frame
  kSkippedOld,    // at or before the newest frame seen
  kRejected,      // not a decodable JPEG: reason / detail say why
};

struct FrameResult {
  FrameOutcome outcome = FrameOutcome::kAnalysed;
  std::string reason;   // kRejected: a DLQ reason ("corrupt_jpeg")
  std::string detail;
};

class CameraAnalyzer {
 public:
  // camera and options must outlive the analyzer.
  CameraAnalyzer(const Camera& camera, const CameraOptions& options, int utc_offset_minutes);
  ~CameraAnalyzer();
  CameraAnalyzer(const CameraAnalyzer&) = delete;
  CameraAnalyzer& operator=(const CameraAnalyzer&) = delete;

  // One frame at event time ts_ms; appends the transitions it caused.
  FrameResult Analyze(std::string_view jpeg, int64_t ts_ms, std::vector<FrameEvent>* events);
  // Event time moved on to now_ms without a frame: a silent camera raises
  // tamper.no_frames; events whose cooldown passed end.
  void Expire(int64_t now_ms, std::vector<FrameEvent>* events);

  // State keys all start with StatePrefix(camera id).
  static std::string StatePrefix(std::string_view camera_id);
  std::vector<StateEntry> TakeDirty();
  void Restore(std::string_view key, std::string_view value);

  const std::string& camera_id() const;
  int64_t last_frame_ms() const;
  int64_t frames_analysed() const;
  int64_t recalibrations() const;  // light changes that made it re-learn
  // Heap bytes held: models, templates, kept snapshots.
  size_t MemoryBytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads width and height from a JPEG's SOF marker without decoding it.
// False when the bytes are not a JPEG (no SOI) or end before a SOF.
bool JpegDimensions(std::string_view jpeg, int* width, int* height);

}  // namespace cityloop::detect::camera

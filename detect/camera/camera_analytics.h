// CameraAnalytics: every camera's analytics behind one face, for the RuleSet.
//   - frames (city.camera.frames) go to the camera's CameraAnalyzer, made on
//     its first frame; its transitions become signals (camera_signals.h),
//     and START/END snapshots become SnapshotRecords for the store;
//   - edge detections (city.camera.detections) go to the camera's
//     EdgeZoneTracker (zones, dwell, line crossing), for cameras with zones
//     or lines, so smart and dumb cameras raise the same incidents;
//   - event time moving on ends events whose cooldown passed and raises
//     tamper.no_frames for a silent camera.
// Snapshot retention: per camera the newest camera.snapshots.keep are kept,
// none older than camera.snapshots.max_age behind the camera's newest; the
// index is state, so retention is the same after a restart or a replay.
// No OpenCV in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/city.h"
#include "core/model.h"
#include "detect/camera/frame_analyzer.h"
#include "detect/rule.h"

namespace cityloop::detect::camera {

class EdgeZoneTracker;

struct SnapshotRecord {
  std::string id;        // "<event id>:<phase>" or "...:annotated"
  std::string camera_id;
  int64_t ts_ms = 0;
  std::string jpeg;
};

struct FrameStats {
  int64_t analysed = 0, skipped_rate = 0, skipped_old = 0, rejected = 0;
};

class CameraAnalytics {
 public:
  explicit CameraAnalytics(std::shared_ptr<const CityModel> city);
  ~CameraAnalytics();

  // source: the event-time source (input partition) the frame came from.
  FrameResult OnFrame(const CameraFrame& frame, uint16_t source, std::vector<Signal>* out);
  void OnDetections(const CameraDetections& d, uint16_t source, std::vector<Signal>* out);
  // watermark_of(source): event time of that input partition.
  void Expire(const std::function<int64_t(uint16_t)>& watermark_of, std::vector<Signal>* out);

  // New snapshots to store, and ids the retention dropped, since the last call.
  std::vector<SnapshotRecord> TakeSnapshots();
  std::vector<std::string> TakeDroppedSnapshots();

  static std::vector<std::string> StatePrefixes();  // "camf/", "edge/", "snapidx/"
  void TakeDirty(std::vector<StateEntry>* out);
  void Restore(std::string_view key, std::string_view value);

  const FrameStats& stats() const { return stats_; }
  int64_t recalibrations() const;
  size_t MemoryBytes() const;
  size_t analysers() const { return analyzers_.size(); }

 private:
  struct Analysed {
    std::unique_ptr<CameraAnalyzer> analyzer;
    uint16_t source = 0;
  };
  struct Tracked {
    std::unique_ptr<EdgeZoneTracker> tracker;
    uint16_t source = 0;
  };
  struct SnapshotIndex {
    std::vector<std::pair<int64_t, std::string>> kept;  // (ts, id), oldest first
    bool dirty = false;
  };
  CameraAnalyzer& AnalyzerFor(const Camera& camera);
  EdgeZoneTracker* TrackerFor(const Camera& camera);
  void ToSignals(const Camera& camera, std::vector<FrameEvent>& events, const InputRef& input, int64_t ingest_ms,
                 std::vector<Signal>* out);
  std::string Keep(const Camera& camera, const std::string& id, int64_t ts_ms, std::string jpeg);

  std::shared_ptr<const CityModel> city_;
  std::map<std::string, Analysed, std::less<>> analyzers_;
  std::map<std::string, Tracked, std::less<>> trackers_;
  std::map<std::string, SnapshotIndex, std::less<>> snapshot_index_;
  std::vector<SnapshotRecord> new_snapshots_;
  std::vector<std::string> dropped_snapshots_;
  FrameStats stats_;
  std::vector<FrameEvent> scratch_;
};

}  // namespace cityloop::detect::camera

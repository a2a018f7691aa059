// Zones, dwell and line crossing for edge-AI camera detections
// (city.camera.detections, decoded into CameraDetections), so smart cameras
// raise the same START / UPDATE / END camera events as frame analytics
// (camera_signals.h, event_lifecycle.h). One EdgeZoneTracker per camera that
// has zones or lines. Pure logic on event time; no OpenCV.
//
// Counting. Detections with a score below 0.5 are ignored. A detection
// counts for a zone when its label is in zone.labels (empty = any), its foot
// point (bottom-centre of its box) is inside the polygon and inside none of
// the camera's masks, and the zone is armed (its schedule, in the city's
// local hours) at the message's ts.
//
// Zone detectors, one EventLifecycle each (cooldown camera.cooldown,
// pending gap 5 s since edge cameras send about one message a second):
//   intrusion   evidence: at least one counting detection; value: how many;
//               box: the largest; dwell: zone.dwell, else 0.
//   stationary  per track_id the tracker remembers where the track's foot
//               point was when it last stopped; moving more than 0.02 (frame
//               widths, euclidean) from it makes the current point the new
//               stop. A track is stationary once a later message shows it
//               still within 0.02 of its stop point (a detection without
//               track_id never is). Evidence: any counting stationary track;
//               value: seconds since the earliest of them stopped; dwell:
//               zone.dwell, else camera.stationary.dwell. The dwell counts
//               from the stop: a fresh pending episode is dated back to the
//               stop when that lies within the pending gap, and a pending
//               episode restarts when every track now stationary stopped
//               after it began (the track that began it moved on), so a
//               slowly creeping object never builds up a dwell.
//   crowd       evidence: counting detections labelled "person" number at
//               least max(1, camera.crowd.min_people); value: how many; box:
//               around them; dwell: zone.dwell, else camera.crowd.dwell.
//   congestion, wrong_way and fire need pixels (frame analytics) and are
//   ignored for edge input.
// Category: the zone's, else camera.categories.<detector>.
//
// Lines. Per track_id the last foot point is kept; when the segment from it
// to the new foot point crosses the line, the crossing counts as a_to_b when
// the point went from the right of a->b to its left (SideOfLine < 0 before,
// > 0 after), else as b_to_a. Only line.labels count (empty = any); masks do
// not apply to lines. Counts are kept for good (line_counts()). A line with
// a category also has an EventLifecycle (detector "line", dwell 0): crossings
// in its alarm direction (both = either) are evidence, value: the alarm
// crossings of the episode; one START per episode, END after cooldown
// without one.
//
// Each message is an observation for every lifecycle: one without evidence
// lets an event END after its cooldown. Expire() moves event time on without
// a message. Signals raised from a message carry its input and ingest time;
// those raised by Expire() carry none. Before present evidence is observed
// the lifecycle is expired at the same ts, so an episode whose cooldown
// passed between messages ends before a new one begins.
//
// Tracks: at most 256 per camera (the least recently seen is evicted), and a
// track unseen for 5 minutes of event time is dropped.
//
// State, under StatePrefix(camera) = "edge/<camera>/":
//   z/<zone>/<detector>   EventLifecycle::Encode()
//   l/<line>              "<a_to_b> <b_to_a> <episode crossings> <lifecycle>"
//   t                     the newest message ts and the track table
// Restore() takes any of them, in any order; a malformed value or a key of a
// zone or line no longer configured is ignored.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/city.h"
#include "core/model.h"
#include "detect/camera/event_lifecycle.h"
#include "detect/rule.h"

namespace cityloop::detect::camera {

struct LineCount {
  int64_t a_to_b = 0, b_to_a = 0;
  bool operator==(const LineCount&) const = default;
};

class EdgeZoneTracker {
 public:
  static constexpr double kMinScore = 0.5;        // edge detections below this are noise
  static constexpr double kStillRadius = 0.02;    // a track within this of its stop point stands still
  static constexpr int64_t kPendingGapMs = 5000;  // edge cameras send about one message a second
  static constexpr size_t kMaxTracks = 256;
  static constexpr int64_t kTrackTtlMs = 5 * 60000;

  // city and camera outlive the tracker.
  EdgeZoneTracker(const CityModel& city, const Camera& camera);

  // One validated detections message (ts non-decreasing per camera; older or
  // equal ts are ignored). Appends the START / UPDATE / END signals it raises
  // to *out.
  void OnDetections(const CameraDetections& d, std::vector<Signal>* out);
  // Event time moved on to now_ms with no message: ends events whose
  // cooldown passed, drops pending ones and stale tracks.
  void Expire(int64_t now_ms, std::vector<Signal>* out);

  const std::map<std::string, LineCount>& line_counts() const { return counts_; }

  static std::string StatePrefix(std::string_view camera_id);
  // The entries changed since the last call (never deletions).
  std::vector<StateEntry> TakeDirty();
  // Loads a key TakeDirty wrote; malformed values and unknown keys are ignored.
  void Restore(std::string_view key, std::string_view value);

  size_t tracked_objects() const { return tracks_.size(); }

 private:
  struct Track {
    ImagePoint last{0, 0};  // foot point in the newest message
    ImagePoint stop{0, 0};  // where it last stopped
    int64_t stop_ms = 0;
    int64_t seen_ms = 0;
  };
  // One tracked-or-not detection of a message, as the zones and lines see it.
  struct Seen {
    const CameraDetection* det = nullptr;
    ImagePoint foot{0, 0};
    bool tracked = false;
    bool has_prev = false;   // tracked and seen before: prev is its last foot point
    ImagePoint prev{0, 0};
    int64_t stop_ms = 0;     // tracked: when it stopped
  };
  struct ZoneEvent {
    const CameraZone* zone = nullptr;
    ZoneDetector detector = ZoneDetector::kIntrusion;
    std::string category;
    LifecycleTimes times;
    std::string key;
    EventLifecycle life;
    std::string stored;  // the encoding last written or restored
  };
  struct LineEvent {
    const CameraLine* line = nullptr;
    LifecycleTimes times;
    std::string key;
    int64_t episode = 0;  // alarm crossings in the current episode
    EventLifecycle life;
    std::string stored;
  };
  // Where the signals of one step come from.
  struct Origin {
    InputRef input;
    int64_t ingest_ms = 0;
  };

  std::vector<Seen> UpdateTracks(const CameraDetections& d);
  void DropStaleTracks(int64_t now_ms);
  // Label, polygon and masks (the schedule is the caller's).
  bool ZoneCounts(const CameraZone& zone, const Seen& s) const;
  void ObserveZone(ZoneEvent& z, const std::vector<Seen>& seen, int64_t ts_ms, const Origin& o,
                   std::vector<Signal>* out);
  void ObserveLine(LineEvent& l, const std::vector<Seen>& seen, int64_t ts_ms, const Origin& o,
                   std::vector<Signal>* out);
  void EmitZone(const ZoneEvent& z, const std::optional<EventTransition>& t, const Origin& o,
                std::vector<Signal>* out) const;
  void EmitLine(const LineEvent& l, const std::optional<EventTransition>& t, const Origin& o,
                std::vector<Signal>* out) const;
  std::string EncodeTracks() const;
  bool DecodeTracks(std::string_view text);
  std::string EncodeLine(const LineEvent& l) const;

  const CityModel& city_;
  const Camera& camera_;
  std::string prefix_;
  std::vector<ZoneEvent> zones_;
  std::vector<LineEvent> lines_;
  std::map<std::string, LineCount> counts_;  // by line id
  std::map<std::string, Track> tracks_;      // by track_id
  bool has_ts_ = false;
  int64_t last_ts_ = 0;                      // newest message applied
  std::string tracks_stored_;
};

}  // namespace cityloop::detect::camera

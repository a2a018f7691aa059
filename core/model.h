// The event vocabulary shared by every stage: a decoded input Reading, the
// Signal a detector raises from it, and the Case that signals merge into.
// Plain values; the stage that holds one owns it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

#include "core/config.h"
#include "core/geo.h"

namespace cityloop {

// Where an input came from: topic, partition, offset. Identifies it uniquely.
struct InputRef {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
  std::string ToString() const;  // "city.sensors/2@1417"
};

// One validated sensor reading (city.sensors).
struct Reading {
  std::string device_id;
  std::string kind;
  int64_t ts_ms = 0;        // event time
  double value = 0;
  std::string unit;
  LatLon position;          // from the message, else from the device registry
  bool registered = false;  // the device is in city.devices
  int cell = -1;            // grid cell index
  InputRef input;
  int64_t ingest_ms = 0;    // when the engine read it (Clock)
};

// One validated citizen, 12345-hotline or patrol report (city.reports).
struct Report {
  std::string report_id;
  std::string channel;      // e.g. "citizen", "hotline12345", "patrol", "app"
  int64_t ts_ms = 0;        // event time
  std::string category;     // a catalogue id
  std::string text;         // free text, at most ingest.max_report_text_bytes
  LatLon position;
  int cell = -1;
  InputRef input;
  int64_t ingest_ms = 0;
};

// One object an edge-AI camera saw in a frame.
struct CameraDetection {
  std::string label;        // e.g. "vehicle", "person", "fire", "smoke"
  double score = 0;         // 0..1
  double bbox[4] = {0, 0, 0, 0};  // x, y, w, h normalised to 0..1
  std::string track_id;     // empty when the camera does not track
};

// One validated city.camera.detections message.
struct CameraDetections {
  std::string camera_id;
  int64_t ts_ms = 0;        // event time
  std::vector<CameraDetection> detections;
  LatLon position;          // of the registered camera
  int cell = -1;
  InputRef input;
  int64_t ingest_ms = 0;
};

// One validated city.camera.frames message: the JPEG is not decoded yet.
struct CameraFrame {
  std::string camera_id;
  int64_t ts_ms = 0;        // event time (the ts header)
  std::string_view jpeg;    // the message value; valid while the message is
  InputRef input;
  int64_t ingest_ms = 0;
};

enum class SignalSource { kSensor, kCamera, kReport, kCorrelation };
const char* SignalSourceName(SignalSource s);

// One detector decision: "this looks like an incident of category C here".
struct Signal {
  std::string id;            // deterministic: "<rule>:<device>:<ts>"
  SignalSource source = SignalSource::kSensor;
  std::string category;
  Priority priority = Priority::kNormal;
  int cell = -1;
  LatLon position;
  int64_t ts_ms = 0;         // event time the condition started to hold
  int64_t fired_ms = 0;      // event time it was confirmed (after the minimum duration)
  int64_t ingest_ms = 0;     // wall time of the input that confirmed it
  std::string device_id;
  std::string sensor_kind;
  std::string rule_id;
  double value = 0;          // the value that made it fire
  double threshold = 0;      // the level it crossed
  InputRef input;            // the input that confirmed it
  // Why it fired, for operators: e.g. "mean(water_level) over 10m = 0.42 >= 0.30".
  std::string explanation;
  // Source-specific facts: report_id, channel, text; camera label, score,
  // track_id; window aggregate; flapping transitions. Small, ordered.
  std::map<std::string, std::string> attributes;
  // A correlation's member signals (ids), oldest first.
  std::vector<std::string> members;
  // Correlation with absorb: the open cases holding a member signal merge
  // into the case this signal joins.
  bool absorb_members = false;
  // False for rules that only feed correlations (rules[].opens_case: false).
  bool opens_case = true;
  // A follow-up (a camera event's update or end): the id of the signal it
  // follows. It joins the open case holding that signal, and opens nothing.
  std::string follows;
};

enum class CaseStatus {
  kDetected,
  kRegistered,
  kDispatched,
  kAcknowledged,
  kEnroute,
  kOnScene,
  kHandled,
  kVerifying,
  kClosed,
  kInvalid,
  kMerged,
  kReturned,
  kSuspended,
};
const char* CaseStatusName(CaseStatus s);
std::optional<CaseStatus> ParseCaseStatus(std::string_view s);
bool CaseIsOpen(CaseStatus s);

struct Case {
  std::string id;            // "CL-20261128-000123"
  std::string category;
  std::string category_code;
  Priority priority = Priority::kNormal;
  CaseStatus status = CaseStatus::kDetected;
  int cell = -1;
  std::string cell_code;
  std::string district;
  std::string street;
  std::string community;
  std::string department;
  LatLon position;
  std::string recommended_unit;
  int64_t first_event_ms = 0;
  int64_t first_ingest_ms = 0;
  int64_t registered_ms = 0;
  int64_t dispatched_ms = 0;
  int64_t last_signal_ms = 0;    // event time of the newest signal
  int64_t ack_deadline_ms = 0;
  int64_t handle_deadline_ms = 0;
  std::vector<Signal> signals;   // every signal merged in, oldest first
  std::string merged_into;       // status merged: the case that absorbed this one
  std::vector<std::string> absorbed;  // cases merged into this one
  uint32_t event_seq = 0;        // number of output events emitted; the next id suffix
};

}  // namespace cityloop

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

#include "core/case_lifecycle.h"
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

// A field unit's reported state (city.units `status`).
enum class UnitStatus : uint8_t { kAvailable, kEnroute, kOnScene, kReturning, kUnavailable };
const char* UnitStatusName(UnitStatus s);
std::optional<UnitStatus> ParseUnitStatus(std::string_view s);

// One validated city.units message.
struct UnitUpdate {
  std::string unit_id;
  std::string department;    // `dept`
  UnitStatus status = UnitStatus::kAvailable;
  int64_t ts_ms = 0;         // event time
  bool has_position = false;
  LatLon position;
  InputRef input;
  int64_t ingest_ms = 0;
};

// One validated cityloop.commands message: an operator action on a case.
struct Command {
  std::string command_id;
  std::string case_id;
  CaseAction action = CaseAction::kAcknowledge;
  std::string actor;
  Role role = Role::kOperator;
  int64_t ts_ms = 0;         // when the operator acted (event time)
  std::string note;          // free text, the reason shown in the audit trail
  std::string department;    // reassign/assist: the target; task actions: which task (default the lead)
  std::string into;          // merge: the case to merge into
  int64_t duration_ms = 0;   // extend: how much longer (`duration`: "2h" or ms)
  std::string unit_id;       // enroute/arrive: the unit that moves (default the task's)
  InputRef input;
  int64_t ingest_ms = 0;
};

// The alarm of a sensor rule for a device ended (the value went back past
// its clear level): what sensor-backed verification waits for.
struct Recovery {
  std::string rule_id;
  std::string device_id;
  int64_t ts_ms = 0;
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
  kReturned,   // every task returned: waits for a reassign (改派)
  kSuspended,  // 挂账: clocks paused
  kDeferred,   // 缓办: parked, out of KPI denominators
};
const char* CaseStatusName(CaseStatus s);
std::optional<CaseStatus> ParseCaseStatus(std::string_view s);
bool CaseIsOpen(CaseStatus s);

// One stage's SLA clock. Deadlines are absolute event times computed on the
// working calendar when the stage runs on working time; a suspension stops
// the clock and its resume moves the deadline by the time suspended (on the
// same basis).
struct SlaClock {
  int64_t started_ms = 0;   // 0: not started
  int64_t limit_ms = 0;     // wall or working ms; 0: no limit
  int64_t warn_ms = 0;      // yellow from here (absolute)
  int64_t deadline_ms = 0;  // red from here (absolute)
  int64_t stopped_ms = 0;   // the stage is done (0: running)
  int64_t paused_total_ms = 0;    // suspended so far, on the clock's basis
  bool working_time = false;      // limit counted on the working calendar
  SlaLight light = SlaLight::kGreen;  // the last light announced
  uint8_t escalations = 0;  // escalation levels fired for this stage
  bool running() const { return started_ms != 0 && stopped_ms == 0; }
  bool operator==(const SlaClock&) const = default;
};

// One department's assignment on a case (the lead, or an assisting one).
struct Task {
  std::string department;
  bool lead = true;
  TaskStatus status = TaskStatus::kDispatched;
  std::string unit;              // recommended, later the unit that moves
  int64_t dispatched_ms = 0;
  int64_t acknowledged_ms = 0;
  int64_t enroute_ms = 0;
  int64_t arrived_ms = 0;
  int64_t handled_ms = 0;
  SlaClock acknowledge, arrive, handle;
  uint8_t extensions = 0;
  bool late_warned = false;      // the unit's ETA already raised a warning
  bool operator==(const Task&) const = default;
};

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
  std::string department;        // the lead department
  LatLon position;
  std::string recommended_unit;  // of the first dispatch
  int64_t first_event_ms = 0;
  int64_t first_ingest_ms = 0;
  int64_t registered_ms = 0;
  int64_t dispatched_ms = 0;     // first dispatch
  int64_t handled_ms = 0;        // every task handled
  int64_t verified_ms = 0;
  int64_t closed_ms = 0;
  int64_t reopened_ms = 0;
  int64_t invalidated_ms = 0;
  int64_t last_signal_ms = 0;    // event time of the newest signal
  int64_t updated_ms = 0;        // event time of the newest change (commands never act before it)
  std::vector<Task> tasks;       // every assignment, in dispatch order
  SlaClock verify, close;        // the case-level stages
  CaseStatus resume_to = CaseStatus::kDetected;  // suspended/deferred: the status to resume to
  int64_t paused_ms = 0;         // suspended/deferred since
  uint8_t returns = 0;           // 退单 count
  uint8_t reworks = 0;           // failed checks
  uint8_t reopens = 0;
  uint8_t extensions = 0;
  uint8_t dispatches = 0;        // dispatches made (first, reassigns, reopens)
  bool deferred = false;         // ever deferred: out of KPI denominators
  bool forced_escalation = false;  // escalated for returns/reworks (once)
  std::vector<std::string> returned_by;  // departments that returned it, in order (ping-pong)
  // Sensor-backed verification: when the device behind the case went back
  // to normal (0: not normal since its last signal).
  int64_t normal_since_ms = 0;
  std::vector<std::string> recent_commands;  // newest applied command ids (duplicates are rejected)
  std::vector<Signal> signals;   // every signal merged in, oldest first
  std::string merged_into;       // status merged: the case that absorbed this one
  std::vector<std::string> absorbed;  // cases merged into this one
  uint32_t event_seq = 0;        // number of output events emitted; the next id suffix
  Task* LeadTask();
  const Task* LeadTask() const;
  Task* FindTask(std::string_view dept);  // its newest task still to do (not handled, returned or cancelled)
};

}  // namespace cityloop

// The event vocabulary shared by every stage: a decoded input Reading, the
// Signal a detector raises from it, and the Case that signals merge into.
// Plain values; the stage that holds one owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

enum class SignalSource { kSensor, kCamera, kReport };
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
  uint32_t event_seq = 0;        // number of output events emitted; the next id suffix
};

}  // namespace cityloop

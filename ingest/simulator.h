// Simulator: a realistic city for the config — readings from every registered
// device with daily patterns, noise and dropouts, ordinary edge-AI detections
// (vehicles, persons, bicycles) from every camera — with incidents injected on
// a seeded schedule. Deterministic for a given seed, start and config.
// Produces to Kafka through KafkaProducer (see app/simulation.h).
//
// Records, in event-time order over all topics (SimulatedReading.topic):
//   kafka.topics.sensors            key device id, CONTRACT.md reading
//   kafka.topics.camera_detections  key camera id, CONTRACT.md detections
//   kafka.topics.reports            key report id, CONTRACT.md report
//   kafka.topics.camera_frames      key camera id, a frame to render (camera_scenes.h)
//
// Incident kinds (each needs what the config names; a kind whose rules,
// devices or cameras are missing is never scheduled):
//   flooded_road, gas_leak, manhole_tilt, smoke, pollution, dead_streetlight
//       one device beyond the level of its most sensitive threshold rule for
//       a few times the rule's `for` (water ramps up and down; lamps only at
//       night, inside the rule's active_hours). One case of the rule's category.
//   device_silent
//       a device watched by exactly one no_signal rule stops reporting for
//       longer than factor x its expected interval (the rule's overrides, its
//       interval, else the kind's report_interval) plus the allowed lateness,
//       then resumes. One case of the rule's category for that device.
//   gas_near_manhole
//       a gas_ppm and a manhole_tilt device, matched by the two members of a
//       correlation rule with absorb (the gas rule first, the correlation of
//       the gas rule's category) and in its scope, both go beyond their rules'
//       levels, the manhole up to min(3 min, within / 3) later, both for at
//       least their `for`. One case of the correlation's category; the
//       manhole's case merges into it.
//   flooded_road_reported
//       a flooded_road plus a citizen or 12345-hotline report (category the
//       water rule's, 20..100 m from the device) 2..5 min after the water
//       reached its level. One case holding the sensor and the report signals.
//   fire_seen_by_camera
//       a smoke incident plus, from a camera the camera rule applies to and
//       that lies in the scope of a correlation (smoke rule first, camera rule
//       second, absorb), fire/smoke detections (score >= max(0.7, min_score),
//       one track) every 3..5 s for at least max(30 s, for + 15 s). One case of
//       the correlation's category; the camera's case merges into it.
// Background detections never carry a label any camera rule names, so they
// raise nothing. Dropouts never leave a gap of more than half of a device's
// no_signal limit.
//
// Scheduling keeps incidents apart: two incidents that would raise signals
// of one category (or of categories one correlation rule joins) within 2
// cells of each other (same district for district-scoped correlations, the
// radius for radius-scoped ones) start at least merge.window (or the
// correlation's within, if longer) plus the longer duration after the earlier
// one ended. So each incident is exactly one surviving case.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/camera_scene.h"
#include "core/city.h"

namespace cityloop::ingest {

struct SimulatorOptions {
  uint64_t seed = 1;
  int64_t start_ms = 0;          // city time of the first reading
  int64_t duration_ms = 0;       // city time to simulate; 0 = endless
  double rate = 20;              // readings per second of city time, over all devices
  double dropout = 0.01;         // probability a reading is skipped
  int64_t incident_every_ms = 4 * 60000;  // mean gap between injected incidents
  int64_t camera_every_ms = 20000;        // mean gap between one camera's background messages; 0 = none
  // Camera frames (camera_scenes.h) for the cameras with zones: frame_fps a
  // second each (0 = none), from city time frames_from_ms on.
  double frame_fps = 0;
  int64_t frames_from_ms = 0;
  int64_t first_scene_after_ms = 60000;  // city time from the first frame to the first camera scene
};

// One injected incident, as written to --truth: one JSON object per line,
//   {"kind":"gas_near_manhole","category":"gas_leak","device_id":"gas-0002",
//    "sensor_kind":"gas_ppm","cell":"430103-002-002-03","district":"tianxin",
//    "department":"gas","lat":28.1806,"lon":112.9885,
//    "start":1764320400000,"end":1764321180000,
//    "start_time":"2026-11-28T17:00:00.000+08:00","end_time":"...",
//    "priority":"urgent","devices":["gas-0002","mh-0003"],
//    "sources":["sensor","correlation"],"merged":["manhole_displaced"],
//    "reports":[]}
// kind: see above. category, cell, district, department, lat/lon: of the one
// case the incident should leave open (the primary device's cell and
// position). device_id/sensor_kind: the primary device. start/end: epoch ms
// of the incident (for device_silent the silence) and their RFC 3339 form.
// priority: the expected priority of that case. devices: every device and
// camera involved, the primary first. sources: the signal sources the case
// should hold (sensor, camera, report, correlation). merged: categories of
// the cases expected to open and then merge into it (city.case.merged).
// reports: ids of the reports produced.
struct InjectedIncident {
  std::string kind;
  std::string category;    // the catalogue category of the surviving case
  std::string device_id;   // the primary device
  std::string sensor_kind;
  std::string cell_code;
  std::string district;
  std::string department;
  LatLon position;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  std::string priority;
  std::vector<std::string> devices;
  std::vector<std::string> sources;
  std::vector<std::string> merged;
  std::vector<std::string> reports;
  std::string zone;        // camera scene incidents: the zone (or "frame")
  std::string ToJson() const;
};

// One record for one input topic (named SimulatedReading for history: it may
// be a reading, a camera detections message or a report).
struct SimulatedReading {
  std::string topic;   // the config's sensors, camera_detections, reports or camera_frames topic
  std::string key;     // device id, camera id or report id
  std::string value;   // JSON per CONTRACT.md; empty for a frame (the caller renders it)
  int64_t ts_ms = 0;
  // A camera frame: the scene events on view, for the renderer.
  bool frame = false;
  std::vector<SceneEvent> scene;
};

class Simulator {
 public:
  Simulator(std::shared_ptr<const CityModel> city, SimulatorOptions options);
  ~Simulator();
  // Generates the next record in event-time order; false when the duration is over.
  bool Next(SimulatedReading* out);
  // Incidents whose start has been reached so far (for --truth), in start order.
  // Each is returned once.
  std::vector<InjectedIncident> TakeStartedIncidents();
  int64_t city_time_ms() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest

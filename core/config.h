// Typed configuration: one YAML file (see deploy/cityloop.example.yaml and
// docs/CONFIG.md) loaded into these option structs. Every field has its
// default here; the loader (config_loader.cc) declares the YAML keys as data,
// rejects unknown keys, and reports each error with file, line and key.
// A Config is a plain value: build once, then share read-only.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/geo.h"
#include "core/status.h"

namespace cityloop {

// kafka:
struct TopicNames {
  std::string sensors = "city.sensors";                     // kafka.topics.sensors
  std::string camera_frames = "city.camera.frames";         // kafka.topics.camera_frames
  std::string camera_detections = "city.camera.detections"; // kafka.topics.camera_detections
  std::string reports = "city.reports";                     // kafka.topics.reports
  std::string units = "city.units";                         // kafka.topics.units
  std::string commands = "cityloop.commands";               // kafka.topics.commands
  std::string cases = "cityloop.cases";                     // kafka.topics.cases
  std::string dispatch = "cityloop.dispatch";               // kafka.topics.dispatch
  std::string dlq = "cityloop.dlq";                         // kafka.topics.dlq
};

struct KafkaOptions {
  std::string bootstrap = "127.0.0.1:9092";  // kafka.bootstrap
  std::string group_id = "cityloop";         // kafka.group_id
  std::string client_id = "cityloop";        // kafka.client_id
  TopicNames topics;                         // kafka.topics.*
  int partitions = 4;             // kafka.partitions: per input topic, when the embedded broker creates them
  int batch_max_messages = 1000;  // kafka.batch.max_messages: one micro-batch (one WriteBatch) at most
  int64_t batch_max_ms = 20;      // kafka.batch.max_wait: how long a poll waits to fill a batch
  // kafka.properties: extra librdkafka properties passed through as-is
  // (security.protocol, sasl.*, ssl.* for a real cluster).
  std::map<std::string, std::string> properties;
};

// storage:
struct StorageOptions {
  std::string path = "./cityloop-data";  // storage.path
  bool sync_writes = false;              // storage.sync: fsync every batch (WAL is always on)
};

// ingest:
struct IngestOptions {
  int64_t max_message_bytes = 64 * 1024;     // ingest.max_message_bytes
  int64_t max_future_skew_ms = 5 * 60000;    // ingest.max_future_skew: ts later than now + this is rejected
  int64_t max_past_age_ms = 30LL * 86400000; // ingest.max_past_age: ts older than now - this is rejected
};

// A sensor kind: its unit and the physically plausible range of a reading.
// city.sensor_kinds.<kind>: {unit, min, max, report_interval}
struct SensorKind {
  std::string kind;
  std::string unit;
  double min = -1e300;
  double max = 1e300;
  int64_t report_interval_ms = 60000;  // how often a device of this kind reports
};

struct District {     // city.districts[]
  std::string id;     // id, e.g. "furong"
  std::string name;   // name, e.g. "芙蓉区"
  std::string code;   // code: 6-digit administrative code, e.g. "430102"
  std::string default_department;  // default_department: owner when the catalogue has no entry
};

struct Street {       // city.districts[].streets[]
  std::string id;
  std::string name;
  std::string code;   // 3 digits
  std::string district_id;
};

// A community owns a rectangle of grid cells (rows/cols inclusive ranges).
struct Community {    // city.districts[].streets[].communities[]
  std::string id;
  std::string name;
  std::string code;   // 3 digits
  std::string street_id;
  std::string district_id;
  int row_from = 0, row_to = 0;  // rows: [from, to]
  int col_from = 0, col_to = 0;  // cols: [from, to]
};

struct Department {   // city.departments[]
  std::string id;     // drainage, gas, municipal, fire, environment, traffic, city_management
  std::string name;
};

enum class Priority { kUrgent = 0, kHigh = 1, kNormal = 2, kLow = 3 };
const char* PriorityName(Priority p);
std::optional<Priority> ParsePriority(std::string_view s);

// The responsibility catalogue (权责清单): category -> department.
struct Category {     // city.catalogue[]
  std::string id;     // category id, e.g. "waterlogging"
  std::string name;   // e.g. "道路积水"
  std::string code;   // 大类/小类 code, e.g. "0302"
  std::string department;
  Priority priority = Priority::kNormal;
};

struct Device {       // city.devices[]
  std::string id;
  std::string kind;   // a sensor kind
  LatLon position;    // lat, lon
  std::string name;
};

struct Camera {       // city.cameras[]
  std::string id;
  LatLon position;
  std::string name;
};

struct Unit {         // city.units[]
  std::string id;
  std::string department;
  std::string name;
  LatLon base;                         // lat, lon: home position
  std::vector<std::string> districts;  // districts: area covered (empty = whole city)
};

struct CityOptions {
  std::string name = "city";           // city.name
  int utc_offset_minutes = 480;        // city.utc_offset: "+08:00"
  GridGeometry grid;                   // city.grid: {origin: {lat, lon}, cell_size_m, rows, cols}
  std::vector<District> districts;
  std::vector<Street> streets;         // flattened from districts[].streets[]
  std::vector<Community> communities;  // flattened from ...streets[].communities[]
  std::vector<Department> departments;
  std::vector<Category> catalogue;
  std::map<std::string, SensorKind> sensor_kinds;  // built-in kinds, overridable per key
  std::vector<Device> devices;
  std::vector<Camera> cameras;
  std::vector<Unit> units;
};

// rules[]: kind: threshold. Raise when value is beyond `raise` for at least
// `for`; clear when it is back beyond `clear` (hysteresis).
enum class ThresholdDirection { kAbove, kBelow };

struct ThresholdOverride {   // rules[].overrides.<device_id>: {raise, clear, for}
  std::optional<double> raise;
  std::optional<double> clear;
  std::optional<int64_t> min_duration_ms;
};

struct ThresholdRule {
  std::string id;                       // id
  std::string sensor_kind;              // sensor: the sensor kind it watches
  std::string category;                 // category: catalogue id of the incident
  std::optional<Priority> priority;     // priority: overrides the category's default
  ThresholdDirection direction = ThresholdDirection::kAbove;  // above: X | below: X (the raise level)
  double raise = 0;
  double clear = 0;                     // clear: back to normal level (defaults to raise)
  int64_t min_duration_ms = 0;          // for: "5m"
  // active_hours: [from, to) local hours when the rule applies, e.g. [18, 6]
  // for street lamps; empty = always.
  std::optional<std::pair<int, int>> active_hours;
  std::vector<std::string> devices;     // devices: restrict to these ids (empty = all of the kind)
  std::map<std::string, ThresholdOverride> overrides;
};

struct RulesOptions {
  std::vector<ThresholdRule> threshold;
  int64_t merge_window_ms = 30 * 60000;  // merge.window: a signal joins a case updated this recently
};

// sla: limits in minutes, by priority, optionally per category.
struct SlaOptions {
  std::map<Priority, int64_t> acknowledge_ms;  // sla.acknowledge.<priority>
  std::map<Priority, int64_t> handle_ms;       // sla.handle.<priority>
  std::map<std::string, int64_t> handle_by_category_ms;  // sla.handle_by_category.<category>
  double warning_ratio = 0.8;                  // sla.warning_ratio
};

struct ApiOptions {
  std::string listen = "127.0.0.1:8080";       // api.listen
};

struct Config {
  std::string source_file;  // where it was loaded from
  KafkaOptions kafka;
  StorageOptions storage;
  IngestOptions ingest;
  CityOptions city;
  RulesOptions rules;
  SlaOptions sla;
  ApiOptions api;
};

// One validation problem, located in the source text.
struct ConfigError {
  std::string file;
  int line = 0;      // 1-based; 0 when the problem has no single place
  std::string key;   // dotted path, e.g. "city.devices[3].kind"
  std::string message;
  std::string ToString() const;  // "file:line: key: message"
};

// Loads and validates a config. On failure returns every error found, not just the first.
struct ConfigLoadResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;
};
ConfigLoadResult LoadConfigFile(const std::string& path);
ConfigLoadResult LoadConfigText(const std::string& text, const std::string& file_name);

// The sensor kinds of CONTRACT.md with their units, ranges and report intervals.
std::map<std::string, SensorKind> BuiltinSensorKinds();

}  // namespace cityloop

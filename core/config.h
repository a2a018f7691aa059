// Typed configuration: one YAML file (see deploy/cityloop.example.yaml and
// docs/CONFIG.md) loaded into these option structs. Every field has its
// default here; the loader (config_loader.cc) declares the YAML keys as data,
// rejects unknown keys, and reports each error with file, line and key.
// A Config is a plain value: build once, then share read-only.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/case_lifecycle.h"
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
  // Internal (scale.shards > 0): every input routed to its shard's partition.
  std::string work = "cityloop.internal.work";              // kafka.topics.work
  std::string changelog = "cityloop.internal.changelog";    // kafka.topics.changelog: each shard's store
  bool operator==(const TopicNames&) const = default;
};

struct KafkaOptions {
  std::string bootstrap = "127.0.0.1:9092";  // kafka.bootstrap
  std::string group_id = "cityloop";         // kafka.group_id
  std::string client_id = "cityloop";        // kafka.client_id
  TopicNames topics;                         // kafka.topics.*
  int partitions = 4;             // kafka.partitions: per input topic, when the embedded broker creates them
  int batch_max_messages = 1000;  // kafka.batch.max_messages: one micro-batch (one WriteBatch) at most
  int64_t batch_max_ms = 20;      // kafka.batch.max_wait: how long a poll waits to fill a batch
  // kafka.properties: extra librdkafka properties passed through as-is to
  // every client (security.protocol, sasl.*, ssl.* for a real cluster).
  std::map<std::string, std::string> properties;
  // kafka.consumer_properties / kafka.producer_properties: to consumers or
  // producers only (fetch.*, linger.ms, ...), over `properties`; librdkafka
  // warns about a consumer property given to a producer and the reverse.
  std::map<std::string, std::string> consumer_properties, producer_properties;
  std::map<std::string, std::string> ConsumerProperties() const { return Over(properties, consumer_properties); }
  std::map<std::string, std::string> ProducerProperties() const { return Over(properties, producer_properties); }
  bool operator==(const KafkaOptions&) const = default;

 private:
  static std::map<std::string, std::string> Over(std::map<std::string, std::string> base,
                                                 const std::map<std::string, std::string>& over) {
    for (const auto& [k, v] : over) base[k] = v;
    return base;
  }
};

// scale:
struct ScaleOptions {
  // scale.shards: 0 = this process consumes the input topics itself and owns
  // all state (one shard). N > 0 = inputs are routed by district into the N
  // partitions of kafka.topics.work; each partition is one shard with its own
  // store, owned by whichever instance of the consumer group holds it. N is
  // fixed for the life of a deployment (case ids and stored state depend on it).
  int shards = 0;
  bool operator==(const ScaleOptions&) const = default;
};

// storage:
struct StorageOptions {
  std::string path = "./cityloop-data";  // storage.path
  bool sync_writes = false;              // storage.sync: fsync every batch (WAL is always on)
  bool operator==(const StorageOptions&) const = default;
};

// ingest:
struct IngestOptions {
  int64_t max_message_bytes = 64 * 1024;     // ingest.max_message_bytes
  int64_t max_future_skew_ms = 5 * 60000;    // ingest.max_future_skew: ts later than now + this is rejected
  int64_t max_past_age_ms = 30LL * 86400000; // ingest.max_past_age: ts older than now - this is rejected
  int64_t max_report_text_bytes = 4096;      // ingest.max_report_text_bytes: city.reports `text`
  int max_detections_per_message = 256;      // ingest.max_detections: city.camera.detections `detections[]`
  bool operator==(const IngestOptions&) const = default;
};

// A sensor kind: its unit and the physically plausible range of a reading.
// city.sensor_kinds.<kind>: {unit, min, max, report_interval}
struct SensorKind {
  std::string kind;
  std::string unit;
  double min = -1e300;
  double max = 1e300;
  int64_t report_interval_ms = 60000;  // how often a device of this kind reports
  bool operator==(const SensorKind&) const = default;
};

struct District {     // city.districts[]
  std::string id;     // id, e.g. "furong"
  std::string name;   // name, e.g. "芙蓉区"
  std::string code;   // code: 6-digit administrative code, e.g. "430102"
  std::string default_department;  // default_department: owner when the catalogue has no entry
  bool operator==(const District&) const = default;
};

struct Street {       // city.districts[].streets[]
  std::string id;
  std::string name;
  std::string code;   // 3 digits
  std::string district_id;
  bool operator==(const Street&) const = default;
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
  bool operator==(const Community&) const = default;
};

struct Department {   // city.departments[]
  std::string id;     // drainage, gas, municipal, fire, environment, traffic, city_management
  std::string name;
  bool operator==(const Department&) const = default;
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
  // confirm: true — its cases wait in `detected` for an operator instead of
  // being dispatched at once (a camera's fire candidate).
  bool requires_confirmation = false;
  bool operator==(const Category&) const = default;
};

struct Device {       // city.devices[]
  std::string id;
  std::string kind;   // a sensor kind
  LatLon position;    // lat, lon
  std::string name;
  bool operator==(const Device&) const = default;
};

// Camera analytics (detect/camera/). Image coordinates are normalised to the
// frame: x to the right, y down, 0..1. An object is in a zone by the
// bottom-centre of its box (where it stands).
using ImagePoint = std::array<double, 2>;        // [x, y]
using ImagePolygon = std::vector<ImagePoint>;    // at least 3 points
// [x, y, w, h] of the polygon's bounding box.
inline std::array<double, 4> BoundingBox(const ImagePolygon& poly) {
  double x0 = 1, y0 = 1, x1 = 0, y1 = 0;
  for (const ImagePoint& p : poly) {
    x0 = p[0] < x0 ? p[0] : x0;
    y0 = p[1] < y0 ? p[1] : y0;
    x1 = p[0] > x1 ? p[0] : x1;
    y1 = p[1] > y1 ? p[1] : y1;
  }
  return {x0, y0, x1 - x0, y1 - y0};
}

// What a zone watches for; each raises signals of a catalogue category
// (the zone's `category`, else camera.categories.<detector>).
enum class ZoneDetector {
  kIntrusion,   // intrusion: an object in the zone for its dwell
  kStationary,  // stationary: an object standing still in the zone for its dwell (parking, occupation, dumping)
  kCrowd,       // crowd: many people standing (occupancy high, motion low) for its dwell
  kCongestion,  // congestion: the lane full and slow for its dwell
  kWrongWay,    // wrong_way: flow against the zone's direction
  kFire,        // fire: fire/smoke colours that flicker and grow (always a candidate to confirm)
};
const char* ZoneDetectorName(ZoneDetector d);
inline constexpr ZoneDetector kAllZoneDetectors[] = {ZoneDetector::kIntrusion,  ZoneDetector::kStationary,
                                                     ZoneDetector::kCrowd,      ZoneDetector::kCongestion,
                                                     ZoneDetector::kWrongWay,   ZoneDetector::kFire};

struct CameraZone {   // city.cameras[].zones[]
  std::string id;                       // id: unique within the camera
  ImagePolygon polygon;                 // polygon: [[x, y], ...]
  std::vector<ZoneDetector> detectors;  // detectors: [stationary, crowd, ...]
  std::string category;                 // category: overrides camera.categories for this zone
  std::vector<std::string> labels;      // labels: edge detections that count here (empty = any)
  double min_area = 0.002;              // min_area: smallest object, as a fraction of the frame
  int inertia = 3;                      // inertia: frames in a row before an object counts
  std::optional<int64_t> dwell_ms;      // dwell: how long before it raises (else the detector's default)
  std::optional<std::pair<int, int>> schedule;  // schedule: [from, to) local hours it is armed
  ImagePoint direction{0, 0};           // direction: the lane's travel direction (wrong_way, congestion)
  bool operator==(const CameraZone&) const = default;
};

// A counting line for edge detections: a tracked object crossing from one
// side to the other is counted per direction; with a category, a crossing in
// the `alarm` direction raises a signal.
enum class LineDirection { kBoth, kAToB, kBToA };
struct CameraLine {   // city.cameras[].lines[]
  std::string id;
  ImagePoint a{0, 0}, b{0, 0};          // from, to
  std::vector<std::string> labels;      // labels: what counts (empty = any)
  std::string category;                 // category: raise a signal on a crossing (empty = count only)
  LineDirection alarm = LineDirection::kBoth;  // alarm: both | a_to_b | b_to_a (a_to_b = crossing to the left of a->b)
  bool operator==(const CameraLine&) const = default;
};

struct Camera {       // city.cameras[]
  std::string id;
  LatLon position;
  std::string name;
  // "{}": older aggregate initialisations {id, position, name} stay valid.
  std::vector<CameraZone> zones{};
  std::vector<ImagePolygon> masks{};    // masks: areas analysis ignores (timestamps, trees, sky)
  std::vector<CameraLine> lines{};
  bool operator==(const Camera&) const = default;
};

struct Unit {         // city.units[]
  std::string id;
  std::string department;
  std::string name;
  LatLon base;                         // lat, lon: home position
  std::vector<std::string> districts;  // districts: area covered (empty = whole city)
  std::string type{};                  // type: picks dispatch.speeds.<type> (e.g. truck, motorbike); empty = default speed
  bool operator==(const Unit&) const = default;
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
  bool operator==(const CityOptions&) const = default;
};

// rules[]: every rule has an id, the catalogue category of the incidents it
// reports and an optional priority (else the category's). kind picks the rest.
struct RuleBase {
  std::string id;                       // id: unique across all rules
  std::string category;                 // category: catalogue id of the incident
  std::optional<Priority> priority;     // priority: overrides the category's default
  // opens_case: false = the rule's signals only feed correlation rules
  // (e.g. heavy rain alone is no incident, rain plus rising water is).
  bool opens_case = true;
  bool operator==(const RuleBase&) const = default;
};

// kind: threshold. Raise when value is beyond `raise` for at least `for`;
// clear when it is back beyond `clear` (hysteresis).
enum class ThresholdDirection { kAbove, kBelow };

struct ThresholdOverride {   // rules[].overrides.<device_id>: {raise, clear, for}
  std::optional<double> raise;
  std::optional<double> clear;
  std::optional<int64_t> min_duration_ms;
  bool operator==(const ThresholdOverride&) const = default;
};

struct ThresholdRule : RuleBase {
  std::string sensor_kind;              // sensor: the sensor kind it watches
  ThresholdDirection direction = ThresholdDirection::kAbove;  // above: X | below: X (the raise level)
  double raise = 0;
  double clear = 0;                     // clear: back to normal level (defaults to raise)
  int64_t min_duration_ms = 0;          // for: "5m"
  // active_hours: [from, to) local hours when the rule applies, e.g. [18, 6]
  // for street lamps; empty = always.
  std::optional<std::pair<int, int>> active_hours;
  std::vector<std::string> devices;     // devices: restrict to these ids (empty = all of the kind)
  std::map<std::string, ThresholdOverride> overrides;
  bool operator==(const ThresholdRule&) const = default;
};

// kind: rate. The change of a device's value over the last `per`, e.g. water
// level rising faster than 0.10 m per 10 min: rise: 0.10, per: 10m. Raises
// when the change over `per` is beyond the level, clears when it is back
// within `clear` (defaults to the level).
struct RateRule : RuleBase {
  std::string sensor_kind;              // sensor
  ThresholdDirection direction = ThresholdDirection::kAbove;  // rise: X (kAbove) | fall: X (kBelow), X > 0
  double rate = 0;                      // change per `per`, as a magnitude
  double clear = 0;                     // clear: magnitude back to normal (defaults to rate)
  int64_t per_ms = 10 * 60000;          // per: the time base and the look-back
  int64_t min_span_ms = 0;              // min_span: least data span to judge (defaults to per / 2)
  std::vector<std::string> devices;     // devices
  std::map<std::string, double> overrides;  // overrides.<device>: {rise|fall: X}
  bool operator==(const RateRule&) const = default;
};

// kind: window. An aggregate over a tumbling or sliding event-time window,
// judged when the window closes (watermark past its end).
enum class Aggregate { kCount, kMin, kMax, kMean, kSum, kPercentile };
const char* AggregateName(Aggregate a);

struct WindowRule : RuleBase {
  std::string sensor_kind;              // sensor
  int64_t size_ms = 10 * 60000;         // window.size
  int64_t slide_ms = 0;                 // window.slide: 0 = tumbling (slide = size)
  Aggregate aggregate = Aggregate::kMean;  // aggregate: count|min|max|mean|sum|percentile
  double percentile = 95;               // percentile: (0, 100], for aggregate: percentile
  ThresholdDirection direction = ThresholdDirection::kAbove;  // above: X | below: X
  double level = 0;
  int min_samples = 1;                  // min_samples: windows with fewer readings are not judged
  std::vector<std::string> devices;     // devices
  std::map<std::string, double> overrides;  // overrides.<device>: {above|below: X}
  int64_t slide() const { return slide_ms > 0 ? slide_ms : size_ms; }
  bool operator==(const WindowRule&) const = default;
};

// kind: no_signal. A device silent for longer than factor x its expected
// report interval (city.sensor_kinds.<kind>.report_interval, or `interval`,
// or overrides.<device>.interval). Watches devices that reported at least
// once; one signal per silence, cleared by the next reading.
struct NoSignalRule : RuleBase {
  std::vector<std::string> sensor_kinds;  // sensors: kinds watched (empty = every kind)
  double factor = 3;                    // factor: k, > 1
  std::optional<int64_t> interval_ms;   // interval: overrides the kinds' report intervals
  std::vector<std::string> devices;     // devices
  std::map<std::string, int64_t> overrides;  // overrides.<device>: {interval}
  bool operator==(const NoSignalRule&) const = default;
};

// kind: flapping. A device whose alarms (of the watched threshold/rate/window
// rules) toggle alarm <-> normal more than `transitions` times within
// `within` raises one signal; the watched rules' alarms of that device are
// suppressed until it has been stable for `within`.
struct FlappingRule : RuleBase {
  std::vector<std::string> rules;       // rules: ids of the watched rules
  int transitions = 4;                  // transitions: more than this many...
  int64_t within_ms = 30 * 60000;       // within: ...in this long
  bool operator==(const FlappingRule&) const = default;
};

// kind: correlation. Signals of every member (by rule id or by category)
// within `within` of each other and inside the spatial scope raise one
// combined signal; e.g. gas ppm high next to a tilted manhole cover -> an
// urgent gas leak.
enum class CorrelationScope { kCell, kNeighbours, kDistrict, kRadius };
const char* CorrelationScopeName(CorrelationScope s);

struct CorrelationMember {              // rules[].when[]: {rule: id} | {category: id}
  std::string rule;
  std::string category;
  bool operator==(const CorrelationMember&) const = default;
};

struct CorrelationRule : RuleBase {
  std::vector<CorrelationMember> when;  // when: at least two members
  int64_t within_ms = 15 * 60000;       // within
  CorrelationScope scope = CorrelationScope::kNeighbours;  // scope: cell|neighbours|district|radius
  double radius_m = 500;                // radius_m: for scope radius
  // absorb: the open cases that hold a member signal merge into the case the
  // combined signal joins (city.case.merged).
  bool absorb = false;
  bool operator==(const CorrelationRule&) const = default;
};

// kind: camera. Edge-AI detections (city.camera.detections) of given labels
// with a score of at least min_score, seen for `for`, raise a signal per
// camera; it ends after `cooldown` without a matching detection.
struct CameraRule : RuleBase {
  std::vector<std::string> labels;      // labels: e.g. [fire, smoke]
  double min_score = 0.5;               // min_score: [0, 1]
  std::vector<std::string> cameras;     // cameras: restrict to these ids (empty = all)
  int64_t min_duration_ms = 0;          // for
  int min_detections = 1;               // min_detections: matching messages before it fires
  int64_t cooldown_ms = 60000;          // cooldown
  // zone: [x, y, w, h] normalised; a detection counts when its bbox's
  // bottom-centre lies inside (empty = the whole frame).
  std::optional<std::vector<double>> zone;
  bool operator==(const CameraRule&) const = default;
};

struct RulesOptions {
  std::vector<ThresholdRule> threshold;
  std::vector<RateRule> rate;
  std::vector<WindowRule> window;
  std::vector<NoSignalRule> no_signal;
  std::vector<FlappingRule> flapping;
  std::vector<CorrelationRule> correlation;
  std::vector<CameraRule> camera;
  int64_t merge_window_ms = 30 * 60000;  // merge.window: a signal joins a case updated this recently
  double merge_radius_m = 300;           // merge.radius_m: ...in its cell or a neighbouring one this close
  size_t size() const {
    return threshold.size() + rate.size() + window.size() + no_signal.size() + flapping.size() +
           correlation.size() + camera.size();
  }
  bool operator==(const RulesOptions&) const = default;
};

// event_time: how event time advances (see docs/ARCHITECTURE.md "Time").
enum class LatePolicy { kDrop, kApply };
struct EventTimeOptions {
  int64_t allowed_lateness_ms = 30000;   // event_time.allowed_lateness
  LatePolicy late_policy = LatePolicy::kDrop;  // event_time.late_events: drop (to the DLQ) | apply
  // event_time.idle_timeout: live mode only; a partition silent this long
  // (wall clock) stops holding the watermark back, and when every partition
  // is, event time moves on with the wall clock.
  int64_t idle_timeout_ms = 10000;
  bool operator==(const EventTimeOptions&) const = default;
};

// A time limit: wall-clock time, or working time on sla.calendar.
// Text forms: "30m", "4h", "2d" (wall); "4wh" working hours, "90wm" working
// minutes, "1wd" working days (one working day = the calendar's daily hours).
struct SlaLimit {
  enum class Basis : uint8_t { kWall, kWorkingMs, kWorkingDays };
  Basis basis = Basis::kWall;
  int64_t amount = 0;  // ms (kWall, kWorkingMs) or days (kWorkingDays)
  bool operator==(const SlaLimit&) const = default;
};
std::optional<SlaLimit> ParseSlaLimit(std::string_view text);

// sla.calendar: when the city works. Local time at city.utc_offset.
struct WorkCalendarOptions {
  std::array<bool, 7> workdays{true, true, true, true, true, false, false};  // workdays: [mon, ..., sun]
  // hours: ["08:30-12:00", "14:00-17:30"] as [from, to) minutes of the day, ascending, disjoint.
  std::vector<std::pair<int, int>> hours{{510, 720}, {840, 1050}};
  std::vector<int64_t> holidays;        // holidays: local dates off (days since 1970-01-01)
  std::vector<int64_t> extra_workdays;  // extra_workdays: weekend dates worked (调休)
  int utc_offset_minutes = 480;         // = city.utc_offset
  bool operator==(const WorkCalendarOptions&) const = default;
};

// sla.limits[]: a limit for a category and/or priority at one stage. The
// most specific entry wins: category+priority, category, priority
// (sla.<stage>.<priority>), none.
struct SlaRule {
  std::string category;              // category: empty = any
  std::optional<Priority> priority;  // priority: empty = any
  SlaStage stage = SlaStage::kHandle;  // stage
  SlaLimit limit;                    // limit
  bool operator==(const SlaRule&) const = default;
};

struct SlaOptions {
  // sla.<stage>.<priority>: acknowledge, arrive, handle, verify, close.
  std::map<SlaStage, std::map<Priority, SlaLimit>> by_priority;
  std::vector<SlaRule> limits;                          // sla.limits[]
  std::map<std::string, SlaLimit> handle_by_category;   // sla.handle_by_category.<category>
  // Urgent work runs on wall time whatever its limits say: these categories
  // (sla.wall_clock_categories) and, with sla.urgent_wall_clock, every urgent case.
  std::vector<std::string> wall_clock_categories;
  bool urgent_wall_clock = true;
  double warning_ratio = 0.8;                  // sla.warning_ratio: yellow (sla_warning) from here
  double breach_ratio = 1.0;                   // sla.breach_ratio: red (sla_breached) from here
  WorkCalendarOptions calendar;                // sla.calendar
  bool operator==(const SlaOptions&) const = default;
};

// escalation.levels[]: 催办 reminder -> 督办 supervision -> 提级 escalation.
struct EscalationLevel {
  std::string name;                   // name: e.g. reminder, supervision, escalation
  SlaStage stage = SlaStage::kHandle; // stage: whose deadline it counts from
  int64_t after_ms = 0;               // after: from the deadline; negative = before it (not before the stage starts)
  std::string target;                 // target: who is told, e.g. department, supervisor, district_leader
  bool operator==(const EscalationLevel&) const = default;
};
struct EscalationOptions {
  std::vector<EscalationLevel> levels;  // in firing order
  int max_returns = 3;                  // max_returns: returned this often escalates regardless
  int max_reworks = 3;                  // max_reworks: reworked this often escalates regardless
  std::string forced_target = "district_leader";  // forced_target: who a forced escalation goes to
  int ping_pong_returns = 2;            // ping_pong: returns between the same two departments that are reported
  bool operator==(const EscalationOptions&) const = default;
};

// dispatch: unit recommendation and verification.
struct DispatchOptions {
  double default_speed_kmh = 30;                 // default_speed: straight-line speed of a unit for ETAs
  std::map<std::string, double> speed_kmh;       // speeds.<unit type>
  int alternatives = 3;                          // alternatives: units offered after the first
  int64_t position_max_age_ms = 30 * 60000;      // position_max_age: older live positions fall back to the base
  // verification.*: sensor-backed 核查 of cases a sensor rule opened.
  int64_t sensor_normal_for_ms = 30 * 60000;     // verification.sensor_normal_for: 0 = off
  int64_t relapse_within_ms = 24 * 3600000LL;    // verification.relapse_within: a relapse this soon reopens
  std::vector<std::string> confirm_channels;     // verification.confirm_channels: report channels 核实 first
  bool operator==(const DispatchOptions&) const = default;
};

// The KPI rates of DOMAIN.md, by the names the API and kpi.weights use.
inline constexpr std::array<const char*, 9> kKpiRateNames = {
    "registration_rate",  // 立案率 registered / accepted
    "dispatch_rate",      // 派遣率 dispatched / registered
    "close_rate",         // 结案率 closed / due to close
    "on_time_close_rate", // 按期结案率 closed on time / due to close
    "rework_rate",        // 返工率 reworked / due to close
    "extension_rate",     // 延期率 extended / due to close
    "on_time_ack_rate",   // 按时签收率 acknowledged on time / dispatches
    "accurate_dispatch_rate",  // 准确派遣率 dispatches not returned / dispatches
    "reopen_rate",        // 发回重办率 reopened / closed
};

// kpi.weights: the composite score (综合指标值) = sum of weight x rate, over the sum of weights.
struct KpiOptions {
  std::map<std::string, double> weights = {
      {"on_time_close_rate", 0.3}, {"close_rate", 0.2}, {"on_time_ack_rate", 0.2},
      {"accurate_dispatch_rate", 0.15}, {"rework_rate", -0.1}, {"reopen_rate", -0.05}};
  bool operator==(const KpiOptions&) const = default;
};

// camera: how camera frames (city.camera.frames) are analysed. Defaults
// after DOMAIN.md (Frigate, ZoneMinder); docs/CONFIG.md has each key.
struct CameraOptions {
  double fps = 5;                        // fps: frames analysed per camera per second (event time); more are skipped
  int analysis_width = 320;              // analysis_width: decode at the largest JPEG scale (1/2, 1/4, 1/8) at least this wide
  int64_t max_frame_bytes = 2 << 20;     // max_frame_bytes: bigger frames go to the DLQ
  int64_t max_lag_ms = 5000;             // max_lag: live mode, frames this far behind the wall clock are dropped (overload)
  int warmup_frames = 25;                // warmup: frames that only train the models after a (re)start or a light change
  int64_t cooldown_ms = 15000;           // cooldown: an event ends after this long without evidence
  std::map<std::string, std::string> categories = {
      {"intrusion", "zone_intrusion"},       {"stationary", "illegal_parking"},
      {"crowd", "crowd_gathering"},          {"congestion", "traffic_congestion"},
      {"wrong_way", "wrong_way_driving"},    {"fire", "fire_candidate"},
      {"tamper", "camera_fault"}};         // categories.<detector>: default category of each detector
  // motion.*: the gate in front of everything
  int motion_threshold = 30;             // motion.threshold: grey-level difference that counts as change
  double motion_alpha = 0.01;            // motion.alpha: running-average weight
  double recalibrate_ratio = 0.8;        // motion.recalibrate: this share of the frame changing is light, not motion
  // stationary.*
  int64_t stationary_dwell_ms = 60000;   // stationary.dwell
  double stationary_match = 0.90;        // stationary.match: matchTemplate score that means "still there"
  // crowd.*
  int64_t crowd_dwell_ms = 30000;        // crowd.dwell
  double crowd_occupancy = 0.25;         // crowd.occupancy: foreground share of the zone
  int crowd_min_people = 0;              // crowd.min_people: HOG count that must confirm (0 = occupancy alone; the count is reported either way)
  // congestion.*
  int64_t congestion_dwell_ms = 60000;   // congestion.dwell
  double congestion_max_speed = 0.02;    // congestion.max_speed: frame widths per second
  double congestion_occupancy = 0.15;    // congestion.occupancy: share of the lane covered by vehicle bodies
  // wrong_way.*
  int64_t wrong_way_dwell_ms = 1500;     // wrong_way.dwell
  double wrong_way_min_speed = 0.05;     // wrong_way.min_speed: frame widths per second against the lane
  // fire.*
  int64_t fire_dwell_ms = 5000;          // fire.dwell
  // tamper.*
  int64_t tamper_dwell_ms = 10000;       // tamper.dwell: covered, defocused, moved or frozen this long
  int64_t no_frames_ms = 60000;          // tamper.no_frames: a camera silent this long (event time)
  // snapshots.*
  int snapshots_per_camera = 50;         // snapshots.keep: newest kept per camera
  int64_t snapshot_max_age_ms = 7LL * 86400000;  // snapshots.max_age
  bool operator==(const CameraOptions&) const = default;
};

// A zone's category for a detector: its own, else camera.categories.<detector>
// (empty when neither names one).
std::string ZoneCategory(const CameraZone& zone, const CameraOptions& options, const char* detector);

// api: the HTTP API, its live stream and the web console (console/api.h).
struct ApiOptions {
  // api.tokens[]: who may call the API. Only the SHA-256 of a token is kept.
  struct Token {
    std::string name;                    // name: the actor of every command sent with it
    std::string sha256;                  // sha256: 64 hex digits (stored lower-case) of SHA-256(token)
    Role role = Role::kViewer;           // role: viewer, operator, supervisor or admin
    std::vector<std::string> districts;  // districts: city district ids it is limited to (empty: all)
    bool operator==(const Token&) const = default;
  };
  std::string listen = "127.0.0.1:8080";       // api.listen
  std::vector<Token> tokens;                    // api.tokens
  std::vector<std::string> cors_origins;        // api.cors_origins: "https://host[:port]" or "*"
  std::string web_root;                         // api.web_root: static console files ("" = console/web of the sources)
  int threads = 4;                              // api.threads: HTTP server threads
  int64_t action_wait_ms = 3000;                // api.action_wait: how long an action waits for the engine's outcome
  int64_t request_timeout_ms = 30000;           // api.request_timeout: to read a request / write a response
  int64_t max_body_bytes = 64 * 1024;           // api.max_body_bytes
  int64_t max_header_bytes = 16 * 1024;         // api.max_header_bytes: request line and headers
  int max_connections = 1024;                   // api.max_connections: open connections
  int max_streams = 100;                        // api.max_streams: live streams at once (503 beyond)
  int max_streams_per_token = 16;               // api.max_streams_per_token: per token name (429 beyond)
  int stream_queue_limit = 1000;                // api.stream_queue_limit: events waiting per stream client
  int64_t heartbeat_ms = 15000;                 // api.heartbeat: stream comment when idle this long
  int64_t stream_retention = 100000;            // api.stream_retention: newest events the store keeps for resuming
  bool access_log = true;                       // api.access_log: one log line per request
  bool operator==(const ApiOptions&) const = default;
};

struct Config {
  std::string source_file;  // where it was loaded from
  KafkaOptions kafka;
  StorageOptions storage;
  ScaleOptions scale;
  IngestOptions ingest;
  CityOptions city;
  RulesOptions rules;
  EventTimeOptions event_time;
  SlaOptions sla;
  EscalationOptions escalation;
  DispatchOptions dispatch;
  KpiOptions kpi;
  ApiOptions api;
  CameraOptions camera;
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

#include "core/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "core/city.h"
#include "core/geo.h"
#include "tests/support/test_support.h"

namespace cityloop {
namespace {

// A small valid city: a 2 x 2 grid, two communities, one rule.
constexpr const char* kBase = R"(kafka:
  partitions: 4
city:
  grid: {origin: {lat: 28.17, lon: 112.95}, cell_size_m: 500, rows: 2, cols: 2}
  districts:
    - id: furong
      name: 芙蓉区
      code: "430102"
      default_department: city_management
      streets:
        - id: dingwangtai
          code: "001"
          communities:
            - id: west
              code: "001"
              rows: [0, 1]
              cols: [0, 0]
            - id: east
              code: "002"
              rows: [0, 1]
              cols: [1, 1]
  departments:
    - {id: drainage, name: 排水}
    - {id: city_management, name: 城管}
  catalogue:
    - {id: waterlogging, department: drainage, priority: high}
    - {id: camera_fault, department: city_management}
  devices:
    - {id: wl-1, kind: water_level, lat: 28.171, lon: 112.951}
    - {id: wl-2, kind: water_level, lat: 28.176, lon: 112.956}
  units:
    - {id: drain-1, department: drainage, lat: 28.17, lon: 112.95, districts: [furong]}
rules:
  - id: road-waterlogging
    kind: threshold
    sensor: water_level
    category: waterlogging
    above: 0.30
    clear: 0.20
    for: 2m
sla:
  handle_by_category: {waterlogging: 4h}
)";

constexpr const char* kFile = "test.yaml";

// text with the first occurrence of `from` replaced by `to` (which must exist).
std::string Edit(const std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "edit target not found: " << from;
  if (at == std::string::npos) return text;
  return text.substr(0, at) + to + text.substr(at + from.size());
}

// 1-based line of the first occurrence of needle.
int LineOf(const std::string& text, const std::string& needle) {
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << "marker not found: " << needle;
  if (at == std::string::npos) return -1;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

std::string ExamplePath() { return testing::ExampleConfigPath(); }

std::string Dump(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += "  " + e.ToString() + "\n";
  return out;
}

TEST(Config, BaseConfigLoads) {
  auto r = LoadConfigText(kBase, kFile);
  ASSERT_TRUE(r.errors.empty()) << Dump(r.errors);
  ASSERT_TRUE(r.config.has_value());
  const Config& c = *r.config;
  EXPECT_EQ(c.source_file, kFile);
  EXPECT_EQ(c.city.communities.size(), 2u);
  EXPECT_EQ(c.city.communities[1].street_id, "dingwangtai");
  EXPECT_EQ(c.city.communities[1].district_id, "furong");
  EXPECT_EQ(c.city.communities[1].col_from, 1);
  EXPECT_EQ(c.city.streets.at(0).district_id, "furong");
  ASSERT_EQ(c.rules.threshold.size(), 1u);
  const ThresholdRule& rule = c.rules.threshold[0];
  EXPECT_EQ(rule.direction, ThresholdDirection::kAbove);
  EXPECT_DOUBLE_EQ(rule.raise, 0.30);
  EXPECT_DOUBLE_EQ(rule.clear, 0.20);
  EXPECT_EQ(rule.min_duration_ms, 120000);
  EXPECT_FALSE(rule.priority.has_value());
  EXPECT_EQ(c.sla.handle_by_category.at("waterlogging"), (SlaLimit{SlaLimit::Basis::kWall, 4 * 3600000}));
}

TEST(Config, DefaultsFillWhatIsLeftOut) {
  auto r = LoadConfigText(Edit(kBase, "    clear: 0.20\n", ""), kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const Config& c = *r.config;
  EXPECT_EQ(c.kafka.bootstrap, "127.0.0.1:9092");
  EXPECT_EQ(c.kafka.topics.sensors, "city.sensors");
  EXPECT_EQ(c.kafka.batch_max_messages, 1000);
  EXPECT_EQ(c.storage.path, "./cityloop-data");
  EXPECT_EQ(c.city.utc_offset_minutes, 480);
  EXPECT_EQ(c.rules.merge_window_ms, 30 * 60000);
  EXPECT_DOUBLE_EQ(c.rules.threshold[0].clear, 0.30);  // clear defaults to the raise level
  auto limit = [&](SlaStage st, Priority p) { return c.sla.by_priority.at(st).at(p); };
  auto wall = [](int64_t ms) { return SlaLimit{SlaLimit::Basis::kWall, ms}; };
  EXPECT_EQ(limit(SlaStage::kAcknowledge, Priority::kUrgent), wall(10 * 60000));
  EXPECT_EQ(limit(SlaStage::kAcknowledge, Priority::kHigh), wall(30 * 60000));
  EXPECT_EQ(limit(SlaStage::kAcknowledge, Priority::kNormal), wall(60 * 60000));
  EXPECT_EQ(limit(SlaStage::kAcknowledge, Priority::kLow), wall(4 * 3600000));
  EXPECT_EQ(limit(SlaStage::kHandle, Priority::kUrgent), wall(3600000));
  EXPECT_EQ(limit(SlaStage::kHandle, Priority::kLow), wall(24 * 3600000));
  EXPECT_EQ(limit(SlaStage::kClose, Priority::kNormal), (SlaLimit{SlaLimit::Basis::kWorkingDays, 3}));
  ASSERT_EQ(c.escalation.levels.size(), 3u);
  EXPECT_EQ(c.escalation.levels[0].name, "reminder");
  EXPECT_EQ(c.escalation.levels[0].after_ms, -30 * 60000);
  EXPECT_EQ(c.sla.calendar.utc_offset_minutes, 480);
  EXPECT_EQ(c.sla.calendar.hours.size(), 2u);
  EXPECT_DOUBLE_EQ(c.sla.warning_ratio, 0.8);
  EXPECT_EQ(c.city.sensor_kinds.size(), BuiltinSensorKinds().size());
}

TEST(Config, PartialSlaMapKeepsOtherDefaults) {
  auto r = LoadConfigText(Edit(kBase, "sla:\n", "sla:\n  acknowledge: {urgent: 5m}\n"), kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const auto& ack = r.config->sla.by_priority.at(SlaStage::kAcknowledge);
  EXPECT_EQ(ack.at(Priority::kUrgent), (SlaLimit{SlaLimit::Basis::kWall, 5 * 60000}));
  EXPECT_EQ(ack.at(Priority::kLow), (SlaLimit{SlaLimit::Basis::kWall, 4 * 3600000}));
}

TEST(Config, SlaCalendarEscalationDispatchAndKpiSections) {
  auto r = LoadConfigText(Edit(kBase, "sla:\n",
                               "escalation:\n"
                               "  levels:\n"
                               "    - {name: reminder, stage: acknowledge, after: -5m, target: department}\n"
                               "  max_returns: 2\n"
                               "dispatch:\n"
                               "  default_speed: 40\n"
                               "  speeds: {truck: 20}\n"
                               "  verification: {sensor_normal_for: 10m, confirm_channels: [citizen]}\n"
                               "kpi:\n"
                               "  weights: {close_rate: 1}\n"
                               "sla:\n"
                               "  handle: {normal: 4wh}\n"
                               "  limits:\n"
                               "    - {category: waterlogging, priority: high, stage: arrive, limit: 20m}\n"
                               "  calendar:\n"
                               "    workdays: [mon, tue, wed, thu, fri, sat]\n"
                               "    hours: [\"09:00-12:00\", \"13:00-18:00\"]\n"
                               "    holidays: [2026-10-01]\n"
                               "    extra_workdays: [2026-10-11]\n"),
                          kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const Config& c = *r.config;
  EXPECT_EQ(c.sla.by_priority.at(SlaStage::kHandle).at(Priority::kNormal),
            (SlaLimit{SlaLimit::Basis::kWorkingMs, 4 * 3600000}));
  ASSERT_EQ(c.sla.limits.size(), 1u);
  EXPECT_EQ(c.sla.limits[0].stage, SlaStage::kArrive);
  EXPECT_EQ(c.sla.limits[0].priority, Priority::kHigh);
  EXPECT_TRUE(c.sla.calendar.workdays[5]);
  EXPECT_FALSE(c.sla.calendar.workdays[6]);
  EXPECT_EQ(c.sla.calendar.hours, (std::vector<std::pair<int, int>>{{540, 720}, {780, 1080}}));
  EXPECT_EQ(c.sla.calendar.holidays, (std::vector<int64_t>{20727}));  // 2026-10-01
  ASSERT_EQ(c.escalation.levels.size(), 1u);  // the config's levels replace the defaults
  EXPECT_EQ(c.escalation.levels[0].stage, SlaStage::kAcknowledge);
  EXPECT_EQ(c.escalation.max_returns, 2);
  EXPECT_DOUBLE_EQ(c.dispatch.default_speed_kmh, 40);
  EXPECT_DOUBLE_EQ(c.dispatch.speed_kmh.at("truck"), 20);
  EXPECT_EQ(c.dispatch.sensor_normal_for_ms, 10 * 60000);
  EXPECT_EQ(c.dispatch.confirm_channels, std::vector<std::string>{"citizen"});
  EXPECT_EQ(c.kpi.weights, (std::map<std::string, double>{{"close_rate", 1}}));
}

TEST(Config, SensorKindsOverrideBuiltinsAndDeclareNewKinds) {
  std::string text = Edit(kBase, "  departments:\n",
                          "  sensor_kinds:\n"
                          "    water_level: {max: 5}\n"
                          "    soil_moisture: {unit: \"%\", min: 0, max: 100, report_interval: 5m}\n"
                          "  departments:\n");
  text = Edit(text, "  units:\n", "    - {id: soil-1, kind: soil_moisture, lat: 28.171, lon: 112.956}\n  units:\n");
  auto r = LoadConfigText(text, kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const auto& kinds = r.config->city.sensor_kinds;
  EXPECT_EQ(kinds.at("water_level").unit, "m");
  EXPECT_EQ(kinds.at("water_level").max, 5);
  EXPECT_EQ(kinds.at("water_level").report_interval_ms, 30000);
  EXPECT_EQ(kinds.at("soil_moisture").kind, "soil_moisture");
  EXPECT_EQ(kinds.at("soil_moisture").unit, "%");
  EXPECT_EQ(kinds.at("soil_moisture").report_interval_ms, 300000);
  EXPECT_EQ(kinds.size(), BuiltinSensorKinds().size() + 1);
}

TEST(Config, OverridesUseTheRulesDirection) {
  auto r = LoadConfigText(Edit(kBase, "    for: 2m\n", "    for: 2m\n    overrides: {wl-2: {above: 0.5, for: 5m}}\n"),
                          kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const ThresholdOverride& o = r.config->rules.threshold[0].overrides.at("wl-2");
  EXPECT_EQ(o.raise, 0.5);
  EXPECT_FALSE(o.clear.has_value());
  EXPECT_EQ(o.min_duration_ms, 300000);
}

TEST(Config, OverrideClearMustBeOnTheNormalSide) {
  auto r = LoadConfigText(
      Edit(kBase, "    for: 2m\n", "    for: 2m\n    overrides: {wl-2: {above: 0.5, clear: 0.6}, wl-1: {clear: 0.1}}\n"),
      kFile);
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].key, "rules[0].overrides.wl-2.clear");
  EXPECT_NE(r.errors[0].message.find("clear 0.6 must be <= 0.5"), std::string::npos) << r.errors[0].ToString();
}

TEST(Config, BuiltinSensorKindsMatchTheContract) {
  const auto kinds = BuiltinSensorKinds();
  const std::vector<std::string> want = {"water_level",  "rainfall",      "gas_ppm",       "manhole_tilt",
                                         "smoke",        "pm25",          "noise_db",      "traffic_speed",
                                         "bridge_strain", "streetlight_current"};
  ASSERT_EQ(kinds.size(), want.size());
  for (const auto& k : want) {
    ASSERT_TRUE(kinds.count(k)) << k;
    EXPECT_EQ(kinds.at(k).kind, k);
    EXPECT_LT(kinds.at(k).min, kinds.at(k).max);
  }
  EXPECT_EQ(kinds.at("water_level").unit, "m");
  EXPECT_EQ(kinds.at("water_level").report_interval_ms, 30000);
  EXPECT_EQ(kinds.at("bridge_strain").min, -5000);
  EXPECT_EQ(kinds.at("streetlight_current").max, 50);
}

TEST(Config, ErrorToString) {
  EXPECT_EQ((ConfigError{"a.yaml", 7, "city.devices[3].kind", "unknown sensor kind"}).ToString(),
            "a.yaml:7: city.devices[3].kind: unknown sensor kind");
  EXPECT_EQ((ConfigError{"a.yaml", 0, "city", "oops"}).ToString(), "a.yaml: city: oops");
  EXPECT_EQ((ConfigError{"a.yaml", 3, "", "YAML syntax error"}).ToString(), "a.yaml:3: YAML syntax error");
}

// ---------------------------------------------------------------------------
// The example config

TEST(ExampleConfig, LoadsWithoutErrors) {
  auto r = LoadConfigFile(ExamplePath());
  ASSERT_TRUE(r.errors.empty()) << Dump(r.errors);
  ASSERT_TRUE(r.config.has_value());
  auto model = CityModel::Build(*r.config);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(r.config->kafka.partitions, 4);
  EXPECT_EQ(r.config->city.grid.rows, 6);
  EXPECT_EQ(r.config->city.grid.cols, 8);
  EXPECT_EQ(r.config->city.grid.cell_size_m, 500);
}

TEST(ExampleConfig, HasWhatTheSimulatorAndDetectorsNeed) {
  auto r = LoadConfigFile(ExamplePath());
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const Config& c = *r.config;
  const GridIndex grid(c.city.grid);

  // Every built-in kind has devices; the main ones at least 3; no two devices
  // of one kind share a cell.
  std::map<std::string, std::set<int>> cells_by_kind;
  for (const auto& d : c.city.devices) {
    auto cell = grid.CellAt(d.position);
    ASSERT_TRUE(cell.has_value()) << d.id;
    EXPECT_TRUE(cells_by_kind[d.kind].insert(*cell).second) << d.id << " shares a cell with another " << d.kind;
  }
  for (const auto& [kind, k] : BuiltinSensorKinds()) EXPECT_GE(cells_by_kind[kind].size(), 1u) << kind;
  for (const char* kind : {"water_level", "gas_ppm", "manhole_tilt", "smoke", "pm25", "streetlight_current"}) {
    EXPECT_GE(cells_by_kind[kind].size(), 3u) << kind;
  }
  EXPECT_GE(c.city.devices.size(), 40u);
  EXPECT_LE(c.city.devices.size(), 60u);
  EXPECT_FALSE(c.city.cameras.empty());

  // The catalogue: these ids exactly, each routed to an existing department.
  std::set<std::string> departments;
  for (const auto& d : c.city.departments) departments.insert(d.id);
  EXPECT_EQ(departments, (std::set<std::string>{"drainage", "gas", "municipal", "fire", "environment", "traffic",
                                                "city_management"}));
  const std::map<std::string, std::string> routes = {
      {"waterlogging", "drainage"},        {"gas_leak", "gas"},
      {"manhole_displaced", "municipal"},  {"fire", "fire"},
      {"air_pollution", "environment"},    {"noise", "environment"},
      {"bridge_structural", "municipal"},  {"streetlight_failure", "municipal"},
      {"traffic_congestion", "traffic"},   {"device_silent", "city_management"},
      {"device_flapping", "city_management"}, {"exposed_garbage", "city_management"},
      {"road_damage", "municipal"},        {"illegal_parking", "traffic"},
      {"fire_candidate", "fire"},          {"road_obstacle", "municipal"},
      {"wrong_way_driving", "traffic"},    {"crowd_gathering", "city_management"},
      {"zone_intrusion", "city_management"}, {"camera_fault", "city_management"}};
  std::map<std::string, std::string> got;
  for (const auto& cat : c.city.catalogue) {
    got[cat.id] = cat.department;
    EXPECT_TRUE(departments.count(cat.department)) << cat.id;
  }
  EXPECT_EQ(got, routes);

  // Units: 2-3 per department.
  std::map<std::string, int> units;
  for (const auto& u : c.city.units) ++units[u.department];
  for (const auto& d : departments) {
    EXPECT_GE(units[d], 2) << d;
    EXPECT_LE(units[d], 3) << d;
  }

  // The rules the brief names, with their levels.
  struct Want {
    std::string sensor, category;
    ThresholdDirection dir;
    double raise, clear;
    int64_t for_ms;
  };
  const std::vector<Want> want = {
      {"water_level", "waterlogging", ThresholdDirection::kAbove, 0.30, 0.20, 120000},
      {"gas_ppm", "gas_leak", ThresholdDirection::kAbove, 500, 300, 60000},
      {"manhole_tilt", "manhole_displaced", ThresholdDirection::kAbove, 15, 8, 60000},
      {"smoke", "fire", ThresholdDirection::kAbove, 10, 4, 30000},
      {"pm25", "air_pollution", ThresholdDirection::kAbove, 150, 100, 600000},
      {"streetlight_current", "streetlight_failure", ThresholdDirection::kBelow, 0.3, 0.8, 600000},
      {"noise_db", "noise", ThresholdDirection::kAbove, 85, 75, 600000},
      {"bridge_strain", "bridge_structural", ThresholdDirection::kAbove, 1500, 1200, 60000},
      {"traffic_speed", "traffic_congestion", ThresholdDirection::kBelow, 8, 15, 600000},
  };
  ASSERT_EQ(c.rules.threshold.size(), want.size());
  for (const auto& w : want) {
    auto it = std::find_if(c.rules.threshold.begin(), c.rules.threshold.end(),
                           [&](const ThresholdRule& rule) { return rule.sensor_kind == w.sensor; });
    ASSERT_NE(it, c.rules.threshold.end()) << w.sensor;
    EXPECT_EQ(it->category, w.category);
    EXPECT_EQ(it->direction, w.dir) << w.sensor;
    EXPECT_DOUBLE_EQ(it->raise, w.raise) << w.sensor;
    EXPECT_DOUBLE_EQ(it->clear, w.clear) << w.sensor;
    EXPECT_EQ(it->min_duration_ms, w.for_ms) << w.sensor;
  }
  auto lamp = std::find_if(c.rules.threshold.begin(), c.rules.threshold.end(),
                           [](const ThresholdRule& rule) { return rule.sensor_kind == "streetlight_current"; });
  ASSERT_TRUE(lamp->active_hours.has_value());
  EXPECT_EQ(*lamp->active_hours, std::make_pair(18, 6));
}

TEST(ExampleConfig, ShowsEveryRuleKind) {
  auto r = LoadConfigFile(ExamplePath());
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const RulesOptions& rules = r.config->rules;
  const Config& c = *r.config;
  ASSERT_EQ(rules.rate.size(), 1u);
  EXPECT_EQ(rules.rate[0].direction, ThresholdDirection::kAbove);
  EXPECT_DOUBLE_EQ(rules.rate[0].rate, 0.10);
  EXPECT_EQ(rules.rate[0].per_ms, 600000);
  EXPECT_EQ(rules.rate[0].min_span_ms, 300000);  // per / 2 by default
  EXPECT_FALSE(rules.rate[0].opens_case);
  ASSERT_EQ(rules.window.size(), 1u);
  EXPECT_EQ(rules.window[0].size_ms, 900000);
  EXPECT_EQ(rules.window[0].slide(), 300000);
  EXPECT_EQ(rules.window[0].aggregate, Aggregate::kMean);
  ASSERT_EQ(rules.correlation.size(), 3u);
  const CorrelationRule& gas = rules.correlation[1];
  EXPECT_EQ(gas.id, "gas-leak-confirmed");
  EXPECT_EQ(gas.priority, Priority::kUrgent);
  EXPECT_TRUE(gas.absorb);
  EXPECT_EQ(gas.scope, CorrelationScope::kNeighbours);
  ASSERT_EQ(gas.when.size(), 2u);
  EXPECT_EQ(gas.when[0].rule, "gas-leak");
  EXPECT_EQ(rules.correlation[2].scope, CorrelationScope::kRadius);
  // Camera zones for every frame detector, against the simulator's street.
  const Camera* cam34 = nullptr;
  std::set<ZoneDetector> detectors;
  for (const auto& cam : c.city.cameras) {
    if (cam.id == "cam-034") cam34 = &cam;
    for (const auto& z : cam.zones) detectors.insert(z.detectors.begin(), z.detectors.end());
  }
  EXPECT_EQ(detectors, (std::set<ZoneDetector>{ZoneDetector::kStationary, ZoneDetector::kCrowd, ZoneDetector::kFire,
                                                ZoneDetector::kCongestion, ZoneDetector::kWrongWay}));
  ASSERT_NE(cam34, nullptr);
  ASSERT_GE(cam34->zones.size(), 2u);
  EXPECT_EQ(cam34->zones[0].direction, (ImagePoint{-1, 0}));
  EXPECT_EQ(c.camera.fps, 5);
  EXPECT_EQ(c.camera.categories.at("tamper"), "camera_fault");
  ASSERT_EQ(rules.camera.size(), 1u);
  EXPECT_EQ(rules.camera[0].labels, (std::vector<std::string>{"fire", "smoke"}));
  EXPECT_EQ(rules.camera[0].min_detections, 3);
  ASSERT_EQ(rules.no_signal.size(), 1u);
  EXPECT_DOUBLE_EQ(rules.no_signal[0].factor, 5);
  ASSERT_EQ(rules.flapping.size(), 1u);
  EXPECT_EQ(rules.flapping[0].transitions, 6);
  EXPECT_EQ(rules.merge_radius_m, 300);
  EXPECT_EQ(r.config->event_time.allowed_lateness_ms, 30000);
  EXPECT_EQ(r.config->event_time.late_policy, LatePolicy::kDrop);
}

// Loading must never throw, whatever the text: every prefix of the example
// either loads or yields located errors.
TEST(ExampleConfig, TruncatedTextNeverThrows) {
  const std::string text = testing::ReadFile(ExamplePath());
  ASSERT_FALSE(text.empty());
  for (size_t n = 0; n < text.size(); n += 89) {
    auto r = LoadConfigText(text.substr(0, n), "cut.yaml");
    EXPECT_NE(r.config.has_value(), !r.errors.empty()) << n;
    for (const auto& e : r.errors) EXPECT_EQ(e.file, "cut.yaml");
  }
}

// ---------------------------------------------------------------------------
// Bad configs: each edit of kBase yields exactly one error, at the expected
// line and key.

struct BadCase {
  const char* name;
  std::string from, to;   // the edit
  std::string key;        // expected dotted key ("" for YAML syntax)
  std::string marker;     // the expected line is the first line holding this (after the edit)
  std::string message;    // a part of the expected message
};

// Printed as its name (ctest lists parameterised tests with their parameter).
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, ReportsOneErrorAtTheRightPlace) {
  const BadCase& c = GetParam();
  const std::string text = Edit(kBase, c.from, c.to);
  auto r = LoadConfigText(text, kFile);
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  const ConfigError& e = r.errors[0];
  EXPECT_EQ(e.file, kFile);
  EXPECT_EQ(e.key, c.key) << e.ToString();
  EXPECT_EQ(e.line, LineOf(text, c.marker)) << e.ToString();
  EXPECT_NE(e.message.find(c.message), std::string::npos) << e.ToString();
}

// A cameras list with one zone "kerb" (its detectors line given), to go
// before units. corner: the polygon's second point; with_category: the zone
// names waterlogging (else its detectors' default categories apply).
std::string Cameras(const std::string& detectors, const std::string& corner = "[0.5, 0.1]",
                    bool with_category = true) {
  return "  cameras:\n    - id: cam-1\n      lat: 28.171\n      lon: 112.951\n      zones:\n        - id: kerb\n"
         "          polygon: [[0.1, 0.1], " + corner + ", [0.5, 0.5]]\n          " +
         (with_category && detectors.find("category") == std::string::npos ? "category: waterlogging\n          " : "") +
         detectors + "\n  units:\n";
}

const char* kEastRange = "              rows: [0, 1]\n              cols: [1, 1]";

INSTANTIATE_TEST_SUITE_P(
    Table, BadConfig,
    ::testing::Values(
        BadCase{"YamlSyntax", "      name: 芙蓉区", "      name: 芙蓉区: 区", "", "芙蓉区: 区", "YAML syntax error"},
        BadCase{"UnknownKey", "cell_size_m: 500", "cell_sise_m: 500", "city.grid.cell_sise_m", "cell_sise_m",
                "unknown key (did you mean 'cell_size_m'?)"},
        BadCase{"UnknownSection", "sla:\n", "slas:\n", "slas", "slas:", "unknown key (did you mean 'sla'?)"},
        BadCase{"WrongType", "partitions: 4", "partitions: four", "kafka.partitions", "partitions:",
                "expected an integer, got 'four'"},
        BadCase{"PropertiesNotAMap", "partitions: 4", "partitions: 4\n  consumer_properties: [a, b]",
                "kafka.consumer_properties", "consumer_properties:", "expected a map"},
        BadCase{"ListWhereStringExpected", "    sensor: water_level", "    sensor: [water_level]", "rules[0].sensor",
                "sensor:", "expected a string, got a list"},
        BadCase{"BadDuration", "for: 2m", "for: 2 minutes", "rules[0].for", "for:", "expected a duration"},
        BadCase{"UnknownSensorKind", "kind: water_level, lat: 28.171", "kind: water_levl, lat: 28.171",
                "city.devices[0].kind", "water_levl", "unknown sensor kind 'water_levl' (did you mean 'water_level'?)"},
        BadCase{"UnknownCatalogueDepartment", "{id: waterlogging, department: drainage",
                "{id: waterlogging, department: drains", "city.catalogue[0].department", "department: drains",
                "unknown department 'drains'"},
        BadCase{"UnknownDefaultDepartment", "default_department: city_management", "default_department: cityhall",
                "city.districts[0].default_department", "cityhall", "unknown department 'cityhall'"},
        BadCase{"UnknownUnitDepartment", "department: drainage, lat: 28.17", "department: sewer, lat: 28.17",
                "city.units[0].department", "sewer", "unknown department 'sewer'"},
        BadCase{"UnknownUnitDistrict", "districts: [furong]", "districts: [furung]", "city.units[0].districts[0]",
                "furung", "unknown district 'furung'"},
        BadCase{"UnknownRuleCategory", "    category: waterlogging", "    category: flood", "rules[0].category",
                "category: flood", "unknown category 'flood'"},
        BadCase{"UnknownRuleSensor", "    sensor: water_level", "    sensor: water", "rules[0].sensor",
                "sensor: water", "unknown sensor kind 'water'"},
        BadCase{"OverrideOfUnknownDevice", "    for: 2m\n", "    for: 2m\n    overrides: {wl-9: {above: 0.4}}\n",
                "rules[0].overrides.wl-9", "overrides:", "overrides unknown device 'wl-9'"},
        BadCase{"OverrideWrongDirection", "    for: 2m\n", "    for: 2m\n    overrides: {wl-1: {below: 0.4}}\n",
                "rules[0].overrides.wl-1.below", "overrides:", "override it with 'above'"},
        BadCase{"UnknownSlaCategory", "{waterlogging: 4h}", "{waterlogged: 4h}", "sla.handle_by_category.waterlogged",
                "waterlogged", "unknown category 'waterlogged'"},
        BadCase{"LatOutOfRange", "lat: 28.176", "lat: 95.176", "city.devices[1].lat", "95.176",
                "latitude must be within [-90, 90]"},
        BadCase{"LonOutOfRange", "lon: 112.956}", "lon: 212.956}", "city.devices[1].lon", "212.956",
                "longitude must be within [-180, 180]"},
        BadCase{"DeviceOutsideGrid", "lat: 28.176, lon: 112.956", "lat: 28.276, lon: 112.956", "city.devices[1].lat",
                "28.276", "outside the grid"},
        BadCase{"UncoveredCell", kEastRange, "              rows: [0, 0]\n              cols: [1, 1]", "city.grid",
                "  grid:", "1 grid cell(s) (row,col) belong to no community: (1,1)"},
        BadCase{"OverlappingCommunities", kEastRange, "              rows: [0, 1]\n              cols: [0, 1]",
                "city.districts[0].streets[0].communities[1]", "            - id: east", "overlaps community 'west'"},
        BadCase{"CommunityOutsideGrid", kEastRange, "              rows: [0, 1]\n              cols: [1, 2]",
                "city.districts[0].streets[0].communities[1].cols", "cols: [1, 2]", "the grid has 2 cols"},
        BadCase{"GridWithoutRows", "rows: 2, cols: 2}", "rows: 0, cols: 2}", "city.grid.rows", "  grid:",
                "must be within [1, 1000], got 0"},
        BadCase{"DuplicateDeviceId", "{id: wl-2,", "{id: wl-1,", "city.devices[1].id", "lat: 28.176",
                "duplicate device id 'wl-1' (first at city.devices[0])"},
        BadCase{"DuplicateYamlKey", "    for: 2m\n", "    for: 2m\n    for: 3m\n", "rules[0].for", "for: 3m",
                "duplicate key"},
        BadCase{"AboveAndBelow", "    clear: 0.20", "    below: 0.10\n    clear: 0.20", "rules[0].below",
                "below: 0.10", "exactly one of 'above' or 'below'"},
        BadCase{"NeitherAboveNorBelow", "    above: 0.30\n", "", "rules[0]", "  - id: road-waterlogging",
                "exactly one of 'above: X' or 'below: X'"},
        BadCase{"ClearOnTheWrongSide", "clear: 0.20", "clear: 0.40", "rules[0].clear", "clear: 0.40",
                "clear 0.4 must be <= 0.3"},
        BadCase{"UnsupportedRuleKind", "kind: threshold", "kind: rate_of_change", "rules[0].kind", "rate_of_change",
                "unsupported rule kind 'rate_of_change' (supported: threshold, rate, window, no_signal, flapping, "
                "correlation, camera)"},
        BadCase{"RateWithoutLevel", "sla:\n",
                "  - {id: wl-rise, kind: rate, sensor: water_level, category: waterlogging, per: 10m}\nsla:\n",
                "rules[1]", "wl-rise", "needs exactly one of 'rise: X' or 'fall: X'"},
        BadCase{"RateClearAboveTheRate", "sla:\n",
                "  - {id: wl-rise, kind: rate, sensor: water_level, category: waterlogging, rise: 0.1, clear: 0.2}\n"
                "sla:\n",
                "rules[1].clear", "wl-rise", "must be within [0, 0.1]"},
        BadCase{"WindowUnknownAggregate", "sla:\n",
                "  - {id: w, kind: window, sensor: water_level, category: waterlogging, window: {size: 10m}, "
                "aggregate: avg, above: 1}\nsla:\n",
                "rules[1].aggregate", "aggregate: avg", "expected one of count, min, max, mean, sum, percentile"},
        BadCase{"SlidingWindowWithoutSlide", "sla:\n",
                "  - {id: w, kind: window, sensor: water_level, category: waterlogging, window: {type: sliding, "
                "size: 10m}, above: 1}\nsla:\n",
                "rules[1].window", "type: sliding", "a sliding window needs 'slide'"},
        BadCase{"PercentileWithoutPercentileAggregate", "sla:\n",
                "  - {id: w, kind: window, sensor: water_level, category: waterlogging, window: {size: 10m}, "
                "percentile: 90, above: 1}\nsla:\n",
                "rules[1].percentile", "percentile: 90", "only for aggregate: percentile"},
        BadCase{"NoSignalFactorTooSmall", "sla:\n",
                "  - {id: quiet, kind: no_signal, category: waterlogging, factor: 1}\nsla:\n", "rules[1].factor",
                "id: quiet", "must be greater than 1"},
        BadCase{"FlappingWatchesUnknownRule", "sla:\n",
                "  - {id: flap, kind: flapping, category: waterlogging, rules: [road-waterloging]}\nsla:\n",
                "rules[1].rules[0]", "id: flap", "unknown rule 'road-waterloging' (did you mean 'road-waterlogging'?)"},
        BadCase{"CorrelationOfOne", "sla:\n",
                "  - {id: c, kind: correlation, category: waterlogging, when: [{rule: road-waterlogging}]}\nsla:\n",
                "rules[1].when", "kind: correlation", "at least two members"},
        BadCase{"CorrelationMemberNamesBoth", "sla:\n",
                "  - {id: c, kind: correlation, category: waterlogging, when: [{rule: road-waterlogging, category: "
                "waterlogging}, {category: waterlogging}]}\nsla:\n",
                "rules[1].when[0]", "kind: correlation", "exactly one of 'rule' or 'category'"},
        BadCase{"CameraRuleUnknownCamera", "sla:\n",
                "  - {id: cam, kind: camera, category: waterlogging, labels: [water], cameras: [cam-9]}\nsla:\n",
                "rules[1].cameras[0]", "id: cam, kind", "unknown camera 'cam-9'"},
        BadCase{"CameraZoneOutsideTheFrame", "sla:\n",
                "  - {id: cam, kind: camera, category: waterlogging, labels: [water], zone: [0.5, 0.5, 0.6, 0.1]}\n"
                "sla:\n",
                "rules[1].zone", "id: cam, kind", "outside the frame"},
        BadCase{"DuplicateRuleIdAcrossKinds", "sla:\n",
                "  - {id: road-waterlogging, kind: no_signal, category: waterlogging}\nsla:\n", "rules[1].id",
                "kind: no_signal", "duplicate rule id 'road-waterlogging'"},
        BadCase{"BadLatePolicy", "sla:\n", "event_time: {late_events: keep}\nsla:\n", "event_time.late_events",
                "late_events", "expected drop or apply, got 'keep'"},
        BadCase{"ActiveHoursOutOfRange", "    for: 2m\n", "    for: 2m\n    active_hours: [18, 24]\n",
                "rules[0].active_hours", "active_hours", "both ends must be within [0, 23]"},
        BadCase{"MissingRequiredKey", "          code: \"001\"\n          communities:", "          communities:",
                "city.districts[0].streets[0].code", "        - id: dingwangtai", "missing required key"},
        BadCase{"BadDistrictCode", "code: \"430102\"", "code: \"43010\"", "city.districts[0].code", "43010",
                "must be 6 digits"},
        BadCase{"BadPriority", "priority: high}", "priority: hihg}", "city.catalogue[0].priority", "hihg",
                "expected a priority (urgent, high, normal, low)"},
        BadCase{"PartitionsOutOfRange", "partitions: 4", "partitions: 300", "kafka.partitions", "partitions:",
                "must be within [1, 256], got 300"},
        BadCase{"ZeroBatch", "  partitions: 4\n", "  partitions: 4\n  batch: {max_messages: 0}\n",
                "kafka.batch.max_messages", "batch:", "must be within [1, 1000000], got 0"},
        BadCase{"BadUtcOffset", "city:\n", "city:\n  utc_offset: \"8 hours\"\n", "city.utc_offset", "utc_offset",
                "expected a UTC offset such as \"+08:00\""},
        BadCase{"UnknownEscalationKey", "sla:\n", "escalation: {remind_at: 0.5}\nsla:\n", "escalation.remind_at",
                "escalation:", "unknown key"},
        BadCase{"BadSlaLimit", "sla:\n", "sla:\n  handle: {low: 3 days}\n", "sla.handle.low", "handle:",
                "expected a time limit such as 30m, 4h"},
        BadCase{"SlaLimitUnknownCategory", "sla:\n", "sla:\n  limits:\n    - {category: potholes, limit: 2h}\n",
                "sla.limits[0].category", "potholes", "unknown category 'potholes'"},
        BadCase{"SlaLimitUnknownStage", "sla:\n", "sla:\n  limits:\n    - {stage: fix, limit: 2h}\n",
                "sla.limits[0].stage", "stage: fix", "expected one of acknowledge, arrive, handle, verify, close"},
        BadCase{"CalendarOverlappingHours", "sla:\n",
                "sla:\n  calendar:\n    hours: [\"08:00-12:00\", \"11:00-17:00\"]\n", "sla.calendar.hours[1]",
                "11:00-17:00", "must be in order and must not overlap"},
        BadCase{"CalendarBadDate", "sla:\n", "sla:\n  calendar:\n    holidays: [2026-13-01]\n",
                "sla.calendar.holidays[0]", "holidays:", "expected a date such as 2026-10-01"},
        BadCase{"WarningAfterBreach", "sla:\n", "sla:\n  warning_ratio: 1.0\n  breach_ratio: 0.9\n",
                "sla.warning_ratio", "warning_ratio", "must be below breach_ratio"},
        BadCase{"EscalationLevelWithoutTarget", "sla:\n", "escalation:\n  levels:\n    - {name: reminder}\nsla:\n",
                "escalation.levels[0].target", "name: reminder", "missing required key"},
        BadCase{"NegativeSpeed", "sla:\n", "dispatch:\n  speeds: {truck: -5}\nsla:\n", "dispatch.speeds.truck",
                "truck: -5", "must be within (0, 500]"},
        BadCase{"UnknownKpiRate", "sla:\n", "kpi:\n  weights: {close_rat: 1}\nsla:\n", "kpi.weights.close_rat",
                "close_rat", "unknown KPI rate"},
        BadCase{"ZoneUnknownDetector", "  units:\n", Cameras("detectors: [parking]"),
                "city.cameras[0].zones[0].detectors[0]", "parking",
                "expected one of intrusion, stationary, crowd, congestion, wrong_way, fire, got 'parking'"},
        BadCase{"ZonePointOutsideTheFrame", "  units:\n", Cameras("detectors: [stationary]", "[1.2, 0.5]"),
                "city.cameras[0].zones[0].polygon[1]", "polygon:", "within [0, 1]"},
        BadCase{"ZoneWithoutArea", "  units:\n", Cameras("detectors: [stationary]", "[0.05, 0.05]"),
                "city.cameras[0].zones[0].polygon", "polygon:", "no area"},
        BadCase{"ZoneUnknownCategory", "  units:\n", Cameras("detectors: [stationary]\n          category: parking"),
                "city.cameras[0].zones[0].category", "category: parking", "unknown category 'parking'"},
        BadCase{"ZoneDetectorCategoryNotInCatalogue", "  units:\n", Cameras("detectors: [crowd]", "[0.5, 0.1]", false),
                "city.cameras[0].zones[0].detectors", "detectors:", "'crowd_gathering' (camera.categories)"},
        BadCase{"WrongWayWithoutDirection", "  units:\n", Cameras("detectors: [wrong_way]"),
                "city.cameras[0].zones[0].direction", "- id: kerb", "needs the lane's 'direction'"},
        BadCase{"CameraFpsOutOfRange", "sla:\n", "camera: {fps: 0}\nsla:\n", "camera.fps", "camera:",
                "fps must be within [0.1, 60]"},
        BadCase{"CameraCategoryOfUnknownDetector", "sla:\n", "camera: {categories: {parking: waterlogging}}\nsla:\n",
                "camera.categories.parking", "camera:", "unknown detector 'parking'"}),
    [](const ::testing::TestParamInfo<BadCase>& param) { return std::string(param.param.name); });

// ---- api ------------------------------------------------------------------

// SHA-256 hex of "ops-token" and "boss-token" (printf %s TOKEN | sha256sum).
constexpr const char* kOpsHash = "9b8e1b3c5f8cf0a1c6d26a3a3c2a1f0e4b4c9d2e7f6a5b4c3d2e1f0a9b8c7d6e";
constexpr const char* kBossHash = "1f2e3d4c5b6a79880716253443526170f9e8d7c6b5a49382716051f4e3d2c1b0";

// An api section with one operator token, to go before "sla:".
std::string ApiSection(const std::string& token_lines, const std::string& more = "") {
  return "api:\n  listen: \"0.0.0.0:9090\"\n  tokens:\n" + token_lines + more + "sla:\n";
}
std::string OpsToken(const std::string& name = "ops", const std::string& hash = kOpsHash,
                     const std::string& role = "      role: operator\n",
                     const std::string& districts = "      districts: [furong]\n") {
  return "    - name: " + name + "\n      sha256: " + hash + "\n" + role + districts;
}

TEST(Config, ConsumerAndProducerPropertiesGoOverTheCommonOnes) {
  auto r = LoadConfigText(Edit(kBase, "  partitions: 4\n",
                               "  partitions: 4\n"
                               "  properties: {\"security.protocol\": ssl, \"client.rack\": r1}\n"
                               "  consumer_properties: {\"session.timeout.ms\": \"6000\", \"client.rack\": r2}\n"
                               "  producer_properties: {\"linger.ms\": \"5\"}\n"),
                          kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const KafkaOptions& k = r.config->kafka;
  using Map = std::map<std::string, std::string>;
  EXPECT_EQ(k.ConsumerProperties(),
            (Map{{"security.protocol", "ssl"}, {"client.rack", "r2"}, {"session.timeout.ms", "6000"}}));
  EXPECT_EQ(k.ProducerProperties(), (Map{{"security.protocol", "ssl"}, {"client.rack", "r1"}, {"linger.ms", "5"}}));
}

TEST(Config, ApiDefaults) {
  auto r = LoadConfigText(kBase, kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const ApiOptions& api = r.config->api;
  EXPECT_EQ(api.listen, "127.0.0.1:8080");
  EXPECT_TRUE(api.tokens.empty());
  EXPECT_TRUE(api.cors_origins.empty());
  EXPECT_EQ(api.web_root, "");
  EXPECT_EQ(api.action_wait_ms, 3000);
  EXPECT_EQ(api.heartbeat_ms, 15000);
  EXPECT_EQ(api.max_body_bytes, 65536);
  EXPECT_EQ(api.stream_queue_limit, 1000);
  EXPECT_EQ(api.max_streams, 100);
  EXPECT_TRUE(api.access_log);
}

TEST(Config, ApiSectionReadsEveryKey) {
  std::string upper = kBossHash;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string text = Edit(
      kBase, "sla:\n",
      ApiSection(OpsToken() + "    - {name: boss, sha256: " + upper + ", role: admin}\n",
                 "  cors_origins: [\"https://console.example.org\", \"http://127.0.0.1:8080\"]\n"
                 "  web_root: /srv/cityloop/web\n  threads: 8\n  action_wait: 5s\n  request_timeout: 10s\n"
                 "  max_body_bytes: 32768\n  max_header_bytes: 8192\n  max_connections: 500\n  max_streams: 20\n"
                 "  max_streams_per_token: 4\n  stream_queue_limit: 250\n  heartbeat: 20s\n"
                 "  stream_retention: 5000\n  access_log: false\n"));
  auto r = LoadConfigText(text, kFile);
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  const ApiOptions& api = r.config->api;
  EXPECT_EQ(api.listen, "0.0.0.0:9090");
  ASSERT_EQ(api.tokens.size(), 2u);
  EXPECT_EQ(api.tokens[0].name, "ops");
  EXPECT_EQ(api.tokens[0].sha256, kOpsHash);
  EXPECT_EQ(api.tokens[0].role, Role::kOperator);
  EXPECT_EQ(api.tokens[0].districts, std::vector<std::string>{"furong"});
  EXPECT_EQ(api.tokens[1].role, Role::kAdmin);
  EXPECT_EQ(api.tokens[1].sha256, kBossHash);  // stored lower-case
  EXPECT_TRUE(api.tokens[1].districts.empty());
  EXPECT_EQ(api.cors_origins, (std::vector<std::string>{"https://console.example.org", "http://127.0.0.1:8080"}));
  EXPECT_EQ(api.web_root, "/srv/cityloop/web");
  EXPECT_EQ(api.threads, 8);
  EXPECT_EQ(api.action_wait_ms, 5000);
  EXPECT_EQ(api.request_timeout_ms, 10000);
  EXPECT_EQ(api.max_body_bytes, 32768);
  EXPECT_EQ(api.max_header_bytes, 8192);
  EXPECT_EQ(api.max_connections, 500);
  EXPECT_EQ(api.max_streams, 20);
  EXPECT_EQ(api.max_streams_per_token, 4);
  EXPECT_EQ(api.stream_queue_limit, 250);
  EXPECT_EQ(api.heartbeat_ms, 20000);
  EXPECT_EQ(api.stream_retention, 5000);
  EXPECT_FALSE(api.access_log);
}

TEST(ExampleConfig, ApiSectionIsValid) {
  auto r = LoadConfigFile(ExamplePath());
  ASSERT_TRUE(r.config.has_value()) << Dump(r.errors);
  for (const auto& t : r.config->api.tokens) {
    EXPECT_EQ(t.sha256.size(), 64u) << t.name;
    EXPECT_NE(t.role, Role::kSystem) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Api, BadConfig,
    ::testing::Values(
        BadCase{"ApiTokenShortHash", "sla:\n", ApiSection(OpsToken("ops", "abc123")), "api.tokens[0].sha256",
                "sha256: abc123", "expected the 64 hex digits of the token's SHA-256"},
        BadCase{"ApiTokenInPlainText", "sla:\n", ApiSection(OpsToken("ops", "my-secret-token")),
                "api.tokens[0].sha256", "sha256: my-secret", "never put the token itself in the config"},
        BadCase{"ApiTokenUnknownRole", "sla:\n", ApiSection(OpsToken("ops", kOpsHash, "      role: boss\n")),
                "api.tokens[0].role", "role: boss", "expected one of viewer, operator, supervisor, admin, got 'boss'"},
        BadCase{"ApiTokenWithoutRole", "sla:\n", ApiSection(OpsToken("ops", kOpsHash, "")), "api.tokens[0].role",
                "- name: ops", "missing required key"},
        BadCase{"ApiTokenSystemRole", "sla:\n", ApiSection(OpsToken("ops", kOpsHash, "      role: system\n")),
                "api.tokens[0].role", "role: system", "got 'system'"},
        BadCase{"ApiTokenUnknownDistrict", "sla:\n",
                ApiSection(OpsToken("ops", kOpsHash, "      role: operator\n", "      districts: [furon]\n")),
                "api.tokens[0].districts[0]", "districts: [furon]", "unknown district 'furon' (did you mean 'furong'?)"},
        BadCase{"ApiTokenBadName", "sla:\n", ApiSection(OpsToken("op zhang")), "api.tokens[0].name", "name: op zhang",
                "is not a valid id"},
        BadCase{"ApiTokenDuplicateName", "sla:\n",
                ApiSection(OpsToken() + "    - {name: ops, sha256: " + kBossHash + ", role: admin}\n"),
                "api.tokens[1].name", "{name: ops", "duplicate token name 'ops'"},
        BadCase{"ApiTokenDuplicateHash", "sla:\n",
                ApiSection(OpsToken() + "    - {name: boss, sha256: " + kOpsHash + ", role: admin}\n"),
                "api.tokens[1].sha256", "{name: boss", "duplicate token hash"},
        BadCase{"ApiCorsOriginWithPath", "sla:\n", "api:\n  cors_origins: [\"https://x.org/console\"]\nsla:\n",
                "api.cors_origins[0]", "cors_origins:", "expected an origin such as"},
        BadCase{"ApiHeartbeatTooShort", "sla:\n", "api:\n  heartbeat: 10ms\nsla:\n", "api.heartbeat", "heartbeat:",
                "must be within [1000ms"},
        BadCase{"ApiQueueLimitZero", "sla:\n", "api:\n  stream_queue_limit: 0\nsla:\n", "api.stream_queue_limit",
                "stream_queue_limit:", "must be within [1, 1000000]"},
        BadCase{"ApiUnknownKey", "sla:\n", "api:\n  max_stream: 5\nsla:\n", "api.max_stream", "max_stream:",
                "unknown key (did you mean 'max_streams'?)"}),
    [](const ::testing::TestParamInfo<BadCase>& param) { return std::string(param.param.name); });

TEST(Config, ReportsEveryError) {
  std::string text = Edit(kBase, "partitions: 4", "partitions: four");
  text = Edit(text, "kind: water_level, lat: 28.171", "kind: water_levl, lat: 28.171");
  text = Edit(text, "lat: 28.176", "lat: 95.176");
  auto r = LoadConfigText(text, kFile);
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 3u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].key, "kafka.partitions");
  EXPECT_EQ(r.errors[0].line, LineOf(text, "partitions: four"));
  EXPECT_EQ(r.errors[1].key, "city.devices[0].kind");
  EXPECT_EQ(r.errors[1].line, LineOf(text, "water_levl"));
  EXPECT_EQ(r.errors[2].key, "city.devices[1].lat");
  EXPECT_EQ(r.errors[2].line, LineOf(text, "95.176"));
}

TEST(Config, SyntaxErrorInAFileNamesTheFile) {
  testing::TempDir dir;
  const std::string path = dir.file("broken.yaml");
  testing::WriteFile(path, "kafka:\n  partitions: [4\ncity: {}\n");
  auto r = LoadConfigFile(path);
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].file, path);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(Config, MissingFileIsOneError) {
  auto r = LoadConfigFile("/nonexistent/cityloop.yaml");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "/nonexistent/cityloop.yaml");
  EXPECT_EQ(r.errors[0].line, 0);
}

TEST(Config, OddDocumentsAreErrorsNotExceptions) {
  for (const char* text : {"", "just a string", "- a\n- b\n", "{}", "city: 3\n", "city:\n", "\t\x01\xff: [", "rules: x\n"}) {
    auto r = LoadConfigText(text, kFile);
    EXPECT_FALSE(r.config.has_value()) << text;
    EXPECT_FALSE(r.errors.empty()) << text;
  }
  auto r = LoadConfigText("{}", kFile);
  ASSERT_EQ(r.errors.size(), 1u) << Dump(r.errors);
  EXPECT_EQ(r.errors[0].key, "city");
  EXPECT_EQ(r.errors[0].message, "missing required key");
}

}  // namespace
}  // namespace cityloop

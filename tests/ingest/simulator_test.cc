#include "ingest/simulator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/city.h"
#include "core/config.h"
#include "core/time_util.h"
#include "tests/support/test_support.h"

namespace cityloop::ingest {
namespace {

using nlohmann::json;

constexpr int64_t kMinute = 60000;
constexpr int64_t kHour = 60 * kMinute;

// A 4x4 grid of 500 m cells, one district / street / community, devices of
// every kind and one threshold rule per sensor-driven category.
Config SimConfig() {
  Config c;
  c.city.name = "testcity";
  c.city.utc_offset_minutes = 480;
  c.city.grid.origin = {28.15, 112.95};
  c.city.grid.cell_size_m = 500;
  c.city.grid.rows = 4;
  c.city.grid.cols = 4;
  c.city.districts.push_back({"furong", "芙蓉区", "430102", "city_management"});
  c.city.streets.push_back({"s1", "Street 1", "001", "furong"});
  Community com;
  com.id = "c1";
  com.name = "Community 1";
  com.code = "002";
  com.street_id = "s1";
  com.district_id = "furong";
  com.row_from = 0;
  com.row_to = 3;
  com.col_from = 0;
  com.col_to = 3;
  c.city.communities.push_back(com);
  for (const char* d : {"drainage", "gas", "municipal", "fire", "environment", "traffic", "city_management"}) {
    c.city.departments.push_back({d, d});
  }
  auto cat = [&](const char* id, const char* dept, Priority p) {
    Category k;
    k.id = id;
    k.name = id;
    k.code = "0101";
    k.department = dept;
    k.priority = p;
    c.city.catalogue.push_back(k);
  };
  cat("waterlogging", "drainage", Priority::kHigh);
  cat("gas_leak", "gas", Priority::kUrgent);
  cat("manhole_displaced", "municipal", Priority::kHigh);
  cat("fire_smoke", "fire", Priority::kUrgent);
  cat("air_pollution", "environment", Priority::kNormal);
  cat("streetlight_failure", "municipal", Priority::kLow);
  cat("traffic_congestion", "traffic", Priority::kNormal);
  cat("noise", "environment", Priority::kLow);
  cat("fire_candidate", "fire", Priority::kHigh);
  cat("device_silent", "city_management", Priority::kLow);

  auto kind = [&](const char* k, const char* unit, double lo, double hi) {
    c.city.sensor_kinds[k] = SensorKind{k, unit, lo, hi, 60000};
  };
  kind("water_level", "m", 0, 5);
  kind("rainfall", "mm/h", 0, 300);
  kind("gas_ppm", "ppm", 0, 10000);
  kind("manhole_tilt", "deg", 0, 90);
  kind("smoke", "%obs/m", 0, 100);
  kind("pm25", "ug/m3", 0, 1000);
  kind("noise_db", "dB", 20, 140);
  kind("traffic_speed", "km/h", 0, 150);
  kind("bridge_strain", "ue", 0, 5000);
  kind("streetlight_current", "A", 0, 10);

  GridIndex grid(c.city.grid);
  auto dev = [&](const char* id, const char* k, int row, int col, double dlat = 0) {
    LatLon p = grid.Center(grid.Index(row, col));
    p.lat += dlat;
    c.city.devices.push_back({id, k, p, id});
  };
  dev("wl-0001", "water_level", 0, 0);
  dev("wl-0002", "water_level", 0, 0, 0.0005);  // same cell as wl-0001
  dev("wl-0003", "water_level", 2, 2);          // has an override
  dev("wl-0004", "water_level", 3, 3);
  dev("gas-0001", "gas_ppm", 0, 1);
  dev("gas-0002", "gas_ppm", 2, 3);
  dev("gas-0003", "gas_ppm", 3, 0);
  dev("mh-0001", "manhole_tilt", 1, 1);
  dev("mh-0002", "manhole_tilt", 3, 2);
  dev("smk-0001", "smoke", 1, 2);
  dev("smk-0002", "smoke", 2, 0);
  dev("pm-0001", "pm25", 1, 3);
  dev("pm-0002", "pm25", 3, 1);
  dev("sl-0001", "streetlight_current", 0, 2);
  dev("sl-0002", "streetlight_current", 2, 1);
  dev("sl-0003", "streetlight_current", 0, 3);
  dev("ts-0001", "traffic_speed", 1, 0);
  dev("ts-0002", "traffic_speed", 2, 2);
  dev("nz-0001", "noise_db", 1, 1);
  dev("br-0001", "bridge_strain", 0, 1);
  dev("rf-0001", "rainfall", 3, 3);
  LatLon cam = grid.Center(grid.Index(1, 2));  // ~110 m north of smk-0001
  cam.lat += 0.001;
  c.city.cameras.push_back({"cam-0001", cam, "cam-0001"});
  c.city.cameras.push_back({"cam-0002", grid.Center(grid.Index(3, 3)), "cam-0002"});

  auto rule = [&](const char* id, const char* sensor, const char* category, ThresholdDirection dir, double raise,
                  double clear, int64_t for_ms) -> ThresholdRule& {
    ThresholdRule r;
    r.id = id;
    r.sensor_kind = sensor;
    r.category = category;
    r.direction = dir;
    r.raise = raise;
    r.clear = clear;
    r.min_duration_ms = for_ms;
    c.rules.threshold.push_back(r);
    return c.rules.threshold.back();
  };
  const auto above = ThresholdDirection::kAbove;
  const auto below = ThresholdDirection::kBelow;
  rule("road-water", "water_level", "waterlogging", above, 0.15, 0.10, 2 * kMinute)
      .overrides["wl-0003"] = ThresholdOverride{0.12, 0.09, 3 * kMinute};
  rule("rain-heavy", "rainfall", "waterlogging", above, 30, 20, 10 * kMinute);
  rule("gas", "gas_ppm", "gas_leak", above, 100, 80, kMinute);
  rule("manhole", "manhole_tilt", "manhole_displaced", above, 8, 6, kMinute);
  rule("smoke", "smoke", "fire_smoke", above, 5, 3, 30000);
  rule("pm25", "pm25", "air_pollution", above, 150, 115, 10 * kMinute);
  rule("lamp", "streetlight_current", "streetlight_failure", below, 0.3, 0.5, 10 * kMinute).active_hours =
      std::make_pair(18, 6);
  rule("congestion", "traffic_speed", "traffic_congestion", below, 10, 15, 5 * kMinute);
  rule("noise", "noise_db", "noise", above, 85, 80, 10 * kMinute);
  rule("bridge", "bridge_strain", "bridge_alarm", above, 1500, 1200, kMinute).devices = {"br-0001"};
  NoSignalRule silent;
  silent.id = "device-silent";
  silent.category = "device_silent";
  silent.factor = 5;
  c.rules.no_signal.push_back(silent);
  CameraRule fire;
  fire.id = "camera-fire";
  fire.category = "fire_candidate";
  fire.labels = {"fire", "smoke"};
  fire.min_score = 0.6;
  fire.min_detections = 3;
  fire.min_duration_ms = 10000;
  fire.cooldown_ms = 2 * kMinute;
  c.rules.camera.push_back(fire);
  auto correlation = [&](const char* id, const char* category, const char* a, const char* b, int64_t within,
                         CorrelationScope scope) -> CorrelationRule& {
    CorrelationRule r;
    r.id = id;
    r.category = category;
    r.priority = Priority::kUrgent;
    r.when = {{a, ""}, {b, ""}};
    r.within_ms = within;
    r.scope = scope;
    r.absorb = true;
    c.rules.correlation.push_back(r);
    return c.rules.correlation.back();
  };
  correlation("gas-leak-confirmed", "gas_leak", "gas", "manhole", 15 * kMinute, CorrelationScope::kNeighbours);
  correlation("fire-confirmed", "fire_smoke", "smoke", "camera-fire", 10 * kMinute, CorrelationScope::kRadius)
      .radius_m = 400;
  c.rules.merge_window_ms = 30 * kMinute;
  return c;
}

std::shared_ptr<const CityModel> SimCity() {
  auto city = CityModel::Build(SimConfig());
  EXPECT_TRUE(city.ok());
  return *city;
}

int64_t LocalMidnight() { return *ParseRfc3339Ms("2026-11-28T00:00:00+08:00"); }

struct Parsed {
  std::string device;
  std::string kind;
  int64_t ts = 0;
  double value = 0;
};

// One city.camera.detections message, parsed.
struct Frame {
  std::string camera;
  int64_t ts = 0;
  json detections;
};

struct SimRun {
  std::vector<SimulatedReading> raw;      // every record, every topic
  std::vector<Parsed> readings;           // city.sensors
  std::vector<Frame> frames;              // city.camera.detections
  std::map<std::string, json> reports;    // city.reports, by report id
  std::vector<InjectedIncident> incidents;
};

SimRun Simulate(std::shared_ptr<const CityModel> city, SimulatorOptions opt) {
  SimRun run;
  Simulator sim(city, opt);
  SimulatedReading r;
  std::set<std::string> seen;
  while (sim.Next(&r)) {
    EXPECT_EQ(sim.city_time_ms(), r.ts_ms);
    for (auto& inc : sim.TakeStartedIncidents()) {
      EXPECT_LE(inc.start_ms, sim.city_time_ms());
      EXPECT_TRUE(seen.insert(inc.ToJson()).second) << "returned twice: " << inc.ToJson();
      run.incidents.push_back(std::move(inc));
    }
    run.raw.push_back(r);
  }
  for (auto& inc : sim.TakeStartedIncidents()) run.incidents.push_back(std::move(inc));
  EXPECT_TRUE(sim.TakeStartedIncidents().empty());
  EXPECT_FALSE(sim.Next(&r));  // stays finished
  for (const auto& s : run.raw) {
    const json j = json::parse(s.value);
    if (s.topic == "city.sensors") {
      run.readings.push_back({j.at("device_id"), j.at("kind"), j.at("ts"), j.at("value")});
    } else if (s.topic == "city.camera.detections") {
      run.frames.push_back({j.at("camera_id"), j.at("ts"), j.at("detections")});
    } else {
      EXPECT_EQ(s.topic, "city.reports");
      EXPECT_TRUE(run.reports.emplace(s.key, j).second) << "report id reused: " << s.key;
    }
  }
  return run;
}

SimulatorOptions DayOptions() {
  SimulatorOptions o;
  o.seed = 7;
  o.start_ms = LocalMidnight();
  o.duration_ms = 24 * kHour;
  o.rate = 2;  // 21 devices: one reading per device every 10.5 s
  o.dropout = 0.02;
  o.incident_every_ms = 8 * kMinute;
  return o;
}

const SimRun& DayRun() {
  static const SimRun run = Simulate(SimCity(), DayOptions());
  return run;
}

// A rule as it applies to one device, resolved the way the detector does.
struct Applied {
  const ThresholdRule* rule;
  double raise, clear;
  int64_t min_duration_ms;
};

std::vector<Applied> RulesFor(const Config& c, const Device& d) {
  std::vector<Applied> out;
  for (const auto& r : c.rules.threshold) {
    if (r.sensor_kind != d.kind) continue;
    if (!r.devices.empty() && std::find(r.devices.begin(), r.devices.end(), d.id) == r.devices.end()) continue;
    Applied a{&r, r.raise, r.clear, r.min_duration_ms};
    if (auto it = r.overrides.find(d.id); it != r.overrides.end()) {
      if (it->second.raise) a.raise = *it->second.raise;
      a.clear = it->second.clear ? *it->second.clear : it->second.raise ? *it->second.raise : a.clear;
      if (it->second.min_duration_ms) a.min_duration_ms = *it->second.min_duration_ms;
    }
    out.push_back(a);
  }
  return out;
}

bool Active(const ThresholdRule& r, int64_t ts, int offset) {
  if (!r.active_hours) return true;
  const auto [from, to] = *r.active_hours;
  const int h = LocalHour(ts, offset);
  return from <= to ? (h >= from && h < to) : (h >= from || h < to);
}

bool Beyond(ThresholdDirection dir, double v, double level) {
  return dir == ThresholdDirection::kAbove ? v > level : v < level;
}

bool Involves(const InjectedIncident& inc, const std::string& id) {
  return std::find(inc.devices.begin(), inc.devices.end(), id) != inc.devices.end();
}

bool InIncident(const SimRun& run, const std::string& device, int64_t ts) {
  for (const auto& inc : run.incidents) {
    if (Involves(inc, device) && ts >= inc.start_ms && ts < inc.end_ms) return true;
  }
  return false;
}

std::vector<const InjectedIncident*> OfKind(const SimRun& run, const std::string& kind) {
  std::vector<const InjectedIncident*> out;
  for (const auto& inc : run.incidents) {
    if (inc.kind == kind) out.push_back(&inc);
  }
  return out;
}

// The threshold rule a device of an incident trips: the incident's category
// for the primary device, a merged category for a partner.
std::optional<Applied> AlarmRule(const Config& c, const Device& d, const InjectedIncident& inc) {
  for (const Applied& a : RulesFor(c, d)) {
    if (a.rule->category == inc.category && d.id == inc.device_id) return a;
    if (d.id != inc.device_id && std::count(inc.merged.begin(), inc.merged.end(), a.rule->category)) return a;
  }
  return std::nullopt;
}

// When the device's first run beyond raise lasting the rule's minimum
// duration started inside [from, to), if any.
std::optional<int64_t> AlarmOnset(const std::vector<const Parsed*>& rs, const Applied& a, int64_t from, int64_t to) {
  bool beyond = false;
  int64_t since = 0;
  for (const Parsed* p : rs) {
    if (p->ts < from || p->ts >= to) continue;
    if (Beyond(a.rule->direction, p->value, a.raise)) {
      if (!beyond) since = p->ts;
      beyond = true;
      if (p->ts - since >= a.min_duration_ms) return since;
    } else {
      beyond = false;
    }
  }
  return std::nullopt;
}

int CellDistance(const CityModel& city, LatLon a, LatLon b) {
  const GridIndex& g = city.grid();
  const int ca = city.CellAt(a)->index, cb = city.CellAt(b)->index;
  return std::max(std::abs(g.Row(ca) - g.Row(cb)), std::abs(g.Col(ca) - g.Col(cb)));
}

LatLon PositionOf(const CityModel& city, const std::string& id) {
  if (const Device* d = city.FindDevice(id)) return d->position;
  return city.FindCamera(id)->position;
}

// The no_signal limit (factor x expected interval) of a device, the way the
// detector resolves it; 0 without a rule.
int64_t SilenceLimit(const CityModel& city, const Device& d) {
  int64_t limit = 0;
  for (const NoSignalRule& r : city.config().rules.no_signal) {
    if (!r.sensor_kinds.empty() && std::find(r.sensor_kinds.begin(), r.sensor_kinds.end(), d.kind) == r.sensor_kinds.end()) {
      continue;
    }
    int64_t interval = city.FindSensorKind(d.kind)->report_interval_ms;
    if (r.interval_ms) interval = *r.interval_ms;
    if (auto it = r.overrides.find(d.id); it != r.overrides.end()) interval = it->second;
    const int64_t l = std::llround(r.factor * static_cast<double>(interval));
    limit = limit == 0 ? l : std::min(limit, l);
  }
  return limit;
}

std::map<std::string, std::vector<const Parsed*>> ByDevice(const SimRun& run) {
  std::map<std::string, std::vector<const Parsed*>> out;
  for (const auto& p : run.readings) out[p.device].push_back(&p);
  return out;
}

TEST(Simulator, ReadingsFollowTheContract) {
  const auto city = SimCity();
  const SimRun& run = DayRun();
  ASSERT_GT(run.raw.size(), 150000u);
  std::set<std::string> devices;
  std::map<std::string, int> topics;
  for (const auto& s : run.raw) {
    ++topics[s.topic];
    if (s.topic != "city.sensors") continue;
    const auto j = nlohmann::ordered_json::parse(s.value);
    ASSERT_TRUE(j.is_object());
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    ASSERT_EQ(keys, (std::vector<std::string>{"device_id", "kind", "ts", "value", "unit", "lat", "lon"})) << s.value;
    ASSERT_EQ(s.key, j.at("device_id").get<std::string>());
    ASSERT_EQ(s.ts_ms, j.at("ts").get<int64_t>());
    ASSERT_TRUE(j.at("value").is_number());
    const Device* d = city->FindDevice(s.key);
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(j.at("kind"), d->kind);
    ASSERT_EQ(j.at("unit"), city->FindSensorKind(d->kind)->unit);
    ASSERT_EQ(j.at("lat").get<double>(), d->position.lat);
    ASSERT_EQ(j.at("lon").get<double>(), d->position.lon);
    devices.insert(s.key);
  }
  EXPECT_EQ(devices.size(), city->config().city.devices.size());
  // A sample value is printed with few decimals.
  const auto first = std::find_if(run.raw.begin(), run.raw.end(), [](const auto& s) { return s.topic == "city.sensors"; });
  ASSERT_NE(first, run.raw.end());
  EXPECT_LT(first->value.size(), 140u) << first->value;
  // Camera detections and reports go to their own topics.
  EXPECT_EQ(topics.size(), 3u);
  EXPECT_GT(topics["city.camera.detections"], 0);
  EXPECT_GT(topics["city.reports"], 0);
}

TEST(Simulator, TimestampsNeverGoBackAndStayInsideTheDuration) {
  const SimRun& run = DayRun();
  const SimulatorOptions o = DayOptions();
  int64_t last = o.start_ms;
  for (const auto& p : run.readings) {
    ASSERT_GE(p.ts, last);
    last = p.ts;
  }
  EXPECT_LT(last, o.start_ms + o.duration_ms);
  EXPECT_GT(last, o.start_ms + o.duration_ms - kMinute);
  // Interleaved: the first readings come from many different devices.
  std::set<std::string> first;
  for (size_t i = 0; i < 21; ++i) first.insert(run.readings[i].device);
  EXPECT_GE(first.size(), 19u);
}

TEST(Simulator, SameSeedSameStreamOtherSeedOtherStream) {
  const auto city = SimCity();
  SimulatorOptions o = DayOptions();
  o.duration_ms = 6 * kHour;
  const SimRun a = Simulate(city, o);
  const SimRun b = Simulate(SimCity(), o);
  ASSERT_EQ(a.raw.size(), b.raw.size());
  for (size_t i = 0; i < a.raw.size(); ++i) {
    ASSERT_EQ(a.raw[i].topic, b.raw[i].topic);
    ASSERT_EQ(a.raw[i].key, b.raw[i].key);
    ASSERT_EQ(a.raw[i].value, b.raw[i].value);
    ASSERT_EQ(a.raw[i].ts_ms, b.raw[i].ts_ms);
  }
  ASSERT_EQ(a.incidents.size(), b.incidents.size());
  for (size_t i = 0; i < a.incidents.size(); ++i) EXPECT_EQ(a.incidents[i].ToJson(), b.incidents[i].ToJson());

  o.seed = 8;
  const SimRun c = Simulate(city, o);
  bool differs = c.raw.size() != a.raw.size();
  for (size_t i = 0; !differs && i < a.raw.size(); ++i) differs = a.raw[i].value != c.raw[i].value;
  EXPECT_TRUE(differs);
  std::vector<std::string> ia, ic;
  for (const auto& i : a.incidents) ia.push_back(i.ToJson());
  for (const auto& i : c.incidents) ic.push_back(i.ToJson());
  EXPECT_NE(ia, ic);
}

// Every reading within its kind's range; outside injected incidents strictly
// on the normal side of the clear level of every active rule.
void CheckNormalSide(const CityModel& city, const SimRun& run) {
  const Config& c = city.config();
  for (const auto& p : run.readings) {
    const SensorKind* k = city.FindSensorKind(p.kind);
    ASSERT_NE(k, nullptr);
    ASSERT_GE(p.value, k->min) << p.device;
    ASSERT_LE(p.value, k->max) << p.device;
    if (InIncident(run, p.device, p.ts)) continue;
    for (const Applied& a : RulesFor(c, *city.FindDevice(p.device))) {
      if (!Active(*a.rule, p.ts, c.city.utc_offset_minutes)) continue;
      ASSERT_FALSE(Beyond(a.rule->direction, p.value, a.clear) || p.value == a.clear)
          << p.device << " " << p.value << " at " << FormatRfc3339Ms(p.ts) << " rule " << a.rule->id;
    }
  }
}

// The detector's logic: a run of readings beyond raise lasting min_duration
// fires. That happens only inside an injected incident of the device.
void CheckNoRuleHoldsOutsideIncidents(const CityModel& city, const SimRun& run) {
  const Config& c = city.config();
  for (const auto& [device, rs] : ByDevice(run)) {
    for (const Applied& a : RulesFor(c, *city.FindDevice(device))) {
      bool beyond_run = false;
      int64_t since = 0;
      for (const Parsed* p : rs) {
        const bool beyond = Active(*a.rule, p->ts, c.city.utc_offset_minutes) &&
                            Beyond(a.rule->direction, p->value, a.raise);
        if (!beyond) {
          beyond_run = false;
          continue;
        }
        if (!beyond_run) since = p->ts;
        beyond_run = true;
        if (p->ts - since >= a.min_duration_ms) {
          ASSERT_TRUE(InIncident(run, device, since) && InIncident(run, device, p->ts))
              << device << " rule " << a.rule->id << " holds at " << FormatRfc3339Ms(p->ts);
        }
      }
    }
  }
}

// During each incident every alarmed device reports without gaps and is
// beyond raise continuously for at least its rule's minimum duration
// (device_silent incidents are checked by SilentDevicesLeaveAGapLongerThanTheLimit).
void CheckIncidentsHold(const CityModel& city, const SimRun& run, double period_ms) {
  const Config& c = city.config();
  const auto by_device = ByDevice(run);
  for (const auto& inc : run.incidents) {
    if (inc.kind == "device_silent") continue;
    int64_t longest_for = 0;
    for (const std::string& id : inc.devices) {
      const Device* d = city.FindDevice(id);
      if (d == nullptr) {
        ASSERT_NE(city.FindCamera(id), nullptr) << inc.ToJson();
        continue;
      }
      const auto rule = AlarmRule(c, *d, inc);
      ASSERT_TRUE(rule.has_value()) << id << " in " << inc.ToJson();
      longest_for = std::max(longest_for, rule->min_duration_ms);
      int64_t best = 0;
      bool beyond = false;
      int64_t since = 0;
      int64_t prev = inc.start_ms;
      double peak = -1e300;  // the highest value seen
      ASSERT_TRUE(by_device.count(id)) << inc.ToJson();
      for (const Parsed* p : by_device.at(id)) {
        if (p->ts < inc.start_ms || p->ts >= inc.end_ms) continue;
        EXPECT_LE(static_cast<double>(p->ts - prev), period_ms + 1) << "a reading of " << id << " dropped during " << inc.ToJson();
        prev = p->ts;
        ASSERT_TRUE(Active(*rule->rule, p->ts, c.city.utc_offset_minutes)) << inc.ToJson();
        if (Beyond(rule->rule->direction, p->value, rule->raise)) {
          if (!beyond) since = p->ts;
          beyond = true;
          best = std::max(best, p->ts - since);
        } else {
          beyond = false;
        }
        peak = std::max(peak, p->value);
      }
      EXPECT_GE(best, rule->min_duration_ms) << id << " in " << inc.ToJson();
      // Clearly beyond: well above raise for above rules, near zero all along for lamps.
      if (rule->rule->direction == ThresholdDirection::kAbove) {
        EXPECT_GE(peak, rule->raise + 0.4 * std::fabs(rule->raise)) << inc.ToJson();
      } else {
        EXPECT_LE(peak, 0.1) << inc.ToJson();
      }
    }
    EXPECT_GE(inc.end_ms - inc.start_ms, std::max(3 * longest_for, 5 * kMinute));
    EXPECT_LE(inc.end_ms - inc.start_ms,
              std::max({3 * longest_for, 15 * kMinute,
                        2 * (longest_for + static_cast<int64_t>(3 * period_ms) + 1)}) + 1000);
  }
}

// The categories an incident's cases have: its own and the merged ones,
// widened by every correlation rule that joins one of them.
std::set<std::string> RelatedCategories(const Config& c, const InjectedIncident& inc) {
  std::set<std::string> out{inc.category};
  out.insert(inc.merged.begin(), inc.merged.end());
  for (const CorrelationRule& r : c.rules.correlation) {
    std::set<std::string> group{r.category};
    for (const auto& m : r.when) {
      if (!m.category.empty()) group.insert(m.category);
      for (const auto& t : c.rules.threshold) {
        if (t.id == m.rule) group.insert(t.category);
      }
      for (const auto& t : c.rules.camera) {
        if (t.id == m.rule) group.insert(t.category);
      }
    }
    if (std::any_of(group.begin(), group.end(), [&](const std::string& g) { return out.count(g); })) {
      out.insert(group.begin(), group.end());
    }
  }
  return out;
}

// Two incidents whose cases (or correlations) could meet — related
// categories, some devices within 2 cells — are far enough apart in time
// that they cannot share a case.
void CheckNoSharedCases(const CityModel& city, const SimRun& run) {
  const Config& c = city.config();
  int64_t gap_base = c.rules.merge_window_ms;
  for (const auto& r : c.rules.correlation) gap_base = std::max(gap_base, r.within_ms);
  for (size_t i = 0; i < run.incidents.size(); ++i) {
    const auto& a = run.incidents[i];
    const auto cats = RelatedCategories(c, a);
    for (size_t k = i + 1; k < run.incidents.size(); ++k) {
      const auto& b = run.incidents[k];
      const std::set<std::string> own_b = [&] {
        std::set<std::string> s{b.category};
        s.insert(b.merged.begin(), b.merged.end());
        return s;
      }();
      if (std::none_of(own_b.begin(), own_b.end(), [&](const std::string& x) { return cats.count(x); })) continue;
      bool near = false;
      for (const auto& da : a.devices) {
        for (const auto& db : b.devices) {
          near |= CellDistance(city, PositionOf(city, da), PositionOf(city, db)) <= 2;
        }
      }
      if (!near) continue;
      const int64_t gap = std::max(a.end_ms - a.start_ms, b.end_ms - b.start_ms);
      EXPECT_GE(b.start_ms, a.end_ms + gap_base + gap) << a.ToJson() << "\n" << b.ToJson();
    }
  }
}

TEST(Simulator, ValuesStayInRangeAndOnTheNormalSideOutsideIncidents) {
  CheckNormalSide(*SimCity(), DayRun());
}

TEST(Simulator, NoRuleHoldsOutsideAnInjectedIncident) {
  CheckNoRuleHoldsOutsideIncidents(*SimCity(), DayRun());
}

TEST(Simulator, EveryIncidentHoldsItsRuleLongEnough) {
  ASSERT_GE(DayRun().incidents.size(), 10u);
  CheckIncidentsHold(*SimCity(), DayRun(), 10500);
}

TEST(Simulator, IncidentsNameTheirPlaceCategoryAndDepartment) {
  const auto city = SimCity();
  const SimRun& run = DayRun();
  // kind -> (sensor kind of the primary device, category); "" = any sensor kind.
  const std::map<std::string, std::pair<std::string, std::string>> expected = {
      {"flooded_road", {"water_level", "waterlogging"}},   {"gas_leak", {"gas_ppm", "gas_leak"}},
      {"manhole_tilt", {"manhole_tilt", "manhole_displaced"}}, {"smoke", {"smoke", "fire_smoke"}},
      {"pollution", {"pm25", "air_pollution"}},            {"dead_streetlight", {"streetlight_current", "streetlight_failure"}},
      {"device_silent", {"", "device_silent"}},            {"gas_near_manhole", {"gas_ppm", "gas_leak"}},
      {"flooded_road_reported", {"water_level", "waterlogging"}}, {"fire_seen_by_camera", {"smoke", "fire_smoke"}},
  };
  // kind -> (priority, sources, merged)
  const std::map<std::string, std::tuple<std::string, std::vector<std::string>, std::vector<std::string>>> outcome = {
      {"flooded_road", {"high", {"sensor"}, {}}},
      {"gas_leak", {"urgent", {"sensor"}, {}}},
      {"manhole_tilt", {"high", {"sensor"}, {}}},
      {"smoke", {"urgent", {"sensor"}, {}}},
      {"pollution", {"normal", {"sensor"}, {}}},
      {"dead_streetlight", {"low", {"sensor"}, {}}},
      {"device_silent", {"low", {"sensor"}, {}}},
      {"gas_near_manhole", {"urgent", {"sensor", "correlation"}, {"manhole_displaced"}}},
      {"flooded_road_reported", {"high", {"sensor", "report"}, {}}},
      {"fire_seen_by_camera", {"urgent", {"sensor", "camera", "correlation"}, {"fire_candidate"}}},
  };
  std::set<std::string> kinds;
  int64_t last_start = 0;
  for (const auto& inc : run.incidents) {
    ASSERT_TRUE(expected.count(inc.kind)) << inc.kind;
    if (!expected.at(inc.kind).first.empty()) {
      EXPECT_EQ(inc.sensor_kind, expected.at(inc.kind).first);
    }
    EXPECT_EQ(inc.priority, std::get<0>(outcome.at(inc.kind))) << inc.ToJson();
    EXPECT_EQ(inc.sources, std::get<1>(outcome.at(inc.kind))) << inc.ToJson();
    EXPECT_EQ(inc.merged, std::get<2>(outcome.at(inc.kind))) << inc.ToJson();
    ASSERT_FALSE(inc.devices.empty());
    EXPECT_EQ(inc.devices.front(), inc.device_id);
    EXPECT_EQ(inc.reports.size(), inc.kind == "flooded_road_reported" ? 1u : 0u) << inc.ToJson();
    EXPECT_EQ(inc.category, expected.at(inc.kind).second);
    const Device* d = city->FindDevice(inc.device_id);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->kind, inc.sensor_kind);
    const CellInfo* cell = city->CellAt(d->position);
    ASSERT_NE(cell, nullptr);
    EXPECT_EQ(inc.cell_code, cell->code);
    EXPECT_EQ(inc.district, "furong");
    EXPECT_EQ(inc.department, city->DepartmentFor(inc.category, *cell));
    EXPECT_EQ(inc.position.lat, d->position.lat);
    EXPECT_GE(inc.start_ms, last_start);
    last_start = inc.start_ms;
    if (inc.kind == "dead_streetlight") {
      for (int64_t t = inc.start_ms; t < inc.end_ms; t += kMinute) {
        const int h = LocalHour(t, 480);
        EXPECT_TRUE(h >= 18 || h < 6) << inc.ToJson();
      }
      const int h = LocalHour(inc.end_ms - 1, 480);
      EXPECT_TRUE(h >= 18 || h < 6) << inc.ToJson();
    }
    kinds.insert(inc.kind);

    const json j = json::parse(inc.ToJson());
    EXPECT_EQ(j.at("kind"), inc.kind);
    EXPECT_EQ(j.at("category"), inc.category);
    EXPECT_EQ(j.at("device_id"), inc.device_id);
    EXPECT_EQ(j.at("sensor_kind"), inc.sensor_kind);
    EXPECT_EQ(j.at("cell"), inc.cell_code);
    EXPECT_EQ(j.at("district"), inc.district);
    EXPECT_EQ(j.at("department"), inc.department);
    EXPECT_EQ(j.at("lat").get<double>(), d->position.lat);
    EXPECT_EQ(j.at("lon").get<double>(), d->position.lon);
    EXPECT_EQ(j.at("start").get<int64_t>(), inc.start_ms);
    EXPECT_EQ(j.at("end").get<int64_t>(), inc.end_ms);
    EXPECT_EQ(ParseRfc3339Ms(j.at("start_time").get<std::string>()), inc.start_ms);
    EXPECT_EQ(ParseRfc3339Ms(j.at("end_time").get<std::string>()), inc.end_ms);
    EXPECT_EQ(j.at("priority"), inc.priority);
    EXPECT_EQ(j.at("devices"), json(inc.devices));
    EXPECT_EQ(j.at("sources"), json(inc.sources));
    EXPECT_EQ(j.at("merged"), json(inc.merged));
    EXPECT_EQ(j.at("reports"), json(inc.reports));
  }
  EXPECT_EQ(kinds.size(), expected.size()) << "a day should see every kind of incident";
  EXPECT_EQ(run.incidents.front().ToJson().find('\n'), std::string::npos);
}

TEST(Simulator, NoTwoIncidentsCouldShareACase) {
  CheckNoSharedCases(*SimCity(), DayRun());
}

TEST(Simulator, DropoutRateIsRoughlyAsConfigured) {
  const SimRun& run = DayRun();
  const double period = 10500;
  int64_t missing = 0, got = 0;
  for (const auto& [device, rs] : ByDevice(run)) {
    for (size_t i = 1; i < rs.size(); ++i) {
      if (InIncident(run, device, rs[i]->ts - static_cast<int64_t>(period))) continue;  // a silence, not dropouts
      missing += std::llround(static_cast<double>(rs[i]->ts - rs[i - 1]->ts) / period) - 1;
    }
    got += static_cast<int64_t>(rs.size());
  }
  const double rate = static_cast<double>(missing) / static_cast<double>(missing + got);
  EXPECT_GT(rate, 0.01);
  EXPECT_LT(rate, 0.03);

  SimulatorOptions o = DayOptions();
  o.duration_ms = kHour;
  o.dropout = 0;
  o.incident_every_ms = 0;  // no silences either
  const SimRun none = Simulate(SimCity(), o);
  EXPECT_EQ(none.readings.size(), 7200u);  // 2 readings a second for an hour
}

TEST(Simulator, StreetLampsAreOnAtNightAndOffByDay) {
  const SimRun& run = DayRun();
  int on = 0, off = 0;
  for (const auto& p : run.readings) {
    if (p.kind != "streetlight_current" || InIncident(run, p.device, p.ts)) continue;
    const int h = LocalHour(p.ts, 480);
    if (h >= 18 || h < 6) {
      ASSERT_GE(p.value, 1.2) << p.device << " at " << FormatRfc3339Ms(p.ts);
      ASSERT_LE(p.value, 1.6);
      ++on;
    } else {
      ASSERT_EQ(p.value, 0.0) << p.device << " at " << FormatRfc3339Ms(p.ts);
      ++off;
    }
  }
  EXPECT_GT(on, 1000);
  EXPECT_GT(off, 1000);
}

TEST(Simulator, NormalValuesLookLikeACity) {
  const SimRun& run = DayRun();
  std::map<std::string, std::pair<double, double>> band = {
      {"water_level", {0.02, 0.08}}, {"gas_ppm", {5, 40}},     {"manhole_tilt", {0.5, 3}},
      {"smoke", {0, 1.5}},           {"pm25", {25, 80}},       {"noise_db", {45, 70}},
      {"traffic_speed", {20, 50}},   {"bridge_strain", {200, 600}}, {"rainfall", {0, 10}},
  };
  std::map<std::string, std::map<int, std::pair<double, int>>> by_hour;  // kind -> hour -> (sum, n)
  for (const auto& p : run.readings) {
    if (InIncident(run, p.device, p.ts)) continue;
    if (auto it = band.find(p.kind); it != band.end()) {
      ASSERT_GE(p.value, it->second.first) << p.kind;
      ASSERT_LE(p.value, it->second.second) << p.kind;
    }
    auto& cell = by_hour[p.kind][LocalHour(p.ts, 480)];
    cell.first += p.value;
    cell.second += 1;
  }
  auto mean = [&](const std::string& k, int h) { return by_hour[k][h].first / by_hour[k][h].second; };
  EXPECT_GT(mean("pm25", 8), mean("pm25", 3) + 10);           // morning peak
  EXPECT_GT(mean("noise_db", 14), mean("noise_db", 3) + 5);   // louder by day
  EXPECT_LT(mean("traffic_speed", 8), mean("traffic_speed", 3) - 10);  // rush hour
  EXPECT_GT(mean("bridge_strain", 18), mean("bridge_strain", 3) + 100);
}

TEST(Simulator, FiniteRunFinishesEveryIncidentItStarts) {
  const auto city = SimCity();
  SimulatorOptions o = DayOptions();
  o.start_ms = LocalMidnight() + 20 * kHour;
  o.duration_ms = 40 * kMinute;
  o.incident_every_ms = 2 * kMinute;
  const SimRun run = Simulate(city, o);
  ASSERT_FALSE(run.readings.empty());
  EXPECT_LT(run.readings.back().ts, o.start_ms + o.duration_ms);
  EXPECT_FALSE(run.incidents.empty());
  for (const auto& inc : run.incidents) {
    const Device* d = city->FindDevice(inc.device_id);
    const auto rules = RulesFor(city->config(), *d);
    int64_t min_duration = 0;
    for (const auto& a : rules) {
      if (a.rule->category == inc.category) min_duration = a.min_duration_ms;
    }
    EXPECT_GE(inc.start_ms, o.start_ms);
    EXPECT_LE(inc.end_ms + 2 * min_duration, o.start_ms + o.duration_ms) << inc.ToJson();
  }
}

TEST(Simulator, NoIncidentsWhenDisabledAndNoDevicesMeansNoReadings) {
  SimulatorOptions o = DayOptions();
  o.duration_ms = 2 * kHour;
  o.incident_every_ms = 0;
  EXPECT_TRUE(Simulate(SimCity(), o).incidents.empty());

  Config c = SimConfig();
  c.city.devices.clear();
  c.city.cameras.clear();
  auto city = CityModel::Build(c);
  ASSERT_TRUE(city.ok());
  Simulator sim(*city, o);
  SimulatedReading r;
  EXPECT_FALSE(sim.Next(&r));
  EXPECT_EQ(sim.city_time_ms(), o.start_ms);
}

TEST(Simulator, ExampleConfigCityStaysQuietExceptForItsIncidents) {
  const std::string path = cityloop::testing::ExampleConfigPath();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  ConfigLoadResult loaded = LoadConfigFile(path);
  if (!loaded.config) GTEST_SKIP() << "example config does not load yet: " << loaded.errors.front().ToString();
  auto built = CityModel::Build(*loaded.config);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  const auto city = *built;
  const size_t n = city->config().city.devices.size();
  ASSERT_GT(n, 0u);
  SimulatorOptions o;
  o.seed = 42;
  o.start_ms = *ParseRfc3339Ms("2026-11-28T12:00:00+08:00");
  o.duration_ms = 14 * kHour;
  o.rate = static_cast<double>(n) / 10.0;  // every device every 10 s
  o.incident_every_ms = 5 * kMinute;
  const SimRun run = Simulate(city, o);
  ASSERT_FALSE(run.incidents.empty());
  std::set<std::string> kinds;
  for (const auto& inc : run.incidents) {
    EXPECT_FALSE(inc.category.empty());
    EXPECT_FALSE(inc.department.empty());
    kinds.insert(inc.kind);
  }
  EXPECT_GE(kinds.size(), 3u);
  CheckNormalSide(*city, run);
  CheckNoRuleHoldsOutsideIncidents(*city, run);
  CheckIncidentsHold(*city, run, 10000);
  CheckNoSharedCases(*city, run);
}


// The day run, with the city and each device's readings, for the tests of
// the new incident kinds.
class SimulatorDay : public ::testing::Test {
 protected:
  const std::shared_ptr<const CityModel> city = SimCity();
  const Config& c = city->config();
  const SimRun& run = DayRun();
  const std::map<std::string, std::vector<const Parsed*>> by_device = ByDevice(run);
};

TEST_F(SimulatorDay, SilentDevicesLeaveAGapLongerThanTheLimit) {
  const int64_t lateness = city->config().event_time.allowed_lateness_ms;
  const auto silent = OfKind(run, "device_silent");
  ASSERT_FALSE(silent.empty());
  for (const InjectedIncident* inc : silent) {
    const Device* d = city->FindDevice(inc->device_id);
    ASSERT_NE(d, nullptr);
    const int64_t limit = SilenceLimit(*city, *d);
    EXPECT_EQ(limit, 5 * city->FindSensorKind(d->kind)->report_interval_ms);
    EXPECT_EQ(inc->devices, std::vector<std::string>{d->id});
    int64_t before = 0, after = 0;
    for (const Parsed* p : by_device.at(d->id)) {
      ASSERT_FALSE(p->ts >= inc->start_ms && p->ts < inc->end_ms) << "a reading during " << inc->ToJson();
      if (p->ts < inc->start_ms) before = p->ts;
      if (p->ts >= inc->end_ms && after == 0) after = p->ts;
    }
    ASSERT_GT(before, 0) << "the device reported before it went silent: " << inc->ToJson();
    ASSERT_GT(after, 0) << "the device resumes: " << inc->ToJson();
    // Longer than k x interval, plus the lateness the watermark lags behind.
    EXPECT_GT(after - before, limit + lateness) << inc->ToJson();
    EXPECT_LT(after - inc->end_ms, 11000) << "resumes at its next slot";
  }
  // Elsewhere dropouts never come near the limit: at most half of it.
  for (const auto& [id, rs] : by_device) {
    const int64_t limit = SilenceLimit(*city, *city->FindDevice(id));
    for (size_t i = 1; i < rs.size(); ++i) {
      if (InIncident(run, id, rs[i]->ts - 10500)) continue;
      ASSERT_LE(rs[i]->ts - rs[i - 1]->ts, limit / 2 + 10500) << id << " at " << FormatRfc3339Ms(rs[i]->ts);
    }
  }
}

TEST_F(SimulatorDay, GasAndManholeAlarmTogetherInNeighbouringCells) {
  const auto pairs = OfKind(run, "gas_near_manhole");
  ASSERT_FALSE(pairs.empty());
  const CorrelationRule& corr = c.rules.correlation[0];
  ASSERT_EQ(corr.id, "gas-leak-confirmed");
  for (const InjectedIncident* inc : pairs) {
    ASSERT_EQ(inc->devices.size(), 2u) << inc->ToJson();
    const Device* gas = city->FindDevice(inc->devices[0]);
    const Device* mh = city->FindDevice(inc->devices[1]);
    ASSERT_TRUE(gas && mh) << inc->ToJson();
    EXPECT_EQ(gas->kind, "gas_ppm");
    EXPECT_EQ(mh->kind, "manhole_tilt");
    EXPECT_LE(CellDistance(*city, gas->position, mh->position), 1) << inc->ToJson();
    EXPECT_EQ(inc->category, "gas_leak");
    EXPECT_EQ(inc->priority, "urgent");
    const auto gas_rule = AlarmRule(c, *gas, *inc);
    const auto mh_rule = AlarmRule(c, *mh, *inc);
    ASSERT_TRUE(gas_rule && mh_rule) << inc->ToJson();
    const auto gas_on = AlarmOnset(by_device.at(gas->id), *gas_rule, inc->start_ms, inc->end_ms);
    const auto mh_on = AlarmOnset(by_device.at(mh->id), *mh_rule, inc->start_ms, inc->end_ms);
    ASSERT_TRUE(gas_on && mh_on) << "both beyond their level for their `for`: " << inc->ToJson();
    EXPECT_LE(std::llabs(*gas_on - *mh_on), corr.within_ms) << inc->ToJson();
  }
}

TEST_F(SimulatorDay, FloodedRoadReportsComeFromNearbyAFewMinutesLater) {
  const auto reported = OfKind(run, "flooded_road_reported");
  ASSERT_FALSE(reported.empty());
  std::set<std::string> channels;
  size_t expected_reports = 0;
  for (const InjectedIncident* inc : reported) {
    ASSERT_EQ(inc->reports.size(), 1u) << inc->ToJson();
    ++expected_reports;
    ASSERT_TRUE(run.reports.count(inc->reports[0])) << inc->ToJson();
    const json& r = run.reports.at(inc->reports[0]);
    std::vector<std::string> keys;
    for (auto it = r.begin(); it != r.end(); ++it) keys.push_back(it.key());
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, (std::vector<std::string>{"category", "channel", "lat", "lon", "report_id", "text", "ts"}));
    EXPECT_EQ(r.at("report_id"), inc->reports[0]);
    EXPECT_EQ(r.at("category"), "waterlogging");
    EXPECT_EQ(r.at("category"), inc->category);
    const std::string channel = r.at("channel");
    EXPECT_TRUE(channel == "hotline12345" || channel == "citizen") << channel;
    channels.insert(channel);
    EXPECT_FALSE(r.at("text").get<std::string>().empty());
    const LatLon at{r.at("lat").get<double>(), r.at("lon").get<double>()};
    ASSERT_NE(city->CellAt(at), nullptr) << r.dump();
    const double dist = DistanceMeters(at, inc->position);
    EXPECT_GE(dist, 15) << r.dump();
    EXPECT_LE(dist, 101) << r.dump();
    const int64_t ts = r.at("ts");
    EXPECT_LT(ts, inc->end_ms) << r.dump();
    const auto rule = AlarmRule(c, *city->FindDevice(inc->device_id), *inc);
    ASSERT_TRUE(rule.has_value());
    // The first reading above the level: the report follows it by a few minutes.
    int64_t passed = 0;
    for (const Parsed* p : by_device.at(inc->device_id)) {
      if (p->ts >= inc->start_ms && p->value > rule->raise) {
        passed = p->ts;
        break;
      }
    }
    ASSERT_GT(passed, 0) << inc->ToJson();
    EXPECT_GE(ts - passed, kMinute) << r.dump();
    EXPECT_LE(ts - passed, 8 * kMinute) << r.dump();
  }
  EXPECT_EQ(run.reports.size(), expected_reports) << "reports only come with incidents";
  // The record's key is the report id; produced at the report's time.
  for (const auto& s : run.raw) {
    if (s.topic == "city.reports") {
      EXPECT_EQ(json::parse(s.value).at("ts").get<int64_t>(), s.ts_ms);
    }
  }
  if (reported.size() >= 4) {
    EXPECT_EQ(channels.size(), 2u);
  }
}

// Every detection is well formed: label, score in [0, 1], a normalised bbox
// inside the frame, a track id; each camera's messages in time order.
TEST_F(SimulatorDay, CameraDetectionsFollowTheContract) {
  std::map<std::string, std::vector<int64_t>> by_camera;
  for (const auto& s : run.raw) {
    if (s.topic != "city.camera.detections") continue;
    const auto j = nlohmann::ordered_json::parse(s.value);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    ASSERT_EQ(keys, (std::vector<std::string>{"camera_id", "ts", "detections"})) << s.value;
    ASSERT_EQ(s.key, j.at("camera_id").get<std::string>());
    ASSERT_NE(city->FindCamera(s.key), nullptr) << s.key;
    ASSERT_EQ(s.ts_ms, j.at("ts").get<int64_t>());
    ASSERT_TRUE(j.at("detections").is_array());
    for (const auto& d : j.at("detections")) {
      ASSERT_TRUE(d.at("label").is_string() && !d.at("label").get<std::string>().empty()) << s.value;
      const double score = d.at("score");
      ASSERT_GE(score, 0) << s.value;
      ASSERT_LE(score, 1) << s.value;
      const auto& b = d.at("bbox");
      ASSERT_EQ(b.size(), 4u) << s.value;
      for (const auto& v : b) {
        ASSERT_GE(v.get<double>(), 0) << s.value;
        ASSERT_LE(v.get<double>(), 1) << s.value;
      }
      ASSERT_LE(b[0].get<double>() + b[2].get<double>(), 1 + 1e-9) << s.value;
      ASSERT_LE(b[1].get<double>() + b[3].get<double>(), 1 + 1e-9) << s.value;
      ASSERT_TRUE(d.at("track_id").is_string() && !d.at("track_id").get<std::string>().empty()) << s.value;
    }
    auto& times = by_camera[s.key];
    if (!times.empty()) {
      ASSERT_GT(s.ts_ms, times.back()) << s.key << ": messages of one camera in time order";
    }
    times.push_back(s.ts_ms);
  }
  // Every camera, at a low rate: about one message per 20 s.
  ASSERT_EQ(by_camera.size(), city->config().city.cameras.size());
  for (const auto& [camera, times] : by_camera) {
    EXPECT_GT(times.size(), 24 * 3600 / 20 * 8 / 10) << camera;
    EXPECT_LT(times.size(), 24 * 3600 / 20 * 13 / 10) << camera;
  }
}

bool InBurst(const SimRun& run, const Frame& f) {
  for (const InjectedIncident* inc : OfKind(run, "fire_seen_by_camera")) {
    if (Involves(*inc, f.camera) && f.ts >= inc->start_ms && f.ts < inc->end_ms) return true;
  }
  return false;
}

TEST_F(SimulatorDay, BackgroundDetectionsNeverMatchTheCameraRule) {
  const CameraRule& rule = city->config().rules.camera.at(0);
  std::map<std::string, int> labels;
  int objects = 0;
  for (const Frame& f : run.frames) {
    if (InBurst(run, f)) continue;
    for (const auto& d : f.detections) {
      const std::string label = d.at("label");
      ++labels[label];
      ++objects;
      // Not even a low score of a rule's label: nothing a rule could count.
      ASSERT_EQ(std::count(rule.labels.begin(), rule.labels.end(), label), 0) << f.camera << " " << d.dump();
    }
  }
  EXPECT_GT(objects, 1000);
  EXPECT_GE(labels.size(), 2u) << "vehicles and persons";
  // Scores are spread, not all confident.
  int low = 0;
  for (const Frame& f : run.frames) {
    for (const auto& d : f.detections) low += d.at("score").get<double>() < 0.6;
  }
  EXPECT_GT(low, objects / 10);
}

TEST_F(SimulatorDay, FireSeenByCameraSendsFireDetectionsNearTheSmoke) {
  const auto fires = OfKind(run, "fire_seen_by_camera");
  ASSERT_FALSE(fires.empty());
  const CameraRule& rule = c.rules.camera.at(0);
  const CorrelationRule& corr = c.rules.correlation.at(1);
  ASSERT_EQ(corr.id, "fire-confirmed");
  for (const InjectedIncident* inc : fires) {
    ASSERT_EQ(inc->devices.size(), 2u) << inc->ToJson();
    const Device* smoke = city->FindDevice(inc->devices[0]);
    const Camera* cam = city->FindCamera(inc->devices[1]);
    ASSERT_TRUE(smoke && cam) << inc->ToJson();
    EXPECT_LE(DistanceMeters(smoke->position, cam->position), corr.radius_m) << inc->ToJson();
    const auto smoke_rule = AlarmRule(c, *smoke, *inc);
    ASSERT_TRUE(smoke_rule.has_value());
    const auto onset = AlarmOnset(by_device.at(smoke->id), *smoke_rule, inc->start_ms, inc->end_ms);
    ASSERT_TRUE(onset.has_value()) << inc->ToJson();
    std::vector<int64_t> times;
    std::set<std::string> tracks;
    for (const Frame& f : run.frames) {
      if (f.camera != cam->id || f.ts < inc->start_ms || f.ts >= inc->end_ms) continue;
      for (const auto& d : f.detections) {
        const std::string label = d.at("label");
        if (label != "fire" && label != "smoke") continue;
        EXPECT_GE(d.at("score").get<double>(), 0.7) << d.dump();
        EXPECT_GE(d.at("score").get<double>(), rule.min_score) << d.dump();
        tracks.insert(d.at("track_id"));
        times.push_back(f.ts);
      }
    }
    ASSERT_GE(times.size(), static_cast<size_t>(rule.min_detections)) << inc->ToJson();
    EXPECT_GE(times.back() - times.front(), 30000) << inc->ToJson();
    EXPECT_GE(times.back() - times.front(), rule.min_duration_ms) << inc->ToJson();
    for (size_t i = 1; i < times.size(); ++i) {
      EXPECT_GE(times[i] - times[i - 1], 2500) << inc->ToJson();
      EXPECT_LE(times[i] - times[i - 1], 5500) << "every few seconds: " << inc->ToJson();
    }
    EXPECT_EQ(tracks.size(), 1u) << "one fire, one track";
    EXPECT_LE(std::llabs(times.front() - *onset), corr.within_ms) << inc->ToJson();
  }
}

// A city without the rules a kind needs never gets that kind.
TEST(Simulator, KindsNeedTheirRulesAndDevices) {
  Config c = SimConfig();
  c.rules.no_signal.clear();
  c.rules.correlation.clear();
  c.city.cameras.clear();
  auto city = CityModel::Build(c);
  ASSERT_TRUE(city.ok());
  const SimRun run = Simulate(*city, DayOptions());
  std::set<std::string> kinds;
  for (const auto& inc : run.incidents) kinds.insert(inc.kind);
  EXPECT_EQ(kinds, (std::set<std::string>{"flooded_road", "gas_leak", "manhole_tilt", "smoke", "pollution",
                                          "dead_streetlight", "flooded_road_reported"}));
  EXPECT_TRUE(run.frames.empty());
  CheckNoSharedCases(**city, run);
  CheckIncidentsHold(**city, run, 10500);
}

}  // namespace
}  // namespace cityloop::ingest

#include "ingest/simulator.h"

#include "ingest/camera_scenes.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <utility>

#include "core/time_util.h"

namespace cityloop::ingest {
namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kDayMs = 86400000;
constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Mixes a seed into a well-spread 64-bit value (splitmix64).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Random numbers on top of mt19937_64 (fully specified by the standard) with
// our own transforms, so a seed gives the same stream with any standard
// library (std::*_distribution are implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  double Uniform() { return std::ldexp(static_cast<double>(g_() >> 11), -53); }  // [0, 1)
  double Uniform(double a, double b) { return a + (b - a) * Uniform(); }
  size_t Index(size_t n) { return std::min(n - 1, static_cast<size_t>(Uniform() * static_cast<double>(n))); }
  double Exponential(double mean) { return -mean * std::log1p(-Uniform()); }
  double Gaussian() {  // Box-Muller
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * kPi * u2);
    has_spare_ = true;
    return r * std::cos(2 * kPi * u2);
  }

 private:
  std::mt19937_64 g_;
  bool has_spare_ = false;
  double spare_ = 0;
};

bool HoursActive(const std::optional<std::pair<int, int>>& hours, int hour) {
  if (!hours) return true;
  const auto [from, to] = *hours;
  if (from <= to) return hour >= from && hour < to;  // [from, to); from == to never
  return hour >= from || hour < to;  // wraps midnight, e.g. [18, 6)
}

// Local time of day in fractional hours [0, 24).
double LocalHourFrac(int64_t ts_ms, int utc_offset_minutes) {
  int64_t local = (ts_ms + int64_t{utc_offset_minutes} * kMinute) % kDayMs;
  if (local < 0) local += kDayMs;
  return static_cast<double>(local) / 3600000.0;
}

// A bell around `center` hours of width `width` hours, on the 24 h circle.
double Bump(double h, double center, double width) {
  double d = std::fabs(h - center);
  d = std::min(d, 24 - d);
  return std::exp(-d * d / (2 * width * width));
}

// 0 at night, 1 by day, smooth around 06:30 and 20:00.
double Daylight(double h) {
  const double up = 1 / (1 + std::exp(-(h - 6.5) * 2.0));
  const double down = 1 / (1 + std::exp((h - 20.0) * 1.5));
  return up * down;
}

// Road traffic load 0..1 with rush hours.
double TrafficLoad(double h) {
  return std::clamp(0.1 + 0.35 * Daylight(h) + 0.55 * (Bump(h, 8.0, 1.2) + Bump(h, 18.0, 1.4)), 0.0, 1.0);
}

bool IsLampNight(int hour) { return hour >= 18 || hour < 6; }

int DecimalsFor(const std::string& kind) {
  if (kind == "water_level") return 3;
  if (kind == "manhole_tilt" || kind == "smoke" || kind == "streetlight_current") return 2;
  if (kind == "rainfall" || kind == "gas_ppm" || kind == "pm25" || kind == "noise_db" ||
      kind == "traffic_speed" || kind == "bridge_strain") {
    return 1;
  }
  return 3;
}

std::string DefaultUnit(const std::string& kind) {
  if (kind == "water_level") return "m";
  if (kind == "rainfall") return "mm/h";
  if (kind == "gas_ppm") return "ppm";
  if (kind == "manhole_tilt") return "deg";
  if (kind == "smoke") return "%obs/m";
  if (kind == "pm25") return "ug/m3";
  if (kind == "noise_db") return "dB";
  if (kind == "traffic_speed") return "km/h";
  if (kind == "bridge_strain") return "ue";
  if (kind == "streetlight_current") return "A";
  return "";
}

double RoundTo(double v, int decimals) {
  const double p = std::pow(10.0, decimals);
  return std::round(v * p) / p;
}

// A threshold rule as it applies to one device (overrides resolved).
struct DeviceRule {
  const ThresholdRule* rule = nullptr;
  ThresholdDirection dir = ThresholdDirection::kAbove;
  double raise = 0;
  double level = 0;  // the normal-side level: the stricter of raise and clear
  int64_t min_duration_ms = 0;
};

struct IncidentKindSpec {
  const char* kind;
  const char* sensor;
  ThresholdDirection dir;
  bool ramp;
  bool night_only;
};

// The single-device threshold incidents.
constexpr IncidentKindSpec kIncidentKinds[] = {
    {"flooded_road", "water_level", ThresholdDirection::kAbove, true, false},
    {"gas_leak", "gas_ppm", ThresholdDirection::kAbove, false, false},
    {"manhole_tilt", "manhole_tilt", ThresholdDirection::kAbove, false, false},
    {"smoke", "smoke", ThresholdDirection::kAbove, false, false},
    {"pollution", "pm25", ThresholdDirection::kAbove, false, false},
    {"dead_streetlight", "streetlight_current", ThresholdDirection::kBelow, false, true},
};
constexpr int kFloodSpec = 0, kGasSpec = 1, kManholeSpec = 2, kSmokeSpec = 3;

// Every incident kind: the single-device ones (same index as kIncidentKinds),
// then those that exercise the other rule kinds (see simulator.h).
constexpr const char* kKindNames[] = {"flooded_road", "gas_leak",         "manhole_tilt",
                                      "smoke",        "pollution",        "dead_streetlight",
                                      "device_silent", "gas_near_manhole", "flooded_road_reported",
                                      "fire_seen_by_camera"};
constexpr int kPlainKinds = static_cast<int>(std::size(kIncidentKinds));
constexpr int kDeviceSilent = kPlainKinds;
constexpr int kGasNearManhole = kPlainKinds + 1;
constexpr int kFloodedRoadReported = kPlainKinds + 2;
constexpr int kFireSeenByCamera = kPlainKinds + 3;
constexpr int kKindCount = kPlainKinds + 4;
static_assert(std::size(kKindNames) == static_cast<size_t>(kKindCount));

// Labels of ordinary objects; those a camera rule names are left out.
constexpr const char* kBackgroundLabels[] = {"vehicle", "person", "bicycle"};

// How an incident would be injected on one device.
struct IncidentPlan {
  int spec = -1;  // index into kIncidentKinds
  const DeviceRule* rule = nullptr;
  double lo = 0, hi = 0;  // incident value band, beyond the rule's raise level
};

// How a device would go silent: the one no_signal rule watching it.
struct SilencePlan {
  const NoSignalRule* rule = nullptr;
  int64_t limit_ms = 0;  // factor x expected interval
};

struct ActiveIncident {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int64_t alarm_ms = 0;  // beyond the level from here on (a partner's alarm may follow the lead's)
  int64_t ramp_ms = 0;
  double level = 0;
  bool silent = false;   // no readings at all
};

struct DeviceState {
  const Device* device = nullptr;
  const SensorKind* kind = nullptr;
  std::string unit;
  int decimals = 2;
  const CellInfo* cell = nullptr;
  std::vector<DeviceRule> rules;
  std::optional<IncidentPlan> plan;
  std::optional<SilencePlan> silence;
  double bias = 0;   // per-device offset, -1..1
  double noise = 0;  // AR(1) noise state, ~N(0, 1)
  double phase_ms = 0;
  int64_t reports = 0;  // report slots consumed so far
  int64_t guard_ms = kNever;      // dropouts never leave a longer gap (half the no_signal limit)
  int64_t last_emit_ms = kNever;  // newest reading produced
  std::optional<ActiveIncident> incident;
};

struct CameraState {
  const Camera* camera = nullptr;
  const CellInfo* cell = nullptr;
  int64_t busy_until_ms = 0;                    // an incident burst and its cooldown
  int64_t burst_from_ms = 0, burst_to_ms = -1;  // background paused: the incident's frames instead
  uint64_t tracks = 0;                          // track ids handed out
};

// A signal an incident raises, and where: to keep unrelated incidents apart.
struct Mark {
  std::string category;
  int cell = -1;
  LatLon position;
};

struct RecentIncident {
  Mark mark;
  int64_t end_ms = 0;
  int64_t duration_ms = 0;
};

// The categories one correlation rule joins (its members' and its own).
struct CorrelationGroup {
  std::set<std::string> categories;
  CorrelationScope scope = CorrelationScope::kNeighbours;
  double radius_m = 0;
  int64_t within_ms = 0;
};

// A device pair (gas_near_manhole) or a device and a camera
// (fire_seen_by_camera) that a correlation rule with absorb joins.
struct Pairing {
  size_t lead = 0;     // device index: its rule is the correlation's first member
  size_t partner = 0;  // device index, or camera index with camera_rule
  const CorrelationRule* correlation = nullptr;
  const CameraRule* camera_rule = nullptr;
};

// One way to inject an incident at a slot.
struct Candidate {
  int kind = -1;
  size_t device = 0;  // the primary device
  const Pairing* pairing = nullptr;
  int64_t duration_ms = 0;
  std::vector<Mark> marks;
};

Priority PriorityOf(const RuleBase& rule, const CityModel& city) {
  if (rule.priority) return *rule.priority;
  if (const Category* c = city.FindCategory(rule.category)) return c->priority;
  return Priority::kNormal;
}

bool MemberMatches(const CorrelationMember& m, const RuleBase& rule) {
  return m.rule.empty() ? m.category == rule.category : m.rule == rule.id;
}

// A rule whose signals a correlation may see, by id.
const RuleBase* FindRule(const RulesOptions& rules, const std::string& id) {
  const RuleBase* found = nullptr;
  auto scan = [&](const auto& list) {
    for (const auto& r : list) {
      if (!found && r.id == id) found = &r;
    }
  };
  scan(rules.threshold);
  scan(rules.rate);
  scan(rules.window);
  scan(rules.no_signal);
  scan(rules.flapping);
  scan(rules.camera);
  return found;
}

bool Listed(const std::vector<std::string>& ids, const std::string& id) {
  return ids.empty() || std::find(ids.begin(), ids.end(), id) != ids.end();
}

size_t Pick(double u, size_t n) { return std::min(n - 1, static_cast<size_t>(u * static_cast<double>(n))); }

// A normalised [x, y, w, h] (3 decimals) with sides in [lo, hi] whose
// bottom-centre lies inside zone ([x, y, w, h]; none = the whole frame).
std::array<double, 4> Box(Rng& r, double lo, double hi, const std::optional<std::vector<double>>& zone) {
  double zx = 0, zy = 0, zw = 1, zh = 1;
  if (zone && zone->size() == 4) {
    zx = (*zone)[0];
    zy = (*zone)[1];
    zw = (*zone)[2];
    zh = (*zone)[3];
  }
  const double bx = std::clamp(zx + zw * r.Uniform(0.1, 0.9), 0.01, 0.99);
  const double by = std::clamp(zy + zh * r.Uniform(0.1, 0.9), 0.01, 1.0);
  const double w = std::floor(std::min(r.Uniform(lo, hi), 2 * std::min(bx, 1 - bx)) * 1000) / 1000;
  const double h = std::floor(std::min(r.Uniform(lo, hi), by) * 1000) / 1000;
  const double x = std::clamp(std::floor((bx - w / 2) * 1000) / 1000, 0.0, 1.0 - w);
  const double y = std::clamp(std::floor((by - h) * 1000) / 1000, 0.0, 1.0 - h);
  return {x, y, w, h};
}

nlohmann::ordered_json Detection(const std::string& label, double score, const std::array<double, 4>& box,
                                 const std::string& track) {
  nlohmann::ordered_json j;
  j["label"] = label;
  j["score"] = score;
  j["bbox"] = {box[0], box[1], box[2], box[3]};
  j["track_id"] = track;
  return j;
}

// "r-20261128-173012-7": local date and time of the report, and its number.
std::string ReportId(int64_t ts_ms, int utc_offset_minutes, uint64_t n) {
  int64_t of_day = (ts_ms + int64_t{utc_offset_minutes} * kMinute) % kDayMs;
  if (of_day < 0) of_day += kDayMs;
  of_day /= kSecond;
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%02d%02d%02d-", static_cast<int>(of_day / 3600), static_cast<int>(of_day / 60 % 60),
                static_cast<int>(of_day % 60));
  return "r-" + FormatLocalDate(ts_ms, utc_offset_minutes) + buf + std::to_string(n);
}

}  // namespace

std::string InjectedIncident::ToJson() const {
  nlohmann::ordered_json j;
  j["kind"] = kind;
  j["category"] = category;
  j["device_id"] = device_id;
  j["sensor_kind"] = sensor_kind;
  j["cell"] = cell_code;
  j["district"] = district;
  j["department"] = department;
  j["lat"] = position.lat;
  j["lon"] = position.lon;
  j["start"] = start_ms;
  j["end"] = end_ms;
  j["start_time"] = FormatRfc3339Ms(start_ms);
  j["end_time"] = FormatRfc3339Ms(end_ms);
  j["priority"] = priority;
  j["devices"] = devices;
  j["sources"] = sources;
  j["merged"] = merged;
  j["reports"] = reports;
  if (!zone.empty()) j["zone"] = zone;
  return j.dump();
}

struct Simulator::Impl {
  using Slot = std::pair<int64_t, size_t>;  // (time, device or camera index)
  using MinHeap = std::priority_queue<Slot, std::vector<Slot>, std::greater<>>;

  std::shared_ptr<const CityModel> city;
  SimulatorOptions opt;
  int utc_offset = 0;
  double period_ms = 1000;
  int64_t stop_ms = kNever;  // first ts not produced
  int64_t warmup_ms = 2 * kMinute;
  int64_t max_incident_ms = 15 * kMinute;  // longest incident any plan can produce
  int64_t forget_ms = 0;  // a recent incident matters this long after its end (plus the longer duration)
  std::vector<DeviceState> devices;
  std::vector<CameraState> cameras;
  std::vector<CorrelationGroup> groups;
  std::vector<Pairing> gas_pairs, fire_pairs;
  std::vector<std::string> background_labels;
  // (next report time, device index), earliest first; ties by device index.
  MinHeap heap;
  MinHeap camera_heap;  // (next background message, camera index)
  // Incident records (reports, camera frames) queued at scheduling, by (ts, seq).
  std::map<std::pair<int64_t, uint64_t>, SimulatedReading> pending;
  uint64_t pending_seq = 0;
  uint64_t report_count = 0;
  Rng values{0};
  Rng schedule{0};
  Rng camera_rng{0};
  int64_t next_slot_ms = 0;
  bool incidents_enabled = true;
  std::vector<RecentIncident> recent;
  std::deque<InjectedIncident> untaken;
  int64_t last_ts_ms = 0;
  bool produced_any = false;
  bool finished = false;
  std::unique_ptr<CameraScenes> scenes;

  Impl(std::shared_ptr<const CityModel> c, SimulatorOptions o) : city(std::move(c)), opt(o) {
    const Config& cfg = city->config();
    utc_offset = cfg.city.utc_offset_minutes;
    values = Rng(Mix(opt.seed ^ 0x76616c756573ULL));
    schedule = Rng(Mix(opt.seed ^ 0x7363686564ULL));
    camera_rng = Rng(Mix(opt.seed ^ 0x63616d657261ULL));
    Rng setup(Mix(opt.seed ^ 0x7365747570ULL));
    if (opt.duration_ms > 0) stop_ms = opt.start_ms + opt.duration_ms;
    CameraScenesOptions so;
    so.seed = opt.seed;
    so.start_ms = opt.start_ms;
    so.stop_ms = stop_ms;
    so.fps = opt.frame_fps;
    so.frames_from_ms = opt.frames_from_ms;
    so.first_incident_after_ms = opt.first_scene_after_ms;
    scenes = std::make_unique<CameraScenes>(city, so);
    const double rate = opt.rate > 0 ? opt.rate : 1.0;
    const size_t n = cfg.city.devices.size();
    period_ms = std::max(1.0, static_cast<double>(n) * 1000.0 / rate);

    devices.resize(n);
    for (size_t i = 0; i < n; ++i) {
      DeviceState& d = devices[i];
      d.device = &cfg.city.devices[i];
      d.kind = city->FindSensorKind(d.device->kind);
      d.unit = d.kind && !d.kind->unit.empty() ? d.kind->unit : DefaultUnit(d.device->kind);
      d.decimals = DecimalsFor(d.device->kind);
      d.cell = city->CellAt(d.device->position);
      d.bias = setup.Uniform(-1, 1);
      d.noise = setup.Gaussian();
      ResolveRules(&d);
    }
    // Stagger: a random permutation of evenly spaced phases, so kinds interleave.
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[setup.Index(i)]);
    for (size_t i = 0; i < n; ++i) {
      devices[order[i]].phase_ms = period_ms * (static_cast<double>(i) + 0.8 * setup.Uniform()) / static_cast<double>(n);
    }
    for (size_t i = 0; i < n; ++i) {
      PlanIncident(&devices[i]);
      PlanSilence(&devices[i]);
      if (devices[i].plan) {
        max_incident_ms = std::max(max_incident_ms, MaxDuration(devices[i].plan->rule->min_duration_ms));
      }
      if (devices[i].silence) max_incident_ms = std::max(max_incident_ms, 2 * SilenceBase(*devices[i].silence));
      heap.emplace(ReportTime(devices[i]), i);
    }

    cameras.resize(cfg.city.cameras.size());
    for (size_t i = 0; i < cameras.size(); ++i) {
      cameras[i].camera = &cfg.city.cameras[i];
      cameras[i].cell = city->CellAt(cameras[i].camera->position);
      if (opt.camera_every_ms > 0 && cameras[i].cell) {
        camera_heap.emplace(opt.start_ms + std::llround(camera_rng.Uniform() * static_cast<double>(opt.camera_every_ms)), i);
      }
    }
    for (const char* label : kBackgroundLabels) {
      const bool named = std::any_of(cfg.rules.camera.begin(), cfg.rules.camera.end(), [&](const CameraRule& r) {
        return std::find(r.labels.begin(), r.labels.end(), label) != r.labels.end();
      });
      if (!named) background_labels.emplace_back(label);
    }

    forget_ms = cfg.rules.merge_window_ms;
    for (const CorrelationRule& r : cfg.rules.correlation) {
      CorrelationGroup g;
      g.scope = r.scope;
      g.radius_m = r.radius_m;
      g.within_ms = r.within_ms;
      if (!r.category.empty()) g.categories.insert(r.category);
      for (const CorrelationMember& m : r.when) {
        if (!m.rule.empty()) {
          if (const RuleBase* b = FindRule(cfg.rules, m.rule)) g.categories.insert(b->category);
        } else {
          g.categories.insert(m.category);
        }
      }
      forget_ms = std::max(forget_ms, r.within_ms);
      groups.push_back(std::move(g));
    }
    PlanPairings();
    incidents_enabled = opt.incident_every_ms > 0;
    next_slot_ms = opt.start_ms + warmup_ms;
  }

  int64_t ReportTime(const DeviceState& d) const {
    return opt.start_ms + std::llround(d.phase_ms + static_cast<double>(d.reports) * period_ms);
  }

  void ResolveRules(DeviceState* d) const {
    for (const ThresholdRule& r : city->config().rules.threshold) {
      if (r.sensor_kind != d->device->kind) continue;
      if (!r.devices.empty() && std::find(r.devices.begin(), r.devices.end(), d->device->id) == r.devices.end()) {
        continue;
      }
      DeviceRule dr;
      dr.rule = &r;
      dr.dir = r.direction;
      dr.raise = r.raise;
      double clear = r.clear;
      dr.min_duration_ms = r.min_duration_ms;
      if (auto it = r.overrides.find(d->device->id); it != r.overrides.end()) {
        if (it->second.raise) dr.raise = *it->second.raise;
        if (it->second.clear) {
          clear = *it->second.clear;
        } else if (it->second.raise) {
          clear = *it->second.raise;
        }
        if (it->second.min_duration_ms) dr.min_duration_ms = *it->second.min_duration_ms;
      }
      // An unset clear (0 with a non-zero raise) means "same as raise".
      if (clear == 0 && dr.raise != 0) clear = dr.raise;
      dr.level = dr.dir == ThresholdDirection::kAbove ? std::min(dr.raise, clear) : std::max(dr.raise, clear);
      d->rules.push_back(dr);
    }
  }

  double KindMin(const DeviceState& d) const { return d.kind ? d.kind->min : -kInf; }
  double KindMax(const DeviceState& d) const { return d.kind ? d.kind->max : kInf; }

  // The incident band for the device's kind, if a rule that opens cases
  // watches it and the band is reachable without tripping a rule of another
  // category.
  void PlanIncident(DeviceState* d) const {
    int spec = -1;
    for (int s = 0; s < kPlainKinds; ++s) {
      if (d->device->kind == kIncidentKinds[s].sensor) spec = s;
    }
    if (spec < 0 || !d->cell || !d->cell->district) return;
    const ThresholdDirection dir = kIncidentKinds[spec].dir;
    const bool above = dir == ThresholdDirection::kAbove;
    // The most sensitive rule in the incident's direction opens the case.
    const DeviceRule* best = nullptr;
    for (const DeviceRule& r : d->rules) {
      if (r.dir != dir || r.rule->category.empty() || !r.rule->opens_case) continue;
      if (!best || (above ? r.raise < best->raise : r.raise > best->raise)) best = &r;
    }
    if (!best) return;
    const double raise = best->raise;
    const double mag = raise != 0 ? std::fabs(raise) : 1.0;
    double lo, hi;
    if (above) {
      lo = raise + 0.5 * mag;
      hi = raise + 1.5 * mag;
    } else if (raise > 0) {
      lo = 0;
      hi = std::min(0.1, 0.3 * raise);
    } else {
      lo = raise - 1.5 * mag;
      hi = raise - 0.5 * mag;
    }
    // Stay short of rules of other categories (they would open another case).
    for (const DeviceRule& r : d->rules) {
      if (&r == best || r.dir != dir || r.rule->category == best->rule->category) continue;
      if (r.raise == raise) return;
      const double margin = 0.2 * std::fabs(r.level);
      if (above) {
        hi = std::min(hi, r.level - margin);
      } else {
        lo = std::max(lo, r.level + margin);
      }
    }
    lo = std::max(lo, KindMin(*d));
    hi = std::min(hi, KindMax(*d));
    if (above) {
      if (hi <= raise + 0.05 * mag) return;
      lo = std::max(lo, raise + 0.05 * mag);
      if (lo > hi) lo = raise + 0.5 * (hi - raise);
    } else {
      if (lo >= raise - 0.05 * mag) return;
      hi = std::min(hi, raise - 0.05 * mag);
      if (hi < lo) hi = raise - 0.5 * (raise - lo);
    }
    IncidentPlan p;
    p.spec = spec;
    p.rule = best;
    p.lo = lo;
    p.hi = hi;
    d->plan = p;
  }

  // The expected interval of the device under a no_signal rule, the way the
  // detector resolves it.
  int64_t ExpectedInterval(const NoSignalRule& r, const DeviceState& d) const {
    if (auto it = r.overrides.find(d.device->id); it != r.overrides.end()) return it->second;
    if (r.interval_ms) return *r.interval_ms;
    return d.kind ? d.kind->report_interval_ms : 60000;
  }

  // Dropouts stay within half of every no_signal limit on the device; a
  // silence incident needs exactly one rule watching it (else several cases).
  void PlanSilence(DeviceState* d) const {
    const NoSignalRule* watching = nullptr;
    int count = 0;
    for (const NoSignalRule& r : city->config().rules.no_signal) {
      if (!Listed(r.sensor_kinds, d->device->kind) || !Listed(r.devices, d->device->id)) continue;
      const int64_t limit = std::llround(r.factor * static_cast<double>(ExpectedInterval(r, *d)));
      d->guard_ms = std::min(d->guard_ms, limit / 2);
      watching = &r;
      ++count;
    }
    if (count != 1 || !watching->opens_case || watching->category.empty() || !d->cell || !d->cell->district) return;
    const int64_t limit = std::llround(watching->factor * static_cast<double>(ExpectedInterval(*watching, *d)));
    if (3 * period_ms >= static_cast<double>(limit)) return;  // reports too seldom for a silence to stand out
    d->silence = SilencePlan{watching, limit};
  }

  // Long enough for the watermark of the device's partition (other devices'
  // readings minus the allowed lateness) to pass the limit before it resumes.
  int64_t SilenceBase(const SilencePlan& s) const {
    return s.limit_ms + city->config().event_time.allowed_lateness_ms + static_cast<int64_t>(std::ceil(3 * period_ms)) +
           kMinute;
  }

  // Device pairs and device-camera pairs that a correlation with absorb
  // joins into one case: the lead's rule is the first member and of the
  // correlation's category, the partner's the second member, in scope.
  void PlanPairings() {
    const RulesOptions& rules = city->config().rules;
    for (const CorrelationRule& r : rules.correlation) {
      if (!r.absorb || !r.opens_case || r.when.size() != 2) continue;
      for (size_t a = 0; a < devices.size(); ++a) {
        const DeviceState& lead = devices[a];
        if (!lead.plan) continue;
        const ThresholdRule& lead_rule = *lead.plan->rule->rule;
        if (!MemberMatches(r.when[0], lead_rule) || lead_rule.category != r.category) continue;
        if (lead.plan->spec == kGasSpec) {
          for (size_t b = 0; b < devices.size(); ++b) {
            const DeviceState& p = devices[b];
            if (!p.plan || p.plan->spec != kManholeSpec || !MemberMatches(r.when[1], *p.plan->rule->rule)) continue;
            if (InScope(r, lead.cell->index, lead.device->position, p.cell->index, p.device->position)) {
              gas_pairs.push_back({a, b, &r, nullptr});
            }
          }
        } else if (lead.plan->spec == kSmokeSpec) {
          for (const CameraRule& cr : rules.camera) {
            if (!MemberMatches(r.when[1], cr) || cr.labels.empty()) continue;
            for (size_t c = 0; c < cameras.size(); ++c) {
              const CameraState& cam = cameras[c];
              if (!cam.cell || !cam.cell->district || !Listed(cr.cameras, cam.camera->id)) continue;
              if (InScope(r, lead.cell->index, lead.device->position, cam.cell->index, cam.camera->position)) {
                fire_pairs.push_back({a, c, &r, &cr});
              }
            }
          }
        }
      }
    }
  }

  int CellDistance(int a, int b) const {
    const GridIndex& g = city->grid();
    return std::max(std::abs(g.Row(a) - g.Row(b)), std::abs(g.Col(a) - g.Col(b)));
  }

  // The correlation detector's scope test.
  bool InScope(const CorrelationRule& r, int cell_a, LatLon a, int cell_b, LatLon b) const {
    switch (r.scope) {
      case CorrelationScope::kCell:
        return cell_a == cell_b;
      case CorrelationScope::kNeighbours:
        return CellDistance(cell_a, cell_b) <= 1;
      case CorrelationScope::kDistrict:
        return city->Cell(cell_a).district == city->Cell(cell_b).district;
      case CorrelationScope::kRadius:
        return DistanceMeters(a, b) <= r.radius_m - 1;
    }
    return false;
  }

  // Whether two marks of a correlation's categories could meet in it.
  bool InReach(const CorrelationGroup& g, const Mark& a, const Mark& b) const {
    if (CellDistance(a.cell, b.cell) <= 2) return true;
    if (g.scope == CorrelationScope::kDistrict) return city->Cell(a.cell).district == city->Cell(b.cell).district;
    if (g.scope == CorrelationScope::kRadius) {
      return DistanceMeters(a.position, b.position) <= g.radius_m + city->config().rules.merge_radius_m;
    }
    return false;
  }

  // Whether an incident raising `marks` from slot for duration could share a
  // case, or a correlation, with a recent one.
  bool Clashes(const std::vector<Mark>& marks, int64_t slot, int64_t duration) const {
    const int64_t merge = city->config().rules.merge_window_ms;
    for (const Mark& m : marks) {
      for (const RecentIncident& r : recent) {
        const int64_t span = std::max(r.duration_ms, duration);
        if (m.category == r.mark.category && CellDistance(m.cell, r.mark.cell) <= 2 && slot < r.end_ms + merge + span) {
          return true;
        }
        for (const CorrelationGroup& g : groups) {
          if (!g.categories.count(m.category) || !g.categories.count(r.mark.category)) continue;
          if (InReach(g, m, r.mark) && slot < r.end_ms + std::max(merge, g.within_ms) + span) return true;
        }
      }
    }
    return false;
  }

  Mark AlarmMark(const DeviceState& d) const {
    return {d.plan->rule->rule->category, d.cell->index, d.device->position};
  }

  int64_t BaseDuration(int64_t min_duration_ms) const {
    const int64_t by_period = 2 * (min_duration_ms + static_cast<int64_t>(std::ceil(3 * period_ms)));
    return std::max({3 * min_duration_ms, 5 * kMinute, by_period});
  }
  int64_t MaxDuration(int64_t min_duration_ms) const {
    return std::max(BaseDuration(min_duration_ms), 15 * kMinute);
  }

  // Whether a lamp incident over [start, end) sees the lamp on and its rule
  // active all the time.
  bool LampWindowOk(const DeviceRule& rule, int64_t start, int64_t end) const {
    auto ok = [&](int64_t t) {
      const int h = LocalHour(t, utc_offset);
      return IsLampNight(h) && HoursActive(rule.rule->active_hours, h);
    };
    if (!ok(start) || !ok(end - 1) || !ok(end + 2 * rule.min_duration_ms)) return false;
    // Hours change only on whole minutes (offsets are whole minutes).
    for (int64_t t = (start / kMinute + 1) * kMinute; t < end; t += kMinute) {
      if (!ok(t)) return false;
    }
    return true;
  }

  void TrySchedule(int64_t slot) {
    // Fixed draws per slot keep the stream deterministic whatever is eligible.
    const double u_kind = schedule.Uniform();
    const double u_device = schedule.Uniform();
    const double u_duration = schedule.Uniform();
    const double u_level = schedule.Uniform();

    std::erase_if(recent, [&](const RecentIncident& r) {
      return r.end_ms + forget_ms + std::max(r.duration_ms, max_incident_ms) <= slot;
    });

    auto duration_for = [&](int64_t base, int64_t top) {
      const int64_t d = base + static_cast<int64_t>(u_duration * static_cast<double>(top - base));
      return (d + kSecond - 1) / kSecond * kSecond;
    };
    auto fits = [&](int64_t end, int64_t tail) { return opt.duration_ms <= 0 || end + tail <= stop_ms; };
    auto is_free = [&](const DeviceState& d) { return !d.incident || d.incident->end_ms <= slot; };
    const int64_t tail = static_cast<int64_t>(2 * period_ms);
    std::vector<std::vector<Candidate>> eligible(kKindCount);
    auto offer = [&](Candidate c) {
      if (!Clashes(c.marks, slot, c.duration_ms)) eligible[static_cast<size_t>(c.kind)].push_back(std::move(c));
    };

    for (size_t i = 0; i < devices.size(); ++i) {
      const DeviceState& d = devices[i];
      if (!is_free(d)) continue;
      if (d.plan) {
        const DeviceRule& rule = *d.plan->rule;
        const int64_t duration = duration_for(BaseDuration(rule.min_duration_ms), MaxDuration(rule.min_duration_ms));
        if (fits(slot + duration, 2 * rule.min_duration_ms + tail) &&
            (!kIncidentKinds[d.plan->spec].night_only || LampWindowOk(rule, slot, slot + duration))) {
          Candidate c{d.plan->spec, i, nullptr, duration, {AlarmMark(d)}};
          if (d.plan->spec == kFloodSpec && city->FindCategory(rule.rule->category)) {
            Candidate reported = c;
            reported.kind = kFloodedRoadReported;
            offer(std::move(reported));
          }
          offer(std::move(c));
        }
      }
      if (d.silence) {
        const int64_t base = SilenceBase(*d.silence);
        const int64_t duration = duration_for(base, 2 * base);
        // The device reported before (the detector watches only those).
        const bool reported = opt.start_ms + std::llround(d.phase_ms + 3 * period_ms) < slot;
        if (reported && fits(slot + duration, tail + city->config().event_time.allowed_lateness_ms)) {
          offer({kDeviceSilent, i, nullptr, duration, {{d.silence->rule->category, d.cell->index, d.device->position}}});
        }
      }
    }
    for (const Pairing& p : gas_pairs) {
      const DeviceState& a = devices[p.lead];
      const DeviceState& b = devices[p.partner];
      if (!is_free(a) || !is_free(b)) continue;
      const int64_t for_ms = std::max(a.plan->rule->min_duration_ms, b.plan->rule->min_duration_ms);
      const int64_t duration = duration_for(BaseDuration(for_ms), MaxDuration(for_ms));
      if (fits(slot + duration, 2 * for_ms + tail)) offer({kGasNearManhole, p.lead, &p, duration, {AlarmMark(a), AlarmMark(b)}});
    }
    for (const Pairing& p : fire_pairs) {
      const DeviceState& a = devices[p.lead];
      const CameraState& cam = cameras[p.partner];
      if (!is_free(a) || cam.busy_until_ms > slot) continue;
      const int64_t for_ms = a.plan->rule->min_duration_ms;
      const int64_t duration = duration_for(BaseDuration(for_ms), MaxDuration(for_ms));
      if (!fits(slot + duration, 2 * for_ms + tail)) continue;
      Candidate c{kFireSeenByCamera, p.lead, &p, duration, {AlarmMark(a)}};
      c.marks.push_back({p.camera_rule->category, cam.cell->index, cam.camera->position});
      offer(std::move(c));
    }

    std::vector<size_t> kinds;
    for (size_t k = 0; k < eligible.size(); ++k) {
      if (!eligible[k].empty()) kinds.push_back(k);
    }
    if (kinds.empty()) return;
    const auto& pool = eligible[kinds[Pick(u_kind, kinds.size())]];
    Inject(pool[Pick(u_device, pool.size())], slot, u_level);
  }

  void Alarm(DeviceState* d, int64_t start, int64_t alarm_from, int64_t end, double u_level) const {
    const IncidentPlan& plan = *d->plan;
    ActiveIncident a;
    a.start_ms = start;
    a.end_ms = end;
    a.alarm_ms = alarm_from;
    a.ramp_ms = kIncidentKinds[plan.spec].ramp ? std::min<int64_t>(2 * kMinute, (end - alarm_from) * 15 / 100) : 0;
    a.level = plan.lo + u_level * (plan.hi - plan.lo);
    d->incident = a;
  }

  void Queue(std::string topic, std::string key, std::string value, int64_t ts) {
    SimulatedReading r;
    r.topic = std::move(topic);
    r.key = std::move(key);
    r.value = std::move(value);
    r.ts_ms = ts;
    pending.emplace(std::make_pair(ts, pending_seq++), std::move(r));
  }

  // A citizen or hotline report 2..5 min after the water reached its level,
  // 20..100 m from the device. Returns its id.
  std::string QueueReport(const DeviceState& d, Rng& r) {
    const ActiveIncident& a = *d.incident;
    const int64_t full = a.alarm_ms + a.ramp_ms;
    int64_t ts = full + 2 * kMinute + static_cast<int64_t>(r.Uniform() * 3 * kMinute);
    ts = std::max(full, std::min(ts, a.end_ms - a.ramp_ms - 30 * kSecond)) / kSecond * kSecond;
    const double bearing = r.Uniform(0, 2 * kPi);
    const double dist = r.Uniform(20, 100);
    const LatLon at = d.device->position;
    const double dlat = dist * std::cos(bearing) / 111320.0;
    const double dlon = dist * std::sin(bearing) / (111320.0 * std::cos(at.lat * kPi / 180));
    LatLon p = at;
    for (const double sign : {1.0, -1.0}) {
      const LatLon q{RoundTo(at.lat + sign * dlat, 6), RoundTo(at.lon + sign * dlon, 6)};
      if (city->CellAt(q)) {
        p = q;
        break;
      }
    }
    const bool hotline = r.Uniform() < 0.5;
    const std::string place = d.device->name.empty() ? d.device->id : d.device->name;
    std::string text = (hotline ? "12345热线来电：" : "市民上报：") + place + "附近道路积水";
    if (d.unit == "m") text += "约" + std::to_string(std::llround(a.level * 100)) + "厘米深";
    text += "，车辆难以通行";
    const std::string id = ReportId(ts, utc_offset, ++report_count);
    nlohmann::ordered_json j;
    j["report_id"] = id;
    j["channel"] = hotline ? "hotline12345" : "citizen";
    j["ts"] = ts;
    j["category"] = d.plan->rule->rule->category;
    j["text"] = text;
    j["lat"] = p.lat;
    j["lon"] = p.lon;
    Queue(city->config().kafka.topics.reports, id, j.dump(), ts);
    return id;
  }

  // Up to three ordinary objects (none when every label is a rule's).
  void AddBackgroundObjects(CameraState& cam, Rng& r, size_t max_objects, nlohmann::ordered_json* dets) {
    if (background_labels.empty()) return;
    const size_t n = r.Index(max_objects + 1);
    for (size_t i = 0; i < n; ++i) {
      const std::string& label = background_labels[r.Index(background_labels.size())];
      const double score = RoundTo(r.Uniform(0.3, 0.99), 2);
      dets->push_back(Detection(label, score, Box(r, 0.03, 0.25, std::nullopt), "t" + std::to_string(++cam.tracks)));
    }
  }

  std::string DetectionsJson(const CameraState& cam, int64_t ts, nlohmann::ordered_json dets) const {
    nlohmann::ordered_json j;
    j["camera_id"] = cam.camera->id;
    j["ts"] = ts;
    j["detections"] = std::move(dets);
    return j.dump();
  }

  // Fire/smoke frames from the camera every 3..5 s, from 20..100 % of a
  // lead-in of min(60 s, within / 3) after the smoke alarm started, for at
  // least max(30 s, for + 15 s, min_detections + 2 frames).
  void QueueBurst(CameraState& cam, const CameraRule& rule, const CorrelationRule& corr, int64_t start, int64_t end,
                  Rng& r) {
    const double lead_in = static_cast<double>(std::min<int64_t>(60 * kSecond, corr.within_ms / 3));
    int64_t t = start + std::llround(r.Uniform(0.2, 1.0) * lead_in);
    const int64_t length = std::max({30 * kSecond, rule.min_duration_ms + 15 * kSecond,
                                     (rule.min_detections + 2) * 5 * kSecond}) +
                           std::llround(r.Uniform(0, 30) * kSecond);
    const int64_t last = std::min(t + length, end - 10 * kSecond);
    std::vector<std::string> labels;
    for (const std::string& l : rule.labels) {
      if (l == "fire" || l == "smoke") labels.push_back(l);
    }
    if (labels.empty()) labels.push_back(rule.labels.front());
    const double lo = std::min(0.99, std::max(0.7, rule.min_score + 0.02));
    const double hi = std::max(lo, 0.97);
    const std::string track = "t" + std::to_string(++cam.tracks);
    cam.burst_from_ms = t - kSecond;
    for (; t <= last; t += std::llround(r.Uniform(3, 5) * kSecond)) {
      nlohmann::ordered_json dets = nlohmann::ordered_json::array();
      const double score = std::max(lo, RoundTo(r.Uniform(lo, hi), 2));
      const std::string& label = labels[r.Index(labels.size())];
      dets.push_back(Detection(label, std::ceil(score * 100) / 100, Box(r, 0.05, 0.2, rule.zone), track));
      AddBackgroundObjects(cam, r, 2, &dets);
      Queue(city->config().kafka.topics.camera_detections, cam.camera->id, DetectionsJson(cam, t, std::move(dets)), t);
      cam.burst_to_ms = t + kSecond;
    }
    cam.busy_until_ms = cam.burst_to_ms + rule.cooldown_ms + kMinute;
  }

  void Inject(const Candidate& c, int64_t slot, double u_level) {
    Rng detail(Mix(opt.seed ^ Mix(static_cast<uint64_t>(slot) ^ 0x696e636964656e74ULL)));
    DeviceState& d = devices[c.device];
    const int64_t end = slot + c.duration_ms;
    InjectedIncident inc;
    inc.kind = kKindNames[c.kind];
    inc.device_id = d.device->id;
    inc.sensor_kind = d.device->kind;
    inc.cell_code = d.cell->code;
    inc.district = d.cell->district->id;
    inc.position = d.device->position;
    inc.start_ms = slot;
    inc.end_ms = end;
    inc.devices = {d.device->id};
    inc.sources = {"sensor"};
    Priority priority = Priority::kNormal;
    if (c.kind == kDeviceSilent) {
      ActiveIncident a;
      a.start_ms = a.alarm_ms = slot;
      a.end_ms = end;
      a.silent = true;
      d.incident = a;
      inc.category = d.silence->rule->category;
      priority = PriorityOf(*d.silence->rule, *city);
    } else {
      const ThresholdRule& rule = *d.plan->rule->rule;
      Alarm(&d, slot, slot, end, u_level);
      inc.category = rule.category;
      priority = PriorityOf(rule, *city);
      if (c.kind == kFloodedRoadReported) {
        inc.reports.push_back(QueueReport(d, detail));
        inc.sources.push_back("report");
        priority = std::min(priority, city->FindCategory(rule.category)->priority);
      } else if (c.kind == kGasNearManhole) {
        DeviceState& b = devices[c.pairing->partner];
        const ThresholdRule& partner_rule = *b.plan->rule->rule;
        const CorrelationRule& corr = *c.pairing->correlation;
        const int64_t room = c.duration_ms - b.plan->rule->min_duration_ms - static_cast<int64_t>(3 * period_ms);
        const int64_t max_lag = std::max<int64_t>(0, std::min({3 * kMinute, corr.within_ms / 3, room / 2}));
        const int64_t lag = static_cast<int64_t>(detail.Uniform() * static_cast<double>(max_lag)) / kSecond * kSecond;
        Alarm(&b, slot, slot + lag, end, detail.Uniform());
        inc.devices.push_back(b.device->id);
        inc.sources.push_back("correlation");
        inc.merged.push_back(partner_rule.category);
        priority = std::min({priority, PriorityOf(partner_rule, *city), PriorityOf(corr, *city)});
      } else if (c.kind == kFireSeenByCamera) {
        CameraState& cam = cameras[c.pairing->partner];
        const CameraRule& camera_rule = *c.pairing->camera_rule;
        QueueBurst(cam, camera_rule, *c.pairing->correlation, slot, end, detail);
        inc.devices.push_back(cam.camera->id);
        if (camera_rule.opens_case) {
          inc.sources.push_back("camera");
          inc.merged.push_back(camera_rule.category);
          priority = std::min(priority, PriorityOf(camera_rule, *city));
        }
        inc.sources.push_back("correlation");
        priority = std::min(priority, PriorityOf(*c.pairing->correlation, *city));
      }
    }
    inc.priority = PriorityName(priority);
    inc.department = city->DepartmentFor(inc.category, *d.cell);
    for (const Mark& m : c.marks) recent.push_back({m, end, c.duration_ms});
    untaken.push_back(std::move(inc));
  }

  void ProcessSlots(int64_t ts) {
    if (!incidents_enabled) return;
    while (next_slot_ms <= ts) {
      TrySchedule(next_slot_ms);
      const double gap = schedule.Exponential(static_cast<double>(opt.incident_every_ms));
      next_slot_ms += std::max<int64_t>(kSecond, std::llround(gap));
    }
  }
  // Rain over the whole city in mm/h: showers in some half-hour slots.
  double Rain(int64_t ts) const {
    const int64_t slot_ms = 30 * kMinute;
    const int64_t slot = ts >= 0 ? ts / slot_ms : (ts - slot_ms + 1) / slot_ms;
    const uint64_t h = Mix(opt.seed ^ Mix(static_cast<uint64_t>(slot) ^ 0x7261696eULL));
    const double u = std::ldexp(static_cast<double>(h >> 11), -53);
    if (u >= 0.12) return 0;
    const double intensity = 0.3 + (u / 0.12) * 3.5;
    const double x = static_cast<double>(ts - slot * slot_ms) / static_cast<double>(slot_ms);  // 0..1
    return intensity * std::sin(kPi * x);
  }

  double NormalValue(DeviceState& d, int64_t ts) {
    const double h = LocalHourFrac(ts, utc_offset);
    const int hour = LocalHour(ts, utc_offset);
    const double z = d.noise;
    const double b = d.bias;
    const std::string& k = d.device->kind;
    double v;
    if (k == "water_level") {
      v = std::clamp(0.045 + 0.012 * b + 0.006 * std::sin(2 * kPi * (h - 4) / 24) + 0.004 * Rain(ts) + 0.003 * z,
                     0.02, 0.08);
    } else if (k == "rainfall") {
      const double r = Rain(ts) * (1 + 0.15 * b);
      v = r < 0.05 ? 0.0 : std::max(0.0, r + 0.1 * z);
    } else if (k == "gas_ppm") {
      v = std::clamp(13 + 4 * b + 6 * Bump(h, 7.5, 1.2) + 8 * Bump(h, 12, 1.0) + 10 * Bump(h, 18.5, 1.3) + 2.0 * z,
                     5.0, 40.0);
    } else if (k == "manhole_tilt") {
      v = std::clamp(1.5 + 0.6 * b + 0.4 * TrafficLoad(h) + 0.12 * z, 0.5, 3.0);
    } else if (k == "smoke") {
      v = std::clamp(0.35 + 0.2 * b + 0.25 * Bump(h, 12, 3) + 0.1 * z, 0.0, 1.5);
    } else if (k == "pm25") {
      v = std::clamp(33 + 5 * b + 26 * Bump(h, 8, 1.5) + 20 * Bump(h, 18.5, 1.8) + 3.5 * z, 25.0, 80.0);
    } else if (k == "noise_db") {
      v = std::clamp(47 + 2 * b + 13 * Daylight(h) + 3 * (Bump(h, 8, 1.2) + Bump(h, 18, 1.4)) + 1.8 * z, 45.0, 70.0);
    } else if (k == "traffic_speed") {
      v = std::clamp(46 + 2 * b - 20 * Bump(h, 8, 1.2) - 17 * Bump(h, 18, 1.4) - 5 * Daylight(h) + 2.5 * z, 20.0,
                     50.0);
    } else if (k == "bridge_strain") {
      v = std::clamp(230 + 25 * b + 300 * TrafficLoad(h) + 20 * z, 200.0, 600.0);
    } else if (k == "streetlight_current") {
      bool on = IsLampNight(hour);
      for (const DeviceRule& r : d.rules) {
        if (r.dir == ThresholdDirection::kBelow && HoursActive(r.rule->active_hours, hour)) on = true;
      }
      v = on ? std::clamp(1.4 + 0.08 * b + 0.03 * z, 1.2, 1.6) : 0.0;
    } else {
      const double lo = KindMin(d), hi = KindMax(d);
      if (std::isfinite(lo) && std::isfinite(hi) && hi > lo) {
        v = lo + (hi - lo) * std::clamp(0.3 + 0.05 * b + 0.03 * z, 0.0, 1.0);
      } else {
        v = 1 + 0.1 * b + 0.05 * z;
      }
    }
    return v;
  }

  // Keeps a normal value inside the kind's range and on the normal side of
  // every rule (with margin), then rounds it without crossing the bounds.
  double ClampNormal(const DeviceState& d, double v, int64_t ts) const {
    double lo = KindMin(d), hi = KindMax(d);
    double rule_lo = -kInf, rule_hi = kInf;
    const int hour = LocalHour(ts, utc_offset);
    for (const DeviceRule& r : d.rules) {
      if (r.dir == ThresholdDirection::kAbove) {
        rule_hi = std::min(rule_hi, r.level - std::max(0.2 * std::fabs(r.level), 1e-6));
      } else if (HoursActive(r.rule->active_hours, hour)) {
        rule_lo = std::max(rule_lo, r.level + std::max(0.25 * std::fabs(r.level), 1e-6));
      }
    }
    v = std::clamp(v, lo, std::max(lo, hi));
    v = std::min(v, rule_hi);
    v = std::max(v, rule_lo);
    const double p = std::pow(10.0, d.decimals);
    double rounded = RoundTo(v, d.decimals);
    if (rounded > std::min(hi, rule_hi)) rounded = std::floor(v * p) / p;
    if (rounded < std::max(lo, rule_lo)) rounded = std::ceil(v * p) / p;
    return rounded;
  }

  double IncidentValue(DeviceState& d, int64_t ts) {
    const ActiveIncident& a = *d.incident;
    const IncidentPlan& plan = *d.plan;
    const double span = plan.hi - plan.lo;
    double v = std::clamp(a.level + 0.08 * span * d.noise, plan.lo, plan.hi);
    if (a.ramp_ms > 0) {
      const double normal = ClampNormal(d, NormalValue(d, ts), ts);
      double r = 1;
      if (ts - a.alarm_ms < a.ramp_ms) r = static_cast<double>(ts - a.alarm_ms) / static_cast<double>(a.ramp_ms);
      if (a.end_ms - ts < a.ramp_ms) r = std::min(r, static_cast<double>(a.end_ms - ts) / static_cast<double>(a.ramp_ms));
      v = normal + std::clamp(r, 0.0, 1.0) * (v - normal);
      return RoundTo(v, d.decimals);
    }
    const double p = std::pow(10.0, d.decimals);
    double rounded = RoundTo(v, d.decimals);
    if (rounded > plan.hi || rounded < plan.lo) rounded = plan.rule->dir == ThresholdDirection::kAbove
                                                              ? std::ceil(v * p) / p
                                                              : std::floor(v * p) / p;
    return rounded;
  }

  void Produced(int64_t ts) {
    last_ts_ms = ts;
    produced_any = true;
  }

  // The next device slot: a reading, or nothing (dropout, silence).
  bool NextReading(SimulatedReading* out) {
    const auto [ts, index] = heap.top();
    heap.pop();
    DeviceState& d = devices[index];
    ++d.reports;
    heap.emplace(ReportTime(d), index);

    const bool in_incident = d.incident && ts >= d.incident->start_ms && ts < d.incident->end_ms;
    if (in_incident && d.incident->silent) return false;
    if (!in_incident && opt.dropout > 0 && values.Uniform() < opt.dropout &&
        (d.last_emit_ms == kNever || static_cast<double>(ts - d.last_emit_ms) + period_ms <= static_cast<double>(d.guard_ms))) {
      return false;
    }
    d.noise = 0.85 * d.noise + std::sqrt(1 - 0.85 * 0.85) * values.Gaussian();
    const bool alarm = in_incident && ts >= d.incident->alarm_ms;
    const double value = alarm ? IncidentValue(d, ts) : ClampNormal(d, NormalValue(d, ts), ts);

    nlohmann::ordered_json j;
    j["device_id"] = d.device->id;
    j["kind"] = d.device->kind;
    j["ts"] = ts;
    j["value"] = value;
    j["unit"] = d.unit;
    j["lat"] = d.device->position.lat;
    j["lon"] = d.device->position.lon;
    out->topic = city->config().kafka.topics.sensors;
    out->key = d.device->id;
    out->value = j.dump();
    out->ts_ms = ts;
    d.last_emit_ms = ts;
    return true;
  }

  // The next background message of a camera: ordinary objects with random
  // scores, more of them when traffic is heavy. Nothing while the camera
  // sends an incident's frames.
  bool NextBackground(SimulatedReading* out) {
    const auto [ts, index] = camera_heap.top();
    camera_heap.pop();
    const double gap = static_cast<double>(opt.camera_every_ms) * camera_rng.Uniform(0.5, 1.5);
    camera_heap.emplace(ts + std::max<int64_t>(kSecond, std::llround(gap)), index);
    CameraState& cam = cameras[index];
    if (ts >= cam.burst_from_ms && ts <= cam.burst_to_ms) return false;
    const double load = TrafficLoad(LocalHourFrac(ts, utc_offset));
    nlohmann::ordered_json dets = nlohmann::ordered_json::array();
    AddBackgroundObjects(cam, camera_rng, static_cast<size_t>(1 + std::llround(2 * load)), &dets);
    out->topic = city->config().kafka.topics.camera_detections;
    out->key = cam.camera->id;
    out->value = DetectionsJson(cam, ts, std::move(dets));
    out->ts_ms = ts;
    return true;
  }

  bool Next(SimulatedReading* out) {
    auto due = [&] {
      const int64_t device = heap.empty() ? kNever : heap.top().first;
      const int64_t queued = pending.empty() ? kNever : pending.begin()->first.first;
      const int64_t camera = camera_heap.empty() ? kNever : camera_heap.top().first;
      const int64_t frame = scenes->next_ms() == INT64_MAX ? kNever : scenes->next_ms();
      return std::array<int64_t, 4>{device, queued, camera, frame};
    };
    while (!finished) {
      auto t = due();
      const int64_t first = std::min({t[0], t[1], t[2], t[3]});
      if (first >= stop_ms) break;
      // Slots up to `first` may queue incident records, never before their slot.
      ProcessSlots(first);
      t = due();
      bool got;
      if (t[3] < t[0] && t[3] < t[1] && t[3] < t[2]) {
        FrameTick tick = scenes->Next();
        out->topic = city->config().kafka.topics.camera_frames;
        out->key = tick.camera_id;
        out->value.clear();
        out->ts_ms = tick.ts_ms;
        out->frame = true;
        out->scene = std::move(tick.events);
        got = true;
      } else if (t[0] <= t[1] && t[0] <= t[2]) {
        out->frame = false;
        out->scene.clear();
        got = NextReading(out);
      } else if (t[1] <= t[2]) {
        *out = std::move(pending.begin()->second);
        pending.erase(pending.begin());
        got = true;
      } else {
        out->frame = false;
        out->scene.clear();
        got = NextBackground(out);
      }
      if (got) {
        Produced(out->ts_ms);
        return true;
      }
    }
    finished = true;
    return false;
  }

  std::vector<InjectedIncident> TakeStarted() {
    std::vector<InjectedIncident> out;
    while (!untaken.empty() && (finished || (produced_any && untaken.front().start_ms <= last_ts_ms))) {
      out.push_back(std::move(untaken.front()));
      untaken.pop_front();
    }
    if (finished || produced_any) {
      for (auto& inc : scenes->TakeStarted(finished ? INT64_MAX : last_ts_ms)) out.push_back(std::move(inc));
      std::stable_sort(out.begin(), out.end(),
                       [](const InjectedIncident& a, const InjectedIncident& b) { return a.start_ms < b.start_ms; });
    }
    return out;
  }
};

Simulator::Simulator(std::shared_ptr<const CityModel> city, SimulatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(city), options)) {}

Simulator::~Simulator() = default;

bool Simulator::Next(SimulatedReading* out) { return impl_->Next(out); }

std::vector<InjectedIncident> Simulator::TakeStartedIncidents() { return impl_->TakeStarted(); }

int64_t Simulator::city_time_ms() const { return impl_->produced_any ? impl_->last_ts_ms : impl_->opt.start_ms; }

}  // namespace cityloop::ingest

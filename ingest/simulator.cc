#include "ingest/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <queue>
#include <random>
#include <utility>

#include "core/time_util.h"

namespace cityloop::ingest {
namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kDayMs = 86400000;
constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();

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

constexpr IncidentKindSpec kIncidentKinds[] = {
    {"flooded_road", "water_level", ThresholdDirection::kAbove, true, false},
    {"gas_leak", "gas_ppm", ThresholdDirection::kAbove, false, false},
    {"manhole_tilt", "manhole_tilt", ThresholdDirection::kAbove, false, false},
    {"smoke", "smoke", ThresholdDirection::kAbove, false, false},
    {"pollution", "pm25", ThresholdDirection::kAbove, false, false},
    {"dead_streetlight", "streetlight_current", ThresholdDirection::kBelow, false, true},
};

// How an incident would be injected on one device.
struct IncidentPlan {
  int spec = -1;  // index into kIncidentKinds
  const DeviceRule* rule = nullptr;
  double lo = 0, hi = 0;  // incident value band, beyond the rule's raise level
};

struct ActiveIncident {
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  int64_t ramp_ms = 0;
  double level = 0;
};

struct DeviceState {
  const Device* device = nullptr;
  const SensorKind* kind = nullptr;
  std::string unit;
  int decimals = 2;
  const CellInfo* cell = nullptr;
  std::vector<DeviceRule> rules;
  std::optional<IncidentPlan> plan;
  double bias = 0;   // per-device offset, -1..1
  double noise = 0;  // AR(1) noise state, ~N(0, 1)
  double phase_ms = 0;
  int64_t reports = 0;  // report slots consumed so far
  std::optional<ActiveIncident> incident;
};

struct RecentIncident {
  std::string category;
  int cell = -1;
  int64_t end_ms = 0;
  int64_t duration_ms = 0;
};

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
  return j.dump();
}

struct Simulator::Impl {
  std::shared_ptr<const CityModel> city;
  SimulatorOptions opt;
  int utc_offset = 0;
  double period_ms = 1000;
  int64_t stop_ms = std::numeric_limits<int64_t>::max();  // first ts not produced
  int64_t warmup_ms = 2 * kMinute;
  int64_t max_incident_ms = 15 * kMinute;  // longest incident any plan can produce
  std::vector<DeviceState> devices;
  // (next report time, device index), earliest first; ties by device index.
  std::priority_queue<std::pair<int64_t, size_t>, std::vector<std::pair<int64_t, size_t>>, std::greater<>> heap;
  Rng values{0};
  Rng schedule{0};
  int64_t next_slot_ms = 0;
  bool incidents_enabled = true;
  std::vector<RecentIncident> recent;
  std::deque<InjectedIncident> untaken;
  int64_t last_ts_ms = 0;
  bool produced_any = false;
  bool finished = false;

  Impl(std::shared_ptr<const CityModel> c, SimulatorOptions o) : city(std::move(c)), opt(o) {
    const Config& cfg = city->config();
    utc_offset = cfg.city.utc_offset_minutes;
    values = Rng(Mix(opt.seed ^ 0x76616c756573ULL));
    schedule = Rng(Mix(opt.seed ^ 0x7363686564ULL));
    Rng setup(Mix(opt.seed ^ 0x7365747570ULL));
    if (opt.duration_ms > 0) stop_ms = opt.start_ms + opt.duration_ms;
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
      if (devices[i].plan) {
        max_incident_ms = std::max(max_incident_ms, MaxDuration(devices[i].plan->rule->min_duration_ms));
      }
      heap.emplace(ReportTime(devices[i]), i);
    }
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

  // The incident band for the device's kind, if a rule watches it and the
  // band is reachable without tripping a rule of another category.
  void PlanIncident(DeviceState* d) const {
    int spec = -1;
    for (int s = 0; s < static_cast<int>(std::size(kIncidentKinds)); ++s) {
      if (d->device->kind == kIncidentKinds[s].sensor) spec = s;
    }
    if (spec < 0 || !d->cell || !d->cell->district) return;
    const ThresholdDirection dir = kIncidentKinds[spec].dir;
    const bool above = dir == ThresholdDirection::kAbove;
    // The most sensitive rule in the incident's direction opens the case.
    const DeviceRule* best = nullptr;
    for (const DeviceRule& r : d->rules) {
      if (r.dir != dir || r.rule->category.empty()) continue;
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

  int64_t BaseDuration(int64_t min_duration_ms) const {
    const int64_t by_period = 2 * (min_duration_ms + static_cast<int64_t>(std::ceil(3 * period_ms)));
    return std::max({3 * min_duration_ms, 5 * kMinute, by_period});
  }
  int64_t MaxDuration(int64_t min_duration_ms) const {
    return std::max(BaseDuration(min_duration_ms), 15 * kMinute);
  }

  bool CellsClash(int a, int b) const {
    if (a == b) return true;
    for (int n : city->grid().Neighbours(a)) {
      if (n == b) return true;
    }
    return false;
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
    const int64_t merge = city->config().rules.merge_window_ms;

    std::erase_if(recent, [&](const RecentIncident& r) {
      return r.end_ms + merge + std::max(r.duration_ms, max_incident_ms) <= slot;
    });

    std::vector<std::vector<std::pair<size_t, int64_t>>> eligible(std::size(kIncidentKinds));
    for (size_t i = 0; i < devices.size(); ++i) {
      const DeviceState& d = devices[i];
      if (!d.plan) continue;
      const DeviceRule& rule = *d.plan->rule;
      const int64_t base = BaseDuration(rule.min_duration_ms);
      const int64_t top = MaxDuration(rule.min_duration_ms);
      int64_t duration = base + static_cast<int64_t>(u_duration * static_cast<double>(top - base));
      duration = (duration + kSecond - 1) / kSecond * kSecond;
      const int64_t end = slot + duration;
      if (opt.duration_ms > 0 && end + 2 * rule.min_duration_ms + static_cast<int64_t>(2 * period_ms) > stop_ms) {
        continue;
      }
      if (d.incident && d.incident->end_ms > slot) continue;
      if (kIncidentKinds[d.plan->spec].night_only && !LampWindowOk(rule, slot, end)) continue;
      bool clash = false;
      for (const RecentIncident& r : recent) {
        if (r.category == rule.rule->category && CellsClash(r.cell, d.cell->index) &&
            slot < r.end_ms + merge + std::max(r.duration_ms, duration)) {
          clash = true;
          break;
        }
      }
      if (clash) continue;
      eligible[static_cast<size_t>(d.plan->spec)].emplace_back(i, duration);
    }
    std::vector<size_t> kinds;
    for (size_t s = 0; s < eligible.size(); ++s) {
      if (!eligible[s].empty()) kinds.push_back(s);
    }
    if (kinds.empty()) return;
    const auto& pool = eligible[kinds[std::min(kinds.size() - 1, static_cast<size_t>(u_kind * static_cast<double>(kinds.size())))]];
    const auto [index, duration] =
        pool[std::min(pool.size() - 1, static_cast<size_t>(u_device * static_cast<double>(pool.size())))];
    DeviceState& d = devices[index];
    const IncidentPlan& plan = *d.plan;
    const IncidentKindSpec& spec = kIncidentKinds[plan.spec];

    ActiveIncident a;
    a.start_ms = slot;
    a.end_ms = slot + duration;
    a.ramp_ms = spec.ramp ? std::min<int64_t>(2 * kMinute, duration * 15 / 100) : 0;
    a.level = plan.lo + u_level * (plan.hi - plan.lo);
    d.incident = a;

    InjectedIncident inc;
    inc.kind = spec.kind;
    inc.category = plan.rule->rule->category;
    inc.device_id = d.device->id;
    inc.sensor_kind = d.device->kind;
    inc.cell_code = d.cell->code;
    inc.district = d.cell->district->id;
    inc.department = city->DepartmentFor(inc.category, *d.cell);
    inc.position = d.device->position;
    inc.start_ms = a.start_ms;
    inc.end_ms = a.end_ms;
    untaken.push_back(std::move(inc));
    recent.push_back({plan.rule->rule->category, d.cell->index, a.end_ms, duration});
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
      if (ts - a.start_ms < a.ramp_ms) r = static_cast<double>(ts - a.start_ms) / static_cast<double>(a.ramp_ms);
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

  bool Next(SimulatedReading* out) {
    while (!finished && !heap.empty()) {
      const auto [ts, index] = heap.top();
      if (ts >= stop_ms) break;
      heap.pop();
      DeviceState& d = devices[index];
      ++d.reports;
      heap.emplace(ReportTime(d), index);
      ProcessSlots(ts);

      const bool in_incident = d.incident && ts >= d.incident->start_ms && ts < d.incident->end_ms;
      if (!in_incident && opt.dropout > 0 && values.Uniform() < opt.dropout) continue;
      d.noise = 0.85 * d.noise + std::sqrt(1 - 0.85 * 0.85) * values.Gaussian();
      const double value = in_incident ? IncidentValue(d, ts) : ClampNormal(d, NormalValue(d, ts), ts);

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
      last_ts_ms = ts;
      produced_any = true;
      return true;
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

#include "ingest/unit_fleet.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "core/time_util.h"

namespace cityloop::ingest {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// A uniform draw in [0, 1) for one purpose: FNV-1a over the seed and the
// key, then the splitmix64 finaliser (FNV alone spreads short keys poorly).
double Draw(uint64_t seed, std::string_view key) {
  uint64_t h = 14695981039346656037ULL;
  auto add = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ULL; };
  for (int i = 0; i < 8; ++i) add(static_cast<unsigned char>(seed >> (8 * i)));
  for (char c : key) add(static_cast<unsigned char>(c));
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return std::ldexp(static_cast<double>(h >> 11), -53);
}

// A seeded duration in [lo, hi], whole seconds (lo if hi < lo).
int64_t DrawMs(uint64_t seed, std::string_view key, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  const double ms = static_cast<double>(lo) + Draw(seed, key) * static_cast<double>(hi - lo);
  return std::clamp<int64_t>(std::llround(ms / 1000) * 1000, lo, hi);
}

int64_t TravelMs(LatLon from, LatLon to, double speed_mps) {
  return std::llround(DistanceMeters(from, to) / speed_mps * 1000);
}

LatLon Lerp(LatLon a, LatLon b, double f) { return {a.lat + (b.lat - a.lat) * f, a.lon + (b.lon - a.lon) * f}; }

double Round6(double v) { return std::round(v * 1e6) / 1e6; }

// nlohmann's value() throws on a type mismatch: these do not.
const nlohmann::json* Member(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}
std::string StringAt(const nlohmann::json& j, const char* key) {
  const nlohmann::json* m = Member(j, key);
  return m && m->is_string() ? m->get<std::string>() : std::string();
}
std::optional<double> NumberAt(const nlohmann::json& j, const char* key) {
  const nlohmann::json* m = Member(j, key);
  if (!m || !m->is_number()) return std::nullopt;
  return m->get<double>();
}

}  // namespace

std::optional<DispatchEvent> ParseDispatchEvent(std::string_view value) {
  const nlohmann::json e = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!e.is_object()) return std::nullopt;
  DispatchEvent out;
  const std::string type = StringAt(e, "type");
  if (type == "city.dispatch.order") {
    out.kind = DispatchEvent::Kind::kOrder;
  } else if (type == "city.dispatch.cancelled") {
    out.kind = DispatchEvent::Kind::kCancelled;
  } else {
    return std::nullopt;
  }
  const nlohmann::json* data = Member(e, "data");
  if (!data || !data->is_object()) return std::nullopt;
  DispatchOrder& o = out.order;
  o.case_id = StringAt(*data, "case_id");
  if (o.case_id.empty()) o.case_id = StringAt(e, "subject");
  o.department = StringAt(*data, "department");
  const std::optional<int64_t> ts = ParseRfc3339Ms(StringAt(e, "time"));
  if (o.case_id.empty() || o.department.empty() || !ts) return std::nullopt;
  o.ts_ms = *ts;
  if (out.kind == DispatchEvent::Kind::kCancelled) return out;

  const nlohmann::json* where = Member(*data, "location");
  const std::optional<double> lat = where ? NumberAt(*where, "lat") : std::nullopt;
  const std::optional<double> lon = where ? NumberAt(*where, "lon") : std::nullopt;
  if (!lat || !lon) return std::nullopt;
  o.location = {*lat, *lon};
  if (const nlohmann::json* unit = Member(*data, "recommended_unit")) o.unit_id = StringAt(*unit, "unit_id");
  o.lead = StringAt(*data, "task") != "assist";
  if (const nlohmann::json* n = Member(*data, "dispatch"); n && n->is_number_integer()) o.dispatch = n->get<int64_t>();
  return out;
}

double UnitSpeedMps(const Unit& unit, const DispatchOptions& options) {
  auto usable = [](double kmh) { return std::isfinite(kmh) && kmh > 0; };
  double kmh = usable(options.default_speed_kmh) ? options.default_speed_kmh : DispatchOptions{}.default_speed_kmh;
  if (!unit.type.empty()) {
    auto it = options.speed_kmh.find(unit.type);
    if (it != options.speed_kmh.end() && usable(it->second)) kmh = it->second;
  }
  return kmh / 3.6;
}

struct UnitFleet::Impl {
  // kReacting: the order is taken, the unit still stands at its base
  // (reports `available`) until it leaves.
  enum class Phase { kIdle, kReacting, kEnroute, kOnScene, kReturning };

  struct Job {
    std::string case_id;
    std::string department;
    LatLon scene;
    int64_t depart_ms = 0, arrive_ms = 0, handled_ms = 0, back_ms = 0;
  };

  struct UnitState {
    const Unit* unit = nullptr;
    double speed_mps = 0;
    Phase phase = Phase::kIdle;
    Job job;
    // Where it stands (kIdle, kReacting, kOnScene), or the leg it drives.
    LatLon from, to;
    int64_t leg_from_ms = 0, leg_to_ms = 0;
    int64_t next_change_ms = kNever;  // the end of the phase
    int64_t next_report_ms = kNever;
    int64_t due_ms = kNever;          // its entry in `due`
  };

  struct PendingCommand {
    std::string case_id;
    std::string department;
    SimulatedReading record;
  };

  std::shared_ptr<const CityModel> city;
  UnitFleetOptions opt;
  std::vector<UnitState> units;  // config order
  std::map<std::string, size_t, std::less<>> by_id;
  std::set<std::pair<int64_t, size_t>> due;  // (due_ms, unit index)
  // (ts, "<case>/<department>", sequence): jobs' commands at one instant in
  // a fixed order whatever the order their orders came in.
  std::map<std::tuple<int64_t, std::string, uint64_t>, PendingCommand> commands;
  uint64_t command_seq = 0;
  std::set<std::string> taken;  // "<case>/<department>/<dispatch>" of every order taken
  // Records that came due while an order or cancellation moved time on,
  // handed out by the next Advance (they precede everything still queued).
  std::vector<SimulatedReading> ready;
  int64_t time_ms = 0;
  UnitFleetStats stats;

  Impl(std::shared_ptr<const CityModel> c, UnitFleetOptions o) : city(std::move(c)), opt(o) {
    opt.report_interval_ms = std::max<int64_t>(1000, opt.report_interval_ms);
    opt.moving_interval_ms = std::max<int64_t>(1000, opt.moving_interval_ms);
    time_ms = opt.start_ms;
    const Config& cfg = city->config();
    units.reserve(cfg.city.units.size());
    for (const Unit& u : cfg.city.units) {
      UnitState s;
      s.unit = &u;
      s.speed_mps = UnitSpeedMps(u, cfg.dispatch);
      s.from = s.to = u.base;
      // Units do not all report at the same instant.
      s.next_report_ms = opt.start_ms + DrawMs(opt.seed, "phase/" + u.id, 0, opt.report_interval_ms - 1000);
      by_id.emplace(u.id, units.size());
      units.push_back(std::move(s));
      Reschedule(units.size() - 1);
    }
  }

  void Reschedule(size_t i) {
    UnitState& s = units[i];
    if (s.due_ms != kNever) due.erase({s.due_ms, i});
    s.due_ms = std::min(s.next_change_ms, s.next_report_ms);
    if (s.due_ms != kNever) due.emplace(s.due_ms, i);
  }

  static UnitStatus StatusOf(Phase p) {
    switch (p) {
      case Phase::kIdle:
      case Phase::kReacting: return UnitStatus::kAvailable;
      case Phase::kEnroute: return UnitStatus::kEnroute;
      case Phase::kOnScene: return UnitStatus::kOnScene;
      case Phase::kReturning: return UnitStatus::kReturning;
    }
    return UnitStatus::kAvailable;
  }

  static bool Moving(Phase p) { return p == Phase::kEnroute || p == Phase::kReturning; }

  static LatLon PositionAt(const UnitState& s, int64_t t) {
    if (!Moving(s.phase) || s.leg_to_ms <= s.leg_from_ms) return s.to;
    const double f = std::clamp(static_cast<double>(t - s.leg_from_ms) / static_cast<double>(s.leg_to_ms - s.leg_from_ms),
                                0.0, 1.0);
    return Lerp(s.from, s.to, f);
  }

  void Drive(UnitState& s, LatLon from, LatLon to, int64_t from_ms, int64_t to_ms) {
    s.from = from;
    s.to = to;
    s.leg_from_ms = from_ms;
    s.leg_to_ms = to_ms;
  }
  void Stand(UnitState& s, LatLon at) { Drive(s, at, at, 0, 0); }

  void Report(const UnitState& s, int64_t t, std::vector<SimulatedReading>* out) {
    const LatLon p = PositionAt(s, t);
    nlohmann::ordered_json j;
    j["unit_id"] = s.unit->id;
    j["dept"] = s.unit->department;
    j["status"] = UnitStatusName(StatusOf(s.phase));
    j["ts"] = t;
    j["lat"] = Round6(p.lat);
    j["lon"] = Round6(p.lon);
    SimulatedReading r;
    r.topic = city->config().kafka.topics.units;
    r.key = s.unit->id;
    r.value = j.dump();
    r.ts_ms = t;
    out->push_back(std::move(r));
    ++stats.reports;
  }

  // The unit's phase ends at t: the next one starts.
  void Change(UnitState& s, int64_t t) {
    const Job& job = s.job;
    switch (s.phase) {
      case Phase::kIdle: return;
      case Phase::kReacting:
        s.phase = Phase::kEnroute;
        Drive(s, s.unit->base, job.scene, t, job.arrive_ms);
        s.next_change_ms = job.arrive_ms;
        return;
      case Phase::kEnroute:
        s.phase = Phase::kOnScene;
        Stand(s, job.scene);
        s.next_change_ms = job.handled_ms;
        return;
      case Phase::kOnScene:
        s.phase = Phase::kReturning;
        Drive(s, job.scene, s.unit->base, t, job.back_ms);
        s.next_change_ms = job.back_ms;
        return;
      case Phase::kReturning:
        s.phase = Phase::kIdle;
        Stand(s, s.unit->base);
        s.job = Job{};
        s.next_change_ms = kNever;
        return;
    }
  }

  // Hands out everything due at or before t, in time order.
  void Step(int64_t t, std::vector<SimulatedReading>* out) {
    while (true) {
      const int64_t unit_due = due.empty() ? kNever : due.begin()->first;
      const int64_t command_due = commands.empty() ? kNever : std::get<0>(commands.begin()->first);
      if (std::min(unit_due, command_due) > t) break;
      if (unit_due <= command_due) {
        const size_t i = due.begin()->second;
        UnitState& s = units[i];
        // A change of status is reported at once and restarts the periodic reports.
        if (s.next_change_ms <= s.next_report_ms) Change(s, unit_due);
        Report(s, unit_due, out);
        s.next_report_ms = unit_due + (Moving(s.phase) ? opt.moving_interval_ms : opt.report_interval_ms);
        Reschedule(i);
      } else {
        out->push_back(std::move(commands.begin()->second.record));
        commands.erase(commands.begin());
        ++stats.commands;
      }
    }
    time_ms = std::max(time_ms, t);
  }

  // Moves time to `at` (what comes due goes to `ready`) for an input received then.
  int64_t Receive(int64_t now_ms, int64_t event_ms) {
    const int64_t at = std::max({now_ms, event_ms, time_ms});
    Step(at, &ready);
    return at;
  }

  void QueueCommand(const DispatchOrder& o, const char* action, int64_t ts, const std::string& unit_id) {
    const bool inspector = std::string_view(action) == "verify_pass";
    std::string id = "sim-" + o.case_id + "-";
    if (o.dispatch > 1) id += std::to_string(o.dispatch) + "-";
    id += action;
    nlohmann::ordered_json j;
    j["command_id"] = id;
    j["case_id"] = o.case_id;
    j["action"] = action;
    j["actor"] = inspector ? std::string("sim-inspector") : "sim-op-" + o.department;
    j["role"] = "operator";
    j["ts"] = ts;
    j["department"] = o.department;
    if (!unit_id.empty()) j["unit_id"] = unit_id;
    j["note"] = inspector ? std::string("simulated site check: passed")
                          : "simulated: " + std::string(action) + (unit_id.empty() ? "" : " " + unit_id);
    SimulatedReading r;
    r.topic = city->config().kafka.topics.commands;
    r.key = o.case_id;  // one partition per case: its commands stay in order
    r.value = j.dump();
    r.ts_ms = ts;
    commands.emplace(std::make_tuple(ts, o.case_id + "/" + o.department, command_seq++),
                     PendingCommand{o.case_id, o.department, std::move(r)});
  }

  UnitState* Lookup(std::string_view id) {
    auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : &units[it->second];
  }
  const UnitState* Lookup(std::string_view id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : &units[it->second];
  }

  std::string OnOrder(const DispatchOrder& o, int64_t now_ms) {
    std::string why = Take(o, now_ms);
    ++(why.empty() ? stats.orders_taken : stats.orders_ignored);
    return why;
  }

  std::string Take(const DispatchOrder& o, int64_t now_ms) {
    if (o.unit_id.empty()) return "no_unit";
    UnitState* s = Lookup(o.unit_id);
    if (!s) return "unknown_unit";
    if (s->unit->department != o.department) return "department_mismatch";
    if (!std::isfinite(o.location.lat) || !std::isfinite(o.location.lon)) return "bad_location";
    if (o.ts_ms < opt.start_ms) return "before_start";
    const std::string key = o.case_id + "/" + o.department + "/" + std::to_string(o.dispatch);
    if (taken.count(key)) return "duplicate";
    const int64_t at = Receive(now_ms, o.ts_ms);
    if (s->phase != Phase::kIdle) return "busy";
    taken.insert(key);

    const std::string draw = key + "/" + s->unit->id + "/";
    Job& job = s->job;
    job.case_id = o.case_id;
    job.department = o.department;
    job.scene = o.location;
    job.depart_ms = at + DrawMs(opt.seed, draw + "reaction", opt.reaction_min_ms, opt.reaction_max_ms);
    job.arrive_ms = job.depart_ms + TravelMs(s->unit->base, o.location, s->speed_mps);
    job.handled_ms = job.arrive_ms + DrawMs(opt.seed, draw + "handling", opt.handling_min_ms, opt.handling_max_ms);
    job.back_ms = job.handled_ms + TravelMs(o.location, s->unit->base, s->speed_mps);
    s->phase = Phase::kReacting;
    s->next_change_ms = job.depart_ms;
    Reschedule(static_cast<size_t>(s - units.data()));
    if (opt.operate) {
      QueueCommand(o, "acknowledge", job.depart_ms, "");
      QueueCommand(o, "enroute", job.depart_ms, s->unit->id);
      QueueCommand(o, "arrive", job.arrive_ms, "");
      QueueCommand(o, "handled", job.handled_ms, "");
      if (o.lead) {
        QueueCommand(o, "verify_pass",
                job.handled_ms + DrawMs(opt.seed, draw + "verify", opt.verify_min_ms, opt.verify_max_ms), "");
      }
    }
    return "";
  }

  bool OnCancelled(std::string_view case_id, std::string_view department, int64_t now_ms) {
    const int64_t at = Receive(now_ms, 0);
    bool reached = false;
    for (auto it = commands.begin(); it != commands.end();) {
      if (it->second.case_id == case_id && it->second.department == department) {
        it = commands.erase(it);
        reached = true;
      } else {
        ++it;
      }
    }
    for (size_t i = 0; i < units.size(); ++i) {
      UnitState& s = units[i];
      if (s.phase == Phase::kIdle || s.job.case_id != case_id || s.job.department != department) continue;
      reached = true;
      switch (s.phase) {
        case Phase::kReacting:  // it never left
          s.phase = Phase::kIdle;
          s.job = Job{};
          s.next_change_ms = kNever;
          break;
        case Phase::kEnroute:
        case Phase::kOnScene: {
          const LatLon here = PositionAt(s, at);
          s.phase = Phase::kReturning;
          s.job.back_ms = at + TravelMs(here, s.unit->base, s.speed_mps);
          Drive(s, here, s.unit->base, at, s.job.back_ms);
          s.next_change_ms = s.job.back_ms;
          s.next_report_ms = at;  // tell the centre it turned back
          break;
        }
        case Phase::kIdle:
        case Phase::kReturning: break;  // on its way home already
      }
      Reschedule(i);
    }
    if (reached) ++stats.cancelled;
    return reached;
  }
};

UnitFleet::UnitFleet(std::shared_ptr<const CityModel> city, UnitFleetOptions options)
    : impl_(std::make_unique<Impl>(std::move(city), options)) {}

UnitFleet::~UnitFleet() = default;

std::string UnitFleet::OnOrder(const DispatchOrder& order, int64_t now_ms) { return impl_->OnOrder(order, now_ms); }

bool UnitFleet::OnCancelled(std::string_view case_id, std::string_view department, int64_t now_ms) {
  return impl_->OnCancelled(case_id, department, now_ms);
}

std::string UnitFleet::OnDispatchEvent(std::string_view value, int64_t now_ms) {
  const std::optional<DispatchEvent> e = ParseDispatchEvent(value);
  if (!e) return "not_dispatch";
  if (e->kind == DispatchEvent::Kind::kOrder) return OnOrder(e->order, now_ms);
  return OnCancelled(e->order.case_id, e->order.department, std::max(now_ms, e->order.ts_ms)) ? ""
                                                                                              : "cancel_unmatched";
}

void UnitFleet::Advance(int64_t now_ms, std::vector<SimulatedReading>* out) {
  for (SimulatedReading& r : impl_->ready) out->push_back(std::move(r));
  impl_->ready.clear();
  impl_->Step(now_ms, out);
}

int64_t UnitFleet::next_ms() const {
  if (!impl_->ready.empty()) return impl_->ready.front().ts_ms;
  const int64_t unit_due = impl_->due.empty() ? kNever : impl_->due.begin()->first;
  const int64_t command_due = impl_->commands.empty() ? kNever : std::get<0>(impl_->commands.begin()->first);
  return std::min(unit_due, command_due);
}

bool UnitFleet::busy() const {
  if (!impl_->commands.empty()) return true;
  const std::string& commands = impl_->city->config().kafka.topics.commands;
  if (std::any_of(impl_->ready.begin(), impl_->ready.end(),
                  [&](const SimulatedReading& r) { return r.topic == commands; })) {
    return true;
  }
  return std::any_of(impl_->units.begin(), impl_->units.end(),
                     [](const Impl::UnitState& s) { return s.phase != Impl::Phase::kIdle; });
}

int64_t UnitFleet::time_ms() const { return impl_->time_ms; }

std::optional<FleetUnitView> UnitFleet::Find(std::string_view unit_id) const {
  const Impl::UnitState* s = impl_->Lookup(unit_id);
  if (!s) return std::nullopt;
  return FleetUnitView{s->unit, Impl::StatusOf(s->phase), Impl::PositionAt(*s, impl_->time_ms), s->job.case_id};
}

std::vector<FleetUnitView> UnitFleet::All() const {
  std::vector<FleetUnitView> out;
  for (const Impl::UnitState& s : impl_->units) {
    out.push_back({s.unit, Impl::StatusOf(s.phase), Impl::PositionAt(s, impl_->time_ms), s.job.case_id});
  }
  return out;
}

const UnitFleetStats& UnitFleet::stats() const { return impl_->stats; }

}  // namespace cityloop::ingest

#include "dispatch/unit_tracker.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

// Boost 1.74's R-tree reaches a header it deprecated itself, which prints a
// #pragma message in every build; this is Boost's switch to silence it.
#define BOOST_ALLOW_DEPRECATED_HEADERS
#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>

namespace cityloop::dispatch {
namespace {
namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;

constexpr double kPi = 3.14159265358979323846;
constexpr int64_t kMaxEta = std::numeric_limits<int64_t>::max();

// Positions are indexed as points on the unit sphere in 3-D cartesian space
// rather than as lon/lat in a plane. The straight-line (chord) length c
// between two such points and their great-circle distance d are tied by
// d = 2R asin(c / 2), which is exactly the haversine of DistanceMeters: the
// tree's nearest order is DistanceMeters order, and a chord gives a lower
// bound on the distance with no projection error to allow for, anywhere on
// the globe (depots outside the grid, the antimeridian, high latitudes).
using Point = bg::model::point<double, 3, bg::cs::cartesian>;
// The position and (unit index * 2 + 1) for a live position, (* 2 + 0) for the base.
using Value = std::pair<Point, uint32_t>;
using RTree = bgi::rtree<Value, bgi::rstar<16>>;

Point OnSphere(LatLon p) {
  const double lat = p.lat * kPi / 180, lon = p.lon * kPi / 180;
  return Point(std::cos(lat) * std::cos(lon), std::cos(lat) * std::sin(lon), std::sin(lat));
}

bool ValidPosition(LatLon p) {
  return std::isfinite(p.lat) && std::isfinite(p.lon) && std::abs(p.lat) <= 90 && std::abs(p.lon) <= 180;
}

// The sphere DistanceMeters uses, read back from it (a quarter meridian is
// pi/2 radians) so the bound below follows it if its radius ever changes.
double EarthRadiusM() {
  static const double r = DistanceMeters({0, 0}, {90, 0}) / (kPi / 2);
  return r;
}

// No DistanceMeters from a point at this chord length is shorter than this.
// The slack (1e-9 relative plus a micrometre) covers rounding in the chord
// and in the haversine, both orders of magnitude smaller.
double LowerBoundMeters(double chord) {
  const double d = 2 * EarthRadiusM() * std::asin(std::min(1.0, chord / 2));
  return std::max(0.0, d * (1 - 1e-9) - 1e-6);
}

// Every ETA goes through here: it does not decrease with d nor increase with
// mps, so an ETA from a lower-bound distance and the fastest speed bounds the
// ETA of every unit further away.
int64_t EtaFromMeters(double d, double mps) {
  const double ms = d / mps * 1000.0;
  if (!(ms < 9.0e18)) return kMaxEta;  // also NaN
  return std::llround(ms);
}

bool Better(const UnitRecommendation& a, const UnitRecommendation& b) {
  return a.eta_ms != b.eta_ms ? a.eta_ms < b.eta_ms : a.unit_id < b.unit_id;
}
}  // namespace

struct UnitTracker::Trees {
  struct Department {
    std::string id;
    RTree tree;  // every unit's base, plus its live position when it has one
    double max_speed_mps = 0;
  };
  std::vector<Department> departments;
  std::unordered_map<std::string, uint32_t, IdHash, std::equal_to<>> by_id;
};

UnitTracker::UnitTracker(std::shared_ptr<const CityModel> city)
    : city_(std::move(city)), trees_(std::make_unique<Trees>()) {
  const std::vector<Unit>& units = city_->config().city.units;
  states_.resize(units.size());
  std::vector<std::vector<Value>> bases;
  for (uint32_t i = 0; i < units.size(); ++i) {
    const Unit& u = units[i];
    State& s = states_[i];
    s.view.unit = &u;
    s.view.position = u.base;
    auto [d, added] = trees_->by_id.try_emplace(u.department, static_cast<uint32_t>(trees_->departments.size()));
    if (added) {
      trees_->departments.push_back({u.department, RTree(), 0});
      bases.emplace_back();
    }
    s.department = d->second;
    Trees::Department& dept = trees_->departments[d->second];
    dept.max_speed_mps = std::max(dept.max_speed_mps, SpeedMps(u));
    // A base that is no position (an unvalidated config) can only be found
    // through a live position.
    if (ValidPosition(u.base)) bases[d->second].emplace_back(OnSphere(u.base), i * 2);
    by_id_.try_emplace(u.id, i);  // ids are unique in a validated config; else the first wins
  }
  // The range constructor packs each tree; live positions come and go later.
  for (size_t d = 0; d < bases.size(); ++d) trees_->departments[d].tree = RTree(bases[d].begin(), bases[d].end());
}

UnitTracker::~UnitTracker() = default;
UnitTracker::UnitTracker(UnitTracker&&) = default;
UnitTracker& UnitTracker::operator=(UnitTracker&&) = default;

UnitTracker::State* UnitTracker::Lookup(std::string_view unit_id) {
  auto it = by_id_.find(unit_id);
  return it == by_id_.end() ? nullptr : &states_[it->second];
}

const UnitTracker::State* UnitTracker::Lookup(std::string_view unit_id) const {
  auto it = by_id_.find(unit_id);
  return it == by_id_.end() ? nullptr : &states_[it->second];
}

double UnitTracker::SpeedMps(const Unit& u) const {
  const DispatchOptions& options = city_->config().dispatch;
  auto usable = [](double kmh) { return std::isfinite(kmh) && kmh > 0; };
  double kmh = options.default_speed_kmh;
  if (!usable(kmh)) kmh = DispatchOptions{}.default_speed_kmh;
  if (!u.type.empty()) {
    auto it = options.speed_kmh.find(u.type);
    if (it != options.speed_kmh.end() && usable(it->second)) kmh = it->second;
  }
  return kmh / 3.6;
}

bool UnitTracker::LiveTrusted(const State& s, int64_t now_ms) const {
  if (!s.live) return false;
  int64_t age = 0;
  // Only absurd times overflow; the sign still says which side is later.
  if (__builtin_sub_overflow(now_ms, s.view.position_ms, &age)) return now_ms < s.view.position_ms;
  return age <= city_->config().dispatch.position_max_age_ms;
}

LatLon UnitTracker::PositionAt(const State& s, int64_t now_ms) const {
  return LiveTrusted(s, now_ms) ? s.view.position : s.view.unit->base;
}

void UnitTracker::SetLive(uint32_t index, bool live, LatLon position, int64_t position_ms) {
  State& s = states_[index];
  RTree& tree = trees_->departments[s.department].tree;
  const bool moved = live != s.live || !(position == s.view.position);
  if (moved && s.live) tree.remove(Value(OnSphere(s.view.position), index * 2 + 1));
  if (moved && live) tree.insert(Value(OnSphere(position), index * 2 + 1));
  s.live = live;
  s.view.position = live ? position : s.view.unit->base;
  s.view.position_ms = live ? position_ms : 0;
}

void UnitTracker::MarkDirty(uint32_t index) {
  if (states_[index].dirty) return;
  states_[index].dirty = true;
  dirty_.push_back(index);
}

std::string UnitTracker::Apply(const UnitUpdate& u) {
  State* s = Lookup(u.unit_id);
  if (!s) return "unknown_unit";
  if (u.department != s->view.unit->department) return "department_mismatch";
  if (u.ts_ms < s->newest_ms) return "stale";
  if (u.has_position && !ValidPosition(u.position)) return "bad_position";
  const auto index = static_cast<uint32_t>(s - states_.data());
  s->newest_ms = u.ts_ms;
  s->view.status = u.status;
  if (u.has_position) SetLive(index, true, u.position, u.ts_ms);
  MarkDirty(index);
  return "";
}

std::vector<UnitRecommendation> UnitTracker::Recommend(std::string_view department, const CellInfo& cell, LatLon to,
                                                       int64_t now_ms, int alternatives) const {
  std::vector<UnitRecommendation> out;
  auto d = trees_->by_id.find(department);
  if (d == trees_->by_id.end() || !ValidPosition(to)) return out;
  const Trees::Department& dept = trees_->departments[d->second];
  if (dept.tree.empty()) return out;
  const size_t want = 1 + static_cast<size_t>(std::max(0, alternatives));
  const std::string* district = cell.district ? &cell.district->id : nullptr;
  const Point q = OnSphere(to);
  // Entries come nearest first. `out` stays sorted by (eta, id) and at most
  // `want` long; once it is full, a unit further than the next entry cannot
  // beat its last even at the department's top speed, so the search stops.
  const auto k = static_cast<unsigned>(dept.tree.size());
  for (auto it = dept.tree.qbegin(bgi::nearest(q, k)); it != dept.tree.qend(); ++it) {
    if (out.size() == want &&
        EtaFromMeters(LowerBoundMeters(bg::distance(q, it->first)), dept.max_speed_mps) > out.back().eta_ms) {
      break;
    }
    const State& s = states_[it->second / 2];
    // A unit has two entries while it has a live position: skip the one not in force at now_ms.
    if ((it->second % 2 == 1) != LiveTrusted(s, now_ms)) continue;
    if (s.view.status != UnitStatus::kAvailable || !s.view.assigned_case.empty()) continue;
    const std::vector<std::string>& area = s.view.unit->districts;
    if (!area.empty() && (!district || std::find(area.begin(), area.end(), *district) == area.end())) continue;
    UnitRecommendation r;
    r.unit_id = s.view.unit->id;
    r.distance_m = DistanceMeters(PositionAt(s, now_ms), to);
    r.eta_ms = EtaFromMeters(r.distance_m, SpeedMps(*s.view.unit));
    if (out.size() == want && !Better(r, out.back())) continue;
    out.insert(std::upper_bound(out.begin(), out.end(), r, Better), std::move(r));
    if (out.size() > want) out.pop_back();
  }
  return out;
}

int64_t UnitTracker::EtaMs(std::string_view unit_id, LatLon to, int64_t now_ms) const {
  const State* s = Lookup(unit_id);
  if (!s) return -1;
  return EtaFromMeters(DistanceMeters(PositionAt(*s, now_ms), to), SpeedMps(*s->view.unit));
}

void UnitTracker::Assign(std::string_view unit_id, std::string_view case_id) {
  State* s = Lookup(unit_id);
  if (!s || s->view.assigned_case == case_id) return;
  s->view.assigned_case = std::string(case_id);
  MarkDirty(static_cast<uint32_t>(s - states_.data()));
}

void UnitTracker::Release(std::string_view unit_id, std::string_view case_id) {
  State* s = Lookup(unit_id);
  if (!s || s->view.assigned_case.empty() || s->view.assigned_case != case_id) return;
  s->view.assigned_case.clear();
  MarkDirty(static_cast<uint32_t>(s - states_.data()));
}

const UnitView* UnitTracker::Find(std::string_view unit_id) const {
  const State* s = Lookup(unit_id);
  return s ? &s->view : nullptr;
}

std::vector<UnitView> UnitTracker::All() const {
  std::vector<UnitView> out;
  out.reserve(states_.size());
  for (const State& s : states_) out.push_back(s.view);
  return out;
}

// Value: {"status", "ts" (newest applied update), "lat", "lon", "position_ts"
// (the live position, if any), "assigned_case" (if any)}.
void UnitTracker::TakeDirty(std::vector<std::pair<std::string, std::string>>* out) {
  for (uint32_t index : dirty_) {
    State& s = states_[index];
    s.dirty = false;
    nlohmann::json j = {{"status", UnitStatusName(s.view.status)}};
    if (s.newest_ms != std::numeric_limits<int64_t>::min()) j["ts"] = s.newest_ms;
    if (s.live) {
      j["lat"] = s.view.position.lat;
      j["lon"] = s.view.position.lon;
      j["position_ts"] = s.view.position_ms;
    }
    if (!s.view.assigned_case.empty()) j["assigned_case"] = s.view.assigned_case;
    out->emplace_back(std::string(kStatePrefix) + s.view.unit->id, j.dump());
  }
  dirty_.clear();
}

Status UnitTracker::Restore(std::string_view key, std::string_view value) {
  if (key.substr(0, kStatePrefix.size()) != kStatePrefix) {
    return Status::InvalidArgument("not a unit state key: " + std::string(key));
  }
  const std::string_view id = key.substr(kStatePrefix.size());
  State* s = Lookup(id);
  if (!s) return Status::Ok();  // the unit was removed from the config while the engine was down
  auto bad = [&](const char* why) { return Status::DataLoss("unit state " + std::string(id) + ": " + why); };
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad("not a JSON object");
  auto status = j.contains("status") && j["status"].is_string()
                    ? ParseUnitStatus(j["status"].get<std::string>())
                    : std::nullopt;
  if (!status) return bad("no valid status");
  int64_t newest = std::numeric_limits<int64_t>::min();
  if (j.contains("ts")) {
    if (!j["ts"].is_number_integer()) return bad("ts is no integer");
    newest = j["ts"].get<int64_t>();
  }
  const bool live = j.contains("lat") || j.contains("lon") || j.contains("position_ts");
  LatLon position;
  int64_t position_ms = 0;
  if (live) {
    if (!j.contains("lat") || !j["lat"].is_number() || !j.contains("lon") || !j["lon"].is_number() ||
        !j.contains("position_ts") || !j["position_ts"].is_number_integer()) {
      return bad("incomplete position");
    }
    position = {j["lat"].get<double>(), j["lon"].get<double>()};
    position_ms = j["position_ts"].get<int64_t>();
    if (!ValidPosition(position)) return bad("position out of range");
  }
  std::string assigned;
  if (j.contains("assigned_case")) {
    if (!j["assigned_case"].is_string()) return bad("assigned_case is no string");
    assigned = j["assigned_case"].get<std::string>();
  }
  s->view.status = *status;
  s->newest_ms = newest;
  s->view.assigned_case = std::move(assigned);
  SetLive(static_cast<uint32_t>(s - states_.data()), live, position, position_ms);
  return Status::Ok();
}

size_t UnitTracker::MemoryBytes() const {
  size_t n = sizeof(*this) + sizeof(Trees) + states_.capacity() * sizeof(State) + dirty_.capacity() * sizeof(uint32_t);
  for (const State& s : states_) {
    if (s.view.assigned_case.capacity() > 15) n += s.view.assigned_case.capacity() + 1;  // beyond the SSO buffer
  }
  // Hash nodes: the key, the value, the next pointer and the cached hash.
  const size_t node = sizeof(std::string) + 2 * sizeof(void*) + sizeof(uint32_t);
  n += by_id_.bucket_count() * sizeof(void*) + by_id_.size() * node;
  for (const auto& [id, index] : by_id_) n += id.capacity() > 15 ? id.capacity() + 1 : 0;
  n += trees_->departments.capacity() * sizeof(Trees::Department) + trees_->by_id.bucket_count() * sizeof(void*) +
       trees_->by_id.size() * node;
  // R*-tree nodes hold up to 16 entries, filled 30-100 %: count twice the values.
  for (const Trees::Department& d : trees_->departments) n += 2 * d.tree.size() * sizeof(Value);
  return n;
}

}  // namespace cityloop::dispatch

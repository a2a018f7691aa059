// UnitTracker: the live state of every configured field unit (city.units:
// status and position) and the nearest-eligible-unit recommendation of
// DOMAIN.md "Routing". A unit is eligible for a dispatch when it belongs to
// the responsible department, reports `available`, is not assigned to a case
// by the engine, and its service area (Unit::districts, empty = whole city)
// covers the case cell's district. Units are ranked by ETA: the great-circle
// distance (DistanceMeters) from the unit's position over its type's speed
// (dispatch.speeds.<type>, else dispatch.default_speed). A live position
// older than dispatch.position_max_age at the time asked about is not
// trusted and the unit's base stands in for it. A unit that never reported
// counts as available at its base.
//
// Updates apply in event-time order per unit (an older one than the newest
// seen is ignored), so a replay of the same log gives the same state.
// Owned by the CaseEngine and called by its one engine thread only; not
// thread-safe. Holds the CityModel it was built from: Unit pointers in
// UnitView point into its config.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/geo.h"
#include "core/model.h"
#include "core/status.h"

namespace cityloop::dispatch {

struct UnitRecommendation {
  std::string unit_id;
  double distance_m = 0;  // DistanceMeters from the position used to the target
  int64_t eta_ms = 0;     // distance_m over the unit's speed, rounded to the millisecond
};

// One unit as the API shows it.
struct UnitView {
  const Unit* unit = nullptr;  // the config entry
  UnitStatus status = UnitStatus::kAvailable;
  // The newest live position, else the base. The age rule is not applied
  // here (there is no "now"): position_ms tells how old it is.
  LatLon position;
  int64_t position_ms = 0;     // event time of the live position (0: base)
  std::string assigned_case;   // case the engine assigned it to ("" = none)
};

class UnitTracker {
 public:
  explicit UnitTracker(std::shared_ptr<const CityModel> city);
  ~UnitTracker();
  UnitTracker(UnitTracker&&);
  UnitTracker& operator=(UnitTracker&&);
  UnitTracker(const UnitTracker&) = delete;
  UnitTracker& operator=(const UnitTracker&) = delete;

  // Applies one update; "" = applied. Otherwise a short reason and nothing
  // changes: "unknown_unit" (not in city.units), "department_mismatch" (the
  // update's department is not the configured one), "stale" (older event
  // time than the unit's newest applied update; an equal time applies, in
  // log order), "bad_position" (a position that is no finite lat/lon).
  // An update without a position changes the status only.
  std::string Apply(const UnitUpdate& u);

  // The eligible units of department for a case in cell at `to`, by ETA
  // then unit id, at most 1 + alternatives (alternatives < 0 counts as 0).
  // A cell without a district is covered by whole-city units only.
  std::vector<UnitRecommendation> Recommend(std::string_view department, const CellInfo& cell, LatLon to,
                                            int64_t now_ms, int alternatives) const;
  // ETA of the unit to `to` from the position trusted at now_ms, whatever
  // its status; -1 for an unknown unit.
  int64_t EtaMs(std::string_view unit_id, LatLon to, int64_t now_ms) const;
  // dispatch.speeds.<type> (else dispatch.default_speed) in m/s. A speed
  // that is not a positive number falls back to the default, then to the
  // built-in default of DispatchOptions.
  double SpeedMps(const Unit& u) const;

  // The engine marks a unit busy with a case; Recommend skips units with an
  // assigned case even while their reported status is still available.
  // Assign replaces an earlier assignment; Release clears it only if the
  // unit is still assigned to case_id. Unknown (or empty) unit ids are ignored.
  void Assign(std::string_view unit_id, std::string_view case_id);
  void Release(std::string_view unit_id, std::string_view case_id);

  const UnitView* Find(std::string_view unit_id) const;  // null: unknown
  std::vector<UnitView> All() const;                     // config order

  // Persistence. TakeDirty appends (key "unit/<id>", JSON value) for every
  // unit changed (Apply, Assign, Release) since the last call, in the order
  // they first changed. Restore puts one back (before any update is
  // applied): DataLoss for a value it cannot read, InvalidArgument for a key
  // without the prefix; state of a unit no longer configured is skipped (Ok).
  void TakeDirty(std::vector<std::pair<std::string, std::string>>* out);
  Status Restore(std::string_view key, std::string_view value);
  static constexpr std::string_view kStatePrefix = "unit/";

  size_t MemoryBytes() const;  // approximate heap and object bytes

 private:
  struct Trees;  // the per-department R-trees, defined in unit_tracker.cc

  struct State {
    UnitView view;
    uint32_t department = 0;  // index into Trees::departments
    bool live = false;        // view.position is a reported one
    bool dirty = false;
    int64_t newest_ms = std::numeric_limits<int64_t>::min();  // newest applied update (min: none yet)
  };

  struct IdHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  State* Lookup(std::string_view unit_id);
  const State* Lookup(std::string_view unit_id) const;
  // The position trusted at now_ms: the live one unless older than position_max_age.
  bool LiveTrusted(const State& s, int64_t now_ms) const;
  LatLon PositionAt(const State& s, int64_t now_ms) const;
  // Moves the unit's live position (and its tree entry); live = false drops it.
  void SetLive(uint32_t index, bool live, LatLon position, int64_t position_ms);
  void MarkDirty(uint32_t index);

  std::shared_ptr<const CityModel> city_;
  std::vector<State> states_;  // config order; never resized after construction
  std::unordered_map<std::string, uint32_t, IdHash, std::equal_to<>> by_id_;
  std::vector<uint32_t> dirty_;
  std::unique_ptr<Trees> trees_;
};

}  // namespace cityloop::dispatch

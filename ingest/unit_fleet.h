// UnitFleet: the simulated field units of the city (city.units) and,
// optionally, the departments' operators who work the cases they are sent to.
// A model in city time only: no clock is read, the caller passes time in.
// Deterministic for a seed: every random draw (reaction, handling, the
// inspector's delay, the report phase) is a hash of the seed and what it is
// for (unit, case, dispatch), not a stream, so it does not depend on the
// order orders arrive in.
//
// Each unit starts `available` at its base and reports
// (`city.units` JSON per CONTRACT.md, key unit id) every report_interval
// while it stands (available, on scene) and every moving_interval while it
// drives (enroute, returning), plus once on every change of status. Given an
// order (city.dispatch.order) naming it as the recommended unit while it is
// available, the unit:
//   reacts for a seeded reaction_min..max, then leaves (`enroute`);
//   drives in a straight line (lat/lon interpolated; time = DistanceMeters
//   over its speed, UnitSpeedMps) to the case location, `onscene` on arrival;
//   handles for a seeded handling_min..max, then drives back (`returning`);
//   is `available` again at its base.
// A cancellation (city.dispatch.cancelled for the case and department)
// before it leaves keeps it home; on the way or on scene it turns back from
// where it is.
//
// With `operate`, the fleet also sends (cityloop.commands JSON, key case id)
// what the department and the centre would: acknowledge when the unit
// reacts, enroute (with unit_id) when it leaves, arrive on arrival, handled
// when done, and for a lead task an inspector's verify_pass a seeded
// verify_min..max later. Actor "sim-op-<department>" (the inspector
// "sim-inspector"), role operator, command ids "sim-<case_id>-<action>"
// ("sim-<case_id>-<n>-<action>" for the case's n-th dispatch, n > 1, so a
// reopened or reassigned case gets new ids). Every command names the task's
// department. A cancellation drops the job's commands not sent yet.
//
// Output (Advance) is in time order; at one instant unit reports come before
// commands, and commands of one job in workflow order.
//
// Owned by one thread (the simulator's, or a test's); not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/city.h"
#include "core/geo.h"
#include "core/model.h"
#include "ingest/simulator.h"

namespace cityloop::ingest {

struct UnitFleetOptions {
  uint64_t seed = 1;
  int64_t start_ms = 0;                   // city time of the first reports; older orders are ignored
  int64_t report_interval_ms = 60000;     // standing units (available, onscene)
  int64_t moving_interval_ms = 10000;     // driving units (enroute, returning)
  int64_t reaction_min_ms = 60000;        // order received -> acknowledged and leaving
  int64_t reaction_max_ms = 180000;
  int64_t handling_min_ms = 5 * 60000;    // on scene -> handled
  int64_t handling_max_ms = 20 * 60000;
  bool operate = false;                   // also produce the operators' commands
  int64_t verify_min_ms = 2 * 60000;      // handled -> the inspector's verify_pass
  int64_t verify_max_ms = 5 * 60000;
};

// What the fleet reads of a cityloop.dispatch event. Orders fill every
// field; a cancellation only case_id, department and ts_ms.
struct DispatchOrder {
  std::string case_id;     // data.case_id
  std::string department;  // data.department
  std::string unit_id;     // data.recommended_unit.unit_id; empty: none recommended
  LatLon location;         // data.location
  int64_t ts_ms = 0;       // the event's time
  bool lead = true;        // data.task == "lead"
  int64_t dispatch = 1;    // data.dispatch: the case's n-th dispatch
};

struct DispatchEvent {
  enum class Kind { kOrder, kCancelled };
  Kind kind = Kind::kOrder;
  DispatchOrder order;
};

// A cityloop.dispatch CloudEvent (city.dispatch.order or .cancelled);
// nullopt when it is no JSON object, another type, or lacks case_id,
// department or a valid time (an order also a location).
std::optional<DispatchEvent> ParseDispatchEvent(std::string_view value);

// A unit's straight-line speed in m/s: dispatch.speeds.<type>, else
// dispatch.default_speed, else DispatchOptions' default (the rule of
// dispatch::UnitTracker::SpeedMps, so the engine's ETAs are the fleet's
// travel times).
double UnitSpeedMps(const Unit& unit, const DispatchOptions& options);

// One unit as the fleet has it at its time (time_ms()).
struct FleetUnitView {
  const Unit* unit = nullptr;  // the config entry
  UnitStatus status = UnitStatus::kAvailable;
  LatLon position;
  std::string case_id;         // the job it is on ("" = none)
};

struct UnitFleetStats {
  int64_t orders_taken = 0;
  int64_t orders_ignored = 0;  // no unit, unknown unit, busy, duplicate, before the start
  int64_t cancelled = 0;       // cancellations that reached a job
  int64_t reports = 0;
  int64_t commands = 0;
};

class UnitFleet {
 public:
  UnitFleet(std::shared_ptr<const CityModel> city, UnitFleetOptions options);
  ~UnitFleet();
  UnitFleet(const UnitFleet&) = delete;
  UnitFleet& operator=(const UnitFleet&) = delete;

  // An order received at city time now_ms. It takes effect at
  // max(now_ms, its own time, time_ms()); what was due before that is kept
  // for the next Advance. Returns "" when the recommended unit took the job,
  // else why not: "no_unit" (none recommended), "unknown_unit",
  // "department_mismatch", "bad_location", "before_start" (older than
  // options.start_ms: another run's), "duplicate" (this dispatch of the case
  // was taken already), "busy" (the unit is on another job).
  std::string OnOrder(const DispatchOrder& order, int64_t now_ms);
  // A cancellation of the case's task of department, received at now_ms
  // (effective as for OnOrder). Returns whether it reached a job (a unit on
  // it, or commands still to send).
  bool OnCancelled(std::string_view case_id, std::string_view department, int64_t now_ms);
  // A cityloop.dispatch record value: an order or a cancellation, as above.
  // Returns "" when it was applied, "cancel_unmatched" for a cancellation
  // that reached nothing, "not_dispatch" for a value ParseDispatchEvent
  // refuses, else OnOrder's reason.
  std::string OnDispatchEvent(std::string_view value, int64_t now_ms);

  // Appends every unit report and command due at or before now_ms, in time
  // order, and moves the fleet's time there.
  void Advance(int64_t now_ms, std::vector<SimulatedReading>* out);
  // City time of the next record due (INT64_MAX: none; standing units always
  // have a next report).
  int64_t next_ms() const;
  // Whether any unit is on a job or a command is still to be handed out: a
  // run that ends should advance until this is false (standing units'
  // reports do not count).
  bool busy() const;
  int64_t time_ms() const;  // everything up to here has been handed out (or is due at the next Advance)

  std::optional<FleetUnitView> Find(std::string_view unit_id) const;
  std::vector<FleetUnitView> All() const;  // config order
  const UnitFleetStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest

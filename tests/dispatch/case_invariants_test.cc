// Randomised tests of CaseEngine: seeded random signals, commands, watermark
// steps, recoveries and unit updates, with invariants checked after every
// step; the KPIs folded again from the audit log; and determinism (the same
// input sequence gives byte-identical effects). Time is event time only:
// every instant derives from kT0 and the seeded generator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/case_json.h"
#include "dispatch/case_engine.h"
#include "tests/support/test_city.h"

namespace cityloop::dispatch {
namespace {

using nlohmann::json;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestCity;
using cityloop::testing::TestConfig;

constexpr int64_t kT0 = 1764316800000;  // Friday 2025-11-28 16:00 local
constexpr int64_t kMin = 60000;
constexpr int64_t kHour = 60 * kMin;
constexpr int kUtcOffset = 480;

Config InvariantConfig() {
  Config c = TestConfig();
  auto wall = [](int64_t minutes) { return SlaLimit{SlaLimit::Basis::kWall, minutes * kMin}; };
  c.sla.by_priority[SlaStage::kArrive] = {{Priority::kUrgent, wall(20)}, {Priority::kHigh, wall(45)},
                                          {Priority::kNormal, wall(90)}};
  c.sla.by_priority[SlaStage::kVerify] = {{Priority::kUrgent, wall(60)}, {Priority::kHigh, wall(120)},
                                          {Priority::kNormal, wall(240)}};
  c.sla.by_priority[SlaStage::kClose] = {{Priority::kUrgent, wall(8 * 60)}, {Priority::kHigh, wall(24 * 60)},
                                         {Priority::kNormal, wall(48 * 60)}};
  // Waterlogging handles on working time (4 working hours); the rest on wall time.
  c.sla.limits = {{"waterlogging", std::nullopt, SlaStage::kHandle, {SlaLimit::Basis::kWorkingMs, 4 * kHour}},
                  {"", Priority::kNormal, SlaStage::kAcknowledge, {SlaLimit::Basis::kWorkingDays, 1}}};
  c.escalation.levels = {{"reminder", SlaStage::kHandle, -30 * kMin, "department"},
                         {"supervision", SlaStage::kHandle, 0, "supervisor"},
                         {"escalation", SlaStage::kHandle, kHour, "district_leader"},
                         {"close_supervision", SlaStage::kClose, 0, "supervisor"}};
  c.city.catalogue.push_back({"fire_candidate", "Fire candidate", "0501", "city_management", Priority::kHigh, true});
  c.city.units.push_back({"drain-3", "drainage", "Drain 3", TestCellCenter(2, 1), {}});
  c.city.units.push_back({"cm-1", "city_management", "Patrol 1", TestCellCenter(1, 2), {}});
  c.dispatch.confirm_channels = {"app"};
  c.dispatch.relapse_within_ms = 6 * kHour;
  return c;
}

const char* const kDepartments[] = {"drainage", "gas", "city_management", "parks"};
const char* const kUnits[] = {"drain-1", "drain-2", "drain-3", "gas-u1", "cm-1", "nobody"};
const CaseAction kAllActions[] = {
    CaseAction::kAcknowledge, CaseAction::kEnroute,  CaseAction::kArrive,     CaseAction::kHandled,
    CaseAction::kVerifyPass,  CaseAction::kVerifyFail, CaseAction::kClose,    CaseAction::kReopen,
    CaseAction::kReturn,      CaseAction::kReassign, CaseAction::kAssist,     CaseAction::kExtend,
    CaseAction::kSuspend,     CaseAction::kResume,   CaseAction::kDefer,      CaseAction::kInvalidate,
    CaseAction::kMerge,
};
static_assert(std::size(kAllActions) == kCaseActionCount);

// ---------------------------------------------------------------- the workflow, stated independently
//
// From DOMAIN.md "The case workflow" and the rules of case_workflow.cc:
// task actions run in the dispatch phase; 退单 may leave the case
// `returned` (no active lead) until 改派; 核实 registers and dispatches a
// `detected` case; 核查 (verify_pass/fail) and close act on handled work;
// 挂账/缓办 park any open case past 核实 and resume it where it was; 重办
// reopens a closed case and dispatches it again; 作废 and merge end any open case.

bool InDispatchPhase(CaseStatus s) {
  return s == CaseStatus::kDispatched || s == CaseStatus::kAcknowledged || s == CaseStatus::kEnroute ||
         s == CaseStatus::kOnScene;
}
bool IsOpen(CaseStatus s) { return s != CaseStatus::kClosed && s != CaseStatus::kInvalid && s != CaseStatus::kMerged; }
bool Parkable(CaseStatus s) {
  return IsOpen(s) && s != CaseStatus::kDetected && s != CaseStatus::kSuspended && s != CaseStatus::kDeferred;
}
bool HandledPhase(CaseStatus s) { return s == CaseStatus::kHandled || s == CaseStatus::kVerifying; }

bool AllowedTransition(CaseAction a, const Case& before, CaseStatus to) {
  const CaseStatus from = before.status;
  switch (a) {
    case CaseAction::kAcknowledge:
    case CaseAction::kEnroute:
    case CaseAction::kArrive:
      return InDispatchPhase(from) && InDispatchPhase(to);
    case CaseAction::kHandled:
      return InDispatchPhase(from) && (InDispatchPhase(to) || HandledPhase(to));
    case CaseAction::kReturn:
      return InDispatchPhase(from) && (InDispatchPhase(to) || to == CaseStatus::kReturned || HandledPhase(to));
    case CaseAction::kReassign:
      return (InDispatchPhase(from) || from == CaseStatus::kReturned || from == CaseStatus::kRegistered) &&
             to == CaseStatus::kDispatched;
    case CaseAction::kAssist:
    case CaseAction::kExtend:
      return InDispatchPhase(from) && to == from;
    case CaseAction::kSuspend:
      return Parkable(from) && to == CaseStatus::kSuspended;
    case CaseAction::kDefer:
      return Parkable(from) && to == CaseStatus::kDeferred;
    case CaseAction::kResume:
      return (from == CaseStatus::kSuspended || from == CaseStatus::kDeferred) && Parkable(to) &&
             to == before.resume_to;
    case CaseAction::kVerifyPass:
      return (from == CaseStatus::kDetected && to == CaseStatus::kDispatched) ||
             (HandledPhase(from) && to == CaseStatus::kClosed);
    case CaseAction::kVerifyFail:
      return HandledPhase(from) && to == CaseStatus::kAcknowledged;
    case CaseAction::kClose:
      return HandledPhase(from) && to == CaseStatus::kClosed;
    case CaseAction::kReopen:
      return from == CaseStatus::kClosed && to == CaseStatus::kDispatched;
    case CaseAction::kInvalidate:
      return IsOpen(from) && to == CaseStatus::kInvalid;
    case CaseAction::kMerge:
      return IsOpen(from) && to == CaseStatus::kMerged;
  }
  return false;
}

int Rank(Role r) {
  switch (r) {
    case Role::kViewer: return 0;
    case Role::kOperator: return 1;
    case Role::kSupervisor: return 2;
    case Role::kAdmin: return 3;
    case Role::kSystem: return 4;
  }
  return 0;
}

// The least role that may apply action a to the case as it was.
Role RequiredRole(CaseAction a, const Case& before) {
  switch (a) {
    case CaseAction::kExtend: return before.extensions == 0 ? Role::kOperator : Role::kSupervisor;
    case CaseAction::kSuspend:
    case CaseAction::kDefer:
    case CaseAction::kResume:
    case CaseAction::kClose:
    case CaseAction::kReopen: return Role::kSupervisor;
    case CaseAction::kInvalidate: return before.status == CaseStatus::kDetected ? Role::kOperator : Role::kSupervisor;
    default: return Role::kOperator;
  }
}

// ---------------------------------------------------------------- random input

struct Input {
  enum Kind { kSignal, kCommand, kAdvance, kRecovery, kUnit } kind = kAdvance;
  Signal signal;
  Command command;
  int64_t watermark = 0;
  Recovery recovery;
  UnitUpdate unit;
};

std::string Describe(const Input& in) {
  switch (in.kind) {
    case Input::kSignal:
      return "signal " + in.signal.id + " " + in.signal.category + " cell " + std::to_string(in.signal.cell) +
             " at " + std::to_string(in.signal.fired_ms - kT0) + (in.signal.follows.empty() ? "" : " follows " + in.signal.follows);
    case Input::kCommand:
      return "command " + in.command.command_id + " " + CaseActionName(in.command.action) + " by " +
             RoleName(in.command.role) + " on " + in.command.case_id + " dept '" + in.command.department +
             "' into '" + in.command.into + "' at " + std::to_string(in.command.ts_ms - kT0);
    case Input::kAdvance: return "advance to " + std::to_string(in.watermark - kT0);
    case Input::kRecovery:
      return "recovery " + in.recovery.rule_id + "/" + in.recovery.device_id + " at " +
             std::to_string(in.recovery.ts_ms - kT0);
    case Input::kUnit: return "unit " + in.unit.unit_id + " at " + std::to_string(in.unit.ts_ms - kT0);
  }
  return "?";
}

struct Mix {
  double signal = 0.2, command = 0.55, advance = 0.15, recovery = 0.07;  // the rest: unit updates
  int64_t max_step_ms = 4 * kMin;
  double smart = 0.6;  // share of commands that try to move their case on
};

// Draws inputs from a seeded generator. It looks at the engine only to pick
// plausible next actions; the inputs it returns are plain values, so a
// recorded sequence replays on another engine unchanged.
class Generator {
 public:
  Generator(uint32_t seed, Mix mix) : rng_(seed), mix_(mix) {}

  Input Next(const CaseEngine& engine) {
    now_ += Uniform(0, mix_.max_step_ms);
    if (Chance(0.005)) now_ += Uniform(kHour, 12 * kHour);
    const double p = U01();
    if (p < mix_.signal) return SignalInput();
    if (p < mix_.signal + mix_.command && !ids_.empty()) return CommandInput(engine);
    if (p < mix_.signal + mix_.command + mix_.advance) {
      Input in;
      in.kind = Input::kAdvance;
      in.watermark = now_ - Uniform(0, 10 * kMin);
      return in;
    }
    if (p < mix_.signal + mix_.command + mix_.advance + mix_.recovery) return RecoveryInput();
    return UnitInput();
  }
  // The engine opened these cases: candidates for commands from now on.
  void Learn(const Effects& fx) { ids_.insert(ids_.end(), fx.opened_cases.begin(), fx.opened_cases.end()); }
  int64_t now() const { return now_; }

 private:
  int64_t Uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  double U01() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  bool Chance(double p) { return U01() < p; }
  template <typename T, size_t N>
  const T& Pick(const T (&a)[N]) {
    return a[static_cast<size_t>(Uniform(0, static_cast<int64_t>(N) - 1))];
  }

  Input SignalInput() {
    Input in;
    in.kind = Input::kSignal;
    if (!recent_signals_.empty() && Chance(0.06)) {  // the same signal again
      in.signal = recent_signals_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(recent_signals_.size()) - 1))];
      return in;
    }
    Signal& s = in.signal;
    const int cell = static_cast<int>(Uniform(0, 15));
    s.cell = cell;
    s.position = TestCellCenter(cell / 4, cell % 4);
    s.position.lat += static_cast<double>(Uniform(-12, 12)) * 1e-4;
    s.position.lon += static_cast<double>(Uniform(-12, 12)) * 1e-4;
    s.fired_ms = now_ - Uniform(0, 2 * kMin);
    s.ts_ms = s.fired_ms - Uniform(0, 5 * kMin);
    s.ingest_ms = now_;
    s.value = 0.5;
    s.threshold = 0.3;
    const int64_t kind = Uniform(0, 99);
    const std::string n = std::to_string(++signals_);
    if (kind < 40) {
      s.source = SignalSource::kSensor;
      s.category = "waterlogging";
      s.priority = Priority::kHigh;
      s.rule_id = "road-waterlogging";
      s.device_id = "wl-" + std::to_string(Uniform(1, 4));
      s.sensor_kind = "water_level";
    } else if (kind < 55) {
      s.source = SignalSource::kSensor;
      s.category = "gas_leak";
      s.priority = Priority::kUrgent;
      s.rule_id = "gas-high";
      s.device_id = "gas-" + std::to_string(Uniform(1, 2));
      s.sensor_kind = "gas_ppm";
    } else if (kind < 65) {
      s.source = SignalSource::kCamera;
      s.category = "fire_candidate";
      s.priority = Priority::kHigh;
      s.rule_id = "cam-fire";
      s.device_id = "cam-031";
    } else if (kind < 90) {
      static const char* const kChannels[] = {"app", "hotline12345", "citizen", "patrol"};
      s.source = SignalSource::kReport;
      s.category = kind < 75 ? "graffiti" : "waterlogging";
      s.priority = kind < 75 ? Priority::kNormal : Priority::kHigh;
      s.rule_id = "report";
      s.attributes = {{"channel", Pick(kChannels)}, {"report_id", "r-" + n}};
    } else if (kind < 95 && recent_signals_.size() >= 2) {
      // A correlation of two recent signals that absorbs their cases.
      const Signal& a = recent_signals_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(recent_signals_.size()) - 1))];
      const Signal& b = recent_signals_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(recent_signals_.size()) - 1))];
      s.source = SignalSource::kCorrelation;
      s.category = a.category;
      s.cell = a.cell;
      s.position = a.position;
      s.priority = Priority::kUrgent;
      s.rule_id = "combo";
      s.device_id = a.device_id;
      s.members = {a.id, b.id};
      s.absorb_members = true;
    } else if (!recent_signals_.empty()) {
      // A follow-up of a recent signal (a camera event's end).
      const Signal& a = recent_signals_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(recent_signals_.size()) - 1))];
      s = a;
      s.follows = a.id;
      s.fired_ms = now_;
    } else {
      s.source = SignalSource::kReport;
      s.category = "graffiti";
      s.rule_id = "report";
    }
    s.id = s.rule_id + ":" + s.device_id + ":" + std::to_string(s.fired_ms) + ":" + n;
    recent_signals_.push_back(s);
    if (recent_signals_.size() > 40) recent_signals_.erase(recent_signals_.begin());
    return in;
  }

  // The action that moves a case on, most of the time.
  CaseAction Smart(const Case& c) {
    const int64_t r = Uniform(0, 99);
    switch (c.status) {
      case CaseStatus::kDetected: return r < 80 ? CaseAction::kVerifyPass : CaseAction::kInvalidate;
      case CaseStatus::kDispatched:
        return r < 80 ? CaseAction::kAcknowledge : r < 90 ? CaseAction::kReturn : r < 95 ? CaseAction::kAssist
                                                                                        : CaseAction::kReassign;
      case CaseStatus::kAcknowledged:
        return r < 35   ? CaseAction::kEnroute
               : r < 60 ? CaseAction::kArrive
               : r < 85 ? CaseAction::kHandled
               : r < 92 ? CaseAction::kReturn
                        : CaseAction::kExtend;
      case CaseStatus::kEnroute: return r < 80 ? CaseAction::kArrive : CaseAction::kHandled;
      case CaseStatus::kOnScene: return r < 85 ? CaseAction::kHandled : r < 93 ? CaseAction::kAssist : CaseAction::kSuspend;
      case CaseStatus::kHandled:
        return r < 55 ? CaseAction::kVerifyPass : r < 80 ? CaseAction::kVerifyFail : CaseAction::kClose;
      case CaseStatus::kVerifying: return r < 60 ? CaseAction::kVerifyPass : CaseAction::kVerifyFail;
      case CaseStatus::kReturned:
      case CaseStatus::kRegistered: return CaseAction::kReassign;
      case CaseStatus::kSuspended:
      case CaseStatus::kDeferred: return CaseAction::kResume;
      case CaseStatus::kClosed: return r < 30 ? CaseAction::kReopen : CaseAction::kAcknowledge;
      default: return Pick(kAllActions);
    }
  }

  Input CommandInput(const CaseEngine& engine) {
    Input in;
    in.kind = Input::kCommand;
    Command& c = in.command;
    const size_t n = ids_.size();
    if (Chance(0.03)) {
      c.case_id = "CL-20251128-999999";
    } else if (Chance(0.7)) {
      c.case_id = ids_[n - 1 - static_cast<size_t>(Uniform(0, static_cast<int64_t>(std::min<size_t>(n, 20)) - 1))];
    } else {
      c.case_id = ids_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(n) - 1))];
    }
    const Case* k = engine.Find(c.case_id);
    const bool smart = k && Chance(mix_.smart);
    // Moving cases on: look a little for one that is not over (closed ones may be reopened).
    for (int tries = 0; smart && tries < 4 && (k->status == CaseStatus::kInvalid || k->status == CaseStatus::kMerged);
         ++tries) {
      const std::string& other = ids_[n - 1 - static_cast<size_t>(
          Uniform(0, static_cast<int64_t>(std::min<size_t>(n, 60)) - 1))];
      if (const Case* o = engine.Find(other)) {
        c.case_id = other;
        k = o;
      }
    }
    c.action = smart ? Smart(*k) : Pick(kAllActions);
    const int64_t r = Uniform(0, 99);
    if (smart && Chance(0.9)) {
      c.role = k ? RequiredRole(c.action, *k) : Role::kOperator;
    } else {
      c.role = r < 6 ? Role::kViewer : r < 50 ? Role::kOperator : r < 90 ? Role::kSupervisor : Role::kAdmin;
    }
    const bool targets = c.action == CaseAction::kReassign || c.action == CaseAction::kAssist;
    if (targets || Chance(0.2)) c.department = Pick(kDepartments);
    if (c.action == CaseAction::kExtend) {
      static const int64_t kDurations[] = {0, 30 * kMin, 2 * kHour, 26 * kHour};
      c.duration_ms = Pick(kDurations);
    }
    if (c.action == CaseAction::kMerge) c.into = ids_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(n) - 1))];
    if ((c.action == CaseAction::kEnroute || c.action == CaseAction::kArrive) && Chance(0.15)) c.unit_id = Pick(kUnits);
    ++commands_;
    if (k && !k->recent_commands.empty() && Chance(0.04)) {  // redelivered: applied already
      c.command_id = k->recent_commands[static_cast<size_t>(
          Uniform(0, static_cast<int64_t>(k->recent_commands.size()) - 1))];
    } else if (!command_ids_.empty() && Chance(0.02)) {  // an id another case applied: not a duplicate there
      c.command_id = command_ids_[static_cast<size_t>(Uniform(0, static_cast<int64_t>(command_ids_.size()) - 1))];
    } else {
      c.command_id = "cmd-" + std::to_string(commands_);
      command_ids_.push_back(c.command_id);
    }
    c.actor = std::string(RoleName(c.role)) + "-" + std::to_string(Uniform(1, 3));
    c.ts_ms = Chance(0.2) ? now_ - Uniform(0, 3 * kMin) : now_;
    c.note = "note " + std::to_string(commands_);
    c.input = {"cityloop.commands", 0, commands_};
    c.ingest_ms = now_;
    return in;
  }

  Input RecoveryInput() {
    Input in;
    in.kind = Input::kRecovery;
    if (Chance(0.7)) {
      in.recovery = {"road-waterlogging", "wl-" + std::to_string(Uniform(1, 4)), now_ - Uniform(0, kMin)};
    } else {
      in.recovery = {"gas-high", "gas-" + std::to_string(Uniform(1, 2)), now_ - Uniform(0, kMin)};
    }
    return in;
  }

  Input UnitInput() {
    static const char* const kConfigured[] = {"drain-1", "drain-2", "drain-3", "gas-u1", "cm-1"};
    static const char* const kDeptOf[] = {"drainage", "drainage", "drainage", "gas", "city_management"};
    static const UnitStatus kStatuses[] = {UnitStatus::kAvailable, UnitStatus::kAvailable, UnitStatus::kEnroute,
                                           UnitStatus::kOnScene, UnitStatus::kReturning, UnitStatus::kUnavailable};
    Input in;
    in.kind = Input::kUnit;
    const size_t i = static_cast<size_t>(Uniform(0, 4));
    UnitUpdate& u = in.unit;
    u.unit_id = kConfigured[i];
    u.department = Chance(0.95) ? kDeptOf[i] : "gas";
    u.status = Pick(kStatuses);
    u.ts_ms = now_ - Uniform(0, 2 * kMin);
    u.has_position = Chance(0.8);
    if (u.has_position) {
      const int cell = static_cast<int>(Uniform(0, 15));
      u.position = TestCellCenter(cell / 4, cell % 4);
      u.position.lat += static_cast<double>(Uniform(-40, 40)) * 1e-3;  // up to ~4 km out
    }
    u.input = {"city.units", 0, ++units_};
    return in;
  }

  std::mt19937 rng_;
  Mix mix_;
  int64_t now_ = kT0;
  int64_t signals_ = 0, commands_ = 0, units_ = 0;
  std::vector<std::string> ids_;
  std::vector<std::string> command_ids_;
  std::vector<Signal> recent_signals_;
};

struct Outcome {
  std::string reason;  // a command's rejection reason, or a unit update's
  Effects fx;
};

Outcome ApplyInput(CaseEngine& engine, const Input& in) {
  Outcome out;
  switch (in.kind) {
    case Input::kSignal: engine.OnSignal(in.signal, &out.fx); break;
    case Input::kCommand: out.reason = engine.OnCommand(in.command, &out.fx); break;
    case Input::kAdvance: engine.AdvanceTo(in.watermark, &out.fx); break;
    case Input::kRecovery: engine.OnRecovery(in.recovery, &out.fx); break;
    case Input::kUnit: out.reason = engine.OnUnitUpdate(in.unit, &out.fx); break;
  }
  return out;
}

// The case without its signals (a command never changes them, but for a
// merge's surviving case, which gains some: signal_count says so).
json Snapshot(const CaseEngine& engine, const std::string& id) {
  const Case* c = engine.Find(id);
  return c ? CaseToJson(*c, /*with_signals=*/false) : json();
}

// ---------------------------------------------------------------- 1. invariants after every step

class CaseInvariantsTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  // Checks everything after one step; returns false after the first failure.
  void CheckStep(const CaseEngine& engine, const Input& in, const Outcome& out, const json& before,
                 const json& into_before, const Case* before_case) {
    const Effects& fx = out.fx;
    // Events and audit entries: one each per change, same case and seq; ids unique.
    // Each entry parsed once.
    std::vector<json> parsed;
    parsed.reserve(fx.audit.size());
    std::map<std::pair<std::string, uint32_t>, const json*> audit;
    for (const AuditEntry& a : fx.audit) {
      parsed.push_back(json::parse(a.json));
      // Written in nlohmann's canonical form (keys sorted, no repeats): the
      // engine's writers that promise key order keep it.
      ASSERT_EQ(parsed.back().dump(), a.json);
    }
    for (size_t i = 0; i < fx.audit.size(); ++i) {
      const AuditEntry& a = fx.audit[i];
      ASSERT_TRUE(audit.emplace(std::make_pair(a.case_id, a.seq), &parsed[i]).second) << "audit seq twice: " << a.case_id;
      ASSERT_EQ(a.seq, ++seq_of_[a.case_id]) << "audit seqs of " << a.case_id << " are not consecutive";
    }
    // An entry may leave the case snapshot out only when the next entry of
    // the same case in this step has the same instant (CaseAsOf never picks it).
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (parsed[i].contains("case")) continue;
      size_t next = i + 1;
      while (next < parsed.size() && fx.audit[next].case_id != fx.audit[i].case_id) ++next;
      ASSERT_LT(next, parsed.size()) << "the last entry of " << fx.audit[i].case_id << " in a step has no snapshot";
      EXPECT_EQ(parsed[next]["at_ms"], parsed[i]["at_ms"]) << "a snapshot left out of " << parsed[i]["action"];
    }
    size_t case_events = 0;
    for (const OutputRecord& r : fx.records) {
      const json e = json::parse(r.value);
      ASSERT_EQ(e.dump(), r.value) << "an event not in canonical form";
      const std::string id = e["id"];
      ASSERT_TRUE(event_ids_.insert(id).second) << "event id twice: " << id;
      EXPECT_EQ(e["specversion"], "1.0");
      if (e["type"] == "city.command.rejected") {
        ASSERT_EQ(in.kind, Input::kCommand) << "only commands are rejected";
        EXPECT_EQ(id, "rejected:" + in.command.input.ToString());
        continue;
      }
      ++case_events;
      const std::string subject = e["subject"];
      const size_t colon = id.rfind(':');
      ASSERT_NE(colon, std::string::npos);
      EXPECT_EQ(id.substr(0, colon), subject);
      const auto seq = static_cast<uint32_t>(std::stoul(id.substr(colon + 1)));
      auto it = audit.find({subject, seq});
      ASSERT_NE(it, audit.end()) << "event " << id << " (" << e["type"] << ") has no audit entry";
      const json& entry = *it->second;
      EXPECT_EQ(entry["action"], e["type"]);
      EXPECT_EQ(entry["at"], e["time"]);
      if (entry.contains("case")) {
        EXPECT_EQ(entry["case"]["status"], entry["status"]);
      }
    }
    EXPECT_EQ(case_events, fx.audit.size());

    // Commands: applied ones changed their case, by the table; rejected ones nothing.
    if (in.kind == Input::kCommand) {
      const Command& cmd = in.command;
      const Case* now = engine.Find(cmd.case_id);
      if (out.reason.empty()) {
        ASSERT_NE(now, nullptr);
        ASSERT_NE(before_case, nullptr);
        EXPECT_NE(CaseToJson(*now, false), before) << "an applied command left its case as it was";
        EXPECT_TRUE(std::any_of(fx.audit.begin(), fx.audit.end(),
                                [&](const AuditEntry& a) { return a.case_id == cmd.case_id; }))
            << "an applied command wrote no audit entry";
        for (const json& entry : parsed) {
          if (entry.value("command_id", "") == cmd.command_id) {
            EXPECT_EQ(entry["actor"], cmd.actor);
          }
        }
        EXPECT_TRUE(AllowedTransition(cmd.action, *before_case, now->status))
            << CaseStatusName(before_case->status) << " --" << CaseActionName(cmd.action) << "--> "
            << CaseStatusName(now->status) << " is not in the workflow";
        EXPECT_GE(Rank(cmd.role), Rank(RequiredRole(cmd.action, *before_case)))
            << RoleName(cmd.role) << " applied " << CaseActionName(cmd.action);
        if (cmd.action == CaseAction::kMerge) {
          const Case* into = engine.Find(cmd.into);
          ASSERT_NE(into, nullptr);
          EXPECT_TRUE(IsOpen(into->status));
          if (!into_before.is_null()) {
            EXPECT_EQ(CaseStatusName(into->status), into_before["status"].get<std::string>());
          }
        }
        ++applied_;
      } else {
        EXPECT_TRUE(fx.audit.empty());
        EXPECT_TRUE(fx.changed_cases.empty());
        EXPECT_TRUE(fx.opened_cases.empty());
        ASSERT_EQ(fx.records.size(), 1u);
        const json e = json::parse(fx.records[0].value);
        EXPECT_EQ(e["type"], "city.command.rejected");
        EXPECT_EQ(e["data"]["reason"], out.reason);
        EXPECT_EQ(Snapshot(engine, cmd.case_id), before) << "a rejected command changed its case";
        if (!cmd.into.empty()) {
          EXPECT_EQ(Snapshot(engine, cmd.into), into_before);
        }
        if (out.reason == "role") {
          ASSERT_NE(before_case, nullptr);
          EXPECT_LT(Rank(cmd.role), Rank(RequiredRole(cmd.action, *before_case)));
        }
        if (cmd.role == Role::kViewer && before_case) {
          EXPECT_TRUE(out.reason == "role" || out.reason == "duplicate_command") << out.reason;
        }
        if (!before_case) {
          EXPECT_EQ(out.reason, "unknown_case");
        }
        ++rejected_[out.reason];
      }
    } else {
      EXPECT_EQ(std::count_if(fx.records.begin(), fx.records.end(),
                              [](const OutputRecord& r) { return r.value.find("city.command.rejected") != std::string::npos; }),
                0);
    }

    // Every case this step changed: the newest audit snapshot is the case,
    // its clocks are sane, and its status agrees with its fields.
    std::map<std::string, const json*> newest;
    for (size_t i = 0; i < fx.audit.size(); ++i) newest[fx.audit[i].case_id] = &parsed[i];
    for (const std::string& id : fx.changed_cases) {
      const Case* c = engine.Find(id);
      ASSERT_NE(c, nullptr);
      if (auto it = newest.find(id); it != newest.end()) {
        json snap = (*it->second)["case"];
        json live = CaseToJson(*c, /*with_signals=*/false);
        snap.erase("recent_commands");  // recorded after the command's events
        live.erase("recent_commands");
        EXPECT_EQ(snap, live) << "the newest audit entry of " << id << " is not the case as it became";
      }
      CheckCase(*c);
      const std::string stored = CaseJsonText(*c);
      EXPECT_EQ(json::parse(stored).dump(), stored) << "a stored case not in canonical form";
    }

    // open_count() is the number of open cases; units are assigned to work that is live.
    size_t open = 0;
    for (const std::string& id : ids_) {
      const Case* c = engine.Find(id);
      ASSERT_NE(c, nullptr) << id;
      open += IsOpen(c->status);
    }
    EXPECT_EQ(engine.open_count(), open);
    EXPECT_EQ(engine.case_count(), ids_.size());
    for (const UnitView& u : engine.units().All()) {
      if (u.assigned_case.empty()) continue;
      const Case* c = engine.Find(u.assigned_case);
      ASSERT_NE(c, nullptr);
      EXPECT_TRUE(IsOpen(c->status)) << u.unit->id << " is still assigned to " << c->id << " ("
                                     << CaseStatusName(c->status) << ")";
      EXPECT_TRUE(std::any_of(c->tasks.begin(), c->tasks.end(), [&](const Task& t) {
        return t.unit == u.unit->id && TaskIsActive(t.status) && t.status != TaskStatus::kHandled;
      })) << u.unit->id << " is assigned to " << c->id << " without a live task of it";
    }
  }

  static void CheckClock(const SlaClock& k, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_GE(k.paused_total_ms, 0);
    EXPECT_GE(k.limit_ms, 0);
    if (k.started_ms == 0) {
      EXPECT_EQ(k, SlaClock{}) << "a clock that never started has state";
      return;
    }
    if (k.deadline_ms != 0) {
      EXPECT_GE(k.deadline_ms, k.started_ms);
      EXPECT_GE(k.deadline_ms, k.warn_ms);
      EXPECT_GE(k.warn_ms, k.started_ms);
    } else {
      EXPECT_EQ(k.limit_ms, 0);
    }
    if (k.stopped_ms != 0) {
      EXPECT_GE(k.stopped_ms, k.started_ms);
    }
  }

  static void CheckCase(const Case& c) {
    SCOPED_TRACE(c.id + " " + CaseStatusName(c.status));
    for (size_t i = 0; i < c.tasks.size(); ++i) {
      const Task& t = c.tasks[i];
      const std::string name = "task " + std::to_string(i) + " " + t.department;
      CheckClock(t.acknowledge, name + " acknowledge");
      CheckClock(t.arrive, name + " arrive");
      CheckClock(t.handle, name + " handle");
      EXPECT_GT(t.dispatched_ms, 0);
      if (t.acknowledged_ms) {
        EXPECT_GE(t.acknowledged_ms, t.dispatched_ms);
      }
      if (t.handled_ms) {
        EXPECT_GE(t.handled_ms, t.dispatched_ms);
      }
    }
    CheckClock(c.verify, "verify");
    CheckClock(c.close, "close");
    const CaseStatus s = c.status;
    const bool worked = InDispatchPhase(s) || HandledPhase(s) || s == CaseStatus::kReturned;
    if (worked) {
      EXPECT_NE(c.registered_ms, 0);
      EXPECT_NE(c.dispatched_ms, 0);
      EXPECT_FALSE(c.tasks.empty());
    }
    if (InDispatchPhase(s)) {
      EXPECT_NE(c.LeadTask(), nullptr) << "a case in the dispatch phase without a lead task";
    }
    if (s == CaseStatus::kReturned) {
      EXPECT_EQ(c.LeadTask(), nullptr) << "returned, but a lead task is active";
    }
    if (HandledPhase(s)) {
      EXPECT_NE(c.handled_ms, 0);
      for (const Task& t : c.tasks) {
        EXPECT_TRUE(!TaskIsActive(t.status) || t.status == TaskStatus::kHandled)
            << "handled while " << t.department << " is " << TaskStatusName(t.status);
      }
    }
    if (s == CaseStatus::kVerifying) {
      EXPECT_NE(c.normal_since_ms, 0) << "verifying, but the device is not normal";
    }
    if (s == CaseStatus::kClosed) {
      EXPECT_NE(c.closed_ms, 0);
      EXPECT_FALSE(c.close.running());
    }
    if (s == CaseStatus::kInvalid) {
      EXPECT_NE(c.invalidated_ms, 0);
    }
    if (s == CaseStatus::kMerged) {
      EXPECT_FALSE(c.merged_into.empty());
    }
    if (s == CaseStatus::kSuspended || s == CaseStatus::kDeferred) {
      EXPECT_NE(c.paused_ms, 0);
      EXPECT_TRUE(Parkable(c.resume_to));
    }
    if (s == CaseStatus::kDeferred) {
      EXPECT_TRUE(c.deferred);
    }
  }

  std::vector<std::string> ids_;
  std::set<std::string> event_ids_;
  std::map<std::string, uint32_t> seq_of_;
  int64_t applied_ = 0;
  std::map<std::string, int64_t> rejected_;
};

TEST_P(CaseInvariantsTest, RandomInputKeepsEveryInvariant) {
  const uint32_t seed = GetParam();
  auto city = TestCity(InvariantConfig());
  CaseEngine engine(city);
  Generator gen(seed, Mix{});
  std::map<std::string, int64_t> transitions;
  for (int step = 0; step < 2000; ++step) {
    const Input in = gen.Next(engine);
    SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(step) + ": " + Describe(in));
    json before, into_before;
    std::optional<Case> before_case;
    if (in.kind == Input::kCommand) {
      before = Snapshot(engine, in.command.case_id);
      if (!in.command.into.empty()) into_before = Snapshot(engine, in.command.into);
      if (const Case* c = engine.Find(in.command.case_id)) before_case = *c;
    }
    const Outcome out = ApplyInput(engine, in);
    gen.Learn(out.fx);
    ids_.insert(ids_.end(), out.fx.opened_cases.begin(), out.fx.opened_cases.end());
    CheckStep(engine, in, out, before, into_before, before_case ? &*before_case : nullptr);
    if (in.kind == Input::kCommand && out.reason.empty()) {
      const Case* now = engine.Find(in.command.case_id);
      ++transitions[std::string(CaseStatusName(before_case->status)) + " " + CaseActionName(in.command.action) +
                    " " + CaseStatusName(now->status)];
    }
    if (HasFailure()) return;
  }
  // Everything was checked at least once (the run reaches the whole workflow).
  EXPECT_GT(ids_.size(), 100u);
  EXPECT_GT(applied_, 200);
  for (const char* reason : {"status", "role", "unknown_case", "duplicate_command", "bad_department"}) {
    EXPECT_GT(rejected_[reason], 0) << reason;
  }
  for (const char* t : {"dispatched acknowledge acknowledged", "handled verify_pass closed",
                        "detected verify_pass dispatched", "closed reopen dispatched", "acknowledged return returned",
                        "returned reassign dispatched", "handled verify_fail acknowledged"}) {
    EXPECT_GT(transitions[t], 0) << t;
  }
  const CaseEngineStats& stats = engine.stats();
  EXPECT_GT(stats.sla_warnings, 0);
  EXPECT_GT(stats.sla_breaches, 0);
  EXPECT_GT(stats.escalations, 0);
  EXPECT_GT(stats.merged_signals, 0);
  EXPECT_GT(stats.auto_verified, 0);
  // At the end, every case is sane, not only the ones the last steps touched.
  for (const std::string& id : ids_) CheckCase(*engine.Find(id));
}

INSTANTIATE_TEST_SUITE_P(CaseInvariantsSeeds, CaseInvariantsTest, ::testing::Values(1u, 42u, 2025u));

// ---------------------------------------------------------------- 2. KPIs recomputed from the log

TEST(CaseInvariantsKpiTest, KpisFoldedFromTheAuditLogEqualTheLiveBook) {
  Config config = InvariantConfig();
  config.escalation.levels.clear();  // they move no KPI; without them the run is faster
  auto city = TestCity(config);
  CaseEngine engine(city);
  Mix mix;
  mix.signal = 0.48;
  mix.command = 0.42;
  mix.advance = 0.06;
  mix.recovery = 0.03;
  mix.smart = 0.85;
  mix.max_step_ms = 3 * kMin;
  Generator gen(99, mix);
  std::map<std::string, std::pair<uint32_t, std::string>> newest;  // case -> (seq, audit json)
  int64_t first = kT0, last = kT0;
  for (int step = 0; step < 6000; ++step) {
    const Input in = gen.Next(engine);
    const Outcome out = ApplyInput(engine, in);
    gen.Learn(out.fx);
    for (const AuditEntry& a : out.fx.audit) {
      auto& slot = newest[a.case_id];
      ASSERT_GT(a.seq, slot.first);
      slot = {a.seq, a.json};
    }
    last = gen.now();
  }
  ASSERT_GT(engine.case_count(), 2000u) << "thousands of cases";
  ASSERT_EQ(newest.size(), engine.case_count());

  KpiBook folded(city->config().kpi);
  int64_t closed = 0;
  for (const auto& [id, entry] : newest) {
    const json j = json::parse(entry.second);
    auto c = CaseFromJson(j.at("case"));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    closed += c.value().status == CaseStatus::kClosed;
    folded.Replace({}, Contribute(c.value(), kUtcOffset));
    // The live case contributes the same.
    EXPECT_EQ(Contribute(c.value(), kUtcOffset), Contribute(*engine.Find(id), kUtcOffset)) << id;
  }
  EXPECT_GT(closed, 30);
  EXPECT_TRUE(folded == engine.kpi());
  const int64_t from = LocalDay(first, kUtcOffset) - 1, to = LocalDay(last, kUtcOffset) + 1;
  for (KpiGroup g : {KpiGroup::kDepartment, KpiGroup::kCategory, KpiGroup::kCell, KpiGroup::kDay, KpiGroup::kTotal}) {
    SCOPED_TRACE(KpiGroupName(g));
    const json live = engine.kpi().QueryJson(g, from, to);
    EXPECT_EQ(folded.QueryJson(g, from, to), live);
    EXPECT_FALSE(live["rows"].empty());
  }
  EXPECT_EQ(folded.bucket_count(), engine.kpi().bucket_count());
}

// ---------------------------------------------------------------- 3. determinism

TEST(CaseInvariantsDeterminismTest, TheSameInputGivesByteIdenticalEffects) {
  for (uint32_t seed : {17u}) {
    SCOPED_TRACE(seed);
    auto city_a = TestCity(InvariantConfig());
    auto city_b = TestCity(InvariantConfig());
    CaseEngine a(city_a), b(city_b);
    Generator gen(seed, Mix{});
    std::vector<Input> inputs;
    std::vector<Outcome> outcomes;
    for (int step = 0; step < 2000; ++step) {
      inputs.push_back(gen.Next(a));
      outcomes.push_back(ApplyInput(a, inputs.back()));
      gen.Learn(outcomes.back().fx);
    }
    size_t records = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Outcome again = ApplyInput(b, inputs[i]);
      const Outcome& first = outcomes[i];
      ASSERT_EQ(again.reason, first.reason) << "step " << i << ": " << Describe(inputs[i]);
      ASSERT_EQ(again.fx.records.size(), first.fx.records.size()) << "step " << i;
      for (size_t r = 0; r < first.fx.records.size(); ++r) {
        ASSERT_EQ(again.fx.records[r].topic, first.fx.records[r].topic) << "step " << i;
        ASSERT_EQ(again.fx.records[r].key, first.fx.records[r].key) << "step " << i;
        ASSERT_EQ(again.fx.records[r].value, first.fx.records[r].value) << "step " << i;
      }
      ASSERT_EQ(again.fx.audit.size(), first.fx.audit.size()) << "step " << i;
      for (size_t k = 0; k < first.fx.audit.size(); ++k) {
        ASSERT_EQ(again.fx.audit[k].case_id, first.fx.audit[k].case_id);
        ASSERT_EQ(again.fx.audit[k].seq, first.fx.audit[k].seq);
        ASSERT_EQ(again.fx.audit[k].json, first.fx.audit[k].json) << "step " << i;
      }
      ASSERT_EQ(again.fx.changed_cases, first.fx.changed_cases) << "step " << i;
      ASSERT_EQ(again.fx.opened_cases, first.fx.opened_cases) << "step " << i;
      records += first.fx.records.size();
    }
    EXPECT_GT(records, 1500u);
    EXPECT_TRUE(a.kpi() == b.kpi());
    EXPECT_EQ(a.case_count(), b.case_count());
    EXPECT_EQ(a.open_count(), b.open_count());
    EXPECT_EQ(a.stats().rejected, b.stats().rejected);
    EXPECT_EQ(a.next_case_number(), b.next_case_number());
  }
}

}  // namespace
}  // namespace cityloop::dispatch

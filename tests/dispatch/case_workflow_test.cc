// Scenario tests of the case workflow (DOMAIN.md "The case workflow") through
// CaseEngine: every command path, the exception paths (return, reassign,
// assist, rework, reopen, extend, suspend, defer, invalidate, merge), SLA
// lights and escalation levels on a manual watermark, the working calendar,
// unit lateness, sensor-backed verification and the audit history.
//
// Time moves only through signal/command timestamps and AdvanceTo: the
// constants below are fixed instants, never the wall clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/case_json.h"
#include "core/time_util.h"
#include "dispatch/case_engine.h"
#include "dispatch/case_history.h"
#include "tests/support/test_city.h"

namespace cityloop::dispatch {
namespace {

using nlohmann::json;
using cityloop::testing::TestCellCenter;
using cityloop::testing::TestCity;
using cityloop::testing::TestConfig;

constexpr int64_t kMin = 60000;
constexpr int64_t kHour = 60 * kMin;

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
constexpr int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}
// Epoch ms of a local time in the test city (UTC+8).
constexpr int64_t Local(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi) {
  return ((DaysFromCivil(y, mo, d) * 24 + h) * 60 + mi - 480) * kMin;
}

// Friday 2025-11-28 16:00 local (08:00Z).
constexpr int64_t kT0 = 1764316800000;
static_assert(Local(2025, 11, 28, 16, 0) == kT0);
static_assert(DaysFromCivil(2025, 12, 1) == 20423);  // Monday

// The test city, plus arrive and close limits, a category that needs 核实
// (a camera's fire candidate) and a report channel that is confirmed first.
Config BaseConfig() {
  Config c = TestConfig();
  auto wall = [](int64_t minutes) { return SlaLimit{SlaLimit::Basis::kWall, minutes * kMin}; };
  c.sla.by_priority[SlaStage::kArrive] = {{Priority::kUrgent, wall(20)}, {Priority::kHigh, wall(45)}};
  c.sla.by_priority[SlaStage::kClose] = {{Priority::kUrgent, wall(8 * 60)}, {Priority::kHigh, wall(24 * 60)}};
  c.city.catalogue.push_back({"fire_candidate", "Fire candidate", "0501", "city_management", Priority::kHigh, true});
  c.dispatch.confirm_channels = {"app"};
  return c;
}

std::string RuleOf(const std::string& category) {
  if (category == "waterlogging") return "road-waterlogging";
  if (category == "gas_leak") return "gas-high";
  return "manual";
}

// A signal confirmed at `fired` (its condition began a minute earlier).
Signal Sig(const std::string& category, int row, int col, int64_t fired, const std::string& device = "wl-1",
           SignalSource source = SignalSource::kSensor) {
  Signal s;
  s.rule_id = RuleOf(category);
  s.id = s.rule_id + ":" + device + ":" + std::to_string(fired);
  s.source = source;
  s.category = category;
  s.priority = category == "gas_leak" ? Priority::kUrgent : Priority::kHigh;
  s.cell = row * 4 + col;
  s.position = TestCellCenter(row, col);
  s.ts_ms = fired - kMin;
  s.fired_ms = fired;
  s.ingest_ms = fired;
  s.device_id = device;
  s.value = 0.5;
  s.threshold = 0.3;
  return s;
}

Signal Report(const std::string& category, int row, int col, int64_t fired, const std::string& channel,
              const std::string& report_id) {
  Signal s = Sig(category, row, col, fired, "", SignalSource::kReport);
  s.id = "report:" + report_id;
  s.rule_id = "report";
  s.attributes = {{"channel", channel}, {"report_id", report_id}};
  return s;
}

class CaseWorkflowTest : public ::testing::Test {
 protected:
  CaseEngine& engine() {
    if (!engine_) {
      city_ = TestCity(config_);
      engine_ = std::make_unique<CaseEngine>(city_);
    }
    return *engine_;
  }
  const Case& C(const std::string& id) {
    const Case* c = engine().Find(id);
    EXPECT_NE(c, nullptr) << id;
    static const Case kNone;
    return c ? *c : kNone;
  }

  // Each call clears fx_ first: fx_ holds what the last call did.
  std::string Open(const Signal& s) {
    fx_.Clear();
    engine().OnSignal(s, &fx_);
    Keep();
    return fx_.opened_cases.empty() ? "" : fx_.opened_cases.front();
  }
  void Advance(int64_t watermark) {
    fx_.Clear();
    engine().AdvanceTo(watermark, &fx_);
    Keep();
  }
  void Recover(const std::string& rule, const std::string& device, int64_t ts) {
    fx_.Clear();
    engine().OnRecovery(Recovery{rule, device, ts}, &fx_);
    Keep();
  }
  std::string MoveUnit(const std::string& unit, const std::string& dept, UnitStatus status, int64_t ts, LatLon at) {
    fx_.Clear();
    UnitUpdate u;
    u.unit_id = unit;
    u.department = dept;
    u.status = status;
    u.ts_ms = ts;
    u.has_position = true;
    u.position = at;
    u.input = {"city.units", 0, ++unit_offset_};
    const std::string r = engine().OnUnitUpdate(u, &fx_);
    Keep();
    return r;
  }

  Command Cmd(const std::string& case_id, CaseAction action, Role role, int64_t ts) {
    Command c;
    ++offset_;
    c.command_id = "c-" + std::to_string(offset_);
    c.case_id = case_id;
    c.action = action;
    c.role = role;
    c.actor = role == Role::kViewer       ? "viewer-wang"
              : role == Role::kOperator   ? "op-zhang"
              : role == Role::kSupervisor ? "sup-li"
                                          : "admin-zhao";
    c.ts_ms = ts;
    c.note = std::string(CaseActionName(action)) + " note " + std::to_string(offset_);
    c.input = {"cityloop.commands", 0, offset_};
    return c;
  }
  std::string Run(const Command& c) {
    fx_.Clear();
    const std::string r = engine().OnCommand(c, &fx_);
    Keep();
    return r;
  }
  std::string Act(const std::string& id, CaseAction a, Role role, int64_t ts) { return Run(Cmd(id, a, role, ts)); }
  std::string ActIn(const std::string& id, CaseAction a, Role role, int64_t ts, const std::string& dept) {
    Command c = Cmd(id, a, role, ts);
    c.department = dept;
    return Run(c);
  }

  // The events of the last call, in order.
  std::vector<json> Events() const {
    std::vector<json> out;
    for (const auto& r : fx_.records) out.push_back(json::parse(r.value));
    return out;
  }
  std::vector<std::string> Types() const {
    std::vector<std::string> out;
    for (const json& e : Events()) out.push_back(e["type"].get<std::string>());
    return out;
  }
  json EventOf(const std::string& type) const {
    for (const json& e : Events()) {
      if (e["type"] == type) return e;
    }
    ADD_FAILURE() << "no " << type << " in the last call";
    return json::object();
  }
  std::vector<json> Audit() const {
    std::vector<json> out;
    for (const auto& a : fx_.audit) out.push_back(json::parse(a.json));
    return out;
  }
  // Every audit entry of one case so far, in seq order.
  std::vector<std::string> History(const std::string& id) const {
    std::vector<AuditEntry> mine;
    for (const auto& a : all_audit_) {
      if (a.case_id == id) mine.push_back(a);
    }
    std::stable_sort(mine.begin(), mine.end(), [](const AuditEntry& a, const AuditEntry& b) { return a.seq < b.seq; });
    std::vector<std::string> out;
    for (const auto& a : mine) out.push_back(a.json);
    return out;
  }

  Config config_ = BaseConfig();
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<CaseEngine> engine_;
  Effects fx_;
  std::vector<AuditEntry> all_audit_;
  int64_t offset_ = 0;
  int64_t unit_offset_ = 0;

 private:
  void Keep() { all_audit_.insert(all_audit_.end(), fx_.audit.begin(), fx_.audit.end()); }
};

using TypeList = std::vector<std::string>;

// ---------------------------------------------------------------- happy path

TEST_F(CaseWorkflowTest, HappyPathDispatchedToClosed) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(id, "CL-20251128-000001");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  ASSERT_EQ(C(id).tasks.size(), 1u);
  EXPECT_EQ(C(id).tasks[0].status, TaskStatus::kDispatched);
  EXPECT_EQ(C(id).tasks[0].unit, "drain-1");
  EXPECT_EQ(C(id).registered_ms, d);
  EXPECT_EQ(C(id).dispatched_ms, d);
  EXPECT_EQ(Types(), (TypeList{"city.case.opened", "city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(engine().open_count(), 1u);

  struct Step {
    CaseAction action;
    int64_t at;
    const char* type;
    CaseStatus status;
    TaskStatus task;
  };
  const Step steps[] = {
      {CaseAction::kAcknowledge, d + 5 * kMin, "city.case.acknowledged", CaseStatus::kAcknowledged,
       TaskStatus::kAcknowledged},
      {CaseAction::kEnroute, d + 6 * kMin, "city.case.enroute", CaseStatus::kEnroute, TaskStatus::kEnroute},
      {CaseAction::kArrive, d + 20 * kMin, "city.case.arrived", CaseStatus::kOnScene, TaskStatus::kOnScene},
      {CaseAction::kHandled, d + 90 * kMin, "city.case.handled", CaseStatus::kHandled, TaskStatus::kHandled},
  };
  for (const Step& step : steps) {
    SCOPED_TRACE(step.type);
    const Command cmd = Cmd(id, step.action, Role::kOperator, step.at);
    ASSERT_EQ(Run(cmd), "");
    EXPECT_EQ(C(id).status, step.status);
    EXPECT_EQ(C(id).tasks[0].status, step.task);
    ASSERT_EQ(Types(), TypeList{step.type});
    const json e = Events()[0];
    EXPECT_EQ(fx_.records[0].topic, "cityloop.cases");
    EXPECT_EQ(fx_.records[0].key, id);
    EXPECT_EQ(e["id"], id + ":" + std::to_string(C(id).event_seq));
    EXPECT_EQ(e["subject"], id);
    EXPECT_EQ(e["time"], FormatRfc3339Ms(step.at));
    EXPECT_EQ(e["data"]["department"], "drainage");
    EXPECT_EQ(e["data"]["task"], "lead");
    EXPECT_EQ(e["data"]["status"], CaseStatusName(step.status));
    ASSERT_EQ(fx_.audit.size(), 1u);
    const json a = Audit()[0];
    EXPECT_EQ(a["case_id"], id);
    EXPECT_EQ(a["seq"], C(id).event_seq);
    EXPECT_EQ(fx_.audit[0].seq, C(id).event_seq);
    EXPECT_EQ(a["action"], step.type);
    EXPECT_EQ(a["actor"], "op-zhang");
    EXPECT_EQ(a["role"], "operator");
    EXPECT_EQ(a["reason"], cmd.note);
    EXPECT_EQ(a["command_id"], cmd.command_id);
    EXPECT_EQ(a["at_ms"], step.at);
    EXPECT_EQ(a["status"], CaseStatusName(step.status));
    EXPECT_EQ(a["case"]["status"], CaseStatusName(step.status));
    EXPECT_EQ(a["case"]["tasks"][0]["status"], TaskStatusName(step.task));
    EXPECT_EQ(fx_.changed_cases, std::vector<std::string>{id});
  }
  EXPECT_EQ(EventOf("city.case.handled")["data"]["case_handled"], true);
  EXPECT_EQ(C(id).tasks[0].acknowledged_ms, d + 5 * kMin);
  EXPECT_EQ(C(id).tasks[0].enroute_ms, d + 6 * kMin);
  EXPECT_EQ(C(id).tasks[0].arrived_ms, d + 20 * kMin);
  EXPECT_EQ(C(id).tasks[0].handled_ms, d + 90 * kMin);
  EXPECT_EQ(C(id).handled_ms, d + 90 * kMin);
  EXPECT_EQ(C(id).verify.started_ms, d + 90 * kMin);  // the check's clock starts at the handled report
  // The unit is free again once its task is handled.
  EXPECT_EQ(engine().units().Find("drain-1")->assigned_case, "");

  Command pass = Cmd(id, CaseAction::kVerifyPass, Role::kOperator, d + 2 * kHour);
  pass.actor = "inspector-li";
  ASSERT_EQ(Run(pass), "");
  EXPECT_EQ(Types(), (TypeList{"city.case.verified", "city.case.closed"}));
  EXPECT_EQ(EventOf("city.case.verified")["data"]["by"], "inspector");
  const json closed = EventOf("city.case.closed");
  EXPECT_EQ(closed["data"]["verified"], true);
  EXPECT_EQ(closed["data"]["on_time"], true);
  EXPECT_EQ(closed["data"]["time_to_close_s"], 2 * 3600);
  EXPECT_EQ(closed["time"], FormatRfc3339Ms(d + 2 * kHour));
  ASSERT_EQ(fx_.audit.size(), 2u);
  for (const json& a : Audit()) {
    EXPECT_EQ(a["actor"], "inspector-li");
    EXPECT_EQ(a["command_id"], pass.command_id);
    EXPECT_EQ(a["reason"], pass.note);
  }
  EXPECT_EQ(Audit()[1]["case"]["status"], "closed");
  EXPECT_EQ(fx_.audit[0].seq + 1, fx_.audit[1].seq);
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(C(id).verified_ms, d + 2 * kHour);
  EXPECT_EQ(C(id).closed_ms, d + 2 * kHour);
  EXPECT_FALSE(C(id).close.running());
  EXPECT_FALSE(C(id).verify.running());
  EXPECT_EQ(engine().open_count(), 0u);
  EXPECT_EQ(engine().stats().commands_applied, 5);

  const int32_t day = LocalDay(d, 480);
  const json kpi = engine().kpi().QueryJson(KpiGroup::kDepartment, day, day);
  ASSERT_EQ(kpi["rows"].size(), 1u);
  EXPECT_EQ(kpi["rows"][0]["group"], "drainage");
  EXPECT_EQ(kpi["rows"][0]["counts"]["closed"], 1);
  EXPECT_EQ(kpi["rows"][0]["counts"]["closed_on_time"], 1);
  EXPECT_EQ(kpi["rows"][0]["counts"]["acknowledged_on_time"], 1);
}

// ---------------------------------------------------------------- rejections

TEST_F(CaseWorkflowTest, RejectedCommandsChangeNothingAndSayWhy) {
  const int64_t d = kT0;
  const std::string a = Open(Sig("waterlogging", 0, 0, d, "wl-a"));   // dispatched
  const std::string b = Open(Sig("waterlogging", 1, 0, d, "wl-b"));   // handled
  const std::string cl = Open(Sig("waterlogging", 2, 0, d, "wl-c"));  // closed
  const std::string e = Open(Sig("waterlogging", 3, 0, d, "wl-e"));   // acknowledged, extended once
  ASSERT_EQ(engine().case_count(), 4u);
  for (const std::string& id : {b, cl, e}) {
    ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "");
  }
  for (const std::string& id : {b, cl}) {
    ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 2 * kMin), "");
  }
  ASSERT_EQ(Act(cl, CaseAction::kVerifyPass, Role::kOperator, d + 3 * kMin), "");
  Command ext = Cmd(e, CaseAction::kExtend, Role::kOperator, d + 4 * kMin);
  ext.duration_ms = kHour;
  ASSERT_EQ(Run(ext), "");
  const std::string applied_id = ext.command_id;

  struct Bad {
    const char* what;
    Command cmd;
    const char* reason;
  };
  const int64_t t = d + 10 * kMin;
  std::vector<Bad> bad;
  bad.push_back({"handled before acknowledge", Cmd(a, CaseAction::kHandled, Role::kOperator, t), "status"});
  bad.push_back({"close on a dispatched case", Cmd(a, CaseAction::kClose, Role::kSupervisor, t), "status"});
  bad.push_back({"verify_pass on a dispatched case", Cmd(a, CaseAction::kVerifyPass, Role::kOperator, t), "status"});
  bad.push_back({"reopen an open case", Cmd(a, CaseAction::kReopen, Role::kSupervisor, t), "status"});
  bad.push_back({"resume a case not parked", Cmd(a, CaseAction::kResume, Role::kSupervisor, t), "status"});
  bad.push_back({"acknowledge a closed case", Cmd(cl, CaseAction::kAcknowledge, Role::kOperator, t), "status"});
  bad.push_back({"extend a handled case", Cmd(b, CaseAction::kExtend, Role::kSupervisor, t), "status"});
  bad.push_back({"enroute before acknowledge", Cmd(a, CaseAction::kEnroute, Role::kOperator, t), "status"});
  bad.push_back({"verify_fail on a dispatched case", Cmd(a, CaseAction::kVerifyFail, Role::kOperator, t), "status"});
  bad.push_back({"viewer acknowledges", Cmd(a, CaseAction::kAcknowledge, Role::kViewer, t), "role"});
  bad.push_back({"viewer verifies", Cmd(b, CaseAction::kVerifyPass, Role::kViewer, t), "role"});
  bad.push_back({"viewer invalidates", Cmd(a, CaseAction::kInvalidate, Role::kViewer, t), "role"});
  bad.push_back({"operator closes", Cmd(b, CaseAction::kClose, Role::kOperator, t), "role"});
  bad.push_back({"operator reopens", Cmd(cl, CaseAction::kReopen, Role::kOperator, t), "role"});
  bad.push_back({"operator suspends", Cmd(a, CaseAction::kSuspend, Role::kOperator, t), "role"});
  bad.push_back({"operator defers", Cmd(a, CaseAction::kDefer, Role::kOperator, t), "role"});
  bad.push_back({"operator invalidates a dispatched case", Cmd(a, CaseAction::kInvalidate, Role::kOperator, t),
                 "role"});
  {
    Command second = Cmd(e, CaseAction::kExtend, Role::kOperator, t);
    second.duration_ms = kHour;
    bad.push_back({"operator extends a second time", second, "role"});
  }
  bad.push_back({"unknown case", Cmd("CL-20251128-999999", CaseAction::kAcknowledge, Role::kOperator, t),
                 "unknown_case"});
  {
    // Would be allowed (enroute after acknowledge), but the id was applied already.
    Command dup = Cmd(e, CaseAction::kEnroute, Role::kOperator, t);
    dup.command_id = applied_id;
    bad.push_back({"duplicate command id", dup, "duplicate_command"});
  }
  {
    Command c = Cmd(a, CaseAction::kReassign, Role::kOperator, t);
    c.department = "parks";
    bad.push_back({"reassign to an unknown department", c, "bad_department"});
    c = Cmd(a, CaseAction::kReassign, Role::kOperator, t);
    c.department = "drainage";
    bad.push_back({"reassign to the department holding the task", c, "bad_department"});
    c = Cmd(a, CaseAction::kAssist, Role::kOperator, t);
    c.department = "drainage";
    bad.push_back({"assist by the lead department", c, "bad_department"});
    c = Cmd(a, CaseAction::kExtend, Role::kOperator, t);
    c.duration_ms = 0;
    bad.push_back({"extend without a duration", c, "bad_argument"});
    c = Cmd(a, CaseAction::kMerge, Role::kOperator, t);
    c.into = a;
    bad.push_back({"merge into itself", c, "bad_argument"});
    c = Cmd(a, CaseAction::kMerge, Role::kOperator, t);
    c.into = cl;
    bad.push_back({"merge into a closed case", c, "bad_argument"});
    c = Cmd(e, CaseAction::kEnroute, Role::kOperator, t);
    c.unit_id = "gas-u1";
    bad.push_back({"enroute with another department's unit", c, "bad_unit"});
    c = Cmd(a, CaseAction::kAcknowledge, Role::kOperator, t);
    c.department = "gas";
    bad.push_back({"acknowledge a department without a task", c, "no_task"});
  }

  const size_t cases = engine().case_count(), open = engine().open_count();
  const KpiBook kpi_before = engine().kpi();
  for (const Bad& x : bad) {
    SCOPED_TRACE(x.what);
    const Case* target = engine().Find(x.cmd.case_id);
    const json before = target ? CaseToJson(*target) : json();
    const int64_t count_before = engine().stats().rejected.count(x.reason) ? engine().stats().rejected.at(x.reason) : 0;
    EXPECT_EQ(Run(x.cmd), x.reason);
    EXPECT_TRUE(fx_.audit.empty());
    EXPECT_TRUE(fx_.changed_cases.empty());
    ASSERT_EQ(fx_.records.size(), 1u);
    EXPECT_EQ(fx_.records[0].topic, "cityloop.cases");
    EXPECT_EQ(fx_.records[0].key, x.cmd.case_id);
    const json ev = Events()[0];
    EXPECT_EQ(ev["type"], "city.command.rejected");
    EXPECT_EQ(ev["id"], "rejected:cityloop.commands/0@" + std::to_string(x.cmd.input.offset));
    EXPECT_EQ(ev["subject"], x.cmd.case_id);
    EXPECT_EQ(ev["time"], FormatRfc3339Ms(x.cmd.ts_ms));
    EXPECT_EQ(ev["data"]["reason"], x.reason);
    EXPECT_EQ(ev["data"]["command_id"], x.cmd.command_id);
    EXPECT_EQ(ev["data"]["action"], CaseActionName(x.cmd.action));
    EXPECT_FALSE(ev["data"]["message"].get<std::string>().empty());
    if (target) {
      EXPECT_EQ(ev["data"]["status"], CaseStatusName(target->status));
      EXPECT_EQ(CaseToJson(*engine().Find(x.cmd.case_id)), before);
    } else {
      EXPECT_TRUE(ev["data"]["status"].is_null());
    }
    EXPECT_EQ(engine().stats().rejected.at(x.reason), count_before + 1);
  }
  EXPECT_EQ(engine().case_count(), cases);
  EXPECT_EQ(engine().open_count(), open);
  EXPECT_TRUE(engine().kpi() == kpi_before);
  EXPECT_EQ(engine().stats().commands_applied, 7);
}

// ---------------------------------------------------------------- 核实

TEST_F(CaseWorkflowTest, CasesThatNeedConfirmationWaitInDetected) {
  const int64_t d = kT0;
  // A camera's fire candidate: the category requires confirmation.
  const std::string fire = Open(Sig("fire_candidate", 1, 0, d, "cam-031", SignalSource::kCamera));
  EXPECT_EQ(C(fire).status, CaseStatus::kDetected);
  EXPECT_EQ(Types(), TypeList{"city.case.opened"});
  EXPECT_EQ(EventOf("city.case.opened")["data"]["awaiting"], "confirmation");
  EXPECT_TRUE(C(fire).tasks.empty());
  EXPECT_EQ(C(fire).registered_ms, 0);
  EXPECT_EQ(C(fire).dispatched_ms, 0);
  EXPECT_EQ(engine().open_count(), 1u);
  // Nothing of the dispatch phase is allowed yet.
  EXPECT_EQ(Act(fire, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "status");
  EXPECT_EQ(Act(fire, CaseAction::kSuspend, Role::kSupervisor, d + kMin), "status");
  EXPECT_EQ(Act(fire, CaseAction::kVerifyPass, Role::kViewer, d + kMin), "role");
  Advance(d + 10 * kHour);  // no clock runs before dispatch
  EXPECT_TRUE(fx_.records.empty());

  Command confirm = Cmd(fire, CaseAction::kVerifyPass, Role::kOperator, d + 10 * kHour + kMin);
  ASSERT_EQ(Run(confirm), "");
  EXPECT_EQ(Types(), (TypeList{"city.case.registered", "city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(EventOf("city.case.registered")["data"]["confirmed_by"], "op-zhang");
  EXPECT_EQ(fx_.records[2].key, "city_management");
  EXPECT_EQ(C(fire).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(fire).registered_ms, confirm.ts_ms);
  EXPECT_EQ(C(fire).dispatched_ms, confirm.ts_ms);
  EXPECT_EQ(C(fire).tasks.size(), 1u);
  EXPECT_EQ(C(fire).tasks[0].acknowledge.started_ms, confirm.ts_ms);
  for (const json& a : Audit()) {
    EXPECT_EQ(a["command_id"], confirm.command_id);
  }

  // A report from a low-confidence channel waits too; invalidating it ends it.
  const std::string app = Open(Report("waterlogging", 3, 0, d, "app", "r-1"));
  EXPECT_EQ(C(app).status, CaseStatus::kDetected);
  EXPECT_EQ(engine().open_count(), 2u);
  ASSERT_EQ(Act(app, CaseAction::kInvalidate, Role::kOperator, d + 5 * kMin), "");  // an operator may, in detected
  EXPECT_EQ(Types(), TypeList{"city.case.invalidated"});
  EXPECT_EQ(C(app).status, CaseStatus::kInvalid);
  EXPECT_EQ(C(app).invalidated_ms, d + 5 * kMin);
  EXPECT_EQ(engine().open_count(), 1u);
  EXPECT_EQ(Act(app, CaseAction::kVerifyPass, Role::kOperator, d + 6 * kMin), "status");

  // Other channels are dispatched at once.
  const std::string hotline = Open(Report("waterlogging", 2, 0, d, "hotline12345", "r-2"));
  EXPECT_EQ(C(hotline).status, CaseStatus::kDispatched);
  EXPECT_EQ(Types(), (TypeList{"city.case.opened", "city.case.dispatched", "city.dispatch.order"}));

  const int32_t day = LocalDay(d, 480);
  const json total = engine().kpi().QueryJson(KpiGroup::kTotal, day, day)["rows"][0]["counts"];
  EXPECT_EQ(total["accepted"], 2);    // the fire case's cohort is its registration day, later
  EXPECT_EQ(total["registered"], 1);  // the hotline case; the invalid report never was
  EXPECT_EQ(total["due_to_close"], 1);
}

// ---------------------------------------------------------------- 退单 / 改派

TEST_F(CaseWorkflowTest, ReturnThenReassignThenReassignWhileActive) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(engine().units().Find("drain-1")->assigned_case, id);

  Command ret = Cmd(id, CaseAction::kReturn, Role::kOperator, d + 5 * kMin);
  ret.note = "not a drainage problem";
  ASSERT_EQ(Run(ret), "");
  EXPECT_EQ(Types(), TypeList{"city.case.returned"});
  const json returned = EventOf("city.case.returned");
  EXPECT_EQ(returned["data"]["department"], "drainage");
  EXPECT_EQ(returned["data"]["returns"], 1);
  EXPECT_EQ(Audit()[0]["reason"], "not a drainage problem");
  EXPECT_EQ(C(id).status, CaseStatus::kReturned);
  EXPECT_EQ(C(id).tasks[0].status, TaskStatus::kReturned);
  EXPECT_FALSE(C(id).tasks[0].acknowledge.running());
  EXPECT_FALSE(C(id).tasks[0].handle.running());
  EXPECT_EQ(C(id).returns, 1);
  EXPECT_EQ(C(id).returned_by, std::vector<std::string>{"drainage"});
  EXPECT_EQ(engine().units().Find("drain-1")->assigned_case, "");
  EXPECT_EQ(engine().open_count(), 1u);  // returned is still open: it waits for 改派
  EXPECT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 6 * kMin), "status");

  ASSERT_EQ(ActIn(id, CaseAction::kReassign, Role::kOperator, d + 10 * kMin, "city_management"), "");
  EXPECT_EQ(Types(), (TypeList{"city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(fx_.records[1].topic, "cityloop.dispatch");
  EXPECT_EQ(fx_.records[1].key, "city_management");
  const json order = EventOf("city.dispatch.order");
  EXPECT_EQ(order["data"]["department"], "city_management");
  EXPECT_EQ(order["data"]["reassigned_from"], "drainage");
  EXPECT_EQ(order["data"]["task"], "lead");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).department, "city_management");
  ASSERT_EQ(C(id).tasks.size(), 2u);
  EXPECT_TRUE(C(id).tasks[1].lead);
  EXPECT_EQ(C(id).tasks[1].department, "city_management");
  EXPECT_EQ(C(id).tasks[1].status, TaskStatus::kDispatched);
  EXPECT_EQ(C(id).tasks[1].acknowledge.started_ms, d + 10 * kMin);
  EXPECT_EQ(C(id).dispatches, 2);
  EXPECT_EQ(C(id).dispatched_ms, d);  // the first dispatch

  // Reassigning an active task cancels it (the department is told) first.
  ASSERT_EQ(ActIn(id, CaseAction::kReassign, Role::kOperator, d + 15 * kMin, "gas"), "");
  EXPECT_EQ(Types(), (TypeList{"city.dispatch.cancelled", "city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(fx_.records[0].topic, "cityloop.dispatch");
  EXPECT_EQ(fx_.records[0].key, "city_management");
  EXPECT_EQ(EventOf("city.dispatch.cancelled")["data"]["reason"], "reassigned to gas");
  EXPECT_EQ(fx_.records[2].key, "gas");
  ASSERT_EQ(C(id).tasks.size(), 3u);
  EXPECT_EQ(C(id).tasks[1].status, TaskStatus::kCancelled);
  EXPECT_EQ(C(id).tasks[1].acknowledge.stopped_ms, d + 15 * kMin);
  EXPECT_EQ(C(id).tasks[2].department, "gas");
  EXPECT_EQ(C(id).tasks[2].unit, "gas-u1");
  EXPECT_EQ(C(id).department, "gas");
  EXPECT_EQ(C(id).returns, 1);  // a reassign is no return
  // The new lead works as usual.
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 16 * kMin), "");
  EXPECT_EQ(C(id).tasks[2].status, TaskStatus::kAcknowledged);

  // KPIs: the returned task is no accurate dispatch; the case counts for its lead now.
  const KpiContribution k = Contribute(C(id), 480);
  int64_t dispatches = 0, not_returned = 0;
  for (const auto& [key, counts] : k.parts) {
    dispatches += counts.dispatches;
    not_returned += counts.not_returned;
    if (counts.accepted) {
      EXPECT_EQ(key.department, "gas");
    }
  }
  EXPECT_EQ(dispatches, 3);
  EXPECT_EQ(not_returned, 2);
}

TEST_F(CaseWorkflowTest, ThreeReturnsEscalateRegardlessAndAlternationIsPingPong) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  const char* depts[] = {"drainage", "city_management", "drainage", "gas"};
  int64_t t = d;
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    if (i > 0) {
      ASSERT_EQ(ActIn(id, CaseAction::kReassign, Role::kOperator, t += kMin, depts[i]), "");
    }
    ASSERT_EQ(Act(id, CaseAction::kReturn, Role::kOperator, t += kMin), "");
    EXPECT_EQ(C(id).returns, i + 1);
    const TypeList types = Types();
    ASSERT_FALSE(types.empty());
    EXPECT_EQ(types[0], "city.case.returned");
    const bool ping_pong = std::count(types.begin(), types.end(), "city.case.dispatch_ping_pong") == 1;
    const bool escalated = std::count(types.begin(), types.end(), "city.case.escalated") == 1;
    if (i == 1) {
      // drainage, then city_management: the second return bounces between two departments.
      EXPECT_TRUE(ping_pong);
      const json pp = EventOf("city.case.dispatch_ping_pong");
      EXPECT_EQ(pp["data"]["departments"], json::array({"drainage", "city_management"}));
      EXPECT_EQ(pp["data"]["returns"], 2);
      for (const json& a : Audit()) {
        if (a["action"] == "city.case.dispatch_ping_pong") {
          EXPECT_EQ(a["actor"], "system");
          EXPECT_EQ(a["rule"], "escalation.ping_pong");
        }
      }
    }
    if (i == 2) {
      EXPECT_FALSE(ping_pong);  // the run is 3 now, past escalation.ping_pong (2): reported once
      ASSERT_TRUE(escalated);
      const json esc = EventOf("city.case.escalated");
      EXPECT_EQ(esc["data"]["level"], "forced");
      EXPECT_EQ(esc["data"]["target"], "district_leader");
      EXPECT_EQ(esc["data"]["reason"], "returned 3 times");
      for (const json& a : Audit()) {
        if (a["action"] == "city.case.escalated") {
          EXPECT_EQ(a["role"], "system");
          EXPECT_EQ(a["rule"], "escalation.max_returns");
        }
      }
      EXPECT_TRUE(C(id).forced_escalation);
    } else {
      EXPECT_FALSE(escalated) << "a forced escalation happens once, at the third return";
    }
  }
  EXPECT_EQ(engine().stats().escalations, 1);
  EXPECT_EQ(C(id).returned_by, (std::vector<std::string>{"drainage", "city_management", "drainage", "gas"}));
}

TEST_F(CaseWorkflowTest, PingPongNeedsTwoDepartmentsAlternating) {
  config_.escalation.ping_pong_returns = 3;
  config_.escalation.max_returns = 10;
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  int64_t t = d;
  auto bounce = [&](const char* dept) {
    if (C(id).status == CaseStatus::kReturned) {
      EXPECT_EQ(ActIn(id, CaseAction::kReassign, Role::kOperator, t += kMin, dept), "");
    }
    EXPECT_EQ(Act(id, CaseAction::kReturn, Role::kOperator, t += kMin), "");
    const TypeList types = Types();
    return std::count(types.begin(), types.end(), "city.case.dispatch_ping_pong");
  };
  EXPECT_EQ(bounce("drainage"), 0);
  EXPECT_EQ(bounce("drainage"), 0);  // the same department twice: no ping-pong
  EXPECT_EQ(bounce("gas"), 0);       // drainage, gas: two alternating returns, the limit is 3
  EXPECT_EQ(bounce("drainage"), 1);  // gas <-> drainage three times
  EXPECT_EQ(EventOf("city.case.dispatch_ping_pong")["data"]["departments"], json::array({"gas", "drainage"}));
  EXPECT_EQ(bounce("gas"), 0);  // reported once per run
  EXPECT_EQ(engine().stats().ping_pongs, 1);
}

// ---------------------------------------------------------------- assist

TEST_F(CaseWorkflowTest, AnAssistingDepartmentHasItsOwnTaskAndTheCaseWaitsForIt) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 1, 1, d));
  ASSERT_EQ(ActIn(id, CaseAction::kAssist, Role::kOperator, d + kMin, "gas"), "");
  EXPECT_EQ(Types(), (TypeList{"city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(fx_.records[1].key, "gas");
  EXPECT_EQ(EventOf("city.dispatch.order")["data"]["task"], "assist");
  EXPECT_EQ(EventOf("city.dispatch.order")["data"]["department"], "gas");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).department, "drainage");  // the lead stays
  ASSERT_EQ(C(id).tasks.size(), 2u);
  EXPECT_FALSE(C(id).tasks[1].lead);
  EXPECT_EQ(C(id).tasks[1].unit, "gas-u1");
  EXPECT_EQ(ActIn(id, CaseAction::kAssist, Role::kOperator, d + kMin, "gas"), "bad_department");

  // The assisting task moves on its own; the case follows the lead.
  ASSERT_EQ(ActIn(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin, "gas"), "");
  EXPECT_EQ(EventOf("city.case.acknowledged")["data"]["task"], "assist");
  EXPECT_EQ(C(id).tasks[1].status, TaskStatus::kAcknowledged);
  EXPECT_EQ(C(id).tasks[0].status, TaskStatus::kDispatched);
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 3 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kAcknowledged);
  ASSERT_EQ(Act(id, CaseAction::kArrive, Role::kOperator, d + 10 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kOnScene);

  // The lead is done, the assisting department is not: the case is not handled.
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 30 * kMin), "");
  EXPECT_EQ(EventOf("city.case.handled")["data"]["case_handled"], false);
  EXPECT_EQ(C(id).tasks[0].status, TaskStatus::kHandled);
  EXPECT_EQ(C(id).status, CaseStatus::kOnScene);
  EXPECT_EQ(C(id).handled_ms, 0);
  EXPECT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, d + 31 * kMin), "status");

  ASSERT_EQ(ActIn(id, CaseAction::kHandled, Role::kOperator, d + 40 * kMin, "gas"), "");
  EXPECT_EQ(EventOf("city.case.handled")["data"]["case_handled"], true);
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);
  EXPECT_EQ(C(id).handled_ms, d + 40 * kMin);
  ASSERT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, d + 50 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);

  // Both departments are measured on their own task.
  const KpiContribution k = Contribute(C(id), 480);
  ASSERT_EQ(k.parts.size(), 2u);
  for (const auto& [key, counts] : k.parts) {
    EXPECT_EQ(counts.dispatches, 1) << key.department;
    EXPECT_EQ(counts.acknowledged_on_time, 1) << key.department;
    EXPECT_EQ(counts.accepted, key.department == "drainage" ? 1 : 0);
  }
}

// ---------------------------------------------------------------- 返工

TEST_F(CaseWorkflowTest, AFailedCheckSendsTheLeadBackWithAFreshHandleClock) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  int64_t t = d + 10 * kMin;
  for (int round = 1; round <= 3; ++round) {
    SCOPED_TRACE(round);
    ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, t += 10 * kMin), "");
    ASSERT_EQ(C(id).status, CaseStatus::kHandled);
    ASSERT_TRUE(C(id).verify.running());
    Command fail = Cmd(id, CaseAction::kVerifyFail, Role::kOperator, t += 10 * kMin);
    fail.note = "still water on the road";
    ASSERT_EQ(Run(fail), "");
    const TypeList types = Types();
    ASSERT_FALSE(types.empty());
    EXPECT_EQ(types[0], "city.case.rework");
    const json rework = EventOf("city.case.rework");
    EXPECT_EQ(rework["data"]["reworks"], round);
    EXPECT_EQ(rework["data"]["department"], "drainage");
    EXPECT_EQ(rework["data"]["deadlines"]["handle"], FormatRfc3339Ms(t + 4 * kHour));
    EXPECT_EQ(Audit()[0]["reason"], "still water on the road");
    EXPECT_EQ(C(id).status, CaseStatus::kAcknowledged);
    EXPECT_EQ(C(id).reworks, round);
    const Task& lead = C(id).tasks[0];
    EXPECT_EQ(C(id).tasks.size(), 1u);
    EXPECT_EQ(lead.status, TaskStatus::kAcknowledged);
    EXPECT_EQ(lead.handled_ms, 0);
    EXPECT_EQ(lead.handle.started_ms, t);  // 返工: a new handling limit from the failed check
    EXPECT_EQ(lead.handle.deadline_ms, t + 4 * kHour);
    EXPECT_EQ(lead.handle.stopped_ms, 0);
    EXPECT_EQ(lead.handle.light, SlaLight::kGreen);
    EXPECT_EQ(C(id).handled_ms, 0);
    EXPECT_EQ(C(id).verify.started_ms, 0);
    const bool escalated = std::count(types.begin(), types.end(), "city.case.escalated") == 1;
    EXPECT_EQ(escalated, round == 3);
    if (round == 3) {
      const json esc = EventOf("city.case.escalated");
      EXPECT_EQ(esc["data"]["level"], "forced");
      EXPECT_EQ(esc["data"]["reason"], "reworked 3 times");
      EXPECT_EQ(Audit().back()["rule"], "escalation.max_reworks");
    }
  }
  // The fresh clock is the one that fires.
  Advance(t + 4 * kHour * 8 / 10);
  bool handle_warning = false;
  for (const json& e : Events()) {
    if (e["type"] == "city.case.sla_warning" && e["data"]["stage"] == "handle") {
      handle_warning = true;
      EXPECT_EQ(e["time"], FormatRfc3339Ms(t + 4 * kHour * 8 / 10));
    }
  }
  EXPECT_TRUE(handle_warning);
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, t + 4 * kHour), "");
  ASSERT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, t + 4 * kHour + kMin), "");
  const json row = engine().kpi().QueryJson(KpiGroup::kTotal, LocalDay(d, 480), LocalDay(d, 480))["rows"][0];
  EXPECT_EQ(row["counts"]["reworked"], 1);
  EXPECT_EQ(row["rates"]["rework_rate"], 1.0);
}

// ---------------------------------------------------------------- 重办

TEST_F(CaseWorkflowTest, ASupervisorReopensAClosedCase) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 30 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kClose, Role::kSupervisor, d + 40 * kMin), "");  // closed without a check
  EXPECT_EQ(Types(), TypeList{"city.case.closed"});
  EXPECT_EQ(EventOf("city.case.closed")["data"]["verified"], false);
  EXPECT_EQ(C(id).verified_ms, 0);
  EXPECT_EQ(engine().open_count(), 0u);

  EXPECT_EQ(Act(id, CaseAction::kReopen, Role::kOperator, d + 2 * kHour), "role");
  Command reopen = Cmd(id, CaseAction::kReopen, Role::kSupervisor, d + 3 * kHour);
  reopen.note = "citizen says it is flooded again";
  ASSERT_EQ(Run(reopen), "");
  EXPECT_EQ(Types(), (TypeList{"city.case.reopened", "city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(EventOf("city.case.reopened")["data"]["reopens"], 1);
  for (const json& a : Audit()) {
    EXPECT_EQ(a["reason"], "citizen says it is flooded again");
  }
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).reopens, 1);
  EXPECT_EQ(C(id).reopened_ms, d + 3 * kHour);
  EXPECT_EQ(C(id).closed_ms, 0);
  EXPECT_EQ(C(id).handled_ms, 0);
  EXPECT_EQ(C(id).close.started_ms, d + 3 * kHour);
  EXPECT_EQ(C(id).close.deadline_ms, d + 3 * kHour + 24 * kHour);
  EXPECT_EQ(engine().open_count(), 1u);
  ASSERT_EQ(C(id).tasks.size(), 2u);
  EXPECT_TRUE(C(id).tasks[1].lead);
  EXPECT_EQ(C(id).tasks[1].status, TaskStatus::kDispatched);
  EXPECT_EQ(C(id).tasks[1].dispatched_ms, d + 3 * kHour);
  EXPECT_EQ(C(id).dispatches, 2);
  const json row = engine().kpi().QueryJson(KpiGroup::kTotal, LocalDay(d, 480), LocalDay(d, 480))["rows"][0];
  EXPECT_EQ(row["counts"]["reopened"], 1);
  EXPECT_EQ(row["counts"]["closed"], 0);
}

// Regression: Reopen dispatches a new lead task while the old one stays
// `handled` (an active status); the task actions must act on the new one
// (Case::LeadTask/FindTask newest first, FindTask skipping handled tasks).
// Before that fix a reopened case could never be acknowledged again.
TEST_F(CaseWorkflowTest, AReopenedCaseCanBeWorkedAgain) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 30 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, d + 40 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kReopen, Role::kSupervisor, d + 3 * kHour), "");
  EXPECT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 3 * kHour + kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kAcknowledged);
  EXPECT_EQ(ActIn(id, CaseAction::kHandled, Role::kOperator, d + 4 * kHour, "drainage"), "");
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);
  EXPECT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, d + 5 * kHour), "");
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
}

// ---------------------------------------------------------------- 延期

TEST_F(CaseWorkflowTest, ExtensionsMoveTheDeadlineAndTheSecondNeedsASupervisor) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "");
  const int64_t handle = C(id).tasks[0].handle.deadline_ms;
  const int64_t close = C(id).close.deadline_ms;
  ASSERT_EQ(handle, d + 4 * kHour);
  ASSERT_EQ(close, d + 24 * kHour);

  Command ext = Cmd(id, CaseAction::kExtend, Role::kOperator, d + 10 * kMin);
  ext.duration_ms = 2 * kHour;
  ASSERT_EQ(Run(ext), "");
  EXPECT_EQ(Types(), TypeList{"city.case.extended"});
  const json e = EventOf("city.case.extended");
  EXPECT_EQ(e["data"]["by_s"], 7200);
  EXPECT_EQ(e["data"]["extensions"], 1);
  EXPECT_EQ(e["data"]["deadlines"]["handle"], FormatRfc3339Ms(handle + 2 * kHour));
  EXPECT_EQ(C(id).tasks[0].handle.deadline_ms, handle + 2 * kHour);
  EXPECT_EQ(C(id).tasks[0].handle.warn_ms, d + (6 * kHour) * 8 / 10);
  EXPECT_EQ(C(id).close.deadline_ms, close + 2 * kHour);
  EXPECT_EQ(C(id).extensions, 1);
  EXPECT_EQ(C(id).tasks[0].extensions, 1);
  EXPECT_EQ(C(id).status, CaseStatus::kAcknowledged);  // 延期 is an event, not a status

  ext = Cmd(id, CaseAction::kExtend, Role::kOperator, d + 20 * kMin);
  ext.duration_ms = kHour;
  EXPECT_EQ(Run(ext), "role");
  ext = Cmd(id, CaseAction::kExtend, Role::kSupervisor, d + 20 * kMin);
  ext.duration_ms = kHour;
  ASSERT_EQ(Run(ext), "");
  EXPECT_EQ(C(id).tasks[0].handle.deadline_ms, handle + 3 * kHour);
  EXPECT_EQ(C(id).close.deadline_ms, close + 3 * kHour);
  EXPECT_EQ(C(id).extensions, 2);

  // The old deadline passes quietly; the new one fires.
  Advance(handle + kMin);
  for (const json& ev : Events()) {
    EXPECT_NE(ev["data"]["stage"], "handle") << ev.dump();
  }
  Advance(handle + 3 * kHour);
  bool breached = false;
  for (const json& ev : Events()) {
    if (ev["type"] == "city.case.sla_breached" && ev["data"]["stage"] == "handle") {
      breached = true;
      EXPECT_EQ(ev["time"], FormatRfc3339Ms(handle + 3 * kHour));
    }
  }
  EXPECT_TRUE(breached);
  const json row = engine().kpi().QueryJson(KpiGroup::kTotal, LocalDay(d, 480), LocalDay(d, 480))["rows"][0];
  EXPECT_EQ(row["counts"]["extended"], 1);
}

// ---------------------------------------------------------------- 挂账 / 缓办

TEST_F(CaseWorkflowTest, SuspensionPausesTheClocksAndMovesTheDeadlines) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  const int64_t ack_deadline = C(id).tasks[0].acknowledge.deadline_ms;  // 30 min, warning at 24 min
  const int64_t handle_deadline = C(id).tasks[0].handle.deadline_ms;
  ASSERT_EQ(ack_deadline, d + 30 * kMin);

  EXPECT_EQ(Act(id, CaseAction::kSuspend, Role::kOperator, d + 10 * kMin), "role");
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, d + 10 * kMin), "");
  EXPECT_EQ(Types(), TypeList{"city.case.suspended"});
  EXPECT_EQ(C(id).status, CaseStatus::kSuspended);
  EXPECT_EQ(C(id).resume_to, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).paused_ms, d + 10 * kMin);
  EXPECT_EQ(engine().open_count(), 1u);
  EXPECT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 11 * kMin), "status");

  // The warning (24 min) and the breach (30 min) would have fired by now.
  Advance(d + 40 * kMin);
  EXPECT_TRUE(fx_.records.empty());
  Advance(d + 69 * kMin);
  EXPECT_TRUE(fx_.records.empty());

  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 70 * kMin), "");
  EXPECT_EQ(Types(), TypeList{"city.case.resumed"});
  const json resumed = EventOf("city.case.resumed");
  EXPECT_EQ(resumed["data"]["paused_s"], 3600);
  EXPECT_EQ(resumed["data"]["was"], "suspended");
  EXPECT_EQ(resumed["data"]["status"], "dispatched");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).paused_ms, 0);
  const Task& t = C(id).tasks[0];
  EXPECT_EQ(t.acknowledge.paused_total_ms, kHour);
  EXPECT_EQ(t.acknowledge.deadline_ms, ack_deadline + kHour);
  EXPECT_EQ(t.acknowledge.warn_ms, d + 24 * kMin + kHour);
  EXPECT_EQ(t.handle.deadline_ms, handle_deadline + kHour);
  EXPECT_EQ(C(id).close.deadline_ms, d + 24 * kHour + kHour);

  Advance(d + 84 * kMin - 1);
  EXPECT_TRUE(fx_.records.empty());
  Advance(d + 84 * kMin);
  ASSERT_EQ(Types(), TypeList{"city.case.sla_warning"});
  EXPECT_EQ(Events()[0]["time"], FormatRfc3339Ms(d + 84 * kMin));
  EXPECT_EQ(Events()[0]["data"]["stage"], "acknowledge");
  Advance(d + 95 * kMin);  // the arrive warning moved to 96 min
  ASSERT_EQ(Types(), TypeList{"city.case.sla_breached"});
  EXPECT_EQ(Events()[0]["time"], FormatRfc3339Ms(d + 90 * kMin));
  // Acknowledged after the resume, within the moved deadline? No: 91 min > 90 min.
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 91 * kMin), "");
  EXPECT_EQ(EventOf("city.case.acknowledged")["data"]["on_time"], false);
}

TEST_F(CaseWorkflowTest, ADeferredCaseIsLeftOutOfDueToClose) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  const std::string other = Open(Sig("waterlogging", 3, 0, d, "wl-9"));
  const int32_t day = LocalDay(d, 480);
  EXPECT_EQ(engine().kpi().QueryJson(KpiGroup::kTotal, day, day)["rows"][0]["counts"]["due_to_close"], 2);

  EXPECT_EQ(Act(id, CaseAction::kDefer, Role::kOperator, d + 5 * kMin), "role");
  ASSERT_EQ(Act(id, CaseAction::kDefer, Role::kSupervisor, d + 5 * kMin), "");
  EXPECT_EQ(Types(), TypeList{"city.case.deferred"});
  EXPECT_EQ(C(id).status, CaseStatus::kDeferred);
  EXPECT_TRUE(C(id).deferred);
  const KpiContribution k = Contribute(C(id), 480);
  ASSERT_FALSE(k.parts.empty());
  EXPECT_EQ(k.parts[0].second.due_to_close, 0);
  EXPECT_EQ(k.parts[0].second.deferred, 1);
  EXPECT_EQ(k.parts[0].second.dispatched, 1);
  const json counts = engine().kpi().QueryJson(KpiGroup::kTotal, day, day)["rows"][0]["counts"];
  EXPECT_EQ(counts["due_to_close"], 1);
  EXPECT_EQ(counts["deferred"], 1);

  Advance(d + 10 * kHour);  // the other case's clocks fire; the deferred one's do not
  for (const auto& r : fx_.records) {
    EXPECT_EQ(r.key, other);
  }
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 11 * kHour), "");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_TRUE(C(id).deferred);  // ever deferred: stays out of the denominators
  EXPECT_EQ(C(id).tasks[0].acknowledge.deadline_ms, d + 30 * kMin + (11 * kHour - 5 * kMin));
  EXPECT_EQ(engine().kpi().QueryJson(KpiGroup::kTotal, day, day)["rows"][0]["counts"]["due_to_close"], 1);
}

// ---------------------------------------------------------------- 作废 / merge

TEST_F(CaseWorkflowTest, ASupervisorInvalidatesADispatchedCase) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(engine().units().Find("drain-1")->assigned_case, id);
  EXPECT_EQ(Act(id, CaseAction::kInvalidate, Role::kOperator, d + kMin), "role");
  Command inv = Cmd(id, CaseAction::kInvalidate, Role::kSupervisor, d + 2 * kMin);
  inv.note = "sensor fault";
  ASSERT_EQ(Run(inv), "");
  EXPECT_EQ(Types(), (TypeList{"city.dispatch.cancelled", "city.case.invalidated"}));
  EXPECT_EQ(fx_.records[0].topic, "cityloop.dispatch");
  EXPECT_EQ(fx_.records[0].key, "drainage");
  EXPECT_EQ(EventOf("city.dispatch.cancelled")["data"]["reason"], "invalidated");
  EXPECT_EQ(C(id).status, CaseStatus::kInvalid);
  EXPECT_EQ(C(id).tasks[0].status, TaskStatus::kCancelled);
  EXPECT_FALSE(C(id).tasks[0].acknowledge.running());
  EXPECT_FALSE(C(id).close.running());
  EXPECT_EQ(engine().open_count(), 0u);
  EXPECT_EQ(engine().units().Find("drain-1")->assigned_case, "");
  EXPECT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 3 * kMin), "status");
  Advance(d + 48 * kHour);
  EXPECT_TRUE(fx_.records.empty());
  const json counts =
      engine().kpi().QueryJson(KpiGroup::kTotal, LocalDay(d, 480), LocalDay(d, 480))["rows"][0]["counts"];
  EXPECT_EQ(counts["due_to_close"], 0);
  EXPECT_EQ(counts["accepted"], 1);
}

TEST_F(CaseWorkflowTest, AnOperatorMergesACaseIntoAnother) {
  const int64_t d = kT0;
  const std::string keep = Open(Sig("waterlogging", 0, 0, d, "wl-a"));
  const std::string gone = Open(Sig("waterlogging", 3, 0, d + kMin, "wl-b"));
  ASSERT_NE(keep, gone);
  ASSERT_EQ(engine().open_count(), 2u);
  Command m = Cmd(gone, CaseAction::kMerge, Role::kOperator, d + 5 * kMin);
  m.into = keep;
  m.note = "same flooded underpass";
  ASSERT_EQ(Run(m), "");
  EXPECT_EQ(Types(), (TypeList{"city.dispatch.cancelled", "city.case.merged", "city.case.merged"}));
  EXPECT_EQ(fx_.records[0].key, "drainage");
  EXPECT_EQ(Events()[0]["data"]["merged_into"], keep);
  EXPECT_EQ(Events()[1]["subject"], gone);
  EXPECT_EQ(Events()[1]["data"]["merged_into"], keep);
  EXPECT_EQ(Events()[2]["subject"], keep);
  EXPECT_EQ(Events()[2]["data"]["absorbed"], gone);
  for (const json& a : Audit()) {
    EXPECT_EQ(a["command_id"], m.command_id);
    EXPECT_EQ(a["reason"], "same flooded underpass");
  }
  EXPECT_EQ(C(gone).status, CaseStatus::kMerged);
  EXPECT_EQ(C(gone).merged_into, keep);
  EXPECT_EQ(C(gone).tasks[0].status, TaskStatus::kCancelled);
  EXPECT_EQ(C(keep).absorbed, std::vector<std::string>{gone});
  EXPECT_EQ(C(keep).signals.size(), 2u);
  EXPECT_EQ(C(keep).status, CaseStatus::kDispatched);
  EXPECT_EQ(engine().open_count(), 1u);
  EXPECT_EQ(engine().stats().merged_cases, 1);
  // The merged case takes no more commands, and nothing merges into it.
  EXPECT_EQ(Act(gone, CaseAction::kAcknowledge, Role::kOperator, d + 6 * kMin), "status");
  m = Cmd(keep, CaseAction::kMerge, Role::kOperator, d + 6 * kMin);
  m.into = gone;
  EXPECT_EQ(Run(m), "bad_argument");
  // A merged case contributes nothing to the KPIs.
  EXPECT_TRUE(Contribute(C(gone), 480).parts.empty());
  const json counts =
      engine().kpi().QueryJson(KpiGroup::kTotal, LocalDay(d, 480), LocalDay(d, 480))["rows"][0]["counts"];
  EXPECT_EQ(counts["accepted"], 1);
}

// ---------------------------------------------------------------- SLA lights and escalation

TEST_F(CaseWorkflowTest, LightsFireAtTheirExactInstantsOnce) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  Advance(d + 24 * kMin - 1);
  EXPECT_TRUE(fx_.records.empty());
  Advance(d + 24 * kMin);  // 80 % of the 30 min acknowledge limit; arrive is 45 min
  ASSERT_EQ(Types(), TypeList{"city.case.sla_warning"});
  json e = Events()[0];
  EXPECT_EQ(e["time"], FormatRfc3339Ms(d + 24 * kMin));
  EXPECT_EQ(e["data"]["stage"], "acknowledge");
  EXPECT_EQ(e["data"]["light"], "yellow");
  EXPECT_EQ(e["data"]["department"], "drainage");
  EXPECT_EQ(e["data"]["deadline"], FormatRfc3339Ms(d + 30 * kMin));
  EXPECT_EQ(e["data"]["limit_s"], 1800);
  EXPECT_EQ(e["data"]["working_time"], false);
  EXPECT_EQ(Audit()[0]["rule"], "sla.warning_ratio");
  EXPECT_EQ(Audit()[0]["actor"], "system");
  EXPECT_EQ(C(id).tasks[0].acknowledge.light, SlaLight::kYellow);
  Advance(d + 24 * kMin);
  EXPECT_TRUE(fx_.records.empty());
  Advance(d + 29 * kMin);
  EXPECT_TRUE(fx_.records.empty());

  // A watermark far past the deadline: the event carries the due instant.
  Advance(d + 35 * kMin);
  ASSERT_EQ(Types(), (TypeList{"city.case.sla_breached"}));
  e = Events()[0];
  EXPECT_EQ(e["time"], FormatRfc3339Ms(d + 30 * kMin));
  EXPECT_EQ(e["data"]["light"], "red");
  EXPECT_EQ(Audit()[0]["rule"], "sla.breach_ratio");
  EXPECT_EQ(Audit()[0]["at_ms"], d + 30 * kMin);
  EXPECT_EQ(C(id).tasks[0].acknowledge.light, SlaLight::kRed);

  // One big step: the arrive warning (36 min), breach (45 min), the handle
  // warning (3h12) and breach (4h), in time order, each once.
  // (drain-1 waits at its base a cell away: the ETA check also warns, a
  // minute before the arrive deadline; see CaseWorkflowLatenessTest.)
  Advance(d + 5 * kHour);
  std::vector<std::pair<std::string, std::string>> got;
  int eta_warnings = 0;
  for (const json& ev : Events()) {
    if (ev["data"].value("reason", "") == "eta") {
      ++eta_warnings;
      continue;
    }
    got.emplace_back(ev["type"].get<std::string>(),
                     ev["data"]["stage"].get<std::string>() + "@" + ev["time"].get<std::string>());
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {"city.case.sla_warning", "arrive@" + FormatRfc3339Ms(d + 36 * kMin)},
      {"city.case.sla_breached", "arrive@" + FormatRfc3339Ms(d + 45 * kMin)},
      {"city.case.sla_warning", "handle@" + FormatRfc3339Ms(d + 192 * kMin)},
      {"city.case.sla_breached", "handle@" + FormatRfc3339Ms(d + 4 * kHour)},
  };
  EXPECT_EQ(got, want);
  EXPECT_EQ(eta_warnings, 1);
  Advance(d + 6 * kHour);
  EXPECT_TRUE(fx_.records.empty());
  EXPECT_EQ(engine().stats().sla_warnings, 3 + eta_warnings);
  EXPECT_EQ(engine().stats().sla_breaches, 3);
  // A stage done before its warning never lights.
  const std::string quick = Open(Sig("waterlogging", 3, 0, d + 6 * kHour, "wl-q"));
  ASSERT_EQ(Act(quick, CaseAction::kAcknowledge, Role::kOperator, d + 6 * kHour + kMin), "");
  Advance(d + 7 * kHour);
  for (const json& ev : Events()) {
    EXPECT_NE(ev["data"]["stage"], "acknowledge") << ev.dump();
  }
}

TEST_F(CaseWorkflowTest, EscalationLevelsFireInOrderOnceEach) {
  config_.escalation.levels = {{"reminder", SlaStage::kHandle, -30 * kMin, "department"},
                               {"supervision", SlaStage::kHandle, 0, "supervisor"},
                               {"escalation", SlaStage::kHandle, 2 * kHour, "district_leader"}};
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kArrive, Role::kOperator, d + 10 * kMin), "");
  const int64_t deadline = d + 4 * kHour;

  Advance(deadline - 30 * kMin - 1);
  ASSERT_EQ(Types(), TypeList{"city.case.sla_warning"});  // handle at 80 %
  Advance(deadline - 30 * kMin);
  ASSERT_EQ(Types(), TypeList{"city.case.escalated"});
  json e = Events()[0];
  EXPECT_EQ(e["data"]["level"], "reminder");
  EXPECT_EQ(e["data"]["target"], "department");
  EXPECT_EQ(e["data"]["stage"], "handle");
  EXPECT_EQ(e["time"], FormatRfc3339Ms(deadline - 30 * kMin));
  EXPECT_EQ(Audit()[0]["rule"], "escalation.levels[0]");
  Advance(deadline - 1);
  EXPECT_TRUE(fx_.records.empty());

  // Past the last level at once: breach, supervision, escalation in order.
  Advance(deadline + 3 * kHour);
  std::vector<std::string> got;
  for (const json& ev : Events()) {
    got.push_back(ev["type"].get<std::string>() + "/" + ev["data"].value("level", "") + "@" +
                  ev["time"].get<std::string>());
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "city.case.sla_breached/@" + FormatRfc3339Ms(deadline),
                     "city.case.escalated/supervision@" + FormatRfc3339Ms(deadline),
                     "city.case.escalated/escalation@" + FormatRfc3339Ms(deadline + 2 * kHour),
                 }));
  EXPECT_EQ(C(id).tasks[0].handle.escalations, 3);
  Advance(deadline + 30 * kHour);
  for (const json& ev : Events()) {
    EXPECT_NE(ev["type"], "city.case.escalated") << ev.dump();
  }
  EXPECT_EQ(engine().stats().escalations, 3);
}

// ---------------------------------------------------------------- the working calendar

class CaseWorkflowCalendarTest : public CaseWorkflowTest {
 protected:
  CaseWorkflowCalendarTest() {
    config_.sla.by_priority.clear();  // only the handle limit below runs
    config_.sla.limits = {{"waterlogging", std::nullopt, SlaStage::kHandle, {SlaLimit::Basis::kWorkingMs, 4 * kHour}},
                          {"gas_leak", std::nullopt, SlaStage::kHandle, {SlaLimit::Basis::kWorkingMs, 4 * kHour}}};
    // The default calendar: Monday to Friday, 08:30-12:00 and 14:00-17:30.
    config_.sla.calendar.hours = {{8 * 60 + 30, 12 * 60}, {14 * 60, 17 * 60 + 30}};
  }
  const SlaClock& Handle(const std::string& id) { return C(id).tasks.at(0).handle; }
};

TEST_F(CaseWorkflowCalendarTest, FridayAfternoonRunsIntoMonday) {
  ASSERT_EQ(*ParseSlaLimit("4wh"), (SlaLimit{SlaLimit::Basis::kWorkingMs, 4 * kHour}));
  const std::string id = Open(Sig("waterlogging", 0, 0, Local(2025, 11, 28, 16, 0)));
  const SlaClock& k = Handle(id);
  EXPECT_TRUE(k.working_time);
  EXPECT_EQ(k.limit_ms, 4 * kHour);
  // Friday 16:00-17:30 is 1.5 h; the other 2.5 h run Monday from 08:30.
  EXPECT_EQ(k.deadline_ms, Local(2025, 12, 1, 11, 0));
  EXPECT_EQ(k.warn_ms, Local(2025, 12, 1, 10, 12));  // 3.2 working hours
  Advance(Local(2025, 12, 1, 10, 11));
  EXPECT_TRUE(fx_.records.empty());  // the whole weekend passes quietly
  Advance(Local(2025, 12, 1, 13, 0));
  ASSERT_EQ(Types(), (TypeList{"city.case.sla_warning", "city.case.sla_breached"}));
  EXPECT_EQ(Events()[0]["time"], FormatRfc3339Ms(Local(2025, 12, 1, 10, 12)));
  EXPECT_EQ(Events()[1]["time"], FormatRfc3339Ms(Local(2025, 12, 1, 11, 0)));
  EXPECT_EQ(Events()[1]["data"]["working_time"], true);
  EXPECT_EQ(Events()[1]["data"]["limit_s"], 4 * 3600);

  // Dispatched half an hour later, it is due half an hour later.
  const std::string later = Open(Sig("waterlogging", 3, 0, Local(2025, 11, 28, 16, 30), "wl-9"));
  EXPECT_EQ(Handle(later).deadline_ms, Local(2025, 12, 1, 11, 30));
}

TEST_F(CaseWorkflowCalendarTest, OvernightAndOutsideWorkingHours) {
  // Monday 17:00: half an hour today, 3.5 h Tuesday morning: work that ends
  // exactly at 12:00 ends at 12:00, not after lunch.
  const std::string evening = Open(Sig("waterlogging", 0, 0, Local(2025, 12, 1, 17, 0)));
  EXPECT_EQ(Handle(evening).deadline_ms, Local(2025, 12, 2, 12, 0));
  EXPECT_EQ(Handle(evening).warn_ms, Local(2025, 12, 2, 11, 12));
  // Saturday morning: nothing counts until Monday 08:30; 3.5 h to noon, 0.5 h after lunch.
  const std::string weekend = Open(Sig("waterlogging", 3, 0, Local(2025, 11, 29, 10, 0), "wl-9"));
  EXPECT_EQ(Handle(weekend).deadline_ms, Local(2025, 12, 1, 14, 30));
  EXPECT_EQ(Handle(weekend).warn_ms, Local(2025, 12, 1, 11, 42));
  // During lunch: the clock starts at 14:00; 3.5 h that afternoon, 0.5 h Thursday.
  const std::string lunch = Open(Sig("waterlogging", 2, 0, Local(2025, 12, 3, 12, 30), "wl-8"));
  EXPECT_EQ(Handle(lunch).deadline_ms, Local(2025, 12, 4, 9, 0));
  EXPECT_EQ(Handle(lunch).warn_ms, Local(2025, 12, 3, 17, 12));
}

TEST_F(CaseWorkflowCalendarTest, AHolidayMondayIsSkipped) {
  config_.sla.calendar.holidays = {DaysFromCivil(2025, 12, 1)};
  const std::string id = Open(Sig("waterlogging", 0, 0, Local(2025, 11, 28, 16, 0)));
  EXPECT_EQ(Handle(id).deadline_ms, Local(2025, 12, 2, 11, 0));
  Advance(Local(2025, 12, 1, 23, 0));
  EXPECT_TRUE(fx_.records.empty());
  Advance(Local(2025, 12, 2, 11, 0));
  ASSERT_EQ(Types(), (TypeList{"city.case.sla_warning", "city.case.sla_breached"}));
  EXPECT_EQ(Events()[1]["time"], FormatRfc3339Ms(Local(2025, 12, 2, 11, 0)));
}

TEST_F(CaseWorkflowCalendarTest, ASuspensionOverTheWeekendMovesTheDeadlineByWorkingTime) {
  const std::string id = Open(Sig("waterlogging", 0, 0, Local(2025, 11, 28, 16, 0)));
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, Local(2025, 11, 28, 17, 0)), "");
  Advance(Local(2025, 12, 1, 9, 59));
  EXPECT_TRUE(fx_.records.empty());
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, Local(2025, 12, 1, 10, 0)), "");
  // Suspended 65 h of wall time, of which 2 h are working time (Friday
  // 17:00-17:30, Monday 08:30-10:00).
  EXPECT_EQ(EventOf("city.case.resumed")["data"]["paused_s"], 65 * 3600);
  EXPECT_EQ(Handle(id).paused_total_ms, 2 * kHour);
  // 4 h + 2 h from Friday 16:00: 1.5 h Friday, 3.5 h Monday morning, 1 h after lunch.
  EXPECT_EQ(Handle(id).deadline_ms, Local(2025, 12, 1, 15, 0));
  EXPECT_EQ(Handle(id).warn_ms, Local(2025, 12, 1, 14, 12));
  Advance(Local(2025, 12, 1, 14, 11));
  EXPECT_TRUE(fx_.records.empty());  // past the original deadline (11:00), quietly
  Advance(Local(2025, 12, 1, 16, 0));
  ASSERT_EQ(Types(), (TypeList{"city.case.sla_warning", "city.case.sla_breached"}));
  EXPECT_EQ(Events()[0]["time"], FormatRfc3339Ms(Local(2025, 12, 1, 14, 12)));
  EXPECT_EQ(Events()[1]["time"], FormatRfc3339Ms(Local(2025, 12, 1, 15, 0)));
}

TEST_F(CaseWorkflowCalendarTest, UrgentWorkRunsOnWallTime) {
  const int64_t fri = Local(2025, 11, 28, 16, 0);
  // gas_leak is urgent: its 4 working hours are 4 hours, whatever the calendar.
  const std::string gas = Open(Sig("gas_leak", 1, 1, fri, "gas-1"));
  EXPECT_FALSE(Handle(gas).working_time);
  EXPECT_EQ(Handle(gas).deadline_ms, fri + 4 * kHour);
  Advance(fri + 4 * kHour);
  ASSERT_EQ(Types(), (TypeList{"city.case.sla_warning", "city.case.sla_breached"}));
  EXPECT_EQ(Events()[1]["time"], FormatRfc3339Ms(fri + 4 * kHour));
}

TEST_F(CaseWorkflowCalendarTest, UrgentWorkOnWorkingTimeWhenUrgentWallClockIsOff) {
  config_.sla.urgent_wall_clock = false;
  const std::string gas = Open(Sig("gas_leak", 1, 1, Local(2025, 11, 28, 16, 0), "gas-1"));
  EXPECT_TRUE(Handle(gas).working_time);
  EXPECT_EQ(Handle(gas).deadline_ms, Local(2025, 12, 1, 11, 0));
}

TEST_F(CaseWorkflowCalendarTest, AnUrgentWorkingDayIsADay) {
  config_.sla.limits = {{"gas_leak", std::nullopt, SlaStage::kHandle, {SlaLimit::Basis::kWorkingDays, 1}}};
  const int64_t fri = Local(2025, 11, 28, 16, 0);
  const std::string gas = Open(Sig("gas_leak", 1, 1, fri, "gas-1"));
  EXPECT_FALSE(Handle(gas).working_time);
  EXPECT_EQ(Handle(gas).deadline_ms, fri + 24 * kHour);
}

TEST_F(CaseWorkflowCalendarTest, WallClockCategoriesIgnoreTheCalendar) {
  config_.sla.wall_clock_categories = {"waterlogging"};
  const int64_t fri = Local(2025, 11, 28, 16, 0);
  const std::string id = Open(Sig("waterlogging", 0, 0, fri));  // high priority, not urgent
  EXPECT_FALSE(Handle(id).working_time);
  EXPECT_EQ(Handle(id).deadline_ms, fri + 4 * kHour);
  EXPECT_EQ(Handle(id).warn_ms, fri + 4 * kHour * 8 / 10);
}

// ---------------------------------------------------------------- unit lateness

class CaseWorkflowLatenessTest : public CaseWorkflowTest {
 protected:
  CaseWorkflowLatenessTest() {
    auto wall = [](int64_t minutes) { return SlaLimit{SlaLimit::Basis::kWall, minutes * kMin}; };
    config_.sla.by_priority[SlaStage::kArrive] = {{Priority::kHigh, wall(30)}};
  }
  // drain-1 (the only drainage unit that serves the west) reports from about 10 km north.
  void SendDrainOneFarAway(int64_t ts) {
    LatLon far = TestCellCenter(0, 0);
    far.lat += 0.09;
    ASSERT_EQ(MoveUnit("drain-1", "drainage", UnitStatus::kAvailable, ts, far), "");
  }
  std::vector<json> EtaWarnings() const {
    std::vector<json> out;
    for (const json& e : Events()) {
      if (e["type"] == "city.case.sla_warning" && e["data"].value("reason", "") == "eta") out.push_back(e);
    }
    return out;
  }
};

TEST_F(CaseWorkflowLatenessTest, AFarUnitRaisesAnEtaWarningBeforeTheArriveDeadline) {
  const int64_t d = kT0;
  SendDrainOneFarAway(d - 10 * kMin);
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(C(id).tasks[0].unit, "drain-1");
  Advance(d);
  const int64_t eta = engine().units().EtaMs("drain-1", C(id).position, d);
  ASSERT_GT(eta, 15 * kMin);
  ASSERT_LT(eta, 25 * kMin);
  const int64_t deadline = C(id).tasks[0].arrive.deadline_ms;
  ASSERT_EQ(deadline, d + 30 * kMin);
  const int64_t leave_by = deadline - eta;

  Advance(leave_by - 1);
  EXPECT_TRUE(fx_.records.empty());
  Advance(leave_by);
  ASSERT_EQ(Types(), TypeList{"city.case.sla_warning"});
  const json e = Events()[0];
  EXPECT_EQ(e["data"]["reason"], "eta");
  EXPECT_EQ(e["data"]["stage"], "arrive");
  EXPECT_EQ(e["data"]["unit"], "drain-1");
  EXPECT_EQ(e["data"]["eta_s"], eta / 1000);
  EXPECT_EQ(e["data"]["deadline"], FormatRfc3339Ms(deadline));
  EXPECT_EQ(e["time"], FormatRfc3339Ms(leave_by));
  EXPECT_EQ(Audit()[0]["rule"], "dispatch.eta");
  EXPECT_TRUE(C(id).tasks[0].late_warned);
  // Once per task: the 80 % lights follow, no second ETA warning.
  Advance(deadline + kHour);
  EXPECT_TRUE(EtaWarnings().empty());
}

TEST_F(CaseWorkflowLatenessTest, AUnitThatComesCloserMovesTheWarning) {
  const int64_t d = kT0;
  SendDrainOneFarAway(d - 10 * kMin);
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  Advance(d);
  const int64_t deadline = C(id).tasks[0].arrive.deadline_ms;
  const int64_t leave_by = deadline - engine().units().EtaMs("drain-1", C(id).position, d);

  // On its way and one cell away: about a minute out.
  ASSERT_EQ(MoveUnit("drain-1", "drainage", UnitStatus::kEnroute, d + 5 * kMin, TestCellCenter(0, 1)), "");
  EXPECT_TRUE(fx_.records.empty());
  const int64_t near_eta = engine().units().EtaMs("drain-1", C(id).position, d + 5 * kMin);
  ASSERT_LT(near_eta, 2 * kMin);
  Advance(leave_by);
  EXPECT_TRUE(fx_.records.empty());
  // The check moved to the instant the unit, from where it is, would just make it.
  Advance(deadline - near_eta - 1);
  EXPECT_TRUE(EtaWarnings().empty());
  Advance(deadline - near_eta);
  ASSERT_EQ(EtaWarnings().size(), 1u);
  EXPECT_EQ(EtaWarnings()[0]["time"], FormatRfc3339Ms(deadline - near_eta));
}

TEST_F(CaseWorkflowLatenessTest, ArrivingInTimeCancelsTheWarning) {
  const int64_t d = kT0;
  SendDrainOneFarAway(d - 10 * kMin);
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  Advance(d);
  const int64_t deadline = C(id).tasks[0].arrive.deadline_ms;
  ASSERT_EQ(MoveUnit("drain-1", "drainage", UnitStatus::kEnroute, d + 5 * kMin, TestCellCenter(0, 1)), "");
  Advance(d + 8 * kMin);
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 8 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kArrive, Role::kOperator, d + 9 * kMin), "");
  EXPECT_EQ(EventOf("city.case.arrived")["data"]["on_time"], true);
  Advance(deadline + 2 * kHour);
  EXPECT_TRUE(EtaWarnings().empty());
  for (const json& e : Events()) {
    EXPECT_NE(e["data"]["stage"], "arrive") << e.dump();
  }
}

// ---------------------------------------------------------------- sensor-backed verification

TEST_F(CaseWorkflowTest, AQuietSensorVerifiesAndClosesTheCase) {
  ASSERT_EQ(config_.dispatch.sensor_normal_for_ms, 30 * kMin);
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);  // the device is still abnormal
  Recover("other-rule", "wl-1", d + 11 * kMin);   // another rule's recovery is not this case's
  EXPECT_TRUE(fx_.records.empty());
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  EXPECT_EQ(Types(), TypeList{"city.case.device_normal"});
  EXPECT_EQ(EventOf("city.case.device_normal")["data"]["normal_since"], FormatRfc3339Ms(d + 12 * kMin));
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  EXPECT_EQ(C(id).normal_since_ms, d + 12 * kMin);

  Advance(d + 42 * kMin - 1);
  EXPECT_TRUE(fx_.records.empty());
  Advance(d + 42 * kMin);
  ASSERT_EQ(Types(), (TypeList{"city.case.verified", "city.case.closed"}));
  EXPECT_EQ(EventOf("city.case.verified")["data"]["by"], "sensor");
  EXPECT_EQ(EventOf("city.case.closed")["time"], FormatRfc3339Ms(d + 42 * kMin));
  for (const json& a : Audit()) {
    EXPECT_EQ(a["actor"], "system");
    EXPECT_EQ(a["role"], "system");
    EXPECT_EQ(a["rule"], "verification.sensor_normal_for");
  }
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(C(id).closed_ms, d + 42 * kMin);
  EXPECT_EQ(C(id).verified_ms, d + 42 * kMin);
  EXPECT_EQ(engine().stats().auto_verified, 1);
  EXPECT_EQ(engine().open_count(), 0u);
  Advance(d + 5 * kHour);
  EXPECT_TRUE(fx_.records.empty());
}

TEST_F(CaseWorkflowTest, ARecoveryBeforeTheHandledReportVerifiesFromTheReport) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  Recover("road-waterlogging", "wl-1", d + 5 * kMin);
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 6 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 20 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  Advance(d + 50 * kMin - 1);  // 30 min from the later of the two
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  Advance(d + 50 * kMin);
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(C(id).closed_ms, d + 50 * kMin);
}

TEST_F(CaseWorkflowTest, ANewSignalFromTheDeviceRestartsTheQuietTime) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kVerifying);
  EXPECT_EQ(Open(Sig("waterlogging", 0, 0, d + 20 * kMin)), "");  // joins the case
  EXPECT_EQ(Types(), TypeList{"city.case.signal_added"});
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);
  EXPECT_EQ(C(id).normal_since_ms, 0);
  Advance(d + 2 * kHour);
  for (const json& e : Events()) {
    EXPECT_NE(e["type"], "city.case.closed");
  }
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);
  Recover("road-waterlogging", "wl-1", d + 2 * kHour + kMin);
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  Advance(d + 2 * kHour + 31 * kMin);
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(C(id).closed_ms, d + 2 * kHour + 31 * kMin);
}

TEST_F(CaseWorkflowTest, ARelapseAfterASensorClosureReopensTheSameCase) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  Advance(d + 42 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kClosed);

  EXPECT_EQ(Open(Sig("waterlogging", 0, 0, d + 3 * kHour)), "");  // no new case
  EXPECT_EQ(engine().case_count(), 1u);
  EXPECT_EQ(Types(), (TypeList{"city.case.reopened", "city.case.dispatched", "city.dispatch.order"}));
  EXPECT_EQ(Audit()[0]["rule"], "verification.relapse_within");
  EXPECT_EQ(C(id).status, CaseStatus::kDispatched);
  EXPECT_EQ(C(id).reopens, 1);
  EXPECT_EQ(C(id).reopened_ms, d + 3 * kHour);
  EXPECT_EQ(C(id).signals.size(), 2u);
  EXPECT_EQ(engine().stats().relapses, 1);
  EXPECT_EQ(engine().open_count(), 1u);
}

TEST_F(CaseWorkflowTest, ARelapseAfterTheWindowOpensANewCase) {
  config_.dispatch.relapse_within_ms = kHour;
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  Advance(d + 42 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kClosed);
  const std::string next = Open(Sig("waterlogging", 0, 0, d + 42 * kMin + kHour + kMin));
  EXPECT_NE(next, "");
  EXPECT_NE(next, id);
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(engine().stats().relapses, 0);
}

// ---------------------------------------------------------------- eviction

// One engine driven call by call; with `evict`, every settled case leaves
// memory after each call (EvictSettled(0)) and is read back from a map that
// stands in for the store, holding each changed case as the pipeline writes it.
class DrivenEngine {
 public:
  DrivenEngine(std::shared_ptr<const CityModel> city, bool evict) : engine_(std::move(city)), evict_(evict) {
    if (!evict_) return;
    engine_.SetLoader([this](const std::string& id) -> std::optional<Case> {
      auto it = stored_.find(id);
      if (it == stored_.end()) return std::nullopt;
      auto c = ParseCaseJson(it->second);
      EXPECT_TRUE(c.ok()) << c.status().ToString();
      ++loads_;
      return c.ok() ? std::optional<Case>(std::move(c).value()) : std::nullopt;
    });
  }
  template <typename Call>
  void Do(Call call) {
    Effects fx;
    call(engine_, &fx);
    for (const std::string& id : fx.changed_cases) stored_[id] = CaseToJson(*engine_.Find(id)).dump();
    for (const auto& r : fx.records) out_.push_back(r.topic + " " + r.value);
    for (const auto& a : fx.audit) out_.push_back("audit " + a.json);
    if (evict_) evicted_ += engine_.EvictSettled(0);
  }
  CaseEngine& engine() { return engine_; }
  const std::vector<std::string>& out() const { return out_; }
  size_t evicted() const { return evicted_; }
  size_t loads() const { return loads_; }

 private:
  CaseEngine engine_;
  bool evict_;
  std::map<std::string, std::string> stored_;
  std::vector<std::string> out_;  // every event and audit entry, in order
  size_t evicted_ = 0, loads_ = 0;
};

// Settled cases leave memory and come back for a relapse, a reopen or a
// repeated command: the events and the audit are those of an engine that
// keeps everything, KPIs too.
TEST_F(CaseWorkflowTest, EvictedSettledCasesComeBackAsTheyWereForCommandsAndRelapses) {
  engine();  // builds city_
  DrivenEngine keeps(city_, false), evicts(city_, true);
  const int64_t d = kT0;
  int64_t n = 0;
  auto cmd = [&](const std::string& id, CaseAction a, Role r, int64_t at, const std::string& command_id = "") {
    Command c = Cmd(id, a, r, at);
    if (!command_id.empty()) c.command_id = command_id;
    return c;
  };
  auto both = [&](auto call) {
    keeps.Do(call);
    evicts.Do(call);
    ++n;
  };
  auto open = [&](Signal s) { both([s](CaseEngine& e, Effects* fx) { e.OnSignal(s, fx); }); };
  auto run = [&](Command c) { both([c](CaseEngine& e, Effects* fx) { e.OnCommand(c, fx); }); };
  auto advance = [&](int64_t t) { both([t](CaseEngine& e, Effects* fx) { e.AdvanceTo(t, fx); }); };
  auto recover = [&](int64_t t) {
    both([t](CaseEngine& e, Effects* fx) { e.OnRecovery(Recovery{"road-waterlogging", "wl-1", t}, fx); });
  };

  // A sensor case closed by its sensor, and a report case closed by hand.
  open(Sig("waterlogging", 0, 0, d));
  const std::string sensor_case = "CL-20251128-000001";
  run(cmd(sensor_case, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin));
  run(cmd(sensor_case, CaseAction::kHandled, Role::kOperator, d + 10 * kMin));
  recover(d + 12 * kMin);
  open(Report("waterlogging", 3, 3, d + 13 * kMin, "hotline", "r-1"));
  const std::string report_case = "CL-20251128-000002";
  for (CaseAction a : {CaseAction::kAcknowledge, CaseAction::kArrive, CaseAction::kHandled}) {
    run(cmd(report_case, a, Role::kOperator, d + 15 * kMin));
  }
  run(cmd(report_case, CaseAction::kVerifyPass, Role::kOperator, d + 20 * kMin, "verify-1"));
  advance(d + 2 * kHour);
  ASSERT_EQ(keeps.engine().Find(sensor_case)->status, CaseStatus::kClosed);
  ASSERT_EQ(keeps.engine().Find(report_case)->status, CaseStatus::kClosed);
  EXPECT_EQ(evicts.engine().case_count(), 0u);  // both settled before the watermark: gone
  EXPECT_EQ(evicts.evicted(), 2u);

  // Against the evicted cases: a late recovery (nothing), the repeated
  // verify (rejected as a duplicate: the case remembers it), a viewer, an
  // unknown case, a reopen, and the sensor's relapse.
  recover(d + 2 * kHour + kMin);
  run(cmd(report_case, CaseAction::kVerifyPass, Role::kOperator, d + 2 * kHour, "verify-1"));
  run(cmd(report_case, CaseAction::kReopen, Role::kViewer, d + 2 * kHour));
  run(cmd("CL-20251128-000099", CaseAction::kReopen, Role::kSupervisor, d + 2 * kHour));
  run(cmd(report_case, CaseAction::kReopen, Role::kSupervisor, d + 3 * kHour));
  open(Sig("waterlogging", 0, 0, d + 4 * kHour));
  EXPECT_EQ(keeps.engine().stats().relapses, 1);
  EXPECT_EQ(evicts.engine().stats().relapses, 1);
  ASSERT_NE(evicts.engine().Find(sensor_case), nullptr);
  EXPECT_EQ(evicts.engine().Find(sensor_case)->status, CaseStatus::kDispatched);
  EXPECT_EQ(evicts.engine().Find(report_case)->status, CaseStatus::kDispatched);
  EXPECT_GE(evicts.loads(), 2u);

  EXPECT_EQ(keeps.out(), evicts.out()) << "after " << n << " calls";
  EXPECT_EQ(keeps.engine().kpi().QueryJson(KpiGroup::kDepartment, 0, 100000).dump(),
            evicts.engine().kpi().QueryJson(KpiGroup::kDepartment, 0, 100000).dump());
  EXPECT_EQ(keeps.engine().open_count(), evicts.engine().open_count());
}

// Regression: a recovery that arrives while a handled sensor-backed case is
// suspended sets normal_since_ms but cannot make the case `verifying`; the
// resume must (before the fix it went back to `handled` and, with
// OnRecovery ignoring later recoveries, never verified by itself).
TEST_F(CaseWorkflowTest, ARecoveryDuringASuspensionStillVerifiesTheCase) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, d + 11 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 20 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  Advance(d + 42 * kMin - 1);
  EXPECT_EQ(C(id).status, CaseStatus::kVerifying);
  Advance(d + 42 * kMin);  // 30 min after the recovery
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);
  EXPECT_EQ(C(id).closed_ms, d + 42 * kMin);
}

// Regression: the quiet time of sensor-backed verification ignored
// suspensions; a verifying case suspended before its quiet time ended and
// resumed after it was closed by the next AdvanceTo back-dated into the
// suspension (closed before it was resumed). Now never before the case's
// newest change.
TEST_F(CaseWorkflowTest, SensorQuietTimeDoesNotCloseACaseInsideASuspension) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kVerifying);
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, d + 20 * kMin), "");
  Advance(d + 80 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kSuspended);
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 90 * kMin), "");
  Advance(d + 90 * kMin);
  EXPECT_EQ(C(id).status, CaseStatus::kClosed);  // the quiet time had passed: it closes at once...
  EXPECT_GE(C(id).closed_ms, d + 90 * kMin);     // ...but not before the resume
  for (const json& e : Events()) {
    EXPECT_GE(e["time"].get<std::string>(), FormatRfc3339Ms(d + 90 * kMin));
  }
}

// A new signal of the device while the case is parked: after the resume the
// case is `handled` again, its quiet time to start over.
TEST_F(CaseWorkflowTest, ASignalDuringASuspensionRestartsVerificationToo) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 2 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 10 * kMin), "");
  Recover("road-waterlogging", "wl-1", d + 12 * kMin);
  ASSERT_EQ(C(id).status, CaseStatus::kVerifying);
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, d + 14 * kMin), "");
  EXPECT_EQ(Open(Sig("waterlogging", 0, 0, d + 20 * kMin)), "");  // the device is abnormal again
  ASSERT_EQ(C(id).normal_since_ms, 0);
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 25 * kMin), "");
  EXPECT_EQ(C(id).status, CaseStatus::kHandled);
}

// ---------------------------------------------------------------- history

TEST_F(CaseWorkflowTest, TheAuditTrailGivesTheCaseAsOfAnyInstant) {
  const int64_t d = kT0;
  const std::string id = Open(Sig("waterlogging", 0, 0, d));
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 5 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kReturn, Role::kOperator, d + 10 * kMin), "");
  ASSERT_EQ(ActIn(id, CaseAction::kReassign, Role::kOperator, d + 20 * kMin, "city_management"), "");
  ASSERT_EQ(Act(id, CaseAction::kAcknowledge, Role::kOperator, d + 25 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kSuspend, Role::kSupervisor, d + 30 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kResume, Role::kSupervisor, d + 90 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kHandled, Role::kOperator, d + 100 * kMin), "");
  ASSERT_EQ(Act(id, CaseAction::kVerifyPass, Role::kOperator, d + 110 * kMin), "");
  EXPECT_EQ(Act(id, CaseAction::kReopen, Role::kOperator, d + 120 * kMin), "role");  // rejected: not in the trail

  const std::vector<std::string> trail = History(id);
  ASSERT_EQ(trail.size(), C(id).event_seq);
  auto status_at = [&](int64_t t) -> std::string {
    auto c = CaseAsOf(trail, t);
    EXPECT_TRUE(c.ok());
    if (!c.ok() || !c.value()) return "-";
    return CaseStatusName(c.value()->status);
  };
  EXPECT_EQ(status_at(d - 1), "-");
  EXPECT_EQ(status_at(d), "dispatched");
  EXPECT_EQ(status_at(d + 5 * kMin - 1), "dispatched");
  EXPECT_EQ(status_at(d + 5 * kMin), "acknowledged");
  EXPECT_EQ(status_at(d + 15 * kMin), "returned");
  EXPECT_EQ(status_at(d + 20 * kMin), "dispatched");
  EXPECT_EQ(status_at(d + 26 * kMin), "acknowledged");
  EXPECT_EQ(status_at(d + 60 * kMin), "suspended");
  EXPECT_EQ(status_at(d + 95 * kMin), "acknowledged");
  EXPECT_EQ(status_at(d + 105 * kMin), "handled");
  EXPECT_EQ(status_at(d + 110 * kMin), "closed");
  EXPECT_EQ(status_at(d + 48 * kHour), "closed");
  {
    auto c = CaseAsOf(trail, d + 21 * kMin);
    ASSERT_TRUE(c.ok() && c.value());
    EXPECT_EQ(c.value()->department, "city_management");
    EXPECT_EQ(c.value()->returns, 1);
    ASSERT_EQ(c.value()->tasks.size(), 2u);
    EXPECT_EQ(c.value()->tasks[0].status, TaskStatus::kReturned);
  }
  // The newest snapshot is the case as it is now (less its signals and the
  // id of the command being applied, which is recorded after its events).
  auto now = CaseAsOf(trail, d + 48 * kHour);
  ASSERT_TRUE(now.ok() && now.value());
  json stored = CaseToJson(C(id), /*with_signals=*/false);
  json rebuilt = CaseToJson(*now.value(), false);
  for (const char* field : {"recent_commands", "signal_count"}) {
    stored.erase(field);
    rebuilt.erase(field);
  }
  EXPECT_EQ(rebuilt, stored);

  auto timeline = Timeline(trail);
  ASSERT_TRUE(timeline.ok());
  ASSERT_EQ(timeline.value().size(), trail.size());
  for (const json& item : timeline.value()) {
    EXPECT_FALSE(item.contains("case"));
  }
  EXPECT_EQ(timeline.value()[0]["action"], "city.case.opened");
  EXPECT_EQ(timeline.value().back()["action"], "city.case.closed");

  std::vector<std::string> broken = trail;
  broken.push_back("{not json");
  EXPECT_FALSE(CaseAsOf(broken, d).ok());
}

}  // namespace
}  // namespace cityloop::dispatch

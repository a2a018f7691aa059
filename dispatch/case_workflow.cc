// CaseEngine: the workflow — registration, dispatch, operator commands and
// the transition table (docs/ARCHITECTURE.md "Case workflow").
#include <algorithm>

#include "core/case_json.h"
#include "core/time_util.h"
#include "dispatch/case_engine.h"

namespace cityloop::dispatch {

using nlohmann::json;

namespace {

constexpr size_t kRecentCommands = 8;


bool InDispatchPhase(CaseStatus s) {
  return s == CaseStatus::kDispatched || s == CaseStatus::kAcknowledged || s == CaseStatus::kEnroute ||
         s == CaseStatus::kOnScene;
}

void SetTime(JsonWriter& w, std::string_view key, int64_t ms) {
  w.Key(key);
  ms ? w.String(FormatRfc3339Ms(ms)) : w.Null();
}

// The task's and the case's deadlines, as "deadlines" of dispatch events.
void SetDeadlines(EventData& d, const Task& t, const Case& c) {
  JsonWriter& w = d.At("deadlines");
  w.BeginObject();
  if (t.acknowledge.deadline_ms) SetTime(w, "acknowledge", t.acknowledge.deadline_ms);
  if (t.arrive.deadline_ms) SetTime(w, "arrive", t.arrive.deadline_ms);
  if (t.handle.deadline_ms) SetTime(w, "handle", t.handle.deadline_ms);
  if (c.close.deadline_ms) SetTime(w, "close", c.close.deadline_ms);
  w.EndObject();
}

void StopAll(Task& t, int64_t at_ms) {
  SlaPolicy::Stop(t.acknowledge, at_ms);
  SlaPolicy::Stop(t.arrive, at_ms);
  SlaPolicy::Stop(t.handle, at_ms);
}

}  // namespace

void CaseEngine::Register(Case& c, const Actor& actor, int64_t at_ms, Effects* fx) {
  Touch(c);
  c.registered_ms = at_ms;
  c.status = CaseStatus::kRegistered;
  if (actor.role != Role::kSystem) {
    EventData data = Summary(c);
    data.Set("confirmed_by", actor.name);
    Emit(c, "city.case.registered", at_ms, std::move(data), actor, fx, Snapshot::kLater);  // dispatched next
  }
  Dispatch(c, c.department, /*lead=*/true, actor, at_ms, fx);
}

Task& CaseEngine::Dispatch(Case& c, const std::string& dept, bool lead, const Actor& actor, int64_t at_ms,
                           Effects* fx) {
  Touch(c);
  const CellInfo& cell = city_->Cell(c.cell);
  const DispatchOptions& options = city_->config().dispatch;
  Task t;
  t.department = dept;
  t.lead = lead;
  t.dispatched_ms = at_ms;
  const std::vector<UnitRecommendation> units = units_.Recommend(dept, cell, c.position, at_ms, options.alternatives);
  if (!units.empty()) t.unit = units.front().unit_id;
  sla_->Start(t.acknowledge, c.category, c.priority, SlaStage::kAcknowledge, at_ms);
  sla_->Start(t.arrive, c.category, c.priority, SlaStage::kArrive, at_ms);
  sla_->Start(t.handle, c.category, c.priority, SlaStage::kHandle, at_ms);
  const std::string previous = c.department;
  if (lead) {
    c.department = dept;
    c.status = CaseStatus::kDispatched;
    if (c.dispatched_ms == 0) {
      c.dispatched_ms = at_ms;
      c.recommended_unit = t.unit;
      sla_->Start(c.close, c.category, c.priority, SlaStage::kClose, at_ms);
    }
  }
  ++c.dispatches;
  if (!t.unit.empty()) units_.Assign(t.unit, c.id);
  c.tasks.push_back(std::move(t));
  Task& task = c.tasks.back();

  auto write_candidate = [&](JsonWriter& w, const UnitRecommendation& u) {
    const UnitView* view = units_.Find(u.unit_id);
    w.BeginObject();
    w.Field("unit_id", u.unit_id);
    w.Field("name", view ? view->unit->name : "");
    w.Field("distance_m", static_cast<int64_t>(u.distance_m));
    w.Field("eta_s", u.eta_ms / 1000);
    SetTime(w, "arrive_by", at_ms + u.eta_ms);
    w.EndObject();
  };
  EventData dispatched = Summary(c);
  dispatched.Set("department", dept);
  dispatched.Set("task", lead ? "lead" : "assist");
  dispatched.Set("dispatch", c.dispatches);
  if (lead && previous != dept) dispatched.Set("reassigned_from", previous);
  task.unit.empty() ? dispatched.Set("recommended_unit", nullptr) : dispatched.Set("recommended_unit", task.unit);
  SetDeadlines(dispatched, task, c);
  Emit(c, "city.case.dispatched", at_ms, dispatched, actor, fx, Snapshot::kLater);  // the order next

  // The order names the recommended unit and its alternatives.
  EventData order = std::move(dispatched);
  if (units.empty()) {
    order.Set("recommended_unit", nullptr);
  } else {
    write_candidate(order.At("recommended_unit"), units.front());
  }
  JsonWriter& candidates = order.At("candidates");
  candidates.BeginArray();
  for (const UnitRecommendation& u : units) write_candidate(candidates, u);
  candidates.EndArray();
  Emit(c, "city.dispatch.order", at_ms, std::move(order), actor, fx);
  return task;
}

void CaseEngine::CancelTask(Case& c, Task& t, const std::string& reason, const Actor& actor, int64_t at_ms,
                            Effects* fx) {
  t.status = TaskStatus::kCancelled;
  StopAll(t, at_ms);
  units_.Release(t.unit, c.id);
  EventData cancel = Summary(c);
  cancel.Set("department", t.department);
  cancel.Set("reason", reason);
  Emit(c, "city.dispatch.cancelled", at_ms, std::move(cancel), actor, fx);
}

void CaseEngine::SyncStatus(Case& c, const Actor& actor, int64_t at_ms, Effects* fx) {
  (void)actor;
  (void)fx;
  if (!InDispatchPhase(c.status) && c.status != CaseStatus::kReturned) return;
  const Task* lead = c.LeadTask();
  if (!lead) {
    c.status = CaseStatus::kReturned;
    return;
  }
  const bool all_handled = std::all_of(c.tasks.begin(), c.tasks.end(), [](const Task& t) {
    return !TaskIsActive(t.status) || t.status == TaskStatus::kHandled;
  });
  if (all_handled) {
    c.handled_ms = at_ms;
    c.status = SensorBacked(c) && c.normal_since_ms ? CaseStatus::kVerifying : CaseStatus::kHandled;
    sla_->Start(c.verify, c.category, c.priority, SlaStage::kVerify, at_ms);
    return;
  }
  switch (lead->status) {
    case TaskStatus::kDispatched: c.status = CaseStatus::kDispatched; break;
    case TaskStatus::kAcknowledged: c.status = CaseStatus::kAcknowledged; break;
    case TaskStatus::kEnroute: c.status = CaseStatus::kEnroute; break;
    case TaskStatus::kOnScene: c.status = CaseStatus::kOnScene; break;
    default: break;  // the lead is done, assisting tasks are not: the case stays where it was
  }
}

void CaseEngine::Close(Case& c, bool verified, const Actor& actor, int64_t at_ms, Effects* fx) {
  Touch(c);
  if (verified) {
    c.verified_ms = at_ms;
    SlaPolicy::Stop(c.verify, at_ms);
    EventData data = Summary(c);
    data.Set("by", actor.role == Role::kSystem ? "sensor" : "inspector");
    Emit(c, "city.case.verified", at_ms, std::move(data), actor, fx, Snapshot::kLater);  // closed next
  }
  for (Task& t : c.tasks) {
    StopAll(t, at_ms);
    units_.Release(t.unit, c.id);
  }
  SlaPolicy::Stop(c.verify, at_ms);
  SlaPolicy::Stop(c.close, at_ms);
  c.closed_ms = at_ms;
  c.status = CaseStatus::kClosed;
  Unindex(c);
  EventData data = Summary(c);
  data.Set("verified", verified);
  data.Set("on_time", c.close.deadline_ms == 0 || at_ms <= c.close.deadline_ms);
  if (c.registered_ms) data.Set("time_to_close_s", (at_ms - c.registered_ms) / 1000);
  Emit(c, "city.case.closed", at_ms, std::move(data), actor, fx);
}

void CaseEngine::Reopen(Case& c, const Actor& actor, int64_t at_ms, Effects* fx) {
  Touch(c);
  ++c.reopens;
  c.reopened_ms = at_ms;
  c.closed_ms = c.verified_ms = c.handled_ms = 0;
  c.normal_since_ms = 0;
  c.verify = {};
  sla_->Start(c.close, c.category, c.priority, SlaStage::kClose, at_ms);
  c.status = CaseStatus::kDispatched;
  Index(c);
  EventData data = Summary(c);
  data.Set("reopens", c.reopens);
  Emit(c, "city.case.reopened", at_ms, std::move(data), actor, fx, Snapshot::kLater);  // dispatched next
  Dispatch(c, c.department, /*lead=*/true, actor, at_ms, fx);
}

void CaseEngine::Escalate(Case& c, const std::string& level, const std::string& target, const std::string& why,
                          std::optional<SlaStage> stage, const Actor& actor, int64_t at_ms, Effects* fx) {
  Touch(c);
  ++stats_.escalations;
  EventData data = Summary(c);
  data.Set("level", level);
  data.Set("target", target);
  data.Set("reason", why);
  if (stage) data.Set("stage", SlaStageName(*stage));
  Emit(c, "city.case.escalated", at_ms, std::move(data), actor, fx);
}

void CaseEngine::Reject(const Command& cmd, const Case* c, const std::string& reason, Effects* fx) {
  ++stats_.rejected[reason.substr(0, reason.find(':'))];
  const auto& topics = city_->config().kafka.topics;
  const size_t colon = reason.find(':');
  JsonWriter& w = writer_;
  w.BeginObject();
  w.Field("command_id", cmd.command_id);
  w.Field("case_id", cmd.case_id);
  w.Field("action", CaseActionName(cmd.action));
  w.Field("actor", cmd.actor);
  w.Field("role", RoleName(cmd.role));
  w.Field("reason", reason.substr(0, colon));
  w.Field("message", colon == std::string::npos ? reason : reason.substr(colon + 2));
  w.Key("status");
  c ? w.String(CaseStatusName(c->status)) : w.Null();
  w.EndObject();
  const std::string data = w.Take();
  WriteCloudEvent(w, "rejected:" + cmd.input.ToString(), event_source_, "city.command.rejected",
                  FormatRfc3339Ms(cmd.ts_ms), cmd.case_id, data);
  fx->records.push_back({topics.cases, cmd.case_id, w.Take()});
}

std::string CaseEngine::OnCommand(const Command& cmd, Effects* fx) {
  Case* found = Resident(cmd.case_id);
  std::string reason;
  if (!found) {
    reason = "unknown_case: no case " + cmd.case_id;
  } else if (std::find(found->recent_commands.begin(), found->recent_commands.end(), cmd.command_id) !=
             found->recent_commands.end()) {
    reason = "duplicate_command: command " + cmd.command_id + " was applied already";
  } else if (cmd.role == Role::kViewer) {
    reason = "role: a viewer may not act on cases";
  } else {
    Case& c = *found;
    // Commands never act before the case's newest change (clock skew between consoles).
    const int64_t at = std::max(cmd.ts_ms, c.updated_ms);
    const size_t audit_before = fx->audit.size(), records_before = fx->records.size();
    reason = Apply(c, cmd, at, fx);
    if (!reason.empty()) {
      // Nothing half-applied: Apply checks everything before it changes anything.
      CL_CHECK_MSG(fx->audit.size() == audit_before && fx->records.size() == records_before && touched_.empty(),
                   "a rejected command changed its case");
    } else {
      Touch(c);
      c.recent_commands.push_back(cmd.command_id);
      if (c.recent_commands.size() > kRecentCommands) c.recent_commands.erase(c.recent_commands.begin());
      ++stats_.commands_applied;
    }
  }
  if (!reason.empty()) {
    Reject(cmd, found, reason, fx);
    return reason.substr(0, reason.find(':'));
  }
  Settle(fx);
  return "";
}

std::string CaseEngine::Apply(Case& c, const Command& cmd, int64_t at, Effects* fx) {
  const CaseAction a = cmd.action;
  const std::string action = CaseActionName(a);
  const std::string status = CaseStatusName(c.status);
  auto not_in = [&] { return "status: " + action + " is not allowed in status " + status; };
  auto needs = [&](Role min) -> std::string {
    if (RoleAtLeast(cmd.role, min)) return "";
    return std::string("role: ") + RoleName(cmd.role) + " may not " + action + " (needs " + RoleName(min) + ")";
  };
  Actor actor;
  actor.name = cmd.actor;
  actor.role = cmd.role;
  actor.reason = cmd.note;
  actor.command_id = cmd.command_id;
  const bool open = CaseIsOpen(c.status);
  const bool paused = c.status == CaseStatus::kSuspended || c.status == CaseStatus::kDeferred;

  // Task actions: the task of cmd.department, else the lead's.
  auto task_action = [&](std::initializer_list<TaskStatus> from, Task** out) -> std::string {
    if (!InDispatchPhase(c.status)) return not_in();
    Task* t = cmd.department.empty() ? c.LeadTask() : c.FindTask(cmd.department);
    if (!t) return "no_task: no active task of department " + (cmd.department.empty() ? c.department : cmd.department);
    if (std::find(from.begin(), from.end(), t->status) == from.end()) {
      return "status: " + action + " is not allowed for a task in status " + TaskStatusName(t->status);
    }
    *out = t;
    return needs(Role::kOperator);
  };
  // A task event's data: the case's summary and the task.
  auto task_data = [&](const Task& t) {
    EventData data = Summary(c);
    data.Set("department", t.department);
    data.Set("task", t.lead ? "lead" : "assist");
    if (!t.unit.empty()) data.Set("unit", t.unit);
    return data;
  };


  Task* t = nullptr;
  switch (a) {
    case CaseAction::kAcknowledge: {
      if (auto r = task_action({TaskStatus::kDispatched}, &t); !r.empty()) return r;
      Touch(c);
      t->status = TaskStatus::kAcknowledged;
      t->acknowledged_ms = at;
      SlaPolicy::Stop(t->acknowledge, at);
      SyncStatus(c, actor, at, fx);
      EventData data = task_data(*t);
      data.Set("on_time", t->acknowledge.deadline_ms == 0 || at <= t->acknowledge.deadline_ms);
      Emit(c, "city.case.acknowledged", at, std::move(data), actor, fx);
      return "";
    }
    case CaseAction::kEnroute: {
      if (auto r = task_action({TaskStatus::kAcknowledged}, &t); !r.empty()) return r;
      if (!cmd.unit_id.empty()) {
        const UnitView* u = units_.Find(cmd.unit_id);
        if (!u || u->unit->department != t->department) {
          return "bad_unit: " + cmd.unit_id + " is no unit of " + t->department;
        }
      }
      Touch(c);
      if (!cmd.unit_id.empty() && cmd.unit_id != t->unit) {
        units_.Release(t->unit, c.id);
        t->unit = cmd.unit_id;
        units_.Assign(t->unit, c.id);
      }
      t->status = TaskStatus::kEnroute;
      t->enroute_ms = at;
      SyncStatus(c, actor, at, fx);
      Emit(c, "city.case.enroute", at, task_data(*t), actor, fx);
      return "";
    }
    case CaseAction::kArrive: {
      if (auto r = task_action({TaskStatus::kAcknowledged, TaskStatus::kEnroute}, &t); !r.empty()) return r;
      Touch(c);
      t->status = TaskStatus::kOnScene;
      t->arrived_ms = at;
      SlaPolicy::Stop(t->arrive, at);
      SyncStatus(c, actor, at, fx);
      EventData data = task_data(*t);
      data.Set("on_time", t->arrive.deadline_ms == 0 || at <= t->arrive.deadline_ms);
      Emit(c, "city.case.arrived", at, std::move(data), actor, fx);
      return "";
    }
    case CaseAction::kHandled: {
      if (auto r = task_action({TaskStatus::kAcknowledged, TaskStatus::kEnroute, TaskStatus::kOnScene}, &t);
          !r.empty()) {
        return r;
      }
      Touch(c);
      t->status = TaskStatus::kHandled;
      t->handled_ms = at;
      StopAll(*t, at);
      units_.Release(t->unit, c.id);
      SyncStatus(c, actor, at, fx);
      EventData data = task_data(*t);
      data.Set("on_time", t->handle.deadline_ms == 0 || at <= t->handle.deadline_ms);
      data.Set("case_handled", c.handled_ms != 0);
      Emit(c, "city.case.handled", at, std::move(data), actor, fx);
      return "";
    }
    case CaseAction::kReturn: {
      if (auto r = task_action({TaskStatus::kDispatched, TaskStatus::kAcknowledged}, &t); !r.empty()) return r;
      Touch(c);
      t->status = TaskStatus::kReturned;
      StopAll(*t, at);
      units_.Release(t->unit, c.id);
      const std::string dept = t->department;
      const bool lead = t->lead;
      ++c.returns;
      c.returned_by.push_back(dept);
      SyncStatus(c, actor, at, fx);
      EventData data = Summary(c);
      data.Set("department", dept);
      data.Set("task", lead ? "lead" : "assist");
      data.Set("returns", c.returns);
      Emit(c, "city.case.returned", at, std::move(data), actor, fx);
      const EscalationOptions& esc = city_->config().escalation;
      // Dispatch ping-pong: the newest returns alternate between the same two departments.
      const auto& trail = c.returned_by;
      size_t run = 1;
      while (run < trail.size() && trail[trail.size() - run - 1] != trail[trail.size() - run] &&
             (run < 2 || trail[trail.size() - run - 1] == trail[trail.size() - run + 1])) {
        ++run;
      }
      if (run >= 2 && run == static_cast<size_t>(esc.ping_pong_returns)) {
        ++stats_.ping_pongs;
        EventData pp = Summary(c);
        pp.Set("departments", std::vector<std::string>{trail[trail.size() - 2], trail.back()});
        pp.Set("returns", run);
        Actor system;
        system.rule = "escalation.ping_pong";
        Emit(c, "city.case.dispatch_ping_pong", at, std::move(pp), system, fx);
      }
      if (c.returns >= esc.max_returns && !c.forced_escalation) {
        c.forced_escalation = true;
        Actor system;
        system.rule = "escalation.max_returns";
        Escalate(c, "forced", esc.forced_target, "returned " + std::to_string(c.returns) + " times", std::nullopt,
                 system, at, fx);
      }
      return "";
    }
    case CaseAction::kReassign:
    case CaseAction::kAssist: {
      const bool reassign = a == CaseAction::kReassign;
      const bool allowed = InDispatchPhase(c.status) || (reassign && (c.status == CaseStatus::kReturned ||
                                                                      c.status == CaseStatus::kRegistered));
      if (!allowed) return not_in();
      if (auto r = needs(Role::kOperator); !r.empty()) return r;
      if (!city_->FindDepartment(cmd.department)) return "bad_department: no department " + cmd.department;
      if (c.FindTask(cmd.department)) return "bad_department: " + cmd.department + " already has a task on this case";
      Touch(c);
      if (reassign) {
        Task* lead = c.LeadTask();
        if (lead && lead->status != TaskStatus::kHandled) {
          CancelTask(c, *lead, "reassigned to " + cmd.department, actor, at, fx);
        }
      }
      Dispatch(c, cmd.department, reassign, actor, at, fx);
      return "";
    }
    case CaseAction::kExtend: {
      if (!InDispatchPhase(c.status)) return not_in();
      if (auto r = needs(c.extensions == 0 ? Role::kOperator : Role::kSupervisor); !r.empty()) {
        return r + "; a second extension needs a supervisor";
      }
      if (cmd.duration_ms <= 0) return "bad_argument: extend needs a duration";
      Task* lead = c.LeadTask();
      if (!lead) return "no_task: no active lead task";
      Touch(c);
      sla_->Extend(lead->handle, cmd.duration_ms, at);
      sla_->Extend(c.close, cmd.duration_ms, at);
      ++lead->extensions;
      ++c.extensions;
      EventData data = Summary(c);
      data.Set("by_s", cmd.duration_ms / 1000);
      data.Set("extensions", c.extensions);
      SetDeadlines(data, *lead, c);
      Emit(c, "city.case.extended", at, std::move(data), actor, fx);
      return "";
    }
    case CaseAction::kSuspend:
    case CaseAction::kDefer: {
      if (!open || paused || c.status == CaseStatus::kDetected) return not_in();
      if (auto r = needs(Role::kSupervisor); !r.empty()) return r;
      Touch(c);
      c.resume_to = c.status;
      c.paused_ms = at;
      const bool defer = a == CaseAction::kDefer;
      c.status = defer ? CaseStatus::kDeferred : CaseStatus::kSuspended;
      if (defer) c.deferred = true;
      Emit(c, defer ? "city.case.deferred" : "city.case.suspended", at, Summary(c), actor, fx);
      return "";
    }
    case CaseAction::kResume: {
      if (!paused) return not_in();
      if (auto r = needs(Role::kSupervisor); !r.empty()) return r;
      Touch(c);
      for (Task& task : c.tasks) {
        for (SlaClock* k : {&task.acknowledge, &task.arrive, &task.handle}) sla_->AddPause(*k, c.paused_ms, at);
      }
      sla_->AddPause(c.verify, c.paused_ms, at);
      sla_->AddPause(c.close, c.paused_ms, at);
      EventData data = Summary(c);
      data.Set("paused_s", (at - c.paused_ms) / 1000);
      data.Set("was", CaseStatusName(c.status));
      c.status = c.resume_to;
      c.paused_ms = 0;
      // The device went normal while the case was parked.
      if (c.status == CaseStatus::kHandled && SensorBacked(c) && c.normal_since_ms) c.status = CaseStatus::kVerifying;
      data.Set("status", CaseStatusName(c.status));
      Emit(c, "city.case.resumed", at, std::move(data), actor, fx);
      return "";
    }
    case CaseAction::kVerifyPass: {
      if (c.status == CaseStatus::kDetected) {
        if (auto r = needs(Role::kOperator); !r.empty()) return r;
        Register(c, actor, at, fx);  // 核实: the report is real
        return "";
      }
      if (c.status != CaseStatus::kHandled && c.status != CaseStatus::kVerifying) return not_in();
      if (auto r = needs(Role::kOperator); !r.empty()) return r;
      Close(c, /*verified=*/true, actor, at, fx);
      return "";
    }
    case CaseAction::kVerifyFail: {
      if (c.status != CaseStatus::kHandled && c.status != CaseStatus::kVerifying) return not_in();
      if (auto r = needs(Role::kOperator); !r.empty()) return r;
      Task* lead = nullptr;
      for (Task& task : c.tasks) {
        if (task.lead && task.status == TaskStatus::kHandled) lead = &task;
      }
      if (!lead) return "no_task: no handled lead task to rework";
      Touch(c);
      ++c.reworks;
      lead->status = TaskStatus::kAcknowledged;
      lead->handled_ms = 0;
      sla_->Start(lead->handle, c.category, c.priority, SlaStage::kHandle, at);  // 返工: a new handling limit
      c.handled_ms = 0;
      c.verify = {};
      c.status = CaseStatus::kAcknowledged;
      EventData data = Summary(c);
      data.Set("department", lead->department);
      data.Set("reworks", c.reworks);
      SetDeadlines(data, *lead, c);
      Emit(c, "city.case.rework", at, std::move(data), actor, fx);
      const EscalationOptions& esc = city_->config().escalation;
      if (c.reworks >= esc.max_reworks && !c.forced_escalation) {
        c.forced_escalation = true;
        Actor system;
        system.rule = "escalation.max_reworks";
        Escalate(c, "forced", esc.forced_target, "reworked " + std::to_string(c.reworks) + " times", std::nullopt,
                 system, at, fx);
      }
      return "";
    }
    case CaseAction::kClose: {
      if (c.status != CaseStatus::kHandled && c.status != CaseStatus::kVerifying) return not_in();
      if (auto r = needs(Role::kSupervisor); !r.empty()) return r;
      Close(c, /*verified=*/false, actor, at, fx);
      return "";
    }
    case CaseAction::kReopen: {
      if (c.status != CaseStatus::kClosed) return not_in();
      if (auto r = needs(Role::kSupervisor); !r.empty()) return r;
      Reopen(c, actor, at, fx);
      return "";
    }
    case CaseAction::kInvalidate: {
      if (!open) return not_in();
      if (auto r = needs(c.status == CaseStatus::kDetected ? Role::kOperator : Role::kSupervisor); !r.empty()) {
        return r;
      }
      Touch(c);
      for (Task& task : c.tasks) {
        if (TaskIsActive(task.status) && task.status != TaskStatus::kHandled) {
          CancelTask(c, task, "invalidated", actor, at, fx);
        }
      }
      SlaPolicy::Stop(c.verify, at);
      SlaPolicy::Stop(c.close, at);
      c.status = CaseStatus::kInvalid;
      c.invalidated_ms = at;
      Unindex(c);
      Emit(c, "city.case.invalidated", at, Summary(c), actor, fx);
      return "";
    }
    case CaseAction::kMerge: {
      if (!open) return not_in();
      if (auto r = needs(Role::kOperator); !r.empty()) return r;
      auto into = cases_.find(cmd.into);
      if (into == cases_.end() || into->second.id == c.id || !CaseIsOpen(into->second.status)) {
        return "bad_argument: merge needs another open case, got '" + cmd.into + "'";
      }
      Merge(into->second, c, actor, at, fx);
      return "";
    }
  }
  return "bad_argument: unknown action";
}

void CaseEngine::OnRecovery(const Recovery& r, Effects* fx) {
  auto it = by_sensor_.find(r.rule_id + "/" + r.device_id);
  if (it == by_sensor_.end()) return;
  auto found = cases_.find(it->second);  // absent: settled and evicted, nothing to verify
  if (found == cases_.end()) return;
  Case& c = found->second;
  if (!CaseIsOpen(c.status) || c.normal_since_ms != 0 || r.ts_ms < c.last_signal_ms) return;
  Touch(c);
  c.normal_since_ms = r.ts_ms;
  if (c.status == CaseStatus::kHandled && SensorBacked(c)) c.status = CaseStatus::kVerifying;
  EventData data = Summary(c);
  data.Set("device_id", r.device_id);
  data.Set("rule", r.rule_id);
  data.Set("normal_since", FormatRfc3339Ms(r.ts_ms));
  Actor system;
  system.rule = r.rule_id;
  Emit(c, "city.case.device_normal", r.ts_ms, std::move(data), system, fx);
  Settle(fx);
}

std::string CaseEngine::OnUnitUpdate(const UnitUpdate& u, Effects* fx) {
  std::string reason = units_.Apply(u);
  if (!reason.empty()) return reason;
  const UnitView* view = units_.Find(u.unit_id);
  if (view && !view->assigned_case.empty()) {
    auto it = cases_.find(view->assigned_case);
    if (it != cases_.end() && CaseIsOpen(it->second.status)) {
      Retime(it->second);  // its ETA moved: so did the lateness check
    }
  }
  (void)fx;
  return "";
}

}  // namespace cityloop::dispatch

// CaseEngine: time — SLA lights, escalation levels, unit lateness and
// sensor-backed verification, fired from the watermark in event time.
#include <algorithm>

#include "core/time_util.h"
#include "dispatch/case_engine.h"

namespace cityloop::dispatch {

using nlohmann::json;

namespace {

SlaClock* ClockOf(Case& c, int task, SlaStage stage) {
  if (task < 0) return stage == SlaStage::kVerify ? &c.verify : &c.close;
  Task& t = c.tasks[static_cast<size_t>(task)];
  return stage == SlaStage::kAcknowledge ? &t.acknowledge : stage == SlaStage::kArrive ? &t.arrive : &t.handle;
}

}  // namespace

bool CaseEngine::SensorBacked(const Case& c) const {
  return !c.signals.empty() && c.signals.front().source == SignalSource::kSensor &&
         city_->config().dispatch.sensor_normal_for_ms > 0;
}

int64_t CaseEngine::AutoVerifyAt(const Case& c) const {
  if (c.status != CaseStatus::kVerifying || !SensorBacked(c) || c.normal_since_ms == 0) return kNever;
  // Never before the case's newest change (a resume after the quiet time ended).
  return std::max(std::max(c.normal_since_ms, c.handled_ms) + city_->config().dispatch.sensor_normal_for_ms,
                  c.updated_ms);
}

int64_t CaseEngine::LatestDeparture(const Case& c) const {
  const Task* t = c.LeadTask();
  if (!t || t->unit.empty() || t->late_warned || !t->arrive.running() || t->arrive.limit_ms <= 0) return kNever;
  if (t->status != TaskStatus::kDispatched && t->status != TaskStatus::kAcknowledged &&
      t->status != TaskStatus::kEnroute) {
    return kNever;
  }
  const int64_t eta = units_.EtaMs(t->unit, c.position, now_ms_);
  if (eta < 0) return kNever;
  return std::max(t->dispatched_ms, t->arrive.deadline_ms - eta);
}

CaseEngine::DueItem CaseEngine::NextItem(const Case& c) const {
  DueItem next;
  if (!CaseIsOpen(c.status) || c.status == CaseStatus::kSuspended || c.status == CaseStatus::kDeferred) return next;
  auto consider = [&](int64_t at, DueItem::Kind kind, int task, SlaStage stage, size_t level = 0) {
    if (at < next.at) next = {at, kind, task, stage, level};
  };
  const auto& levels = city_->config().escalation.levels;
  const Task* lead = c.LeadTask();
  auto clock = [&](const SlaClock& k, int task, SlaStage stage, bool escalates) {
    consider(SlaPolicy::NextDue(k), DueItem::kLight, task, stage);
    if (!escalates || !k.running() || k.limit_ms <= 0) return;
    size_t seen = 0;  // levels of this stage, in config order; k.escalations of them fired
    for (size_t i = 0; i < levels.size(); ++i) {
      if (levels[i].stage != stage) continue;
      if (seen++ == k.escalations) {
        consider(std::max(k.started_ms, k.deadline_ms + levels[i].after_ms), DueItem::kEscalation, task, stage, i);
        break;
      }
    }
  };
  for (size_t i = 0; i < c.tasks.size(); ++i) {
    const Task& t = c.tasks[i];
    if (!TaskIsActive(t.status) || t.status == TaskStatus::kHandled) continue;
    const int task = static_cast<int>(i);
    clock(t.acknowledge, task, SlaStage::kAcknowledge, &t == lead);
    clock(t.arrive, task, SlaStage::kArrive, &t == lead);
    clock(t.handle, task, SlaStage::kHandle, &t == lead);
  }
  clock(c.verify, -1, SlaStage::kVerify, true);
  clock(c.close, -1, SlaStage::kClose, true);
  if (lead) consider(LatestDeparture(c), DueItem::kLateness, static_cast<int>(lead - c.tasks.data()), SlaStage::kArrive);
  consider(AutoVerifyAt(c), DueItem::kAutoVerify, -1, SlaStage::kVerify);
  return next;
}

void CaseEngine::AdvanceTo(int64_t watermark_ms, Effects* fx) {
  if (watermark_ms > now_ms_) now_ms_ = watermark_ms;
  while (!timers_.empty() && timers_.begin()->first <= now_ms_) {
    const std::string id = timers_.begin()->second;
    timers_.erase(timers_.begin());
    due_.erase(id);
    FireDue(cases_.at(id), fx);
    Settle(fx);
  }
}

void CaseEngine::FireDue(Case& c, Effects* fx) {
  Touch(c);
  for (DueItem item = NextItem(c); item.at <= now_ms_; item = NextItem(c)) Fire(c, item, fx);
}

void CaseEngine::Fire(Case& c, const DueItem& item, Effects* fx) {
  Actor system;
  EventData data = Summary(c);
  const Task* task = item.task >= 0 ? &c.tasks[static_cast<size_t>(item.task)] : nullptr;
  if (task) data.Set("department", task->department);
  data.Set("stage", SlaStageName(item.stage));
  switch (item.kind) {
    case DueItem::kLight: {
      SlaClock& k = *ClockOf(c, item.task, item.stage);
      const bool red = k.light == SlaLight::kYellow || item.at >= k.deadline_ms;
      k.light = red ? SlaLight::kRed : SlaLight::kYellow;
      system.rule = red ? "sla.breach_ratio" : "sla.warning_ratio";
      data.Set("light", SlaLightName(k.light));
      data.Set("deadline", FormatRfc3339Ms(k.deadline_ms));
      data.Set("limit_s", k.limit_ms / 1000);
      data.Set("working_time", k.working_time);
      red ? ++stats_.sla_breaches : ++stats_.sla_warnings;
      Emit(c, red ? "city.case.sla_breached" : "city.case.sla_warning", item.at, std::move(data), system, fx);
      return;
    }
    case DueItem::kEscalation: {
      SlaClock& k = *ClockOf(c, item.task, item.stage);
      ++k.escalations;
      const EscalationLevel& level = city_->config().escalation.levels[item.level];
      system.rule = "escalation.levels[" + std::to_string(item.level) + "]";
      const int64_t off = level.after_ms / 60000;
      const std::string when = off == 0 ? "at" : off < 0 ? std::to_string(-off) + " min before" : std::to_string(off) + " min after";
      Escalate(c, level.name, level.target,
               std::string(SlaStageName(item.stage)) + " deadline " + FormatRfc3339Ms(k.deadline_ms) + ": " + when,
               item.stage, system, item.at, fx);
      return;
    }
    case DueItem::kLateness: {
      Task& t = c.tasks[static_cast<size_t>(item.task)];
      t.late_warned = true;
      const int64_t eta = units_.EtaMs(t.unit, c.position, now_ms_);
      system.rule = "dispatch.eta";
      data.Set("light", "yellow");
      data.Set("reason", "eta");
      data.Set("unit", t.unit);
      data.Set("eta_s", eta / 1000);
      data.Set("projected_arrival", FormatRfc3339Ms(item.at + eta));
      data.Set("deadline", FormatRfc3339Ms(t.arrive.deadline_ms));
      ++stats_.sla_warnings;
      Emit(c, "city.case.sla_warning", item.at, std::move(data), system, fx);
      return;
    }
    case DueItem::kAutoVerify: {
      ++stats_.auto_verified;
      system.rule = "verification.sensor_normal_for";
      system.reason = "device " + c.signals.front().device_id + " normal since " + FormatRfc3339Ms(c.normal_since_ms);
      Close(c, /*verified=*/true, system, item.at, fx);
      return;
    }
  }
}

}  // namespace cityloop::dispatch

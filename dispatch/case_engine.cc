#include "dispatch/case_engine.h"

#include <algorithm>
#include <cstdio>

#include "core/case_json.h"
#include "core/time_util.h"

namespace cityloop::dispatch {

using nlohmann::json;

namespace {

void SetPriorityChange(EventData& d, Priority from, Priority to) {
  JsonWriter& w = d.At("priority_changed");
  w.BeginObject();
  w.Field("from", PriorityName(from));
  w.Field("to", PriorityName(to));
  w.EndObject();
}

}  // namespace

void Effects::Clear() {
  changed_cases.clear();
  opened_cases.clear();
  audit.clear();
  records.clear();
}

std::string EventSource(const CityModel& city) {
  return "urn:cityloop:" + city.config().kafka.group_id;
}

void WriteCloudEvent(JsonWriter& w, std::string_view id, std::string_view source, std::string_view type,
                     std::string_view time, std::string_view subject, std::string_view data_json) {
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Key("data");
  w.Raw(data_json);
  w.Field("datacontenttype", "application/json");
  w.Field("id", id);
  w.Field("source", source);
  w.Field("specversion", "1.0");
  w.Field("subject", subject);
  w.Field("time", time);
  w.Field("type", type);
  w.EndObject();
}

CaseEngine::CaseEngine(std::shared_ptr<const CityModel> city)
    : city_(std::move(city)),
      sla_(std::make_unique<SlaPolicy>(city_->config())),
      units_(city_),
      kpi_(city_->config().kpi),
      event_source_(EventSource(*city_)) {
  writer_.Reserve(4096, 64);
  kpi_.set_track_dirty(false);  // rebuilt from the cases on start, never persisted
}

void CaseEngine::SetCity(std::shared_ptr<const CityModel> city) {
  city_ = std::move(city);
  sla_ = std::make_unique<SlaPolicy>(city_->config());
  event_source_ = EventSource(*city_);
}

std::string CaseEngine::MergeKey(const std::string& category, int cell) const {
  return category + "/" + std::to_string(cell);
}

void CaseEngine::Index(const Case& c) {
  if (!CaseIsOpen(c.status)) return;
  open_by_key_[MergeKey(c.category, c.cell)].push_back(c.id);
  ++open_count_;
}

void CaseEngine::Unindex(const Case& c) {
  if (auto key = open_by_key_.find(MergeKey(c.category, c.cell)); key != open_by_key_.end()) {
    std::erase(key->second, c.id);
    if (key->second.empty()) open_by_key_.erase(key);
  }
  --open_count_;
}

void CaseEngine::Restore(Case c) { Admit(std::move(c), /*readmitted=*/false); }

Case& CaseEngine::Admit(Case c, bool readmitted) {
  const std::string id = c.id;
  Index(c);
  if (!readmitted && !c.signals.empty() && c.signals.front().source == SignalSource::kSensor) {
    by_sensor_[c.signals.front().rule_id + "/" + c.signals.front().device_id] = id;
  }
  for (const Task& t : c.tasks) {
    if (TaskIsActive(t.status) && t.status != TaskStatus::kHandled && !t.unit.empty() && CaseIsOpen(c.status)) {
      units_.Assign(t.unit, id);
    }
  }
  if (!readmitted) kpi_.Replace({}, Contribute(c, city_->config().city.utc_offset_minutes));
  auto [it, inserted] = cases_.insert_or_assign(id, std::move(c));
  Retime(it->second);
  return it->second;
}

Case* CaseEngine::Resident(const std::string& id) {
  if (auto it = cases_.find(id); it != cases_.end()) return &it->second;
  if (!loader_) return nullptr;
  std::optional<Case> stored = loader_(id);
  // Only settled cases leave memory, so one read back is settled too.
  if (!stored || stored->id != id || CaseIsOpen(stored->status)) return nullptr;
  return &Admit(std::move(*stored), /*readmitted=*/true);
}

size_t CaseEngine::EvictSettled(int64_t keep_ms) {
  if (!loader_) return 0;
  size_t evicted = 0;
  for (auto it = cases_.begin(); it != cases_.end();) {
    const Case& c = it->second;
    if (CaseIsOpen(c.status) || c.updated_ms >= now_ms_ - keep_ms || touched_.count(c.id) || due_.count(c.id)) {
      ++it;
      continue;
    }
    it = cases_.erase(it);
    ++evicted;
  }
  return evicted;
}

void CaseEngine::Retime(const Case& c) {
  if (auto d = due_.find(c.id); d != due_.end()) {
    timers_.erase({d->second, c.id});
    due_.erase(d);
  }
  if (const int64_t due = NextDue(c); due != kNever) {
    timers_.emplace(due, c.id);
    due_[c.id] = due;
  }
}

const Case* CaseEngine::Find(std::string_view id) const {
  auto it = cases_.find(std::string(id));
  return it == cases_.end() ? nullptr : &it->second;
}

size_t CaseEngine::OpenCaseBytes() const {
  size_t bytes = 0;
  auto str = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  for (const auto& [id, c] : cases_) {
    if (!CaseIsOpen(c.status)) continue;
    bytes += sizeof(Case) + 64 /* map node */ + str(c.id) + str(c.category) + str(c.category_code) + str(c.cell_code) +
             str(c.district) + str(c.street) + str(c.community) + str(c.department) + str(c.recommended_unit);
    bytes += c.tasks.capacity() * sizeof(Task);
    for (const Task& t : c.tasks) bytes += str(t.department) + str(t.unit);
    bytes += c.signals.capacity() * sizeof(Signal);
    for (const Signal& s : c.signals) {
      bytes += str(s.id) + str(s.category) + str(s.device_id) + str(s.sensor_kind) + str(s.rule_id) +
               str(s.input.topic) + str(s.explanation) + str(s.follows);
      for (const auto& [k, v] : s.attributes) bytes += 64 + str(k) + str(v);
      for (const auto& m : s.members) bytes += sizeof(std::string) + str(m);
    }
    for (const auto& r : c.recent_commands) bytes += sizeof(std::string) + str(r);
    bytes += 96;  // merge index, timer set and due map entries
  }
  return bytes;
}

EventData CaseEngine::Summary(const Case& c) const {
  EventData d;  // in key order, see WriteCaseJson
  d.Set("case_id", c.id);
  d.Set("category", c.category);
  d.Set("category_code", c.category_code);
  d.Set("community", c.community);
  d.Set("department", c.department);
  d.Set("district", c.district);
  d.Set("first_event_time", FormatRfc3339MsText(c.first_event_ms).view());
  d.Set("grid", c.cell_code);
  JsonWriter& location = d.At("location");
  location.BeginObject();
  location.Field("lat", c.position.lat);
  location.Field("lon", c.position.lon);
  location.EndObject();
  d.Set("priority", PriorityName(c.priority));
  d.Set("signals", c.signals.size());
  d.Set("status", CaseStatusName(c.status));
  d.Set("street", c.street);
  return d;
}

void CaseEngine::Emit(Case& c, std::string_view type, int64_t time_ms, EventData data, const Actor& actor,
                      Effects* fx, Snapshot snapshot) {
  const uint32_t seq = ++c.event_seq;
  c.updated_ms = std::max(c.updated_ms, time_ms);
  const bool order = type.starts_with("city.dispatch.");  // .order, .cancelled: to the department
  const auto& topics = city_->config().kafka.topics;
  const std::string key = order ? data.department() : c.id;
  const std::string detail = data.Finish();
  const Rfc3339Text at_text = FormatRfc3339MsText(time_ms);
  const std::string_view at = at_text.view();
  JsonWriter& w = writer_;
  WriteCloudEvent(w, c.id + ":" + std::to_string(seq), event_source_, type, at, c.id, detail);
  fx->records.push_back({order ? topics.dispatch : topics.cases, key, w.Take()});

  w.BeginObject(JsonWriter::Order::kSorted);
  w.Field("action", type);
  w.Field("actor", actor.name);
  w.Field("at", at);
  w.Field("at_ms", time_ms);
  if (snapshot == Snapshot::kHere) {
    w.Key("case");
    WriteCaseJson(w, c, /*with_signals=*/false);
  }
  w.Field("case_id", c.id);
  if (!actor.command_id.empty()) w.Field("command_id", actor.command_id);
  w.Key("detail");
  w.Raw(detail);
  if (!actor.reason.empty()) w.Field("reason", actor.reason);
  w.Field("role", RoleName(actor.role));
  if (!actor.rule.empty()) w.Field("rule", actor.rule);
  w.Field("seq", seq);
  w.Field("status", CaseStatusName(c.status));
  w.EndObject();
  fx->audit.push_back({c.id, seq, w.Take()});
}

Case& CaseEngine::Touch(Case& c) {
  if (!touched_.count(c.id)) touched_.emplace(c.id, Contribute(c, city_->config().city.utc_offset_minutes));
  return c;
}

void CaseEngine::Settle(Effects* fx) {
  for (auto& [id, before] : touched_) {
    Case& c = cases_.at(id);
    kpi_.Replace(before, Contribute(c, city_->config().city.utc_offset_minutes));
    Retime(c);
    fx->changed_cases.push_back(id);
  }
  touched_.clear();
}

Case* CaseEngine::OpenCase(const Signal& s, Effects* fx) {
  const CellInfo& cell = city_->Cell(s.cell);
  Case c;
  char number[16];
  std::snprintf(number, sizeof number, "%06llu",
                static_cast<unsigned long long>(ShardSequence(next_case_number_++, shard_)));
  c.id = "CL-" + FormatLocalDate(s.fired_ms, city_->config().city.utc_offset_minutes) + "-" + number;
  c.category = s.category;
  const Category* category = city_->FindCategory(s.category);
  if (category) c.category_code = category->code;
  c.priority = s.priority;
  c.cell = s.cell;
  c.cell_code = cell.code;
  c.district = cell.district ? cell.district->id : "";
  c.street = cell.street ? cell.street->id : "";
  c.community = cell.community ? cell.community->id : "";
  c.department = city_->DepartmentFor(s.category, cell);
  c.position = s.position;
  c.first_event_ms = s.ts_ms;
  c.first_ingest_ms = s.ingest_ms;
  c.last_signal_ms = s.fired_ms;
  c.signals.push_back(s);
  // 核实 before 立案: a category that needs an operator's confirmation (a
  // camera's fire candidate), and reports from low-confidence channels.
  const auto& channels = city_->config().dispatch.confirm_channels;
  auto channel = s.attributes.find("channel");
  const bool confirm = (category != nullptr && category->requires_confirmation) ||
                       (s.source == SignalSource::kReport && channel != s.attributes.end() &&
                        std::find(channels.begin(), channels.end(), channel->second) != channels.end());
  c.status = CaseStatus::kDetected;

  touched_.emplace(c.id, KpiContribution{});
  auto [it, inserted] = cases_.emplace(c.id, std::move(c));
  CL_CHECK_MSG(inserted, "case id reused: " + it->first);
  Case& kase = it->second;
  Index(kase);
  if (s.source == SignalSource::kSensor) by_sensor_[s.rule_id + "/" + s.device_id] = kase.id;
  ++stats_.opened;
  fx->opened_cases.push_back(kase.id);

  Actor system;
  system.rule = s.rule_id;
  EventData opened = Summary(kase);
  WriteSignalJson(opened.At("signal"), s);
  JsonWriter& routing = opened.At("routing");
  routing.BeginObject();
  routing.Field("rule", "grid->district, catalogue->department");
  routing.Field("department_source", category ? "catalogue" : "district_default");
  routing.EndObject();
  if (confirm) opened.Set("awaiting", "confirmation");
  Emit(kase, "city.case.opened", s.fired_ms, std::move(opened), system, fx,
       confirm ? Snapshot::kHere : Snapshot::kLater);  // Register dispatches next
  if (!confirm) Register(kase, system, s.fired_ms, fx);
  return &kase;
}

std::vector<Case*> CaseEngine::Candidates(const Signal& s) {
  const RulesOptions& merge = city_->config().rules;
  std::vector<Case*> out;
  auto consider = [&](int cell, bool neighbour) {
    auto key = open_by_key_.find(MergeKey(s.category, cell));
    if (key == open_by_key_.end()) return;
    for (const std::string& id : key->second) {
      Case& c = cases_.at(id);
      // Within the window of the case's span, either side: input of several
      // topics arrives out of event-time order (a backlog, a slow partition).
      const bool in_time = s.fired_ms <= c.last_signal_ms + merge.merge_window_ms &&
                           s.fired_ms >= c.first_event_ms - merge.merge_window_ms;
      if (!CaseIsOpen(c.status) || !in_time) continue;
      if (neighbour && DistanceMeters(s.position, c.position) > merge.merge_radius_m) continue;
      out.push_back(&c);
    }
  };
  consider(s.cell, false);
  if (merge.merge_radius_m > 0) {
    // Cells reaching within the radius (the grid's R-tree), then the case itself must.
    for (int n : city_->grid().CellsWithin(s.position, merge.merge_radius_m)) {
      if (n != s.cell) consider(n, true);
    }
  }
  // Oldest first: ids are numbered in opening order within a day, and the
  // first event time orders across days.
  std::sort(out.begin(), out.end(), [](const Case* a, const Case* b) {
    return a->first_event_ms != b->first_event_ms ? a->first_event_ms < b->first_event_ms : a->id < b->id;
  });
  return out;
}

void CaseEngine::Merge(Case& into, Case& from, const Actor& actor, int64_t at_ms, Effects* fx) {
  Touch(into);
  Touch(from);
  for (Signal& s : from.signals) into.signals.push_back(s);
  into.first_event_ms = std::min(into.first_event_ms, from.first_event_ms);
  into.last_signal_ms = std::max(into.last_signal_ms, from.last_signal_ms);
  const Priority before = into.priority;
  if (from.priority < into.priority) into.priority = from.priority;
  into.absorbed.push_back(from.id);
  Unindex(from);
  for (Task& t : from.tasks) {
    if (TaskIsActive(t.status) && t.status != TaskStatus::kHandled) {
      // The department was sent to the absorbed case: tell it the task is now the other case's.
      t.status = TaskStatus::kCancelled;
      for (SlaClock* k : {&t.acknowledge, &t.arrive, &t.handle}) SlaPolicy::Stop(*k, at_ms);
      units_.Release(t.unit, from.id);
      EventData cancel = Summary(from);
      cancel.Set("department", t.department);
      cancel.Set("reason", "merged");
      cancel.Set("merged_into", into.id);
      cancel.Set("merged_into_department", into.department);
      Emit(from, "city.dispatch.cancelled", at_ms, std::move(cancel), actor, fx, Snapshot::kLater);  // merged next
    }
  }
  SlaPolicy::Stop(from.verify, at_ms);
  SlaPolicy::Stop(from.close, at_ms);
  from.status = CaseStatus::kMerged;
  from.merged_into = into.id;
  ++stats_.merged_cases;

  EventData gone = Summary(from);
  gone.Set("merged_into", into.id);
  gone.Set("reason", actor.reason);
  Emit(from, "city.case.merged", at_ms, std::move(gone), actor, fx);
  EventData kept = Summary(into);
  kept.Set("absorbed", from.id);
  kept.Set("reason", actor.reason);
  kept.Set("absorbed_signals", from.signals.size());
  if (into.priority != before) SetPriorityChange(kept, before, into.priority);
  Emit(into, "city.case.merged", at_ms, std::move(kept), actor, fx);
}

void CaseEngine::AddSignal(Case& c, const Signal& s, Effects* fx) {
  Touch(c);
  c.signals.push_back(s);
  c.last_signal_ms = std::max(c.last_signal_ms, s.fired_ms);
  const Priority before = c.priority;
  if (s.priority < c.priority) c.priority = s.priority;
  // The device is abnormal again: sensor-backed verification starts over.
  if (s.source == SignalSource::kSensor && SensorBacked(c) && s.device_id == c.signals.front().device_id) {
    c.normal_since_ms = 0;
    if (c.status == CaseStatus::kVerifying) c.status = CaseStatus::kHandled;
    if (c.resume_to == CaseStatus::kVerifying) c.resume_to = CaseStatus::kHandled;  // parked meanwhile
  }
  ++stats_.merged_signals;
  EventData data = Summary(c);
  WriteSignalJson(data.At("signal"), s);
  if (c.priority != before) SetPriorityChange(data, before, c.priority);
  Actor system;
  system.rule = s.rule_id;
  Emit(c, "city.case.signal_added", s.fired_ms, std::move(data), system, fx);
}

Case* CaseEngine::OpenCaseHolding(const std::string& signal_id) {
  for (auto& [key, ids] : open_by_key_) {
    for (const std::string& id : ids) {
      Case& c = cases_.at(id);
      for (const Signal& known : c.signals) {
        if (known.id == signal_id) return &c;
      }
    }
  }
  return nullptr;
}

Case* CaseEngine::RelapsedCase(const Signal& s) {
  const int64_t within = city_->config().dispatch.relapse_within_ms;
  if (s.source != SignalSource::kSensor || within <= 0) return nullptr;
  auto it = by_sensor_.find(s.rule_id + "/" + s.device_id);
  if (it == by_sensor_.end()) return nullptr;
  Case* resident = Resident(it->second);
  if (!resident) return nullptr;
  Case& c = *resident;
  const bool sensor_closed = c.status == CaseStatus::kClosed && c.verified_ms != 0 && c.verified_ms == c.closed_ms;
  if (!sensor_closed || s.fired_ms < c.closed_ms || s.fired_ms > c.closed_ms + within) return nullptr;
  return &c;
}

void CaseEngine::OnSignal(const Signal& s, Effects* fx) {
  if (s.cell < 0 || s.cell >= city_->grid().cell_count()) return;
  auto known_in = [&](const Case& c) {
    return std::any_of(c.signals.begin(), c.signals.end(), [&](const Signal& k) { return k.id == s.id; });
  };
  if (!s.follows.empty()) {
    // A follow-up (a camera event's update or end) joins the case of the
    // signal it follows, or nothing once that case is closed.
    Case* c = OpenCaseHolding(s.follows);
    if (!c) {
      ++stats_.orphan_followups;
      return;
    }
    if (known_in(*c)) {
      ++stats_.duplicate_signals;
      return;
    }
    AddSignal(*c, s, fx);
    Settle(fx);
    return;
  }
  std::vector<Case*> candidates = Candidates(s);
  if (std::any_of(candidates.begin(), candidates.end(), [&](const Case* c) { return known_in(*c); })) {
    ++stats_.duplicate_signals;
    return;
  }
  Case* target = nullptr;
  if (candidates.empty()) {
    if (Case* relapsed = RelapsedCase(s); relapsed && !known_in(*relapsed)) {
      ++stats_.relapses;
      Actor system;
      system.rule = "verification.relapse_within";
      system.reason = "relapse of " + s.rule_id + " on " + s.device_id + " after sensor-backed verification";
      Touch(*relapsed);
      relapsed->signals.push_back(s);
      relapsed->last_signal_ms = std::max(relapsed->last_signal_ms, s.fired_ms);
      Reopen(*relapsed, system, s.fired_ms, fx);
      Settle(fx);
      return;
    }
    target = OpenCase(s, fx);
  } else {
    target = candidates.front();
    AddSignal(*target, s, fx);
  }
  // The signal bridges cases that are one problem: they merge into the oldest.
  for (size_t i = 1; i < candidates.size(); ++i) {
    Actor system;
    system.rule = "merge";
    system.reason = "signal " + s.id + " joins both";
    Merge(*target, *candidates[i], system, s.fired_ms, fx);
  }
  if (s.absorb_members && !s.members.empty()) {
    std::vector<Case*> absorbed;
    for (auto& [id, c] : cases_) {
      if (&c == target || !CaseIsOpen(c.status)) continue;
      const bool holds = std::any_of(c.signals.begin(), c.signals.end(), [&](const Signal& x) {
        return std::find(s.members.begin(), s.members.end(), x.id) != s.members.end();
      });
      if (holds) absorbed.push_back(&c);
    }
    for (Case* c : absorbed) {
      Actor system;
      system.rule = s.rule_id;
      system.reason = "correlation " + s.rule_id + " (" + s.explanation + ")";
      Merge(*target, *c, system, s.fired_ms, fx);
    }
  }
  Settle(fx);
}

CaseEngine::Census CaseEngine::TakeCensus() const {
  Census out;
  out.timers = static_cast<int64_t>(timers_.size());
  for (const auto& [id, c] : cases_) {
    if (!CaseIsOpen(c.status)) continue;
    ++out.by_status[c.status];
    std::optional<SlaLight> worst;
    auto consider = [&](const SlaClock& k) {
      if (k.started_ms == 0 || k.stopped_ms != 0) return;
      if (!worst || static_cast<int>(k.light) > static_cast<int>(*worst)) worst = k.light;
    };
    for (const Task& t : c.tasks) {
      for (const SlaClock* k : {&t.acknowledge, &t.arrive, &t.handle}) consider(*k);
    }
    consider(c.verify);
    consider(c.close);
    if (!worst) continue;
    if (*worst == SlaLight::kRed) ++out.red;
    else if (*worst == SlaLight::kYellow) ++out.yellow;
    else ++out.green;
  }
  return out;
}

}  // namespace cityloop::dispatch

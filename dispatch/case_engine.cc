#include "dispatch/case_engine.h"

#include <algorithm>
#include <cstdio>

#include "core/case_json.h"
#include "core/time_util.h"

namespace cityloop::dispatch {

using nlohmann::json;

void Effects::Clear() {
  changed_cases.clear();
  opened_cases.clear();
  audit.clear();
  records.clear();
}

std::string EventSource(const CityModel& city) {
  return "urn:cityloop:" + city.config().kafka.group_id;
}

CaseEngine::CaseEngine(std::shared_ptr<const CityModel> city) : city_(std::move(city)) {}

std::string CaseEngine::MergeKey(const std::string& category, int cell) const {
  return category + "/" + std::to_string(cell);
}

void CaseEngine::Restore(Case c) {
  const std::string id = c.id;
  if (CaseIsOpen(c.status)) open_by_key_[MergeKey(c.category, c.cell)].push_back(id);
  cases_[id] = std::move(c);
}

size_t CaseEngine::open_count() const {
  size_t n = 0;
  for (const auto& [id, c] : cases_) n += CaseIsOpen(c.status);
  return n;
}

const Case* CaseEngine::Find(std::string_view id) const {
  auto it = cases_.find(std::string(id));
  return it == cases_.end() ? nullptr : &it->second;
}

json CaseEngine::Summary(const Case& c) const {
  return json{{"case_id", c.id},
              {"category", c.category},
              {"category_code", c.category_code},
              {"priority", PriorityName(c.priority)},
              {"status", CaseStatusName(c.status)},
              {"grid", c.cell_code},
              {"district", c.district},
              {"street", c.street},
              {"community", c.community},
              {"department", c.department},
              {"location", {{"lat", c.position.lat}, {"lon", c.position.lon}}},
              {"signals", c.signals.size()},
              {"first_event_time", FormatRfc3339Ms(c.first_event_ms)}};
}

void CaseEngine::Audit(Case& c, uint32_t seq, const std::string& action, int64_t at_ms, json detail,
                       Effects* fx) {
  json entry{{"case_id", c.id}, {"seq", seq},         {"action", action}, {"at", FormatRfc3339Ms(at_ms)},
             {"actor", "system"}, {"status", CaseStatusName(c.status)}, {"detail", std::move(detail)}};
  fx->audit.push_back({c.id, seq, entry.dump()});
}

void CaseEngine::Emit(Case& c, const std::string& type, int64_t time_ms, json data, Effects* fx) {
  const uint32_t seq = ++c.event_seq;
  const bool order = type.rfind("city.dispatch.", 0) == 0;  // .order, .cancelled: to the department
  const auto& topics = city_->config().kafka.topics;
  json event{{"specversion", "1.0"},
             {"id", c.id + ":" + std::to_string(seq)},
             {"source", EventSource(*city_)},
             {"type", type},
             {"time", FormatRfc3339Ms(time_ms)},
             {"subject", c.id},
             {"datacontenttype", "application/json"},
             {"data", data}};
  fx->records.push_back({order ? topics.dispatch : topics.cases, order ? c.department : c.id, event.dump()});
  Audit(c, seq, type, time_ms, std::move(data), fx);
}

Case* CaseEngine::OpenCase(const Signal& s, Effects* fx) {
  const CellInfo& cell = city_->Cell(s.cell);
  Case c;
  char number[16];
  std::snprintf(number, sizeof number, "%06llu", static_cast<unsigned long long>(next_case_number_++));
  c.id = "CL-" + FormatLocalDate(s.fired_ms, city_->config().city.utc_offset_minutes) + "-" + number;
  c.category = s.category;
  if (const Category* cat = city_->FindCategory(s.category)) c.category_code = cat->code;
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
  const Category* category = city_->FindCategory(s.category);
  // A category that needs an operator's confirmation (a camera's fire
  // candidate) waits in `detected`, undispatched (核实 before 立案).
  const bool confirm = category != nullptr && category->requires_confirmation;
  c.status = confirm ? CaseStatus::kDetected : CaseStatus::kRegistered;
  c.registered_ms = confirm ? 0 : s.fired_ms;

  auto [it, inserted] = cases_.emplace(c.id, std::move(c));
  CL_CHECK_MSG(inserted, "case id reused: " + it->first);
  Case& kase = it->second;
  open_by_key_[MergeKey(kase.category, kase.cell)].push_back(kase.id);
  ++stats_.opened;

  json opened = Summary(kase);
  opened["signal"] = SignalToJson(s);
  opened["routing"] = {{"rule", "grid->district, catalogue->department"},
                       {"department_source", city_->FindCategory(kase.category) ? "catalogue" : "district_default"}};
  if (confirm) opened["awaiting"] = "confirmation";
  Emit(kase, "city.case.opened", s.fired_ms, std::move(opened), fx);
  if (confirm) return &kase;

  // Dispatch at once: sensor-confirmed cases need no manual verification.
  const SlaOptions& sla = city_->config().sla;
  kase.status = CaseStatus::kDispatched;
  kase.dispatched_ms = s.fired_ms;
  auto limit = [](const std::map<Priority, int64_t>& m, Priority p) {
    auto l = m.find(p);
    return l == m.end() ? int64_t{0} : l->second;
  };
  const int64_t ack = limit(sla.acknowledge_ms, kase.priority);
  auto by_cat = sla.handle_by_category_ms.find(kase.category);
  const int64_t handle = by_cat != sla.handle_by_category_ms.end() ? by_cat->second : limit(sla.handle_ms, kase.priority);
  kase.ack_deadline_ms = ack ? kase.dispatched_ms + ack : 0;
  kase.handle_deadline_ms = handle ? kase.dispatched_ms + handle : 0;

  json candidates = json::array();
  for (const Unit* u : city_->UnitsNearest(kase.department, cell, kase.position)) {
    if (candidates.size() == 3) break;
    candidates.push_back({{"unit_id", u->id}, {"name", u->name},
                          {"distance_m", static_cast<int64_t>(DistanceMeters(u->base, kase.position))}});
  }
  if (!candidates.empty()) kase.recommended_unit = candidates[0]["unit_id"].get<std::string>();

  json deadlines = json::object();
  if (kase.ack_deadline_ms) deadlines["acknowledge"] = FormatRfc3339Ms(kase.ack_deadline_ms);
  if (kase.handle_deadline_ms) deadlines["handle"] = FormatRfc3339Ms(kase.handle_deadline_ms);
  json dispatched = Summary(kase);
  dispatched["recommended_unit"] = kase.recommended_unit.empty() ? json(nullptr) : json(kase.recommended_unit);
  dispatched["deadlines"] = deadlines;
  Emit(kase, "city.case.dispatched", kase.dispatched_ms, dispatched, fx);

  json order = Summary(kase);
  order["recommended_unit"] = candidates.empty() ? json(nullptr) : candidates[0];
  order["candidates"] = candidates;
  order["deadlines"] = deadlines;
  Emit(kase, "city.dispatch.order", kase.dispatched_ms, std::move(order), fx);
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

void CaseEngine::Merge(Case& into, Case& from, const std::string& reason, int64_t at_ms, Effects* fx) {
  for (Signal& s : from.signals) into.signals.push_back(s);
  into.first_event_ms = std::min(into.first_event_ms, from.first_event_ms);
  into.last_signal_ms = std::max(into.last_signal_ms, from.last_signal_ms);
  const Priority before = into.priority;
  if (from.priority < into.priority) into.priority = from.priority;
  into.absorbed.push_back(from.id);
  const bool was_dispatched = from.dispatched_ms != 0;
  from.status = CaseStatus::kMerged;
  from.merged_into = into.id;
  if (auto key = open_by_key_.find(MergeKey(from.category, from.cell)); key != open_by_key_.end()) {
    std::erase(key->second, from.id);
    if (key->second.empty()) open_by_key_.erase(key);
  }
  ++stats_.merged_cases;

  json gone = Summary(from);
  gone["merged_into"] = into.id;
  gone["reason"] = reason;
  Emit(from, "city.case.merged", at_ms, std::move(gone), fx);
  if (was_dispatched) {
    // The department was sent to the absorbed case: tell it the task is now the other case's.
    json cancel = Summary(from);
    cancel["reason"] = "merged";
    cancel["merged_into"] = into.id;
    cancel["merged_into_department"] = into.department;
    Emit(from, "city.dispatch.cancelled", at_ms, std::move(cancel), fx);
  }
  json kept = Summary(into);
  kept["absorbed"] = from.id;
  kept["reason"] = reason;
  kept["absorbed_signals"] = from.signals.size();
  if (into.priority != before) kept["priority_changed"] = {{"from", PriorityName(before)}, {"to", PriorityName(into.priority)}};
  Emit(into, "city.case.merged", at_ms, std::move(kept), fx);
  fx->changed_cases.push_back(from.id);
  fx->changed_cases.push_back(into.id);
}

void CaseEngine::AddSignal(Case& c, const Signal& s, Effects* fx) {
  c.signals.push_back(s);
  c.last_signal_ms = std::max(c.last_signal_ms, s.fired_ms);
  const Priority before = c.priority;
  if (s.priority < c.priority) c.priority = s.priority;
  ++stats_.merged_signals;
  json data = Summary(c);
  data["signal"] = SignalToJson(s);
  if (c.priority != before) data["priority_changed"] = {{"from", PriorityName(before)}, {"to", PriorityName(c.priority)}};
  Emit(c, "city.case.signal_added", s.fired_ms, std::move(data), fx);
  fx->changed_cases.push_back(c.id);
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

void CaseEngine::OnSignal(const Signal& s, Effects* fx) {
  if (s.cell < 0 || s.cell >= city_->grid().cell_count()) return;
  if (!s.follows.empty()) {
    // A follow-up (a camera event's update or end) joins the case of the
    // signal it follows, or nothing once that case is closed.
    Case* c = OpenCaseHolding(s.follows);
    if (!c) {
      ++stats_.orphan_followups;
      return;
    }
    for (const Signal& known : c->signals) {
      if (known.id == s.id) {
        ++stats_.duplicate_signals;
        return;
      }
    }
    AddSignal(*c, s, fx);
    return;
  }
  std::vector<Case*> candidates = Candidates(s);
  for (Case* c : candidates) {
    for (const Signal& known : c->signals) {
      if (known.id == s.id) {
        ++stats_.duplicate_signals;
        return;
      }
    }
  }
  Case* target = nullptr;
  if (candidates.empty()) {
    target = OpenCase(s, fx);
    fx->changed_cases.push_back(target->id);
    fx->opened_cases.push_back(target->id);
  } else {
    target = candidates.front();
    AddSignal(*target, s, fx);
  }
  // The signal bridges cases that are one problem: they merge into the oldest.
  for (size_t i = 1; i < candidates.size(); ++i) {
    Merge(*target, *candidates[i], "signal " + s.id + " joins both", s.fired_ms, fx);
  }
  if (!s.absorb_members || s.members.empty()) return;
  std::vector<Case*> absorbed;
  for (auto& [id, c] : cases_) {
    if (&c == target || !CaseIsOpen(c.status)) continue;
    const bool holds = std::any_of(c.signals.begin(), c.signals.end(), [&](const Signal& x) {
      return std::find(s.members.begin(), s.members.end(), x.id) != s.members.end();
    });
    if (holds) absorbed.push_back(&c);
  }
  for (Case* c : absorbed) Merge(*target, *c, "correlation " + s.rule_id + " (" + s.explanation + ")", s.fired_ms, fx);
}

}  // namespace cityloop::dispatch

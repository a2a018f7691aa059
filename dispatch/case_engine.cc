#include "dispatch/case_engine.h"

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
  if (CaseIsOpen(c.status)) open_by_key_[MergeKey(c.category, c.cell)] = id;
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
  const bool order = type == "city.dispatch.order";
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
  c.status = CaseStatus::kRegistered;
  c.registered_ms = s.fired_ms;

  auto [it, inserted] = cases_.emplace(c.id, std::move(c));
  CL_CHECK_MSG(inserted, "case id reused: " + it->first);
  Case& kase = it->second;
  open_by_key_[MergeKey(kase.category, kase.cell)] = kase.id;
  ++stats_.opened;

  json opened = Summary(kase);
  opened["signal"] = SignalToJson(s);
  opened["routing"] = {{"rule", "grid->district, catalogue->department"},
                       {"department_source", city_->FindCategory(kase.category) ? "catalogue" : "district_default"}};
  Emit(kase, "city.case.opened", s.fired_ms, std::move(opened), fx);

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

void CaseEngine::OnSignal(const Signal& s, Effects* fx) {
  if (s.cell < 0 || s.cell >= city_->grid().cell_count()) return;
  auto key = open_by_key_.find(MergeKey(s.category, s.cell));
  Case* target = nullptr;
  if (key != open_by_key_.end()) {
    Case& c = cases_.at(key->second);
    const int64_t window = city_->config().rules.merge_window_ms;
    if (CaseIsOpen(c.status) && s.fired_ms - c.last_signal_ms <= window) target = &c;
  }
  if (!target) {
    Case* c = OpenCase(s, fx);
    fx->changed_cases.push_back(c->id);
    fx->opened_cases.push_back(c->id);
    return;
  }
  for (const Signal& known : target->signals) {
    if (known.id == s.id) {
      ++stats_.duplicate_signals;
      return;
    }
  }
  target->signals.push_back(s);
  target->last_signal_ms = std::max(target->last_signal_ms, s.fired_ms);
  if (s.priority < target->priority) target->priority = s.priority;
  ++stats_.merged_signals;
  json data = Summary(*target);
  data["signal"] = SignalToJson(s);
  Emit(*target, "city.case.signal_added", s.fired_ms, std::move(data), fx);
  fx->changed_cases.push_back(target->id);
}

}  // namespace cityloop::dispatch

#include "core/case_json.h"

namespace cityloop {

using nlohmann::json;

// Members are written in key order (JsonWriter::Order::kSorted): these are
// the hot path, and the writer then has nothing to track or rearrange.

void WriteSignalJson(JsonWriter& w, const Signal& s) {
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Key("attributes");
  w.BeginObject(JsonWriter::Order::kSorted);
  for (const auto& [k, v] : s.attributes) w.Field(k, v);
  w.EndObject();
  w.Field("category", s.category);
  w.Field("cell", s.cell);
  w.Field("device_id", s.device_id);
  w.Field("explanation", s.explanation);
  w.Field("fired", s.fired_ms);
  if (!s.follows.empty()) w.Field("follows", s.follows);
  w.Field("id", s.id);
  w.Field("ingest", s.ingest_ms);
  w.Field("input", s.input.ToString());
  w.Field("input_offset", s.input.offset);
  w.Field("input_partition", s.input.partition);
  w.Field("input_topic", s.input.topic);
  w.Field("lat", s.position.lat);
  w.Field("lon", s.position.lon);
  w.Field("members", s.members);
  w.Field("priority", PriorityName(s.priority));
  w.Field("rule", s.rule_id);
  w.Field("sensor_kind", s.sensor_kind);
  w.Field("source", SignalSourceName(s.source));
  w.Field("threshold", s.threshold);
  w.Field("ts", s.ts_ms);
  w.Field("value", s.value);
  w.EndObject();
}

json SignalToJson(const Signal& s) {
  JsonWriter w;
  WriteSignalJson(w, s);
  return json::parse(w.text());
}

Result<Signal> SignalFromJson(const json& j) {
  try {
    Signal s;
    s.id = j.at("id").get<std::string>();
    const std::string src = j.value("source", "sensor");
    s.source = src == "camera"        ? SignalSource::kCamera
               : src == "report"      ? SignalSource::kReport
               : src == "correlation" ? SignalSource::kCorrelation
                                      : SignalSource::kSensor;
    s.category = j.at("category").get<std::string>();
    s.priority = ParsePriority(j.value("priority", "normal")).value_or(Priority::kNormal);
    s.cell = j.value("cell", -1);
    s.position = {j.value("lat", 0.0), j.value("lon", 0.0)};
    s.ts_ms = j.value("ts", int64_t{0});
    s.fired_ms = j.value("fired", int64_t{0});
    s.ingest_ms = j.value("ingest", int64_t{0});
    s.device_id = j.value("device_id", "");
    s.sensor_kind = j.value("sensor_kind", "");
    s.rule_id = j.value("rule", "");
    s.value = j.value("value", 0.0);
    s.threshold = j.value("threshold", 0.0);
    s.input.topic = j.value("input_topic", "");
    s.input.partition = j.value("input_partition", 0);
    s.input.offset = j.value("input_offset", int64_t{-1});
    s.explanation = j.value("explanation", "");
    if (auto it = j.find("attributes"); it != j.end()) s.attributes = it->get<std::map<std::string, std::string>>();
    if (auto it = j.find("members"); it != j.end()) s.members = it->get<std::vector<std::string>>();
    s.follows = j.value("follows", "");
    return s;
  } catch (const json::exception& e) {
    return Status::DataLoss(std::string("bad signal JSON: ") + e.what());
  }
}

namespace {

void WriteClockJson(JsonWriter& w, const SlaClock& k) {
  if (k.started_ms == 0) return w.Null();
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Field("deadline", k.deadline_ms);
  w.Field("escalations", k.escalations);
  w.Field("light", SlaLightName(k.light));
  w.Field("limit", k.limit_ms);
  w.Field("paused_total", k.paused_total_ms);
  w.Field("started", k.started_ms);
  w.Field("stopped", k.stopped_ms);
  w.Field("warn", k.warn_ms);
  w.Field("working", k.working_time);
  w.EndObject();
}

SlaClock ClockFromJson(const json& j) {
  SlaClock k;
  if (!j.is_object()) return k;
  k.started_ms = j.value("started", int64_t{0});
  k.limit_ms = j.value("limit", int64_t{0});
  k.warn_ms = j.value("warn", int64_t{0});
  k.deadline_ms = j.value("deadline", int64_t{0});
  k.stopped_ms = j.value("stopped", int64_t{0});
  k.paused_total_ms = j.value("paused_total", int64_t{0});
  k.working_time = j.value("working", false);
  const std::string light = j.value("light", "green");
  k.light = light == "red" ? SlaLight::kRed : light == "yellow" ? SlaLight::kYellow : SlaLight::kGreen;
  k.escalations = j.value("escalations", uint8_t{0});
  return k;
}

void WriteTaskJson(JsonWriter& w, const Task& t) {
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Key("acknowledge_clock");
  WriteClockJson(w, t.acknowledge);
  w.Field("acknowledged", t.acknowledged_ms);
  w.Key("arrive_clock");
  WriteClockJson(w, t.arrive);
  w.Field("arrived", t.arrived_ms);
  w.Field("department", t.department);
  w.Field("dispatched", t.dispatched_ms);
  w.Field("enroute", t.enroute_ms);
  w.Field("extensions", t.extensions);
  w.Key("handle_clock");
  WriteClockJson(w, t.handle);
  w.Field("handled", t.handled_ms);
  w.Field("late_warned", t.late_warned);
  w.Field("lead", t.lead);
  w.Field("status", TaskStatusName(t.status));
  w.Field("unit", t.unit);
  w.EndObject();
}

Task TaskFromJson(const json& j) {
  Task t;
  t.department = j.at("department").get<std::string>();
  t.lead = j.value("lead", true);
  t.status = ParseTaskStatus(j.value("status", "dispatched")).value_or(TaskStatus::kDispatched);
  t.unit = j.value("unit", "");
  t.dispatched_ms = j.value("dispatched", int64_t{0});
  t.acknowledged_ms = j.value("acknowledged", int64_t{0});
  t.enroute_ms = j.value("enroute", int64_t{0});
  t.arrived_ms = j.value("arrived", int64_t{0});
  t.handled_ms = j.value("handled", int64_t{0});
  t.acknowledge = ClockFromJson(j.value("acknowledge_clock", json()));
  t.arrive = ClockFromJson(j.value("arrive_clock", json()));
  t.handle = ClockFromJson(j.value("handle_clock", json()));
  t.extensions = j.value("extensions", uint8_t{0});
  t.late_warned = j.value("late_warned", false);
  return t;
}

}  // namespace

void WriteCaseJson(JsonWriter& w, const Case& c, bool with_signals) {
  w.BeginObject(JsonWriter::Order::kSorted);
  w.Field("absorbed", c.absorbed);
  w.Field("category", c.category);
  w.Field("category_code", c.category_code);
  w.Field("cell", c.cell);
  w.Key("close_clock");
  WriteClockJson(w, c.close);
  w.Field("closed", c.closed_ms);
  w.Field("community", c.community);
  w.Field("deferred", c.deferred);
  w.Field("department", c.department);
  w.Field("dispatched", c.dispatched_ms);
  w.Field("dispatches", c.dispatches);
  w.Field("district", c.district);
  w.Field("event_seq", c.event_seq);
  w.Field("extensions", c.extensions);
  w.Field("first_event", c.first_event_ms);
  w.Field("first_ingest", c.first_ingest_ms);
  w.Field("forced_escalation", c.forced_escalation);
  w.Field("grid", c.cell_code);
  w.Field("handled", c.handled_ms);
  w.Field("id", c.id);
  w.Field("invalidated", c.invalidated_ms);
  w.Field("last_signal", c.last_signal_ms);
  w.Field("lat", c.position.lat);
  w.Field("lon", c.position.lon);
  w.Field("merged_into", c.merged_into);
  w.Field("normal_since", c.normal_since_ms);
  w.Field("paused", c.paused_ms);
  w.Field("priority", PriorityName(c.priority));
  w.Field("recent_commands", c.recent_commands);
  w.Field("recommended_unit", c.recommended_unit);
  w.Field("registered", c.registered_ms);
  w.Field("reopened", c.reopened_ms);
  w.Field("reopens", c.reopens);
  w.Field("resume_to", CaseStatusName(c.resume_to));
  w.Field("returned_by", c.returned_by);
  w.Field("returns", c.returns);
  w.Field("reworks", c.reworks);
  w.Field("signal_count", c.signals.size());
  if (with_signals) {
    w.Key("signals");
    w.BeginArray();
    for (const auto& s : c.signals) WriteSignalJson(w, s);
    w.EndArray();
  }
  w.Field("status", CaseStatusName(c.status));
  w.Field("street", c.street);
  w.Key("tasks");
  w.BeginArray();
  for (const Task& t : c.tasks) WriteTaskJson(w, t);
  w.EndArray();
  w.Field("updated", c.updated_ms);
  w.Field("verified", c.verified_ms);
  w.Key("verify_clock");
  WriteClockJson(w, c.verify);
  w.EndObject();
}

std::string CaseJsonText(const Case& c, bool with_signals) {
  JsonWriter w;
  WriteCaseJson(w, c, with_signals);
  return w.Take();
}

json CaseToJson(const Case& c, bool with_signals) { return json::parse(CaseJsonText(c, with_signals)); }

Result<Case> CaseFromJson(const json& j) {
  try {
    Case c;
    c.id = j.at("id").get<std::string>();
    c.category = j.at("category").get<std::string>();
    c.category_code = j.value("category_code", "");
    c.priority = ParsePriority(j.value("priority", "normal")).value_or(Priority::kNormal);
    auto status = ParseCaseStatus(j.value("status", "detected"));
    if (!status) return Status::DataLoss("case " + c.id + " has an unknown status");
    c.status = *status;
    c.cell = j.value("cell", -1);
    c.cell_code = j.value("grid", "");
    c.district = j.value("district", "");
    c.street = j.value("street", "");
    c.community = j.value("community", "");
    c.department = j.value("department", "");
    c.position = {j.value("lat", 0.0), j.value("lon", 0.0)};
    c.recommended_unit = j.value("recommended_unit", "");
    c.first_event_ms = j.value("first_event", int64_t{0});
    c.first_ingest_ms = j.value("first_ingest", int64_t{0});
    c.registered_ms = j.value("registered", int64_t{0});
    c.dispatched_ms = j.value("dispatched", int64_t{0});
    c.handled_ms = j.value("handled", int64_t{0});
    c.verified_ms = j.value("verified", int64_t{0});
    c.closed_ms = j.value("closed", int64_t{0});
    c.reopened_ms = j.value("reopened", int64_t{0});
    c.invalidated_ms = j.value("invalidated", int64_t{0});
    c.last_signal_ms = j.value("last_signal", int64_t{0});
    c.updated_ms = j.value("updated", int64_t{0});
    for (const auto& tj : j.value("tasks", json::array())) c.tasks.push_back(TaskFromJson(tj));
    c.verify = ClockFromJson(j.value("verify_clock", json()));
    c.close = ClockFromJson(j.value("close_clock", json()));
    c.resume_to = ParseCaseStatus(j.value("resume_to", "detected")).value_or(CaseStatus::kDetected);
    c.paused_ms = j.value("paused", int64_t{0});
    c.returns = j.value("returns", uint8_t{0});
    c.reworks = j.value("reworks", uint8_t{0});
    c.reopens = j.value("reopens", uint8_t{0});
    c.extensions = j.value("extensions", uint8_t{0});
    c.dispatches = j.value("dispatches", uint8_t{0});
    c.deferred = j.value("deferred", false);
    c.forced_escalation = j.value("forced_escalation", false);
    if (auto it = j.find("returned_by"); it != j.end()) c.returned_by = it->get<std::vector<std::string>>();
    c.normal_since_ms = j.value("normal_since", int64_t{0});
    if (auto it = j.find("recent_commands"); it != j.end()) c.recent_commands = it->get<std::vector<std::string>>();
    c.event_seq = j.value("event_seq", 0u);
    c.merged_into = j.value("merged_into", "");
    if (auto it = j.find("absorbed"); it != j.end()) c.absorbed = it->get<std::vector<std::string>>();
    for (const auto& sj : j.value("signals", json::array())) {
      auto s = SignalFromJson(sj);
      if (!s.ok()) return s.status();
      c.signals.push_back(std::move(s).value());
    }
    return c;
  } catch (const json::exception& e) {
    return Status::DataLoss(std::string("bad case JSON: ") + e.what());
  }
}

Result<Case> ParseCaseJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::DataLoss("case record is not JSON");
  return CaseFromJson(j);
}

}  // namespace cityloop

#include "core/case_json.h"

namespace cityloop {

using nlohmann::json;

json SignalToJson(const Signal& s) {
  json j{{"id", s.id},
              {"source", SignalSourceName(s.source)},
              {"category", s.category},
              {"priority", PriorityName(s.priority)},
              {"cell", s.cell},
              {"lat", s.position.lat},
              {"lon", s.position.lon},
              {"ts", s.ts_ms},
              {"fired", s.fired_ms},
              {"ingest", s.ingest_ms},
              {"device_id", s.device_id},
              {"sensor_kind", s.sensor_kind},
              {"rule", s.rule_id},
              {"value", s.value},
              {"threshold", s.threshold},
              {"input", s.input.ToString()},
              {"input_topic", s.input.topic},
              {"input_partition", s.input.partition},
              {"input_offset", s.input.offset},
              {"explanation", s.explanation},
              {"attributes", s.attributes},
              {"members", s.members}};
  if (!s.follows.empty()) j["follows"] = s.follows;
  return j;
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

json ClockToJson(const SlaClock& k) {
  if (k.started_ms == 0) return nullptr;
  return json{{"started", k.started_ms}, {"limit", k.limit_ms},     {"warn", k.warn_ms},
              {"deadline", k.deadline_ms}, {"stopped", k.stopped_ms}, {"paused_total", k.paused_total_ms},
              {"working", k.working_time},
              {"light", SlaLightName(k.light)}, {"escalations", k.escalations}};
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

json TaskToJson(const Task& t) {
  return json{{"department", t.department},
              {"lead", t.lead},
              {"status", TaskStatusName(t.status)},
              {"unit", t.unit},
              {"dispatched", t.dispatched_ms},
              {"acknowledged", t.acknowledged_ms},
              {"enroute", t.enroute_ms},
              {"arrived", t.arrived_ms},
              {"handled", t.handled_ms},
              {"acknowledge_clock", ClockToJson(t.acknowledge)},
              {"arrive_clock", ClockToJson(t.arrive)},
              {"handle_clock", ClockToJson(t.handle)},
              {"extensions", t.extensions},
              {"late_warned", t.late_warned}};
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

json CaseToJson(const Case& c, bool with_signals) {
  json tasks = json::array();
  for (const Task& t : c.tasks) tasks.push_back(TaskToJson(t));
  json j{{"id", c.id},
         {"category", c.category},
         {"category_code", c.category_code},
         {"priority", PriorityName(c.priority)},
         {"status", CaseStatusName(c.status)},
         {"cell", c.cell},
         {"grid", c.cell_code},
         {"district", c.district},
         {"street", c.street},
         {"community", c.community},
         {"department", c.department},
         {"lat", c.position.lat},
         {"lon", c.position.lon},
         {"recommended_unit", c.recommended_unit},
         {"first_event", c.first_event_ms},
         {"first_ingest", c.first_ingest_ms},
         {"registered", c.registered_ms},
         {"dispatched", c.dispatched_ms},
         {"handled", c.handled_ms},
         {"verified", c.verified_ms},
         {"closed", c.closed_ms},
         {"reopened", c.reopened_ms},
         {"invalidated", c.invalidated_ms},
         {"last_signal", c.last_signal_ms},
         {"updated", c.updated_ms},
         {"tasks", std::move(tasks)},
         {"verify_clock", ClockToJson(c.verify)},
         {"close_clock", ClockToJson(c.close)},
         {"resume_to", CaseStatusName(c.resume_to)},
         {"paused", c.paused_ms},
         {"returns", c.returns},
         {"reworks", c.reworks},
         {"reopens", c.reopens},
         {"extensions", c.extensions},
         {"dispatches", c.dispatches},
         {"deferred", c.deferred},
         {"forced_escalation", c.forced_escalation},
         {"returned_by", c.returned_by},
         {"normal_since", c.normal_since_ms},
         {"recent_commands", c.recent_commands},
         {"event_seq", c.event_seq},
         {"merged_into", c.merged_into},
         {"absorbed", c.absorbed},
         {"signal_count", c.signals.size()}};
  if (with_signals) {
    json signals = json::array();
    for (const auto& s : c.signals) signals.push_back(SignalToJson(s));
    j["signals"] = std::move(signals);
  }
  return j;
}

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

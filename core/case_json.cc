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

json CaseToJson(const Case& c) {
  json signals = json::array();
  for (const auto& s : c.signals) signals.push_back(SignalToJson(s));
  return json{{"id", c.id},
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
              {"last_signal", c.last_signal_ms},
              {"ack_deadline", c.ack_deadline_ms},
              {"handle_deadline", c.handle_deadline_ms},
              {"event_seq", c.event_seq},
              {"merged_into", c.merged_into},
              {"absorbed", c.absorbed},
              {"signals", std::move(signals)}};
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
    c.last_signal_ms = j.value("last_signal", int64_t{0});
    c.ack_deadline_ms = j.value("ack_deadline", int64_t{0});
    c.handle_deadline_ms = j.value("handle_deadline", int64_t{0});
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

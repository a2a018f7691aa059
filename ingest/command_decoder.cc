// CommandDecoder: simdjson On Demand over a reused padded buffer, with the
// reading and checks shared by every input decoder (json_fields.h).
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax, root object, trailing content,
//   nesting deeper than 64 levels, invalid UTF-8 anywhere (malformed_json),
//   3. presence and JSON type of every known field, in the order command_id,
//   case_id, action, actor, role, ts, note, department, into, duration,
//   unit_id (missing_field, wrong_type; an empty required string is
//   missing_field, an id longer than 128 characters out_of_range; duration is
//   a string or an integer), 4. meaning: ts parse (bad_timestamp), skew and
//   age (future_timestamp, stale_timestamp), action a known one and role one
//   of viewer, operator, supervisor, admin (out_of_range; "system" too: only
//   the engine acts as system), note at most ingest.max_report_text_bytes
//   bytes (out_of_range), duration "2h"-style or integer ms, > 0 and at most
//   kMaxCommandDurationMs (out_of_range), then what the action needs:
//   reassign and assist a department (missing_field) of the city
//   (out_of_range), merge an into (missing_field) other than case_id
//   (out_of_range), extend a duration (missing_field).
// A JSON null or an empty optional string counts as absent. ts accepts an
// integer (or an integral number) of epoch ms, or an RFC 3339 string. Unknown
// fields are checked for syntax and otherwise ignored; a repeated field keeps
// its last value. The reason codes are those of sensor_decoder.h: an unknown
// action or role is out_of_range, with the detail saying which.
#include "ingest/command_decoder.h"

#include <optional>
#include <string>
#include <utility>

#include "core/time_util.h"
#include "ingest/json_fields.h"

namespace cityloop::ingest {

using internal::Expect;
using internal::Field;
using internal::Need;

namespace {

std::string ActionList() {
  std::string list;
  for (int i = 0; i < kCaseActionCount; ++i) {
    if (!list.empty()) list += ", ";
    list += CaseActionName(static_cast<CaseAction>(i));
  }
  return list;
}

bool Given(const Field& f) { return f.present && !f.str.empty(); }

// duration: "30m"/"2h" (ParseDurationMs; a bare number string means seconds)
// or an integer of ms, into *ms.
std::optional<Rejection> CheckDuration(const Field& f, int64_t* ms) {
  const auto bad = [&](const char* why) {
    return internal::Reject(reason::kOutOfRange, internal::FieldValue("duration", f) + why);
  };
  if (f.type == internal::od::json_type::string) {
    // ParseDurationMs converts a double to int64: keep its magnitude sane
    // first (9 integer digits of days still fit).
    size_t digits = 0;
    while (digits < f.str.size() && f.str[digits] >= '0' && f.str[digits] <= '9') ++digits;
    const std::optional<int64_t> parsed = digits <= 9 ? ParseDurationMs(f.str) : std::nullopt;
    if (!parsed) return bad(": not a duration such as 30m, 2h or 1d (or integer ms)");
    *ms = *parsed;
  } else {
    if (f.int_overflow) return bad(": too long");
    *ms = f.is_integer ? f.i64 : static_cast<int64_t>(f.num);  // integral, below 2^53 (step 3)
  }
  if (*ms <= 0) return bad(": must be positive");
  if (*ms > kMaxCommandDurationMs) return bad(": longer than 365d");
  return std::nullopt;
}

}  // namespace

std::variant<Command, Rejection> CommandDecoder::Decode(std::string_view value, int64_t now_ms) {
  Field command_id("command_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field case_id("case_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field action("action", Expect::kString, Need::kRequired);
  Field actor("actor", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field role("role", Expect::kString, Need::kRequired);
  internal::TimestampField ts;
  Field note("note", Expect::kString);
  Field department("department", Expect::kString, Need::kOptional, internal::kMaxIdChars);
  Field into("into", Expect::kString, Need::kOptional, internal::kMaxIdChars);
  Field duration("duration", Expect::kStringOrInteger);
  Field unit_id("unit_id", Expect::kString, Need::kOptional, internal::kMaxIdChars);
  // 1. size, 2. syntax; 3. presence and types, in this order.
  Field* const fields[] = {&command_id, &case_id, &action, &actor,    &role,   &ts,
                           &note,       &department, &into, &duration, &unit_id};
  if (auto r = Read(value, fields)) return std::move(*r);

  // 4. Meaning: the message's own fields first.
  const CityModel& city = this->city();
  const IngestOptions& limits = city.config().ingest;
  int64_t ts_ms = 0;
  if (auto r = ts.Check(now_ms, limits, &ts_ms)) return std::move(*r);
  const std::optional<CaseAction> act = ParseCaseAction(action.str);
  if (!act) {
    return internal::Reject(reason::kOutOfRange,
                            internal::FieldValue("action", action) + " is not an action (" + ActionList() + ")");
  }
  const std::optional<Role> who = ParseRole(role.str);
  if (!who || *who == Role::kSystem) {
    return internal::Reject(reason::kOutOfRange,
                            internal::FieldValue("role", role) + " is not one of viewer, operator, supervisor, admin" +
                                (who ? " (only the engine acts as system)" : ""));
  }
  if (limits.max_report_text_bytes > 0 && static_cast<int64_t>(note.str.size()) > limits.max_report_text_bytes) {
    return internal::Reject(reason::kOutOfRange, internal::FieldValue("note", note) + " is " +
                                                     std::to_string(note.str.size()) + " bytes, limit " +
                                                     std::to_string(limits.max_report_text_bytes));
  }
  const bool has_duration =
      duration.present && !(duration.type == internal::od::json_type::string && duration.str.empty());
  int64_t duration_ms = 0;
  if (has_duration) {
    if (auto r = CheckDuration(duration, &duration_ms)) return std::move(*r);
  }

  // Then what the action needs.
  const std::string for_action = std::string(" for action ") + CaseActionName(*act);
  if (*act == CaseAction::kReassign || *act == CaseAction::kAssist) {
    if (!Given(department)) return internal::Reject(reason::kMissingField, "department is required" + for_action);
    if (!city.FindDepartment(department.str)) {
      return internal::Reject(reason::kOutOfRange, internal::FieldValue("department", department) +
                                                       " is not a department of the city (city.departments)");
    }
  }
  if (*act == CaseAction::kMerge) {
    if (!Given(into)) return internal::Reject(reason::kMissingField, "into is required" + for_action);
    if (into.str == case_id.str) {
      return internal::Reject(reason::kOutOfRange, internal::FieldValue("into", into) + " is the case itself");
    }
  }
  if (*act == CaseAction::kExtend && !has_duration) {
    return internal::Reject(reason::kMissingField, "duration is required" + for_action);
  }

  Command out;
  out.command_id = std::string(command_id.str);
  out.case_id = std::string(case_id.str);
  out.action = *act;
  out.actor = std::string(actor.str);
  out.role = *who;
  out.ts_ms = ts_ms;
  out.note = std::string(note.str);
  out.department = std::string(department.str);
  out.into = std::string(into.str);
  out.duration_ms = duration_ms;
  out.unit_id = std::string(unit_id.str);
  return out;
}

}  // namespace cityloop::ingest

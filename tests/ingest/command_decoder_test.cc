#include "ingest/command_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/ingest/decoder_test_support.h"

namespace cityloop::ingest {
namespace {

using ::testing::HasSubstr;
using testing::kNow;
using testing::kTs;
using testing::MessageJson;
using testing::Quoted;
using testing::RejectCase;

constexpr int64_t kHour = 3600000;

// A valid cityloop.commands message; a case edits one field of it.
MessageJson CommandJson() {
  return {{"command_id", R"("c-1")"},
          {"case_id", R"("CL-20251128-000123")"},
          {"action", R"("acknowledge")"},
          {"actor", R"("op-zhang")"},
          {"role", R"("operator")"},
          {"ts", std::to_string(kTs)},
          {"note", R"("on it")"}};
}

MessageJson Action(const std::string& action) { return CommandJson().Set("action", Quoted(action)); }

class CommandDecoderTest : public testing::DecoderTest<CommandDecoder> {};

TEST_F(CommandDecoderTest, DecodesAValidCommand) {
  Command c = Accept(CommandJson().str());
  EXPECT_EQ(c.command_id, "c-1");
  EXPECT_EQ(c.case_id, "CL-20251128-000123");
  EXPECT_EQ(c.action, CaseAction::kAcknowledge);
  EXPECT_EQ(c.actor, "op-zhang");
  EXPECT_EQ(c.role, Role::kOperator);
  EXPECT_EQ(c.ts_ms, kTs);
  EXPECT_EQ(c.note, "on it");
  // Optional fields left out are empty.
  EXPECT_EQ(c.department, "");
  EXPECT_EQ(c.into, "");
  EXPECT_EQ(c.duration_ms, 0);
  EXPECT_EQ(c.unit_id, "");
  // Left to the caller.
  EXPECT_EQ(c.ingest_ms, 0);
  EXPECT_EQ(c.input.offset, -1);
}

TEST_F(CommandDecoderTest, AcceptsAnRfc3339Timestamp) {
  EXPECT_EQ(Accept(CommandJson().Set("ts", R"("2025-11-28T16:00:00.250+08:00")").str()).ts_ms, kTs + 250);
  EXPECT_EQ(Accept(CommandJson().Set("ts", R"("2025-11-28T08:00:00Z")").str()).ts_ms, kTs);
  EXPECT_EQ(Accept(CommandJson().Set("ts", "1764316800000.0").str()).ts_ms, kTs);
}

TEST_F(CommandDecoderTest, AcceptsEveryActionWithWhatItNeeds) {
  for (int i = 0; i < kCaseActionCount; ++i) {
    const CaseAction a = static_cast<CaseAction>(i);
    const std::string name = CaseActionName(a);
    SCOPED_TRACE(name);
    MessageJson json = Action(name);
    if (a == CaseAction::kReassign || a == CaseAction::kAssist) json.Set("department", R"("gas")");
    if (a == CaseAction::kMerge) json.Set("into", R"("CL-20251128-000100")");
    if (a == CaseAction::kExtend) json.Set("duration", R"("2h")");
    EXPECT_EQ(Accept(json.str()).action, a);
  }
}

TEST_F(CommandDecoderTest, FillsTheActionSpecificFields) {
  Command c = Accept(Action("reassign").Set("department", R"("gas")").str());
  EXPECT_EQ(c.department, "gas");
  c = Accept(Action("assist").Set("department", R"("city_management")").str());
  EXPECT_EQ(c.department, "city_management");
  c = Accept(Action("merge").Set("into", R"("CL-20251128-000100")").str());
  EXPECT_EQ(c.into, "CL-20251128-000100");
  c = Accept(Action("extend").Set("duration", R"("2h")").str());
  EXPECT_EQ(c.duration_ms, 2 * kHour);
  c = Accept(Action("enroute").Set("department", R"("drainage")").Set("unit_id", R"("drain-2")").str());
  EXPECT_EQ(c.department, "drainage");
  EXPECT_EQ(c.unit_id, "drain-2");
}

TEST_F(CommandDecoderTest, AcceptsEveryHumanRole) {
  const std::pair<const char*, Role> roles[] = {{"viewer", Role::kViewer},
                                                {"operator", Role::kOperator},
                                                {"supervisor", Role::kSupervisor},
                                                {"admin", Role::kAdmin}};
  for (const auto& [name, role] : roles) {
    EXPECT_EQ(Accept(CommandJson().Set("role", Quoted(name)).str()).role, role) << name;
  }
}

TEST_F(CommandDecoderTest, ReadsADurationAsTextOrMilliseconds) {
  auto duration = [&](const std::string& json) {
    return Accept(Action("extend").Set("duration", json).str()).duration_ms;
  };
  EXPECT_EQ(duration(R"("2h")"), 2 * kHour);
  EXPECT_EQ(duration(R"("30m")"), 30 * 60000);
  EXPECT_EQ(duration(R"("90s")"), 90000);
  EXPECT_EQ(duration(R"("1d")"), 24 * kHour);
  EXPECT_EQ(duration(R"("1.5h")"), 90 * 60000);
  EXPECT_EQ(duration(R"("500ms")"), 500);
  EXPECT_EQ(duration(R"("90")"), 90000);  // a bare number in a string is seconds (ParseDurationMs)
  EXPECT_EQ(duration("7200000"), 2 * kHour);  // an integer is ms
  EXPECT_EQ(duration("1"), 1);
  EXPECT_EQ(duration("3.6e6"), kHour);  // integral, if not written as an integer
  EXPECT_EQ(duration(R"("365d")"), kMaxCommandDurationMs);
  // Any action may carry one; it is checked all the same.
  EXPECT_EQ(Accept(Action("suspend").Set("duration", R"("1h")").str()).duration_ms, kHour);
  EXPECT_EQ(Reject(Action("suspend").Set("duration", R"("soon")").str()).reason, reason::kOutOfRange);
}

TEST_F(CommandDecoderTest, OptionalFieldsGivenAsNullOrEmptyAreAbsent) {
  Command c = Accept(CommandJson()
                         .Set("note", "null")
                         .Set("department", R"("")")
                         .Set("into", "null")
                         .Set("duration", R"("")")
                         .Set("unit_id", "null")
                         .str());
  EXPECT_EQ(c.note, "");
  EXPECT_EQ(c.department, "");
  EXPECT_EQ(c.duration_ms, 0);
  EXPECT_EQ(Accept(CommandJson().Drop("note").str()).note, "");
  // ... so they do not meet an action's needs.
  EXPECT_EQ(Reject(Action("reassign").Set("department", R"("")").str()).reason, reason::kMissingField);
  EXPECT_EQ(Reject(Action("merge").Set("into", "null").str()).reason, reason::kMissingField);
  EXPECT_EQ(Reject(Action("extend").Set("duration", R"("")").str()).reason, reason::kMissingField);
  // A required field given as null is missing.
  EXPECT_EQ(Reject(CommandJson().Set("actor", "null").str()).reason, reason::kMissingField);
}

TEST_F(CommandDecoderTest, KeepsUtf8NotesAndCountsTheLimitInBytes) {
  EXPECT_EQ(Accept(CommandJson().Set("note", R"("已到场 \u2014 \"ok\"")").str()).note, "已到场 \u2014 \"ok\"");
  std::string water;
  for (int i = 0; i < 1365; ++i) water += "水";  // 4095 bytes
  EXPECT_EQ(Accept(CommandJson().Set("note", Quoted(water)).str()).note.size(), 4095u);
  const Rejection rej = Reject(CommandJson().Set("note", Quoted(water + "水")).str());
  EXPECT_EQ(rej.reason, reason::kOutOfRange);
  EXPECT_THAT(rej.detail, HasSubstr("4098 bytes, limit 4096"));
}

TEST_F(CommandDecoderTest, IgnoresUnknownFieldsAndKeepsTheLastOfARepeatedOne) {
  Command c = Accept(CommandJson()
                         .Set("client", R"({"app":"console","version":[1,4,2]})")
                         .Set("attachments", R"(["a.jpg",null])")
                         .Set("urgent", "true")
                         .str());
  EXPECT_EQ(c.command_id, "c-1");
  c = Accept(CommandJson().Repeat("action", R"("arrive")").str());
  EXPECT_EQ(c.action, CaseAction::kArrive);
}

TEST_F(CommandDecoderTest, ReusesItsBufferAcrossMessages) {
  Accept(CommandJson().Set("pad", Quoted(std::string(20000, 'p'))).str());
  EXPECT_EQ(Accept(CommandJson().Set("command_id", R"("c-2")").str()).command_id, "c-2");
  EXPECT_EQ(Reject(R"({"command_id":"c-3")").reason, reason::kMalformedJson);
  EXPECT_EQ(Accept(CommandJson().str()).command_id, "c-1");
}

std::vector<RejectCase> RejectCases() {
  const std::string long_id = Quoted(std::string(129, 'i'));
  return testing::RejectTable(CommandJson(), "acknowledge CL-1", {
      // Size and syntax (after the shared rows).
      {"invalid_utf8", CommandJson().Set("note", "\"ok \xff\xfe\"").str(), reason::kMalformedJson, "UTF-8"},
      // Required fields.
      {"missing_command_id", CommandJson().Drop("command_id").str(), reason::kMissingField,
       "command_id is missing"},
      {"empty_command_id", CommandJson().Set("command_id", R"("")").str(), reason::kMissingField,
       "command_id is empty"},
      {"missing_case_id", CommandJson().Drop("case_id").str(), reason::kMissingField, "case_id is missing"},
      {"missing_action", CommandJson().Drop("action").str(), reason::kMissingField, "action is missing"},
      {"missing_actor", CommandJson().Drop("actor").str(), reason::kMissingField, "actor is missing"},
      {"missing_role", CommandJson().Drop("role").str(), reason::kMissingField, "role is missing"},
      {"missing_ts", CommandJson().Drop("ts").str(), reason::kMissingField, "ts is missing"},
      // Types.
      {"command_id_number", CommandJson().Set("command_id", "1").str(), reason::kWrongType,
       "command_id=1 (number): expected string"},
      {"case_id_object", CommandJson().Set("case_id", R"({"id":1})").str(), reason::kWrongType,
       "case_id={...} (object)"},
      {"action_number", CommandJson().Set("action", "0").str(), reason::kWrongType, "action=0 (number)"},
      {"actor_bool", CommandJson().Set("actor", "true").str(), reason::kWrongType, "actor=true (boolean)"},
      {"role_array", CommandJson().Set("role", R"(["admin"])").str(), reason::kWrongType, "role=[...] (array)"},
      {"ts_bool", CommandJson().Set("ts", "false").str(), reason::kWrongType, "ts=false"},
      {"ts_fraction", CommandJson().Set("ts", "1764316800000.5").str(), reason::kWrongType, "ts=1764316800000.5"},
      {"note_number", CommandJson().Set("note", "42").str(), reason::kWrongType, "note=42"},
      {"department_number", Action("reassign").Set("department", "3").str(), reason::kWrongType,
       "department=3 (number)"},
      {"into_array", Action("merge").Set("into", R"(["CL-2"])").str(), reason::kWrongType, "into=[...] (array)"},
      {"duration_bool", Action("extend").Set("duration", "true").str(), reason::kWrongType,
       "duration=true (boolean): expected string or integer"},
      {"duration_fraction", Action("extend").Set("duration", "1.5").str(), reason::kWrongType, "duration=1.5"},
      {"unit_id_number", Action("enroute").Set("unit_id", "7").str(), reason::kWrongType, "unit_id=7 (number)"},
      {"command_id_too_long", CommandJson().Set("command_id", long_id).str(), reason::kOutOfRange,
       "longer than 128"},
      {"actor_too_long", CommandJson().Set("actor", long_id).str(), reason::kOutOfRange, "longer than 128"},
      {"into_too_long", Action("merge").Set("into", long_id).str(), reason::kOutOfRange, "longer than 128"},
      // Timestamps.
      {"ts_text", CommandJson().Set("ts", R"("tomorrow")").str(), reason::kBadTimestamp, "tomorrow"},
      {"ts_huge", CommandJson().Set("ts", "99999999999999999999").str(), reason::kBadTimestamp, "epoch ms"},
      {"future", CommandJson().Set("ts", std::to_string(kNow + 6 * 60000)).str(), reason::kFutureTimestamp,
       "ahead of now"},
      {"far_future", CommandJson().Set("ts", R"("2099-01-01T00:00:00Z")").str(), reason::kFutureTimestamp,
       "ahead of now"},
      {"stale", CommandJson().Set("ts", std::to_string(kNow - 31LL * 86400000)).str(), reason::kStaleTimestamp,
       "ms old"},
      // Values.
      {"unknown_action", Action("approve").str(), reason::kOutOfRange,
       R"(action="approve" (string) is not an action (acknowledge, enroute, arrive,)"},
      {"action_wrong_case", Action("Acknowledge").str(), reason::kOutOfRange, R"(action="Acknowledge")"},
      {"unknown_role", CommandJson().Set("role", R"("root")").str(), reason::kOutOfRange,
       R"(role="root" (string) is not one of viewer, operator, supervisor, admin)"},
      {"system_role", CommandJson().Set("role", R"("system")").str(), reason::kOutOfRange,
       "only the engine acts as system"},
      {"note_too_long", CommandJson().Set("note", Quoted(std::string(4097, 'n'))).str(), reason::kOutOfRange,
       "4097 bytes, limit 4096"},
      {"duration_zero", Action("extend").Set("duration", "0").str(), reason::kOutOfRange, "must be positive"},
      {"duration_zero_text", Action("extend").Set("duration", R"("0m")").str(), reason::kOutOfRange,
       "must be positive"},
      {"duration_negative", Action("extend").Set("duration", "-60000").str(), reason::kOutOfRange,
       "duration=-60000 (number): must be positive"},
      {"duration_negative_text", Action("extend").Set("duration", R"("-2h")").str(), reason::kOutOfRange,
       "not a duration"},
      {"duration_text", Action("extend").Set("duration", R"("a while")").str(), reason::kOutOfRange,
       R"(duration="a while" (string): not a duration such as 30m, 2h or 1d)"},
      {"duration_weeks", Action("extend").Set("duration", R"("2w")").str(), reason::kOutOfRange, "not a duration"},
      {"duration_over_a_year", Action("extend").Set("duration", R"("366d")").str(), reason::kOutOfRange,
       "longer than 365d"},
      {"duration_huge_text", Action("extend").Set("duration", R"("99999999999999999999d")").str(),
       reason::kOutOfRange, "not a duration"},
      {"duration_huge", Action("extend").Set("duration", "99999999999999999999").str(), reason::kOutOfRange,
       "too long"},
      // What the action needs.
      {"reassign_without_department", Action("reassign").str(), reason::kMissingField,
       "department is required for action reassign"},
      {"assist_without_department", Action("assist").str(), reason::kMissingField,
       "department is required for action assist"},
      {"reassign_unknown_department", Action("reassign").Set("department", R"("fire")").str(), reason::kOutOfRange,
       R"(department="fire" (string) is not a department of the city)"},
      {"assist_unknown_department", Action("assist").Set("department", R"("Gas")").str(), reason::kOutOfRange,
       R"(department="Gas")"},
      {"merge_without_into", Action("merge").str(), reason::kMissingField, "into is required for action merge"},
      {"merge_into_itself", Action("merge").Set("into", R"("CL-20251128-000123")").str(), reason::kOutOfRange,
       "is the case itself"},
      {"extend_without_duration", Action("extend").str(), reason::kMissingField,
       "duration is required for action extend"},
  });
}

TEST_F(CommandDecoderTest, RejectsEachProblemWithItsReasonAndAPreciseDetail) {
  ExpectEachRejection(RejectCases(), 400u);
}

TEST_F(CommandDecoderTest, EveryReasonCodeOfCommandsHasARow) {
  // A command names no place: it is never outside_city or unknown_location.
  testing::ExpectEveryReasonCodeHasARow(
      RejectCases(), {reason::kOversized, reason::kMalformedJson, reason::kMissingField, reason::kWrongType,
                      reason::kOutOfRange, reason::kFutureTimestamp, reason::kStaleTimestamp, reason::kBadTimestamp});
}

TEST_F(CommandDecoderTest, TheFirstFailureWinsInTheDocumentedOrder) {
  // Syntax before anything else, even a missing field.
  EXPECT_EQ(Reject(CommandJson().Drop("command_id").Set("extra", "tru").str()).reason, reason::kMalformedJson);
  // Types (step 3) before meaning (step 4): a bad note type beats a stale ts.
  EXPECT_EQ(Reject(CommandJson().Set("ts", "1").Set("note", "false").str()).reason, reason::kWrongType);
  // Within step 4: ts, action, role, note, duration, then the action's needs.
  EXPECT_EQ(Reject(Action("approve").Set("ts", "1").str()).reason, reason::kStaleTimestamp);
  EXPECT_THAT(Reject(Action("approve").Set("role", R"("root")").str()).detail, HasSubstr("action="));
  EXPECT_THAT(Reject(CommandJson().Set("role", R"("root")").Set("note", Quoted(std::string(5000, 'n'))).str()).detail,
              HasSubstr("role="));
  EXPECT_THAT(Reject(Action("extend").Set("note", Quoted(std::string(5000, 'n'))).str()).detail,
              HasSubstr("note="));
  EXPECT_EQ(Reject(Action("reassign").Set("duration", "0").str()).reason, reason::kOutOfRange);
}

TEST_F(CommandDecoderTest, SurvivesHostileInput) { ExpectSurvivesHostileInput(CommandJson().str(), "{"); }

}  // namespace
}  // namespace cityloop::ingest

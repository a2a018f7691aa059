#include "ingest/unit_decoder.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/ingest/decoder_test_support.h"

namespace cityloop::ingest {
namespace {

using testing::kNow;
using testing::kTs;
using testing::MessageJson;
using testing::Quoted;
using testing::RejectCase;

// A valid city.units message; a case edits one field of it.
MessageJson UnitJson() {
  return {{"unit_id", R"("drain-1")"},
          {"dept", R"("drainage")"},
          {"status", R"("enroute")"},
          {"ts", std::to_string(kTs)},
          {"lat", "28.175"},
          {"lon", "112.955"}};
}

class UnitDecoderTest : public testing::DecoderTest<UnitDecoder> {};

TEST_F(UnitDecoderTest, DecodesAValidUpdate) {
  UnitUpdate u = Accept(UnitJson().str());
  EXPECT_EQ(u.unit_id, "drain-1");
  EXPECT_EQ(u.department, "drainage");
  EXPECT_EQ(u.status, UnitStatus::kEnroute);
  EXPECT_EQ(u.ts_ms, kTs);
  EXPECT_TRUE(u.has_position);
  EXPECT_DOUBLE_EQ(u.position.lat, 28.175);
  EXPECT_DOUBLE_EQ(u.position.lon, 112.955);
  // Left to the caller.
  EXPECT_EQ(u.ingest_ms, 0);
  EXPECT_EQ(u.input.offset, -1);
}

TEST_F(UnitDecoderTest, DecodesTheContractExample) {
  // CONTRACT.md's example, at a time the test city's grid holds.
  UnitUpdate u = Accept(R"({"unit_id":"drain-07","dept":"drainage","status":"available","ts":1764316800000,)"
                        R"("lat":28.171,"lon":112.951})");
  EXPECT_EQ(u.unit_id, "drain-07");
  EXPECT_EQ(u.status, UnitStatus::kAvailable);
}

TEST_F(UnitDecoderTest, AcceptsAnRfc3339Timestamp) {
  EXPECT_EQ(Accept(UnitJson().Set("ts", R"("2025-11-28T16:00:00.250+08:00")").str()).ts_ms, kTs + 250);
  EXPECT_EQ(Accept(UnitJson().Set("ts", R"("2025-11-28T08:00:00Z")").str()).ts_ms, kTs);
  EXPECT_EQ(Accept(UnitJson().Set("ts", "1764316800000.0").str()).ts_ms, kTs);
}

TEST_F(UnitDecoderTest, AcceptsEveryStatus) {
  const std::pair<const char*, UnitStatus> statuses[] = {{"available", UnitStatus::kAvailable},
                                                         {"enroute", UnitStatus::kEnroute},
                                                         {"onscene", UnitStatus::kOnScene},
                                                         {"returning", UnitStatus::kReturning},
                                                         {"unavailable", UnitStatus::kUnavailable}};
  for (const auto& [name, status] : statuses) {
    EXPECT_EQ(Accept(UnitJson().Set("status", Quoted(name)).str()).status, status) << name;
  }
}

TEST_F(UnitDecoderTest, PositionIsOptionalAndNullIsAbsent) {
  UnitUpdate u = Accept(UnitJson().Drop("lat").Drop("lon").str());
  EXPECT_FALSE(u.has_position);
  EXPECT_EQ(u.unit_id, "drain-1");
  EXPECT_FALSE(Accept(UnitJson().Set("lat", "null").Set("lon", "null").str()).has_position);
  // A required field given as null is missing.
  EXPECT_EQ(Reject(UnitJson().Set("status", "null").str()).reason, reason::kMissingField);
}

TEST_F(UnitDecoderTest, AcceptsAUnitOfAnyDepartment) {
  // Like an unknown sensor kind: not held against city.departments.
  UnitUpdate u = Accept(UnitJson().Set("unit_id", R"("tow-3")").Set("dept", R"("traffic")").str());
  EXPECT_EQ(u.department, "traffic");
}

TEST_F(UnitDecoderTest, IgnoresUnknownFieldsAndKeepsTheLastOfARepeatedOne) {
  UnitUpdate u = Accept(UnitJson()
                            .Set("crew", R"(["li","wang",{"lead":true}])")
                            .Set("vehicle", R"({"plate":"湘A-1234","fuel":0.7})")
                            .Set("speed_kmh", "42.5")
                            .str());
  EXPECT_EQ(u.unit_id, "drain-1");
  u = Accept(UnitJson().Repeat("status", R"("onscene")").str());
  EXPECT_EQ(u.status, UnitStatus::kOnScene);
}

TEST_F(UnitDecoderTest, ReusesItsBufferAcrossMessages) {
  Accept(UnitJson().Set("pad", Quoted(std::string(20000, 'p'))).str());
  EXPECT_EQ(Accept(UnitJson().Set("unit_id", R"("drain-2")").str()).unit_id, "drain-2");
  EXPECT_EQ(Reject(R"({"unit_id":"drain-3")").reason, reason::kMalformedJson);
  EXPECT_EQ(Accept(UnitJson().str()).unit_id, "drain-1");
}

std::vector<RejectCase> RejectCases() {
  return testing::RejectTable(UnitJson(), "drain-1 available", {
      {"invalid_utf8", UnitJson().Set("dept", "\"drain \xff\xfe\"").str(), reason::kMalformedJson, "UTF-8"},
      {"missing_unit_id", UnitJson().Drop("unit_id").str(), reason::kMissingField, "unit_id is missing"},
      {"empty_unit_id", UnitJson().Set("unit_id", R"("")").str(), reason::kMissingField, "unit_id is empty"},
      {"unit_id_number", UnitJson().Set("unit_id", "7").str(), reason::kWrongType,
       "unit_id=7 (number): expected string"},
      {"unit_id_too_long", UnitJson().Set("unit_id", Quoted(std::string(129, 'u'))).str(), reason::kOutOfRange,
       "longer than 128"},
      {"missing_dept", UnitJson().Drop("dept").str(), reason::kMissingField, "dept is missing"},
      {"empty_dept", UnitJson().Set("dept", R"("")").str(), reason::kMissingField, "dept is empty"},
      {"dept_array", UnitJson().Set("dept", R"(["drainage"])").str(), reason::kWrongType, "dept=[...] (array)"},
      {"dept_too_long", UnitJson().Set("dept", Quoted(std::string(129, 'd'))).str(), reason::kOutOfRange,
       "longer than 128"},
      {"missing_status", UnitJson().Drop("status").str(), reason::kMissingField, "status is missing"},
      {"status_number", UnitJson().Set("status", "1").str(), reason::kWrongType, "status=1 (number)"},
      {"unknown_status", UnitJson().Set("status", R"("busy")").str(), reason::kOutOfRange,
       R"(status="busy" (string) is not one of available, enroute, onscene, returning, unavailable)"},
      {"status_wrong_case", UnitJson().Set("status", R"("Available")").str(), reason::kOutOfRange,
       R"(status="Available")"},
      {"missing_ts", UnitJson().Drop("ts").str(), reason::kMissingField, "ts is missing"},
      {"ts_bool", UnitJson().Set("ts", "true").str(), reason::kWrongType, "ts=true"},
      {"ts_fraction", UnitJson().Set("ts", "1764316800000.5").str(), reason::kWrongType, "ts=1764316800000.5"},
      {"ts_text", UnitJson().Set("ts", R"("just now")").str(), reason::kBadTimestamp, "just now"},
      {"ts_huge", UnitJson().Set("ts", "99999999999999999999").str(), reason::kBadTimestamp, "epoch ms"},
      {"future", UnitJson().Set("ts", std::to_string(kNow + 6 * 60000)).str(), reason::kFutureTimestamp,
       "ahead of now"},
      {"far_future", UnitJson().Set("ts", R"("2030-01-01T00:00:00Z")").str(), reason::kFutureTimestamp,
       "ahead of now"},
      {"stale", UnitJson().Set("ts", std::to_string(kNow - 31LL * 86400000)).str(), reason::kStaleTimestamp,
       "ms old"},
      {"lat_without_lon", UnitJson().Drop("lon").str(), reason::kMissingField, "lat is given without lon"},
      {"lon_without_lat", UnitJson().Set("lat", "null").str(), reason::kMissingField, "lon is given without lat"},
      {"lat_string", UnitJson().Set("lat", R"("28.175")").str(), reason::kWrongType, R"(lat="28.175")"},
      {"lon_object", UnitJson().Set("lon", R"({"deg":112})").str(), reason::kWrongType, "lon={...} (object)"},
      {"lat_beyond_pole", UnitJson().Set("lat", "95").str(), reason::kOutOfRange,
       "lat=95 (number) outside [-90, 90]"},
      {"lon_beyond_180", UnitJson().Set("lon", "-200.5").str(), reason::kOutOfRange, "lon=-200.5"},
      {"lat_infinite", UnitJson().Set("lat", "1e999").str(), reason::kOutOfRange, "lat=1e999"},
      {"outside_city", UnitJson().Set("lat", "28.30").str(), reason::kOutsideCity,
       "position 28.3,112.955 (from the message) of unit_id=drain-1 is outside the city grid"},
  });
}

TEST_F(UnitDecoderTest, RejectsEachProblemWithItsReasonAndAPreciseDetail) {
  ExpectEachRejection(RejectCases(), 300u);
}

TEST_F(UnitDecoderTest, EveryReasonCodeOfUnitsHasARow) {
  testing::ExpectEveryReasonCodeHasARow(
      RejectCases(), {reason::kOversized, reason::kMalformedJson, reason::kMissingField, reason::kWrongType,
                      reason::kOutOfRange, reason::kOutsideCity, reason::kFutureTimestamp, reason::kStaleTimestamp,
                      reason::kBadTimestamp});
}

TEST_F(UnitDecoderTest, TheFirstFailureWinsInTheDocumentedOrder) {
  // Syntax before anything else, even a missing field.
  EXPECT_EQ(Reject(UnitJson().Drop("unit_id").Set("extra", "tru").str()).reason, reason::kMalformedJson);
  // Types (step 3) before meaning (step 4): a bad lat type beats a stale ts.
  EXPECT_EQ(Reject(UnitJson().Set("ts", "1").Set("lat", "false").str()).reason, reason::kWrongType);
  // A lone lat (step 3) beats a bad status (step 4).
  EXPECT_EQ(Reject(UnitJson().Drop("lon").Set("status", R"("busy")").str()).reason, reason::kMissingField);
  // Within step 4: ts, status, position.
  EXPECT_EQ(Reject(UnitJson().Set("ts", "1").Set("status", R"("busy")").str()).reason, reason::kStaleTimestamp);
  EXPECT_EQ(Reject(UnitJson().Set("status", R"("busy")").Set("lat", "28.30").str()).reason, reason::kOutOfRange);
}

TEST_F(UnitDecoderTest, SurvivesHostileInput) { ExpectSurvivesHostileInput(UnitJson().str(), "{"); }

}  // namespace
}  // namespace cityloop::ingest

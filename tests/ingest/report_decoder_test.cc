#include "ingest/report_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
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

// A valid city.reports message; a case edits one field of it.
MessageJson ReportJson() {
  return {{"report_id", R"("r-88121")"},
          {"channel", R"("hotline12345")"},
          {"ts", std::to_string(kTs)},
          {"category", R"("waterlogging")"},
          {"text", R"("Wuyi Rd underpass flooded")"},
          {"lat", "28.175"},
          {"lon", "112.955"}};
}

class ReportDecoderTest : public testing::DecoderTest<ReportDecoder> {};

TEST_F(ReportDecoderTest, DecodesAValidReport) {
  Report r = Accept(ReportJson().str());
  EXPECT_EQ(r.report_id, "r-88121");
  EXPECT_EQ(r.channel, "hotline12345");
  EXPECT_EQ(r.ts_ms, kTs);
  EXPECT_EQ(r.category, "waterlogging");
  EXPECT_EQ(r.text, "Wuyi Rd underpass flooded");
  EXPECT_DOUBLE_EQ(r.position.lat, 28.175);
  EXPECT_DOUBLE_EQ(r.position.lon, 112.955);
  ASSERT_TRUE(city_->grid().CellAt(r.position));
  EXPECT_EQ(r.cell, *city_->grid().CellAt(r.position));
  // Left to the caller.
  EXPECT_EQ(r.ingest_ms, 0);
  EXPECT_EQ(r.input.offset, -1);
}

TEST_F(ReportDecoderTest, AcceptsAnRfc3339Timestamp) {
  EXPECT_EQ(Accept(ReportJson().Set("ts", R"("2025-11-28T16:00:00.250+08:00")").str()).ts_ms, kTs + 250);
  EXPECT_EQ(Accept(ReportJson().Set("ts", R"("2025-11-28T08:00:00Z")").str()).ts_ms, kTs);
  EXPECT_EQ(Accept(ReportJson().Set("ts", "1764316800000.0").str()).ts_ms, kTs);
}

TEST_F(ReportDecoderTest, AcceptsEveryChannel) {
  for (std::string_view channel : kReportChannels) {
    EXPECT_EQ(Accept(ReportJson().Set("channel", Quoted(std::string(channel))).str()).channel, channel);
  }
}

TEST_F(ReportDecoderTest, TextIsOptionalAndNullIsAbsent) {
  EXPECT_EQ(Accept(ReportJson().Drop("text").str()).text, "");
  EXPECT_EQ(Accept(ReportJson().Set("text", "null").str()).text, "");
  EXPECT_EQ(Accept(ReportJson().Set("text", R"("")").str()).text, "");
  // A required field given as null is missing.
  EXPECT_EQ(Reject(ReportJson().Set("category", "null").str()).reason, reason::kMissingField);
}

TEST_F(ReportDecoderTest, KeepsUtf8TextAndCountsItsLimitInBytes) {
  Report r = Accept(ReportJson().Set("text", R"("五一路地下通道积水 \u2014 \"deep\"")").str());
  EXPECT_EQ(r.text, "五一路地下通道积水 \u2014 \"deep\"");
  // 1365 x 3 bytes = 4095 <= 4096; one more character is 4098 bytes.
  std::string water;
  for (int i = 0; i < 1365; ++i) water += "水";
  EXPECT_EQ(Accept(ReportJson().Set("text", Quoted(water)).str()).text.size(), 4095u);
  const Rejection rej = Reject(ReportJson().Set("text", Quoted(water + "水")).str());
  EXPECT_EQ(rej.reason, reason::kOutOfRange);
  EXPECT_THAT(rej.detail, HasSubstr("4098 bytes, limit 4096"));
  EXPECT_EQ(Accept(ReportJson().Set("text", Quoted(std::string(4096, 't'))).str()).text.size(), 4096u);
}

TEST_F(ReportDecoderTest, IgnoresUnknownFieldsAndKeepsTheLastOfARepeatedOne) {
  Report r = Accept(ReportJson()
                        .Set("photos", R"(["a.jpg",{"w":640,"h":null}])")
                        .Set("meta", R"({"app":"v2","tags":[1,2,[3]]})")
                        .Set("urgent", "true")
                        .str());
  EXPECT_EQ(r.report_id, "r-88121");
  r = Accept(ReportJson().Repeat("category", R"("gas_leak")").str());
  EXPECT_EQ(r.category, "gas_leak");
}

TEST_F(ReportDecoderTest, ReusesItsBufferAcrossMessages) {
  Accept(ReportJson().Set("pad", Quoted(std::string(20000, 'p'))).str());
  EXPECT_EQ(Accept(ReportJson().Set("report_id", R"("r-2")").str()).report_id, "r-2");
  EXPECT_EQ(Reject(R"({"report_id":"r-3")").reason, reason::kMalformedJson);
  EXPECT_EQ(Accept(ReportJson().str()).report_id, "r-88121");
}

std::vector<RejectCase> RejectCases() {
  return testing::RejectTable(ReportJson(), "report: flooded", {
      {"invalid_utf8", ReportJson().Set("text", "\"flood \xff\xfe\"").str(), reason::kMalformedJson, "UTF-8"},
      {"lone_surrogate", ReportJson().Set("text", R"("\ud800")").str(), reason::kMalformedJson, "text"},
      {"bad_escape", ReportJson().Set("text", R"("\q")").str(), reason::kMalformedJson, "text"},
      {"missing_report_id", ReportJson().Drop("report_id").str(), reason::kMissingField, "report_id is missing"},
      {"empty_report_id", ReportJson().Set("report_id", R"("")").str(), reason::kMissingField, "report_id is empty"},
      {"report_id_number", ReportJson().Set("report_id", "88121").str(), reason::kWrongType,
       "report_id=88121 (number): expected string"},
      {"report_id_too_long", ReportJson().Set("report_id", Quoted(std::string(129, 'r'))).str(), reason::kOutOfRange,
       "longer than 128"},
      {"missing_channel", ReportJson().Drop("channel").str(), reason::kMissingField, "channel is missing"},
      {"channel_number", ReportJson().Set("channel", "12345").str(), reason::kWrongType, "channel=12345"},
      {"unknown_channel", ReportJson().Set("channel", R"("fax")").str(), reason::kOutOfRange,
       R"(channel="fax" (string) is not one of citizen, hotline12345, patrol, app, wechat, other)"},
      {"missing_ts", ReportJson().Drop("ts").str(), reason::kMissingField, "ts is missing"},
      {"ts_bool", ReportJson().Set("ts", "true").str(), reason::kWrongType, "ts=true"},
      {"ts_fraction", ReportJson().Set("ts", "1764316800000.5").str(), reason::kWrongType, "ts=1764316800000.5"},
      {"ts_text", ReportJson().Set("ts", R"("this morning")").str(), reason::kBadTimestamp, "this morning"},
      {"ts_huge", ReportJson().Set("ts", "99999999999999999999").str(), reason::kBadTimestamp, "epoch ms"},
      {"future", ReportJson().Set("ts", std::to_string(kNow + 6 * 60000)).str(), reason::kFutureTimestamp,
       "ahead of now"},
      {"stale", ReportJson().Set("ts", std::to_string(kNow - 31LL * 86400000)).str(), reason::kStaleTimestamp,
       "ms old"},
      {"missing_category", ReportJson().Drop("category").str(), reason::kMissingField, "category is missing"},
      {"category_array", ReportJson().Set("category", R"(["waterlogging"])").str(), reason::kWrongType,
       "category=[...] (array)"},
      {"unknown_category", ReportJson().Set("category", R"("flood")").str(), reason::kUnknownCategory,
       R"(category="flood")"},
      {"text_number", ReportJson().Set("text", "42").str(), reason::kWrongType, "text=42"},
      {"text_too_long", ReportJson().Set("text", Quoted(std::string(4097, 't'))).str(), reason::kOutOfRange,
       "4097 bytes, limit 4096"},
      {"missing_lat", ReportJson().Drop("lat").str(), reason::kMissingField, "lat is missing"},
      {"null_lon", ReportJson().Set("lon", "null").str(), reason::kMissingField, "lon is missing"},
      {"lat_string", ReportJson().Set("lat", R"("28.175")").str(), reason::kWrongType, R"(lat="28.175")"},
      {"lon_object", ReportJson().Set("lon", R"({"deg":112})").str(), reason::kWrongType, "lon={...} (object)"},
      {"lat_beyond_pole", ReportJson().Set("lat", "95").str(), reason::kOutOfRange,
       "lat=95 (number) outside [-90, 90]"},
      {"lon_beyond_180", ReportJson().Set("lon", "-200.5").str(), reason::kOutOfRange, "lon=-200.5"},
      {"lat_infinite", ReportJson().Set("lat", "1e999").str(), reason::kOutOfRange, "lat=1e999"},
      {"outside_city", ReportJson().Set("lat", "28.30").str(), reason::kOutsideCity,
       "position 28.3,112.955 (from the message) of report_id=r-88121 is outside the city grid"},
  });
}

TEST_F(ReportDecoderTest, RejectsEachProblemWithItsReasonAndAPreciseDetail) {
  ExpectEachRejection(RejectCases(), 300u);
}

TEST_F(ReportDecoderTest, EveryReasonCodeOfReportsHasARow) {
  // A report carries its own position: it is never unknown_location.
  testing::ExpectEveryReasonCodeHasARow(
      RejectCases(), {reason::kOversized, reason::kMalformedJson, reason::kMissingField, reason::kWrongType,
                      reason::kOutOfRange, reason::kOutsideCity, reason::kFutureTimestamp, reason::kStaleTimestamp,
                      reason::kBadTimestamp, reason::kUnknownCategory});
}

TEST_F(ReportDecoderTest, TheFirstFailureWinsInTheDocumentedOrder) {
  // Syntax before anything else, even a missing field.
  EXPECT_EQ(Reject(ReportJson().Drop("report_id").Set("extra", "tru").str()).reason, reason::kMalformedJson);
  // Types (step 3) before meaning (step 4): a bad lat type beats a stale ts.
  EXPECT_EQ(Reject(ReportJson().Set("ts", "1").Set("lat", "false").str()).reason, reason::kWrongType);
  // Within step 4: ts, channel, category, text, position.
  EXPECT_EQ(Reject(ReportJson().Set("ts", "1").Set("channel", R"("fax")").str()).reason, reason::kStaleTimestamp);
  EXPECT_EQ(Reject(ReportJson().Set("channel", R"("fax")").Set("category", R"("x")").str()).reason,
            reason::kOutOfRange);
  EXPECT_EQ(Reject(ReportJson().Set("category", R"("x")").Set("lat", "28.30").str()).reason, reason::kUnknownCategory);
}

TEST_F(ReportDecoderTest, SurvivesHostileInput) { ExpectSurvivesHostileInput(ReportJson().str(), "[{"); }

}  // namespace
}  // namespace cityloop::ingest

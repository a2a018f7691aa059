#include "ingest/sensor_decoder.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace cityloop::ingest {
namespace {

constexpr int64_t kTs = 1764316800000;  // 2025-11-28T08:00:00Z
constexpr int64_t kNow = kTs + 60000;

// A 40 x 40 grid of 500 m cells south-west of (28.10, 112.90), one district,
// street and community owning all of it, two registered devices.
std::shared_ptr<const CityModel> TestCity() {
  Config c;
  c.city.grid.origin = {28.10, 112.90};
  c.city.grid.cell_size_m = 500;
  c.city.grid.rows = 40;
  c.city.grid.cols = 40;
  c.city.districts = {{"furong", "芙蓉区", "430102", "city_management"}};
  c.city.streets = {{"s1", "Street 1", "001", "furong"}};
  Community com;
  com.id = "c1";
  com.name = "Community 1";
  com.code = "001";
  com.street_id = "s1";
  com.district_id = "furong";
  com.row_from = 0;
  com.row_to = 39;
  com.col_from = 0;
  com.col_to = 39;
  c.city.communities = {com};
  c.city.sensor_kinds = BuiltinSensorKinds();
  c.city.sensor_kinds["water_level"].min = -1;  // pinned: the range cases below rely on [-1, 10]
  c.city.sensor_kinds["water_level"].max = 10;
  c.city.devices = {{"wl-0012", "water_level", {28.15, 112.95}, "Wuyi Rd underpass"},
                    {"wl-far", "water_level", {35.0, 112.95}, "misplaced"}};
  auto city = CityModel::Build(c);
  EXPECT_TRUE(city.ok()) << city.status().ToString();
  return city.ok() ? *city : nullptr;
}

class SensorDecoderTest : public ::testing::Test {
 protected:
  SensorDecoderTest() : city_(TestCity()), decoder_(city_) {}

  Reading Accept(const std::string& json) {
    DecodeOutcome out = decoder_.Decode(json, kNow);
    if (auto* rej = std::get_if<Rejection>(&out)) {
      ADD_FAILURE() << "rejected " << json << ": " << rej->ToString();
      return {};
    }
    return std::get<Reading>(out);
  }

  std::shared_ptr<const CityModel> city_;
  SensorDecoder decoder_;
};

TEST_F(SensorDecoderTest, DecodesAValidReading) {
  Reading r = Accept(
      R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":0.42,)"
      R"("unit":"m","lat":28.1941,"lon":112.9823})");
  EXPECT_EQ(r.device_id, "wl-0012");
  EXPECT_EQ(r.kind, "water_level");
  EXPECT_EQ(r.ts_ms, kTs);
  EXPECT_DOUBLE_EQ(r.value, 0.42);
  EXPECT_EQ(r.unit, "m");
  EXPECT_DOUBLE_EQ(r.position.lat, 28.1941);
  EXPECT_DOUBLE_EQ(r.position.lon, 112.9823);
  EXPECT_TRUE(r.registered);
  ASSERT_TRUE(city_->grid().CellAt(r.position));
  EXPECT_EQ(r.cell, *city_->grid().CellAt(r.position));
  EXPECT_EQ(r.ingest_ms, kNow);
}

TEST_F(SensorDecoderTest, AcceptsAnRfc3339Timestamp) {
  Reading r = Accept(
      R"({"device_id":"wl-0012","kind":"water_level","ts":"2025-11-28T16:00:00.250+08:00","value":1})");
  EXPECT_EQ(r.ts_ms, kTs + 250);
  r = Accept(R"({"device_id":"wl-0012","kind":"water_level","ts":"2025-11-28T08:00:00Z","value":1})");
  EXPECT_EQ(r.ts_ms, kTs);
}

TEST_F(SensorDecoderTest, RegisteredDeviceWithoutPositionUsesTheRegistry) {
  Reading r = Accept(R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":2.5})");
  EXPECT_TRUE(r.registered);
  EXPECT_DOUBLE_EQ(r.position.lat, 28.15);
  EXPECT_DOUBLE_EQ(r.position.lon, 112.95);
  EXPECT_EQ(r.cell, *city_->grid().CellAt({28.15, 112.95}));
  EXPECT_EQ(r.unit, "m");  // from the kind when the message has none
  // null counts as absent
  r = Accept(R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":2.5,"lat":null,"lon":null})");
  EXPECT_DOUBLE_EQ(r.position.lat, 28.15);
}

TEST_F(SensorDecoderTest, AcceptsUnknownKindsWithoutRangeCheck) {
  Reading r = Accept(
      R"({"device_id":"soil-1","kind":"soil_moisture","ts":1764316800000,"value":123456.5,)"
      R"("unit":"%","lat":28.12,"lon":112.93})");
  EXPECT_EQ(r.kind, "soil_moisture");
  EXPECT_EQ(r.unit, "%");
  EXPECT_FALSE(r.registered);
  EXPECT_GE(r.cell, 0);
}

TEST_F(SensorDecoderTest, IgnoresUnknownFieldsAndKeepsTheMessagesUnit) {
  Reading r = Accept(
      R"({"firmware":"1.2","device_id":"wl-0012","battery":{"v":3.7,"cells":[1,2,{"x":null}]},)"
      R"("kind":"water_level","ts":1764316800000,"value":0.5,"unit":"cm","tags":["a","b"],"ok":true})");
  EXPECT_EQ(r.device_id, "wl-0012");
  EXPECT_EQ(r.unit, "cm");
  EXPECT_DOUBLE_EQ(r.value, 0.5);
}

TEST_F(SensorDecoderTest, ReusesItsBufferAcrossMessages) {
  std::string longer = R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":0.5,"pad":")" +
                       std::string(5000, 'p') + R"("})";
  Accept(longer);
  Reading r = Accept(R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":3})");
  EXPECT_DOUBLE_EQ(r.value, 3);
  DecodeOutcome out = decoder_.Decode(R"({"device_id":"wl-0012")", kNow);
  ASSERT_TRUE(std::holds_alternative<Rejection>(out));
  EXPECT_EQ(std::get<Rejection>(out).reason, reason::kMalformedJson);
}

struct RejectCase {
  std::string name;
  std::string json;
  std::string reason;
  std::string detail_has;  // a fragment the detail must name
};

std::string Msg(const std::string& fields) {
  return "{" + fields + "}";
}

const std::string kId = R"("device_id":"wl-0012",)";
const std::string kKind = R"("kind":"water_level",)";
const std::string kTsField = R"("ts":1764316800000,)";
const std::string kValue = R"("value":0.42)";

std::vector<RejectCase> RejectCases() {
  const std::string ok_body = kId + kKind + kTsField + kValue;
  return {
      {"oversized", Msg(ok_body + R"(,"pad":")" + std::string(70 * 1024, 'x') + "\""), reason::kOversized, "bytes"},
      {"not_json", "not json at all", reason::kMalformedJson, "not json"},
      {"empty", "", reason::kMalformedJson, ""},
      {"array_root", "[1,2,3]", reason::kMalformedJson, "object"},
      {"scalar_root", "42", reason::kMalformedJson, "object"},
      {"truncated", R"({"device_id":"wl-0012","kind":)", reason::kMalformedJson, ""},
      {"trailing_garbage", Msg(ok_body) + " xyz", reason::kMalformedJson, ""},
      {"second_object", Msg(ok_body) + Msg(ok_body), reason::kMalformedJson, "trailing"},
      {"missing_comma", R"({"device_id":"wl-0012" "kind":"water_level"})", reason::kMalformedJson, ""},
      {"bad_number", Msg(kId + kKind + kTsField + R"("value":1.2.3)"), reason::kMalformedJson, ""},
      {"bad_unknown_array", Msg(ok_body + R"(,"extra":[1,,2])"), reason::kMalformedJson, "extra"},
      {"bad_unknown_object", Msg(ok_body + R"(,"extra":{"a" 1})"), reason::kMalformedJson, "extra"},
      {"bad_unknown_literal", Msg(ok_body + R"(,"extra":tru)"), reason::kMalformedJson, "extra"},
      {"trailing_comma", Msg(ok_body + ","), reason::kMalformedJson, ""},
      {"bad_escape", Msg(R"("device_id":"wl-\q",)" + kKind + kTsField + kValue), reason::kMalformedJson, ""},
      {"missing_device_id", Msg(kKind + kTsField + kValue), reason::kMissingField, "device_id"},
      {"empty_device_id", Msg(R"("device_id":"",)" + kKind + kTsField + kValue), reason::kMissingField, "device_id"},
      {"missing_kind", Msg(kId + kTsField + kValue), reason::kMissingField, "kind"},
      {"missing_ts", Msg(kId + kKind + kValue), reason::kMissingField, "ts"},
      {"missing_value", Msg(kId + kKind + R"("ts":1764316800000)"), reason::kMissingField, "value"},
      {"null_value", Msg(kId + kKind + kTsField + R"("value":null)"), reason::kMissingField, "value"},
      {"lat_without_lon", Msg(ok_body + R"(,"lat":28.19)"), reason::kMissingField, "lon"},
      {"device_id_number", Msg(R"("device_id":12,)" + kKind + kTsField + kValue), reason::kWrongType, "device_id=12"},
      {"kind_array", Msg(kId + R"("kind":["a"],)" + kTsField + kValue), reason::kWrongType, "kind"},
      {"value_string", Msg(kId + kKind + kTsField + R"("value":"0.42")"), reason::kWrongType, "value=\"0.42\""},
      {"value_bool", Msg(kId + kKind + kTsField + R"("value":true)"), reason::kWrongType, "value=true"},
      {"value_infinite", Msg(kId + kKind + kTsField + R"("value":1e999)"), reason::kWrongType, "value=1e999"},
      {"ts_bool", Msg(kId + kKind + R"("ts":false,)" + kValue), reason::kWrongType, "ts=false"},
      {"ts_fraction", Msg(kId + kKind + R"("ts":1764316800000.5,)" + kValue), reason::kWrongType, "ts="},
      {"unit_number", Msg(ok_body + R"(,"unit":3)"), reason::kWrongType, "unit=3"},
      {"lat_string", Msg(ok_body + R"(,"lat":"28.1","lon":112.98)"), reason::kWrongType, "lat"},
      {"ts_text", Msg(kId + kKind + R"("ts":"yesterday",)" + kValue), reason::kBadTimestamp, "yesterday"},
      {"ts_bad_month", Msg(kId + kKind + R"("ts":"2025-13-01T00:00:00Z",)" + kValue), reason::kBadTimestamp, "ts="},
      {"ts_huge", Msg(kId + kKind + R"("ts":99999999999999999999,)" + kValue), reason::kBadTimestamp, "ts="},
      {"future", Msg(kId + kKind + "\"ts\":" + std::to_string(kNow + 6 * 60000) + "," + kValue),
       reason::kFutureTimestamp, "ts="},
      {"stale", Msg(kId + kKind + "\"ts\":" + std::to_string(kNow - 31LL * 86400000) + "," + kValue),
       reason::kStaleTimestamp, "ts="},
      {"value_above_max", Msg(kId + kKind + kTsField + R"("value":10.5)"), reason::kOutOfRange, "value=10.5"},
      {"value_below_min", Msg(kId + kKind + kTsField + R"("value":-1.5)"), reason::kOutOfRange, "value=-1.5"},
      {"lat_beyond_pole", Msg(ok_body + R"(,"lat":95,"lon":112.98)"), reason::kOutOfRange, "lat=95"},
      {"lon_beyond_180", Msg(ok_body + R"(,"lat":28.19,"lon":200.5)"), reason::kOutOfRange, "lon=200.5"},
      {"device_id_too_long", Msg("\"device_id\":\"" + std::string(129, 'd') + "\"," + kKind + kTsField + kValue),
       reason::kOutOfRange, "device_id="},
      {"outside_city", Msg(ok_body + R"(,"lat":30.5,"lon":112.95)"), reason::kOutsideCity, "outside"},
      {"registered_outside_city", Msg(R"("device_id":"wl-far",)" + kKind + kTsField + kValue), reason::kOutsideCity,
       "wl-far"},
      {"unknown_location", Msg(R"("device_id":"wl-9999",)" + kKind + kTsField + kValue), reason::kUnknownLocation,
       "wl-9999"},
  };
}

TEST_F(SensorDecoderTest, RejectsEachProblemWithItsReason) {
  for (const RejectCase& c : RejectCases()) {
    SCOPED_TRACE(c.name);
    DecodeOutcome out = decoder_.Decode(c.json, kNow);
    ASSERT_TRUE(std::holds_alternative<Rejection>(out)) << c.json.substr(0, 200);
    const Rejection& r = std::get<Rejection>(out);
    EXPECT_EQ(r.reason, c.reason) << r.ToString();
    EXPECT_NE(r.detail.find(c.detail_has), std::string::npos) << r.detail;
    EXPECT_LT(r.detail.size(), 300u) << r.detail;
    EXPECT_EQ(r.ToString().rfind(c.reason + ": ", 0), 0u);
  }
}

TEST_F(SensorDecoderTest, EveryReasonCodeIsCovered) {
  std::set<std::string> seen;
  for (const RejectCase& c : RejectCases()) seen.insert(c.reason);
  EXPECT_EQ(seen, (std::set<std::string>{reason::kOversized, reason::kMalformedJson, reason::kMissingField,
                                         reason::kWrongType, reason::kOutOfRange, reason::kOutsideCity,
                                         reason::kFutureTimestamp, reason::kStaleTimestamp, reason::kBadTimestamp,
                                         reason::kUnknownLocation}));
}

TEST_F(SensorDecoderTest, DetailTruncatesLongValues) {
  const std::string json = Msg(kId + kKind + kTsField + "\"value\":\"" + std::string(500, 'v') + "\"");
  DecodeOutcome out = decoder_.Decode(json, kNow);
  ASSERT_TRUE(std::holds_alternative<Rejection>(out));
  const Rejection& r = std::get<Rejection>(out);
  EXPECT_EQ(r.reason, reason::kWrongType);
  EXPECT_NE(r.detail.find("value="), std::string::npos);
  EXPECT_EQ(r.detail.find(std::string(81, 'v')), std::string::npos) << r.detail;
  EXPECT_NE(r.detail.find(std::string(79, 'v')), std::string::npos) << r.detail;
}

TEST_F(SensorDecoderTest, RangeLimitsAreInclusive) {
  EXPECT_DOUBLE_EQ(Accept(Msg(kId + kKind + kTsField + R"("value":10)")).value, 10);
  EXPECT_DOUBLE_EQ(Accept(Msg(kId + kKind + kTsField + R"("value":-1)")).value, -1);
}

TEST_F(SensorDecoderTest, TimestampLimitsAreInclusive) {
  Accept(Msg(kId + kKind + "\"ts\":" + std::to_string(kNow + 5 * 60000) + "," + kValue));
  Accept(Msg(kId + kKind + "\"ts\":" + std::to_string(kNow - 30LL * 86400000) + "," + kValue));
}

}  // namespace
}  // namespace cityloop::ingest

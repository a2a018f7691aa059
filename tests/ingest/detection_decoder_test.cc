#include "ingest/detection_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_city.h"

namespace cityloop::ingest {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTs = 1764316800000;  // 2025-11-28T08:00:00Z
constexpr int64_t kNow = kTs + 60000;

const std::string kVehicle = R"({"label":"vehicle","score":0.91,"bbox":[0.41,0.52,0.10,0.08],"track_id":"t17"})";
const std::string kPerson = R"({"label":"person","score":0.5})";

// "[a,b,c]"
std::string List(std::initializer_list<std::string> items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return "[" + out + "]";
}

// A city.camera.detections message from cam-031 with one vehicle. Each setter
// takes the member's JSON value, or "" to leave the member out; extra adds
// more members (",\"k\":v").
class Message {
 public:
  Message& camera_id(std::string json) { return Put(&camera_id_, std::move(json)); }
  Message& ts(std::string json) { return Put(&ts_, std::move(json)); }
  Message& detections(std::string json) { return Put(&detections_, std::move(json)); }
  Message& extra(std::string members) { return Put(&extra_, std::move(members)); }

  std::string str() const {
    std::string out;
    for (const auto& [key, json] : {std::pair<const char*, const std::string&>{"camera_id", camera_id_},
                                    {"ts", ts_},
                                    {"detections", detections_}}) {
      if (!json.empty()) out += std::string(out.empty() ? "" : ",") + "\"" + key + "\":" + json;
    }
    return "{" + out + extra_ + "}";
  }

 private:
  Message& Put(std::string* member, std::string json) {
    *member = std::move(json);
    return *this;
  }

  std::string camera_id_ = R"("cam-031")";
  std::string ts_ = std::to_string(kTs);
  std::string detections_ = List({kVehicle});
  std::string extra_;
};

// A message whose only detection is element.
std::string With(const std::string& element) { return Message().detections(List({element})).str(); }

// n detections of kPerson.
std::string Many(int n) {
  std::string list;
  for (int i = 0; i < n; ++i) list += (i ? "," : "") + kPerson;
  return Message().detections("[" + list + "]").str();
}

class DetectionDecoderTest : public ::testing::Test {
 protected:
  DetectionDecoderTest() : city_(testing::TestCity()), decoder_(city_) {}

  // The decoded message, or a test failure that names the rejection.
  CameraDetections Accept(const std::string& json) {
    std::variant<CameraDetections, Rejection> out = decoder_.Decode(json, kNow);
    if (auto* decoded = std::get_if<CameraDetections>(&out)) return std::move(*decoded);
    ADD_FAILURE() << "rejected " << json.substr(0, 200) << ": " << std::get<Rejection>(out).ToString();
    return {};
  }

  std::shared_ptr<const CityModel> city_;
  DetectionDecoder decoder_;
};

TEST_F(DetectionDecoderTest, DecodesValidDetections) {
  CameraDetections d = Accept(Message().detections(List({kVehicle, kPerson})).str());
  EXPECT_EQ(d.camera_id, "cam-031");
  EXPECT_EQ(d.ts_ms, kTs);
  const LatLon registered = testing::TestCellCenter(1, 2);
  EXPECT_EQ(d.position, registered);
  EXPECT_EQ(d.cell, *city_->grid().CellAt(registered));
  ASSERT_EQ(d.detections.size(), 2u);
  const CameraDetection& v = d.detections[0];
  EXPECT_EQ(v.label, "vehicle");
  EXPECT_DOUBLE_EQ(v.score, 0.91);
  EXPECT_DOUBLE_EQ(v.bbox[0], 0.41);
  EXPECT_DOUBLE_EQ(v.bbox[1], 0.52);
  EXPECT_DOUBLE_EQ(v.bbox[2], 0.10);
  EXPECT_DOUBLE_EQ(v.bbox[3], 0.08);
  EXPECT_EQ(v.track_id, "t17");
  const CameraDetection& p = d.detections[1];
  EXPECT_EQ(p.label, "person");
  EXPECT_EQ(p.track_id, "");
  EXPECT_DOUBLE_EQ(p.bbox[0] + p.bbox[1] + p.bbox[2] + p.bbox[3], 0);
  EXPECT_EQ(d.ingest_ms, 0);  // the caller's
}

TEST_F(DetectionDecoderTest, AcceptsAnEmptyListAndAnRfc3339Timestamp) {
  EXPECT_TRUE(Accept(Message().detections("[]").str()).detections.empty());
  EXPECT_EQ(Accept(Message().ts(R"("2025-11-28T16:00:00.250+08:00")").str()).ts_ms, kTs + 250);
}

TEST_F(DetectionDecoderTest, NullMeansAbsentAndTrackIdsMayBeIntegers) {
  CameraDetections d = Accept(With(R"({"label":"fire","score":1,"bbox":null,"track_id":null})"));
  ASSERT_EQ(d.detections.size(), 1u);
  EXPECT_EQ(d.detections[0].track_id, "");
  EXPECT_DOUBLE_EQ(d.detections[0].bbox[2], 0);
  EXPECT_EQ(Accept(With(R"({"label":"a","score":0,"track_id":17})")).detections[0].track_id, "17");
  EXPECT_EQ(Accept(With(R"({"label":"a","score":0,"track_id":-3})")).detections[0].track_id, "-3");
  EXPECT_EQ(Accept(With(R"({"label":"a","score":0,"track_id":1e3})")).detections[0].track_id, "1000");
  EXPECT_EQ(Accept(With(R"({"label":"a","score":0,"track_id":123456789012345678901234567890})")).detections[0].track_id,
            "123456789012345678901234567890");
}

TEST_F(DetectionDecoderTest, BoxLimitsAreInclusive) {
  CameraDetections d = Accept(With(R"({"label":"a","score":1,"bbox":[0.7,0,0.3,1]})"));
  EXPECT_DOUBLE_EQ(d.detections[0].bbox[0] + d.detections[0].bbox[2], 1);
  Accept(With(R"({"label":"a","score":0,"bbox":[0,0,0,0]})"));
  Accept(With(R"({"label":"a","score":1,"bbox":[1,1,0,0]})"));
}

TEST_F(DetectionDecoderTest, IgnoresUnknownFieldsAtTheRootAndInElements) {
  CameraDetections d =
      Accept(Message()
                 .detections(List(
                     {R"({"attrs":{"color":"red","plate":[1,{"x":null}]},"label":"vehicle","score":0.5})", kPerson}))
                 .extra(R"(,"frame":{"w":1920,"h":1080},"model":"yolo-v8","ok":true)")
                 .str());
  ASSERT_EQ(d.detections.size(), 2u);
  EXPECT_EQ(d.detections[0].label, "vehicle");
  // A repeated field keeps its last value, a repeated list too.
  d = Accept(Message().extra(R"(,"detections":[{"label":"smoke","score":0.7,"score":0.8}])").str());
  ASSERT_EQ(d.detections.size(), 1u);
  EXPECT_EQ(d.detections[0].label, "smoke");
  EXPECT_DOUBLE_EQ(d.detections[0].score, 0.8);
}

TEST_F(DetectionDecoderTest, AcceptsUpToTheDetectionLimit) {
  EXPECT_EQ(Accept(Many(256)).detections.size(), 256u);
  // A shorter message after a longer one gets only its own elements.
  EXPECT_EQ(Accept(Message().str()).detections.size(), 1u);
  std::variant<CameraDetections, Rejection> out = decoder_.Decode(Many(257), kNow);
  ASSERT_TRUE(std::holds_alternative<Rejection>(out));
  EXPECT_EQ(std::get<Rejection>(out).reason, reason::kOutOfRange);
  EXPECT_THAT(std::get<Rejection>(out).detail, HasSubstr("detections has 257 elements, limit 256"));
}

TEST_F(DetectionDecoderTest, ARegisteredCameraOutsideTheGridIsOutsideCity) {
  Config config = testing::TestConfig();
  config.city.cameras.push_back({"cam-far", {35.0, 112.95}, "misplaced"});
  DetectionDecoder decoder(testing::TestCity(config));
  std::variant<CameraDetections, Rejection> out = decoder.Decode(Message().camera_id(R"("cam-far")").str(), kNow);
  ASSERT_TRUE(std::holds_alternative<Rejection>(out));
  EXPECT_EQ(std::get<Rejection>(out).reason, reason::kOutsideCity);
  EXPECT_THAT(std::get<Rejection>(out).detail, HasSubstr("(registered) of camera_id=cam-far"));
}

TEST_F(DetectionDecoderTest, SurvivesEveryTruncation) {
  const std::string ok = Message().detections(List({kVehicle, kPerson})).str();
  for (size_t n = 0; n < ok.size(); ++n) {
    std::variant<CameraDetections, Rejection> out = decoder_.Decode(ok.substr(0, n), kNow);
    EXPECT_TRUE(std::holds_alternative<Rejection>(out)) << ok.substr(0, n);
  }
  Accept(ok);
}

// One rejection per row: the reason, and a fragment its detail must hold.
struct BadDetections {
  std::string name;
  std::string json;
  const char* reason;
  std::string detail_has;
};

void PrintTo(const BadDetections& b, std::ostream* os) { *os << b.name; }

std::string Nested(int levels) {
  std::string v = "0";
  for (int i = 0; i < levels; ++i) v = "[" + v + "]";
  return v;
}

// An element whose bbox is json.
std::string Box(const std::string& json) { return With(R"({"label":"a","score":1,"bbox":)" + json + "}"); }

// Each check of a bbox item, at each of the four places.
std::vector<BadDetections> BoxItemRows() {
  struct Bad {
    const char* what;
    const char* item;
    const char* reason;
    const char* detail;  // after "detections[0].bbox[i]="
  };
  const Bad kinds[] = {{"string", R"("0.1")", reason::kWrongType, R"("0.1" (string): expected number)"},
                       {"null", "null", reason::kWrongType, "null (null): expected number"},
                       {"above_one", "1.2", reason::kOutOfRange, "1.2 (number) outside [0, 1]"},
                       {"negative", "-0.1", reason::kOutOfRange, "-0.1 (number) outside [0, 1]"}};
  std::vector<BadDetections> rows;
  for (const Bad& kind : kinds) {
    for (int at = 0; at < 4; ++at) {
      std::string box = "[";
      for (int i = 0; i < 4; ++i) box += std::string(i ? "," : "") + (i == at ? kind.item : "0.1");
      rows.push_back({"bbox_item_" + std::to_string(at) + "_" + kind.what, Box(box + "]"), kind.reason,
                      "detections[0].bbox[" + std::to_string(at) + "]=" + kind.detail});
    }
  }
  return rows;
}

const BadDetections kBad[] = {
    {"oversized", Message().extra(",\"pad\":\"" + std::string(70 * 1024, 'x') + "\"").str(), reason::kOversized,
     "bytes, limit 65536"},
    {"not_json", "cam-031 saw a vehicle", reason::kMalformedJson, "not JSON"},
    {"array_root", List({kVehicle}), reason::kMalformedJson, "not a JSON object"},
    {"trailing_garbage", Message().str() + " {}", reason::kMalformedJson, "trailing"},
    {"bad_element_member", With(R"({"label":"a","score":1,})"), reason::kMalformedJson, "detections[0]"},
    {"bad_element_key", With(R"({"label":"a",7:1})"), reason::kMalformedJson, "detections[0]"},
    {"bad_label_value", Message().detections(List({kPerson, R"({"label":"a\x"})"})).str(), reason::kMalformedJson,
     "bad value in field detections[1].label"},
    {"bad_bbox_item", With(R"({"label":"a","score":1,"bbox":[0.1,,0.2,0.3]})"), reason::kMalformedJson,
     "detections[0].bbox[1]"},
    {"bad_element", Message().detections("[1,2,tru]").str(), reason::kMalformedJson, "detections[2]"},
    {"deep_nesting_root", Message().extra(",\"x\":" + Nested(70)).str(), reason::kMalformedJson, "field x"},
    {"deep_nesting_element", With(R"({"label":"a","score":1,"x":)" + Nested(70) + "}"), reason::kMalformedJson,
     "detections[0].x"},
    {"invalid_utf8", With("{\"label\":\"caf\xc3\",\"score\":1}"), reason::kMalformedJson, "UTF-8"},
    {"missing_camera_id", Message().camera_id("").str(), reason::kMissingField, "camera_id is missing"},
    {"empty_camera_id", Message().camera_id(R"("")").str(), reason::kMissingField, "camera_id is empty"},
    {"camera_id_number", Message().camera_id("31").str(), reason::kWrongType, "camera_id=31 (number): expected string"},
    {"camera_id_too_long", Message().camera_id("\"" + std::string(129, 'c') + "\"").str(), reason::kOutOfRange,
     "longer than 128"},
    {"missing_ts", Message().ts("").str(), reason::kMissingField, "ts is missing"},
    {"ts_array", Message().ts("[1]").str(), reason::kWrongType, "ts=[...] (array)"},
    {"ts_text", Message().ts(R"("noon")").str(), reason::kBadTimestamp, R"(ts="noon")"},
    {"ts_negative_huge", Message().ts("-99999999999999999999").str(), reason::kBadTimestamp, "epoch ms"},
    {"future", Message().ts(std::to_string(kNow + 6 * 60000)).str(), reason::kFutureTimestamp, "ahead of now"},
    {"stale", Message().ts(std::to_string(kNow - 31LL * 86400000)).str(), reason::kStaleTimestamp, "ms old"},
    {"missing_detections", Message().detections("").str(), reason::kMissingField, "detections is missing"},
    {"null_detections", Message().detections("null").str(), reason::kMissingField, "detections is missing"},
    {"detections_object", Message().detections(kVehicle).str(), reason::kWrongType,
     "detections={...} (object): expected array"},
    {"unknown_camera", Message().camera_id(R"("cam-999")").str(), reason::kUnknownLocation,
     "camera_id=cam-999 is not a registered camera"},
    {"too_many", Many(257), reason::kOutOfRange, "257 elements, limit 256"},
    {"element_number", Message().detections(List({kPerson, "5"})).str(), reason::kWrongType,
     "detections[1]=5 (number): expected object"},
    {"element_null", Message().detections("[null]").str(), reason::kWrongType, "detections[0]=null"},
    {"label_missing", Message().detections(List({kVehicle, kPerson, R"({"score":0.5})"})).str(), reason::kMissingField,
     "detections[2].label is missing"},
    {"label_empty", With(R"({"label":"","score":0.5})"), reason::kMissingField, "detections[0].label is empty"},
    {"label_number", With(R"({"label":3,"score":0.5})"), reason::kWrongType, "detections[0].label=3"},
    {"label_too_long", With(R"({"label":")" + std::string(65, 'l') + R"(","score":0.5})"), reason::kOutOfRange,
     "detections[0].label=lll"},
    {"score_missing", With(R"({"label":"a"})"), reason::kMissingField, "detections[0].score is missing"},
    {"score_string", With(R"({"label":"a","score":"high"})"), reason::kWrongType, R"(detections[0].score="high")"},
    {"score_above_one", Message().detections(List({kPerson, kPerson, kPerson, R"({"label":"a","score":1.5})"})).str(),
     reason::kOutOfRange, "detections[3].score=1.5 (number) outside [0, 1]"},
    {"score_negative", With(R"({"label":"a","score":-0.1})"), reason::kOutOfRange, "detections[0].score=-0.1"},
    {"bbox_string", Box(R"("0,0,1,1")"), reason::kWrongType,
     R"(detections[0].bbox="0,0,1,1" (string): expected array)"},
    {"bbox_three", Box("[0.1,0.1,0.2]"), reason::kOutOfRange, "detections[0].bbox has 3 items, expected 4"},
    {"bbox_five", Box("[0.1,0.1,0.2,0.2,0.5]"), reason::kOutOfRange, "detections[0].bbox has 5 items"},
    {"bbox_empty", Box("[]"), reason::kOutOfRange, "detections[0].bbox has 0 items"},
    {"bbox_too_wide", Box("[0.8,0.1,0.3,0.2]"), reason::kOutOfRange, "detections[0].bbox x + w = 0.8 + 0.3 = 1.1"},
    {"bbox_too_tall", Box("[0.1,0.6,0.2,0.5]"), reason::kOutOfRange, "detections[0].bbox y + h = 0.6 + 0.5 = 1.1"},
    {"track_id_bool", With(R"({"label":"a","score":1,"track_id":true})"), reason::kWrongType,
     "detections[0].track_id=true (boolean): expected string or integer"},
    {"track_id_fraction", With(R"({"label":"a","score":1,"track_id":1.5})"), reason::kWrongType,
     "detections[0].track_id=1.5"},
    {"track_id_too_long", With(R"({"label":"a","score":1,"track_id":")" + std::string(65, 't') + "\"}"),
     reason::kOutOfRange, "detections[0].track_id=ttt"},
};

class DetectionRejectTest : public DetectionDecoderTest, public ::testing::WithParamInterface<BadDetections> {};

TEST_P(DetectionRejectTest, NamesTheReasonAndTheField) {
  std::variant<CameraDetections, Rejection> out = decoder_.Decode(GetParam().json, kNow);
  ASSERT_TRUE(std::holds_alternative<Rejection>(out)) << GetParam().json.substr(0, 200);
  const Rejection& r = std::get<Rejection>(out);
  EXPECT_EQ(r.reason, GetParam().reason) << r.ToString();
  EXPECT_THAT(r.detail, HasSubstr(GetParam().detail_has));
  EXPECT_LT(r.detail.size(), 300u) << r.detail;
}

std::string RowName(const ::testing::TestParamInfo<BadDetections>& row) { return row.param.name; }

INSTANTIATE_TEST_SUITE_P(Rows, DetectionRejectTest, ::testing::ValuesIn(kBad), RowName);
INSTANTIATE_TEST_SUITE_P(BoxItems, DetectionRejectTest, ::testing::ValuesIn(BoxItemRows()), RowName);

// outside_city needs a camera registered outside the grid: see
// ARegisteredCameraOutsideTheGridIsOutsideCity.
TEST(DetectionRejectCoverage, EveryOtherReasonOfTheDecoderHasARow) {
  std::set<std::string> seen;
  for (const BadDetections& b : kBad) seen.insert(b.reason);
  EXPECT_EQ(seen, (std::set<std::string>{reason::kOversized, reason::kMalformedJson, reason::kMissingField,
                                         reason::kWrongType, reason::kOutOfRange, reason::kFutureTimestamp,
                                         reason::kStaleTimestamp, reason::kBadTimestamp, reason::kUnknownLocation}));
}

}  // namespace
}  // namespace cityloop::ingest

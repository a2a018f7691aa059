#include "ingest/unit_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

// A city.units message as (key, JSON value) pairs, so that a case can
// replace, drop or add one field of a valid update.
class UnitJson {
 public:
  UnitJson()
      : fields_{{"unit_id", R"("drain-1")"},
                {"dept", R"("drainage")"},
                {"status", R"("enroute")"},
                {"ts", std::to_string(kTs)},
                {"lat", "28.175"},
                {"lon", "112.955"}} {}

  // Replaces key's value, or appends key when the update has none.
  UnitJson& Set(const std::string& key, std::string json) {
    for (auto& [k, v] : fields_) {
      if (k == key) {
        v = std::move(json);
        return *this;
      }
    }
    fields_.emplace_back(key, std::move(json));
    return *this;
  }
  UnitJson& Drop(const std::string& key) {
    std::erase_if(fields_, [&](const auto& kv) { return kv.first == key; });
    return *this;
  }
  std::string str() const {
    std::string out = "{";
    for (const auto& [k, v] : fields_) out += (out.size() > 1 ? ",\"" : "\"") + k + "\":" + v;
    return out + "}";
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

class UnitDecoderTest : public ::testing::Test {
 protected:
  UnitDecoderTest() : city_(testing::TestCity()), decoder_(city_) {}

  UnitUpdate Accept(const std::string& json) {
    std::variant<UnitUpdate, Rejection> out = decoder_.Decode(json, kNow);
    if (const auto* rej = std::get_if<Rejection>(&out)) {
      ADD_FAILURE() << "rejected " << json.substr(0, 200) << ": " << rej->ToString();
      return {};
    }
    return std::get<UnitUpdate>(out);
  }
  Rejection Reject(const std::string& json) {
    std::variant<UnitUpdate, Rejection> out = decoder_.Decode(json, kNow);
    if (std::holds_alternative<UnitUpdate>(out)) {
      ADD_FAILURE() << "accepted " << json.substr(0, 200);
      return {};
    }
    return std::get<Rejection>(out);
  }

  std::shared_ptr<const CityModel> city_;
  UnitDecoder decoder_;
};

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
  const std::string twice = UnitJson().str();
  u = Accept(twice.substr(0, twice.size() - 1) + R"(,"status":"onscene"})");
  EXPECT_EQ(u.status, UnitStatus::kOnScene);
}

TEST_F(UnitDecoderTest, ReusesItsBufferAcrossMessages) {
  Accept(UnitJson().Set("pad", Quoted(std::string(20000, 'p'))).str());
  EXPECT_EQ(Accept(UnitJson().Set("unit_id", R"("drain-2")").str()).unit_id, "drain-2");
  EXPECT_EQ(Reject(R"({"unit_id":"drain-3")").reason, reason::kMalformedJson);
  EXPECT_EQ(Accept(UnitJson().str()).unit_id, "drain-1");
}

struct RejectCase {
  std::string name;
  std::string json;
  std::string reason;
  std::string detail_has;  // a fragment the detail must name
};

std::vector<RejectCase> RejectCases() {
  const std::string ok = UnitJson().str();
  std::string deep = "1";
  for (int i = 0; i < 70; ++i) deep = "[" + deep + "]";
  return {
      {"oversized", UnitJson().Set("pad", Quoted(std::string(70 * 1024, 'x'))).str(), reason::kOversized,
       "bytes, limit 65536"},
      {"not_json", "drain-1 available", reason::kMalformedJson, "not JSON"},
      {"empty", "", reason::kMalformedJson, "not JSON"},
      {"array_root", "[" + ok + "]", reason::kMalformedJson, "not a JSON object"},
      {"truncated", ok.substr(0, ok.size() / 2), reason::kMalformedJson, ""},
      {"trailing_garbage", ok + " x", reason::kMalformedJson, ""},
      {"second_object", ok + ok, reason::kMalformedJson, "trailing"},
      {"bad_unknown_value", UnitJson().Set("extra", "[1,,2]").str(), reason::kMalformedJson, "extra"},
      {"deep_nesting", UnitJson().Set("extra", deep).str(), reason::kMalformedJson, "extra"},
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
  };
}

TEST_F(UnitDecoderTest, RejectsEachProblemWithItsReasonAndAPreciseDetail) {
  for (const RejectCase& c : RejectCases()) {
    SCOPED_TRACE(c.name);
    const Rejection r = Reject(c.json);
    EXPECT_EQ(r.reason, c.reason) << r.ToString();
    EXPECT_THAT(r.detail, HasSubstr(c.detail_has));
    EXPECT_LT(r.detail.size(), 300u) << r.detail;
  }
}

TEST_F(UnitDecoderTest, EveryReasonCodeOfUnitsHasARow) {
  std::set<std::string> seen;
  for (const RejectCase& c : RejectCases()) seen.insert(c.reason);
  for (const char* code : {reason::kOversized, reason::kMalformedJson, reason::kMissingField, reason::kWrongType,
                           reason::kOutOfRange, reason::kOutsideCity, reason::kFutureTimestamp, reason::kStaleTimestamp,
                           reason::kBadTimestamp}) {
    EXPECT_EQ(seen.erase(code), 1u) << code;
  }
  EXPECT_TRUE(seen.empty()) << *seen.begin();
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

TEST_F(UnitDecoderTest, SurvivesHostileInput) {
  const std::string ok = UnitJson().str();
  for (size_t n = 0; n < ok.size(); ++n) {
    EXPECT_EQ(Reject(ok.substr(0, n)).reason, reason::kMalformedJson) << ok.substr(0, n);
  }
  EXPECT_EQ(Reject(std::string(100000, '[')).reason, reason::kOversized);
  EXPECT_EQ(Reject(std::string(60000, '{')).reason, reason::kMalformedJson);
  std::string noise;
  for (int i = 0; i < 4096; ++i) noise += static_cast<char>((i * 131 + 7) % 256);
  EXPECT_EQ(Reject(noise).reason, reason::kMalformedJson);
  EXPECT_EQ(Reject("{" + noise + "}").reason, reason::kMalformedJson);
}

}  // namespace
}  // namespace cityloop::ingest

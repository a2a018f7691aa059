// What the JSON input decoder tests (reports, units, commands) share: a
// message built as (key, JSON value) pairs so that a case can edit one field of
// a valid message, a fixture that decodes and expects an accept or a reject,
// the reject-case table with its checks, and the hostile-input loops.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/city.h"
#include "ingest/sensor_decoder.h"
#include "tests/support/test_city.h"

namespace cityloop::testing {

inline constexpr int64_t kTs = 1764316800000;  // 2025-11-28T08:00:00Z
inline constexpr int64_t kNow = kTs + 60000;

inline std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

// A JSON object message as (key, JSON value) pairs, in order, so that a case
// can replace, drop or add one field of a valid message.
class MessageJson {
 public:
  MessageJson(std::initializer_list<std::pair<std::string, std::string>> fields) : fields_(fields) {}

  // Replaces key's value, or appends key when the message has none.
  MessageJson& Set(const std::string& key, std::string json) {
    for (auto& [k, v] : fields_) {
      if (k == key) {
        v = std::move(json);
        return *this;
      }
    }
    fields_.emplace_back(key, std::move(json));
    return *this;
  }
  // Appends key even when the message has it, so that it stands twice.
  MessageJson& Repeat(const std::string& key, std::string json) {
    fields_.emplace_back(key, std::move(json));
    return *this;
  }
  MessageJson& Drop(const std::string& key) {
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

// One message the decoder must reject, and how.
struct RejectCase {
  std::string name;
  std::string json;
  std::string reason;
  std::string detail_has;  // a fragment the detail must name
};

// A decoder's reject-case table: first the size and syntax rows every JSON
// decoder shares (`valid` is a valid message, `not_json` text that is no JSON
// at all), then `rows`.
inline std::vector<RejectCase> RejectTable(const MessageJson& valid, const std::string& not_json,
                                           std::initializer_list<RejectCase> rows) {
  const std::string ok = valid.str();
  std::string deep = "1";
  for (int i = 0; i < 70; ++i) deep = "[" + deep + "]";
  std::vector<RejectCase> cases = {
      {"oversized", MessageJson(valid).Set("pad", Quoted(std::string(70 * 1024, 'x'))).str(),
       ingest::reason::kOversized, "bytes, limit 65536"},
      {"not_json", not_json, ingest::reason::kMalformedJson, "not JSON"},
      {"empty", "", ingest::reason::kMalformedJson, "not JSON"},
      {"array_root", "[" + ok + "]", ingest::reason::kMalformedJson, "not a JSON object"},
      {"truncated", ok.substr(0, ok.size() / 2), ingest::reason::kMalformedJson, ""},
      {"trailing_garbage", ok + " x", ingest::reason::kMalformedJson, ""},
      {"second_object", ok + ok, ingest::reason::kMalformedJson, "trailing"},
      {"bad_unknown_value", MessageJson(valid).Set("extra", "[1,,2]").str(), ingest::reason::kMalformedJson, "extra"},
      {"deep_nesting", MessageJson(valid).Set("extra", deep).str(), ingest::reason::kMalformedJson, "extra"},
  };
  cases.insert(cases.end(), rows);
  return cases;
}

// Each reason code in `codes` has a row in `cases`, and no row has a code
// outside `codes`.
inline void ExpectEveryReasonCodeHasARow(const std::vector<RejectCase>& cases,
                                         std::initializer_list<const char*> codes) {
  std::set<std::string> seen;
  for (const RejectCase& c : cases) seen.insert(c.reason);
  for (const char* code : codes) {
    EXPECT_EQ(seen.erase(code), 1u) << code;
  }
  EXPECT_TRUE(seen.empty()) << *seen.begin();
}

// A fixture for a decoder whose Decode(value, now_ms) returns
// std::variant<Message, ingest::Rejection>; it decodes at kNow against the
// test city.
template <class Decoder>
class DecoderTest : public ::testing::Test {
 protected:
  using Outcome = decltype(std::declval<Decoder&>().Decode(std::string_view(), int64_t{}));
  using Message = std::variant_alternative_t<0, Outcome>;

  DecoderTest() : city_(TestCity()), decoder_(city_) {}

  Message Accept(const std::string& json) {
    Outcome out = decoder_.Decode(json, kNow);
    if (const auto* rej = std::get_if<ingest::Rejection>(&out)) {
      ADD_FAILURE() << "rejected " << json.substr(0, 200) << ": " << rej->ToString();
      return {};
    }
    return std::get<Message>(out);
  }
  ingest::Rejection Reject(const std::string& json) {
    Outcome out = decoder_.Decode(json, kNow);
    if (std::holds_alternative<Message>(out)) {
      ADD_FAILURE() << "accepted " << json.substr(0, 200);
      return {};
    }
    return std::get<ingest::Rejection>(out);
  }

  // Each case is rejected with its reason, a detail naming its fragment, and
  // a detail shorter than max_detail bytes.
  void ExpectEachRejection(const std::vector<RejectCase>& cases, size_t max_detail) {
    for (const RejectCase& c : cases) {
      SCOPED_TRACE(c.name);
      const ingest::Rejection r = Reject(c.json);
      EXPECT_EQ(r.reason, c.reason) << r.ToString();
      EXPECT_THAT(r.detail, ::testing::HasSubstr(c.detail_has));
      EXPECT_LT(r.detail.size(), max_detail) << r.detail;
    }
  }

  // Every prefix of the valid message `ok` is malformed; so is a flood of
  // each of `floods` (60000 of it), and byte noise; a larger flood is
  // oversized.
  void ExpectSurvivesHostileInput(const std::string& ok, std::string_view floods) {
    for (size_t n = 0; n < ok.size(); ++n) {
      EXPECT_EQ(Reject(ok.substr(0, n)).reason, ingest::reason::kMalformedJson) << ok.substr(0, n);
    }
    EXPECT_EQ(Reject(std::string(100000, '[')).reason, ingest::reason::kOversized);
    for (char c : floods) {
      EXPECT_EQ(Reject(std::string(60000, c)).reason, ingest::reason::kMalformedJson) << c;
    }
    // Bytes that are not text at all.
    std::string noise;
    for (int i = 0; i < 4096; ++i) noise += static_cast<char>((i * 131 + 7) % 256);
    EXPECT_EQ(Reject(noise).reason, ingest::reason::kMalformedJson);
    EXPECT_EQ(Reject("{" + noise + "}").reason, ingest::reason::kMalformedJson);
  }

  std::shared_ptr<const CityModel> city_;
  Decoder decoder_;
};

}  // namespace cityloop::testing

// Internal to ingest/: what the JSON input decoders (SensorDecoder,
// ReportDecoder, DetectionDecoder) share. Not part of the module's API; only
// ingest/*.cc include it (simdjson is a private dependency of the module).
//
// A decoder derives from JsonDecoderBase (sensor_decoder.h), describes the
// known fields of its message as Field records (key, expected JSON type,
// required or optional, longest string) and checks in four steps, the first
// failure winning:
//   1.+2. JsonMessage::Read: size (oversized), then the syntax of the whole
//         message: one JSON object, valid UTF-8, no trailing content, at most
//         kMaxNesting levels (malformed_json), capturing the known fields on
//         the way (arrays of objects through an ItemReader);
//   3.    CheckFields: presence and JSON type of each field in the order the
//         decoder lists them (missing_field, wrong_type, and out_of_range for
//         a string longer than its limit). JsonDecoderBase::Read runs 1 to 3.
//   4.    meaning, decoder by decoder, with the shared TimestampField,
//         PositionFields, CheckInsideCity and the detail helpers below.
// Captured strings point into the decoder's buffer or its parser: valid until
// the next message. Everything here works on the caller's stack and those
// buffers: a message that is accepted costs no allocation here.
#pragma once

#include <simdjson.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/city.h"
#include "core/config.h"
#include "core/geo.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest::internal {

namespace od = simdjson::ondemand;

// Deeper nesting is malformed_json: the syntax walk recurses per level, and no
// input message needs more.
inline constexpr int kMaxNesting = 64;
// Longest excerpt of a value in a Rejection's detail.
inline constexpr size_t kMaxDetailValueChars = 80;
// Longest device_id, report_id, camera_id.
inline constexpr size_t kMaxIdChars = 128;

// What a field's value must be (step 3).
enum class Expect {
  kString,           // a string; a required one must not be empty
  kNumber,           // any number (1e999 included: its range check rejects it)
  kFiniteNumber,     // a number that fits a double
  kTimestamp,        // an integral number (epoch ms) or a string (RFC 3339)
  kArray,            // an array
  kStringOrInteger,  // a string, or an integral number (an id given as a number)
};
enum class Need { kOptional, kRequired };

class ItemReader;

// What the message holds for a field.
struct CapturedValue {
  std::string_view raw;  // the value's JSON text (trimmed), for details; "[...]" / "{...}" for containers;
                         // empty only while nothing is captured (the rest is then default too)
  std::string_view str;  // strings: the unescaped value
  double num = 0;        // numbers
  int64_t i64 = 0;       // integers that fit in int64
  size_t count = 0;      // arrays read through Field::items: how many items
  od::json_type type = od::json_type::null;
  bool present = false;     // present and not null
  bool is_integer = false;  // a number written without fraction or exponent
  bool int_overflow = false;
};

// One known field: what it must be, and (the base) what the message holds.
struct Field : CapturedValue {
  Field(std::string_view field_key, Expect field_expect, Need field_need = Need::kOptional, size_t field_max_chars = 0)
      : key(field_key), expect(field_expect), need(field_need), max_chars(field_max_chars) {}

  std::string_view key;
  Expect expect;
  Need need;
  size_t max_chars;             // strings (and integers of kStringOrInteger): longest, 0 = no limit
  ItemReader* items = nullptr;  // arrays: reads the items in place (else they are only syntax-checked)

  void ClearValue() { static_cast<CapturedValue&>(*this) = CapturedValue{}; }  // absent again
};

// Where a syntax error is, for the malformed_json detail.
struct SyntaxError {
  enum Kind { kBadMember, kBadKey, kBadValue };
  Kind kind = kBadValue;
  std::string path;              // "extra", "detections[3].bbox"; empty at the root object
  std::string ToString() const;  // "bad value in field detections[3].bbox"
};

// Reads the items of an array-valued Field as the walk passes them (On Demand
// reads forward only, so they cannot be revisited after the walk).
class ItemReader {
 public:
  // A value for the field starts; a repeated field keeps its last value.
  virtual void Begin() = 0;
  // Reads item index, a value at nesting depth. False on a syntax error, with
  // error->path naming the place below the item ("" for the item itself).
  virtual bool Item(od::value item, size_t index, int depth, SyntaxError* error) = 0;

 protected:
  ~ItemReader() = default;
};

// Captures the first items of an array into fields (they get no key: each
// is named by its index) and syntax-checks the rest; the array field's count
// is the number of items.
class FieldItems final : public ItemReader {
 public:
  explicit FieldItems(std::span<Field> fields) : fields_(fields) {}
  void Begin() override;
  bool Item(od::value item, size_t index, int depth, SyntaxError* error) override;

 private:
  std::span<Field> fields_;
};

// Checks the syntax of a value the decoder does not use.
bool Validate(od::value v, int depth);
// Reads one value into f. False on a syntax error.
bool Capture(od::value v, int depth, Field* f);
// Walks an object's members: a key of fields is captured (a repeated key keeps
// its last value), any other member is syntax-checked and ignored. depth is
// that of the member values. False on a syntax error, described in *error.
bool ReadMembers(od::object obj, std::span<Field* const> fields, int depth, SyntaxError* error);

// The parser and the padded copy of the input, reused message after message:
// one per decoder, so one per thread.
class JsonMessage {
 public:
  // Steps 1 and 2 for value: the size limit (max_bytes, 0 = none), then the
  // syntax of the whole message, which must be one JSON object; its known
  // fields are captured into fields. The captured strings point into this
  // object: valid until the next Read.
  std::optional<Rejection> Read(std::string_view value, int64_t max_bytes, std::span<Field* const> fields);

 private:
  od::parser parser_;
  std::vector<char> buffer_;  // input copy + SIMDJSON_PADDING
};

// Step 3 for one field: presence, JSON type, string length. prefix goes
// before the key in details ("detections[3]." for an array element's fields).
std::optional<Rejection> CheckField(const Field& f, std::string_view prefix);

// A quick filter for CheckField, inline for the hot path: true only for a
// field that surely passes.
inline bool SurelyPasses(const Field& f) {
  if (!f.present) return f.need == Need::kOptional;
  switch (f.expect) {
    case Expect::kString:
      return f.type == od::json_type::string && !(f.need == Need::kRequired && f.str.empty()) &&
             (f.max_chars == 0 || f.str.size() <= f.max_chars);
    case Expect::kNumber: return f.type == od::json_type::number;
    case Expect::kFiniteNumber: return f.type == od::json_type::number && std::isfinite(f.num);
    case Expect::kArray: return f.type == od::json_type::array;
    case Expect::kTimestamp:
      return f.type == od::json_type::string || (f.type == od::json_type::number && f.is_integer);
    case Expect::kStringOrInteger: return false;
  }
  return false;
}

// Step 3 for fields, in order.
inline std::optional<Rejection> CheckFields(std::span<Field* const> fields, std::string_view prefix = {}) {
  for (const Field* f : fields) {
    if (SurelyPasses(*f)) continue;
    if (auto r = CheckField(*f, prefix)) return r;
  }
  return std::nullopt;
}
// The ts field every input has: required, epoch ms or RFC 3339 (step 3).
struct TimestampField : Field {
  TimestampField() : Field("ts", Expect::kTimestamp, Need::kRequired) {}
  // Step 4: parses the value into *ts_ms (bad_timestamp), then holds it
  // against now_ms and the ingest limits (future_timestamp, stale_timestamp).
  std::optional<Rejection> Check(int64_t now_ms, const IngestOptions& limits, int64_t* ts_ms) const;
};

// lat and lon: both required, or both optional but given together.
struct PositionFields {
  explicit PositionFields(Need need) : lat("lat", Expect::kNumber, need), lon("lon", Expect::kNumber, need) {}

  // Step 3, after CheckFields: given together (missing_field).
  std::optional<Rejection> CheckPair() const {
    if (lat.present == lon.present) return std::nullopt;
    return PairProblem();
  }
  // Step 4: lat in [-90, 90], lon in [-180, 180] (out_of_range), into *position.
  std::optional<Rejection> Check(LatLon* position) const {
    if (!(lat.num >= -90 && lat.num <= 90 && lon.num >= -180 && lon.num <= 180)) return RangeProblem();
    *position = LatLon{lat.num, lon.num};
    return std::nullopt;
  }

  Field lat;
  Field lon;

 private:
  Rejection PairProblem() const;
  Rejection RangeProblem() const;
};

// Step 4, the grid cell of position into *cell, else outside_city naming the
// position, where it comes from (from_message or registered) and whose it is
// (id_name=id).
std::optional<Rejection> CheckInsideCity(const CityModel& city, LatLon position, bool from_message,
                                         std::string_view id_name, std::string_view id, int* cell);

// Details.
Rejection Reject(const char* reason, std::string detail);
// out_of_range: `name=raw (number) outside [lo, hi]`.
Rejection OutsideRange(std::string_view name, const Field& f, double lo, double hi);
// wrong_type: `name=raw (type): expected ...`.
Rejection WrongType(std::string_view name, const Field& f, std::string_view expected);
// `name=raw (type)`.
std::string FieldValue(std::string_view name, const Field& f);
// raw cut to kMaxDetailValueChars bytes, never inside a UTF-8 sequence.
std::string Shown(std::string_view raw);
// Shortest text that reads back as d: 20 rather than 20.000000.
std::string Num(double d);
const char* TypeName(od::json_type t);

}  // namespace cityloop::ingest::internal

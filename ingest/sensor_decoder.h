// SensorDecoder: turns one city.sensors message into a validated Reading, or
// a Rejection with a reason code (for the DLQ's x-error header and the
// cityloop_ingest_rejected_total{reason} counter). Uses simdjson On Demand.
// Owns a parser and a padded buffer: one decoder per thread. The reason codes
// and Rejection below serve the other input decoders too (report_decoder.h,
// detection_decoder.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/city.h"
#include "core/model.h"

namespace cityloop::ingest {

// Stable reason codes; they label metrics and start the x-error header.
namespace reason {
inline constexpr const char* kOversized = "oversized";
inline constexpr const char* kMalformedJson = "malformed_json";
inline constexpr const char* kMissingField = "missing_field";
inline constexpr const char* kWrongType = "wrong_type";
inline constexpr const char* kOutOfRange = "out_of_range";
inline constexpr const char* kOutsideCity = "outside_city";
inline constexpr const char* kFutureTimestamp = "future_timestamp";
inline constexpr const char* kStaleTimestamp = "stale_timestamp";
inline constexpr const char* kBadTimestamp = "bad_timestamp";
inline constexpr const char* kUnknownLocation = "unknown_location";
inline constexpr const char* kUnknownCategory = "unknown_category";  // city.reports: not in the catalogue
// city.camera.frames (frame_decoder.h; the JPEG checks are detect/camera's):
inline constexpr const char* kMissingHeader = "missing_header";      // camera_id or ts
inline constexpr const char* kUnknownCamera = "unknown_camera";      // camera_id not in city.cameras
inline constexpr const char* kUnsupportedContent = "unsupported_content_type";
inline constexpr const char* kEmptyMessage = "empty_message";
}  // namespace reason

struct Rejection {
  std::string reason;  // one of reason::k*
  std::string detail;  // human-readable: which field, what value
  std::string ToString() const { return reason + ": " + detail; }  // the x-error header
};

namespace internal {
class JsonMessage;
struct Field;
}  // namespace internal

// What every JSON input decoder holds: the city and a parser with its padded
// buffer, reused message after message (json_fields.h has the rest).
// Decoders derive from it privately and inherit its constructor.
class JsonDecoderBase {
 public:
  explicit JsonDecoderBase(std::shared_ptr<const CityModel> city);

 protected:
  ~JsonDecoderBase();

  const CityModel& city() const { return *city_; }
  // Size, syntax, then presence and type of fields, in order: the first
  // Rejection, else nothing (the fields hold the message's values).
  std::optional<Rejection> Read(std::string_view value, std::span<internal::Field* const> fields);

 private:
  std::shared_ptr<const CityModel> city_;
  std::unique_ptr<internal::JsonMessage> message_;
};

using DecodeOutcome = std::variant<Reading, Rejection>;

class SensorDecoder : private JsonDecoderBase {
 public:
  using JsonDecoderBase::JsonDecoderBase;  // explicit SensorDecoder(std::shared_ptr<const CityModel> city)
  // now_ms: the engine clock, for the future-skew and age checks.
  DecodeOutcome Decode(std::string_view value, int64_t now_ms);
};

}  // namespace cityloop::ingest

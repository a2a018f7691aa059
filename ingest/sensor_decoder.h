// SensorDecoder: turns one city.sensors message into a validated Reading, or
// a Rejection with a reason code (for the DLQ's x-error header and the
// cityloop_ingest_rejected_total{reason} counter). Uses simdjson On Demand.
// Owns a parser and a padded buffer: one decoder per thread.
#pragma once

#include <memory>
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
}  // namespace reason

struct Rejection {
  std::string reason;  // one of reason::k*
  std::string detail;  // human-readable: which field, what value
  std::string ToString() const { return reason + ": " + detail; }  // the x-error header
};

using DecodeOutcome = std::variant<Reading, Rejection>;

class SensorDecoder {
 public:
  explicit SensorDecoder(std::shared_ptr<const CityModel> city);
  ~SensorDecoder();
  // now_ms: the engine clock, for the future-skew and age checks.
  DecodeOutcome Decode(std::string_view value, int64_t now_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest

// SensorDecoder: simdjson On Demand over a reused padded buffer.
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax, root object, trailing content
//   (malformed_json), 3. presence and JSON type of every known field, in the
//   order device_id, kind, ts, value, unit, lat, lon (missing_field,
//   wrong_type), 4. meaning: ts parse (bad_timestamp), skew and age
//   (future_timestamp, stale_timestamp), value range (out_of_range),
//   position (out_of_range, outside_city, unknown_location).
// Nesting deeper than 64 levels is malformed_json. A JSON null counts as
// absent. A device_id longer than 128 characters is out_of_range. ts accepts an integer (or an integral number such as
// 1764316800000.0) of epoch ms, or an RFC 3339 string. Unknown fields are
// checked for syntax and otherwise ignored; a repeated field keeps its last
// value. The reading, checking and detail formatting shared with the other
// decoders live in json_fields.h.
//
// On Demand runs the simdjson kernel chosen at compile time (no runtime
// dispatch); with the project's default flags that is the portable
// "fallback" kernel, about 0.4 us for a typical reading on one core.
#include "ingest/sensor_decoder.h"

#include <optional>
#include <utility>

#include "ingest/json_fields.h"

namespace cityloop::ingest {

using internal::Expect;
using internal::Field;
using internal::Need;

DecodeOutcome SensorDecoder::Decode(std::string_view value, int64_t now_ms) {
  // 1. size, 2. syntax; 3. presence and types, in this order.
  Field device_id("device_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field kind("kind", Expect::kString, Need::kRequired);
  internal::TimestampField ts;
  Field val("value", Expect::kFiniteNumber, Need::kRequired);
  Field unit("unit", Expect::kString);
  internal::PositionFields latlon(Need::kOptional);
  Field* const fields[] = {&device_id, &kind, &ts, &val, &unit, &latlon.lat, &latlon.lon};
  if (auto r = Read(value, fields)) return std::move(*r);
  if (auto r = latlon.CheckPair()) return std::move(*r);

  // 4. Meaning.
  const CityModel& city = this->city();
  int64_t ts_ms = 0;
  if (auto r = ts.Check(now_ms, city.config().ingest, &ts_ms)) return std::move(*r);

  const SensorKind* sk = city.FindSensorKind(kind.str);
  if (sk && (val.num < sk->min || val.num > sk->max)) {
    Rejection r = internal::OutsideRange("value", val, sk->min, sk->max);
    r.detail += " for kind " + std::string(kind.str);
    return r;
  }

  const Device* device = city.FindDevice(device_id.str);
  LatLon position;
  if (latlon.lat.present) {
    if (auto r = latlon.Check(&position)) return std::move(*r);
  } else if (device) {
    position = device->position;
  } else {
    return internal::Reject(reason::kUnknownLocation, "device_id=" + internal::Shown(device_id.str) +
                                                          " is not registered and the message has no lat/lon");
  }
  int cell = -1;
  if (auto r = internal::CheckInsideCity(city, position, latlon.lat.present, "device_id", device_id.str, &cell)) {
    return std::move(*r);
  }

  Reading r;
  r.device_id = std::string(device_id.str);
  r.kind = std::string(kind.str);
  r.ts_ms = ts_ms;
  r.value = val.num;
  if (unit.present) {
    r.unit = std::string(unit.str);
  } else if (sk) {
    r.unit = sk->unit;
  }
  r.position = position;
  r.registered = device != nullptr;
  r.cell = cell;
  r.ingest_ms = now_ms;
  return r;
}

}  // namespace cityloop::ingest

// UnitDecoder: simdjson On Demand over a reused padded buffer, with the
// reading and checks shared by every input decoder (json_fields.h).
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax, root object, trailing content,
//   nesting deeper than 64 levels, invalid UTF-8 anywhere (malformed_json),
//   3. presence and JSON type of every known field, in the order unit_id,
//   dept, status, ts, lat, lon (missing_field, wrong_type; an empty unit_id,
//   dept or status is missing_field, a unit_id or dept longer than 128
//   characters out_of_range), then lat and lon given together
//   (missing_field), 4. meaning: ts parse (bad_timestamp), skew and age
//   (future_timestamp, stale_timestamp), status one of available, enroute,
//   onscene, returning, unavailable (out_of_range), lat in [-90, 90] and lon
//   in [-180, 180] (out_of_range), the position inside the city grid
//   (outside_city).
// A JSON null counts as absent; lat/lon may be absent (has_position false).
// dept is not held against city.departments: like an unknown sensor kind, an
// unknown department's unit is accepted. ts accepts an integer (or an
// integral number) of epoch ms, or an RFC 3339 string. Unknown fields are
// checked for syntax and otherwise ignored; a repeated field keeps its last
// value.
#include "ingest/unit_decoder.h"

#include <optional>
#include <string>
#include <utility>

#include "ingest/json_fields.h"

namespace cityloop::ingest {

using internal::Expect;
using internal::Field;
using internal::Need;

std::variant<UnitUpdate, Rejection> UnitDecoder::Decode(std::string_view value, int64_t now_ms) {
  Field unit_id("unit_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field dept("dept", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field status("status", Expect::kString, Need::kRequired);
  internal::TimestampField ts;
  internal::PositionFields latlon(Need::kOptional);
  // 1. size, 2. syntax; 3. presence and types, in this order.
  Field* const fields[] = {&unit_id, &dept, &status, &ts, &latlon.lat, &latlon.lon};
  if (auto r = Read(value, fields)) return std::move(*r);
  if (auto r = latlon.CheckPair()) return std::move(*r);

  // 4. Meaning.
  const CityModel& city = this->city();
  int64_t ts_ms = 0;
  if (auto r = ts.Check(now_ms, city.config().ingest, &ts_ms)) return std::move(*r);
  const std::optional<UnitStatus> parsed = ParseUnitStatus(status.str);
  if (!parsed) {
    return internal::Reject(reason::kOutOfRange, internal::FieldValue("status", status) +
                                                     " is not one of available, enroute, onscene, returning, "
                                                     "unavailable");
  }
  LatLon position;
  if (latlon.lat.present) {
    if (auto r = latlon.Check(&position)) return std::move(*r);
    int cell = -1;  // UnitUpdate keeps no cell; the check is the point
    if (auto r = internal::CheckInsideCity(city, position, true, "unit_id", unit_id.str, &cell)) {
      return std::move(*r);
    }
  }

  UnitUpdate out;
  out.unit_id = std::string(unit_id.str);
  out.department = std::string(dept.str);
  out.status = *parsed;
  out.ts_ms = ts_ms;
  out.has_position = latlon.lat.present;
  out.position = position;
  return out;
}

}  // namespace cityloop::ingest

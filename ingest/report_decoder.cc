// ReportDecoder: simdjson On Demand over a reused padded buffer, with the
// reading and checks shared by every input decoder (json_fields.h).
//
// Checks run in this order, the first failure wins:
//   1. size (oversized), 2. JSON syntax, root object, trailing content,
//   nesting deeper than 64 levels, invalid UTF-8 anywhere (malformed_json),
//   3. presence and JSON type of every known field, in the order report_id,
//   channel, ts, category, text, lat, lon (missing_field, wrong_type; an
//   empty report_id, channel or category is missing_field, a report_id
//   longer than 128 characters out_of_range), 4. meaning: ts parse
//   (bad_timestamp), skew and age (future_timestamp, stale_timestamp),
//   channel one of kReportChannels (out_of_range), category in the catalogue
//   (unknown_category), text at most ingest.max_report_text_bytes bytes
//   (out_of_range), lat in [-90, 90] and lon in [-180, 180] (out_of_range),
//   the position inside the city grid (outside_city).
// A JSON null counts as absent; text may be absent. ts accepts an integer (or
// an integral number) of epoch ms, or an RFC 3339 string. Unknown fields are
// checked for syntax and otherwise ignored; a repeated field keeps its last
// value.
#include "ingest/report_decoder.h"

#include <algorithm>
#include <string>
#include <utility>

#include "ingest/json_fields.h"

namespace cityloop::ingest {

using internal::Expect;
using internal::Field;
using internal::Need;

namespace {

std::string ChannelList() {
  std::string list;
  for (std::string_view c : kReportChannels) {
    if (!list.empty()) list += ", ";
    list += c;
  }
  return list;
}

}  // namespace

std::variant<Report, Rejection> ReportDecoder::Decode(std::string_view value, int64_t now_ms) {
  // When and where (as in every input), then what.
  internal::TimestampField ts;
  internal::PositionFields latlon(Need::kRequired);
  Field report_id("report_id", Expect::kString, Need::kRequired, internal::kMaxIdChars);
  Field channel("channel", Expect::kString, Need::kRequired);
  Field category("category", Expect::kString, Need::kRequired);
  Field text("text", Expect::kString);
  // 1. size, 2. syntax; 3. presence and types, in this order.
  Field* const fields[] = {&report_id, &channel, &ts, &category, &text, &latlon.lat, &latlon.lon};
  if (auto r = Read(value, fields)) return std::move(*r);

  // 4. Meaning.
  const CityModel& city = this->city();
  const IngestOptions& limits = city.config().ingest;
  int64_t ts_ms = 0;
  if (auto r = ts.Check(now_ms, limits, &ts_ms)) return std::move(*r);
  if (std::find(kReportChannels.begin(), kReportChannels.end(), channel.str) == kReportChannels.end()) {
    return internal::Reject(reason::kOutOfRange,
                            internal::FieldValue("channel", channel) + " is not one of " + ChannelList());
  }
  if (!city.FindCategory(category.str)) {
    return internal::Reject(reason::kUnknownCategory,
                            internal::FieldValue("category", category) + " is not in the catalogue (city.catalogue)");
  }
  if (limits.max_report_text_bytes > 0 && static_cast<int64_t>(text.str.size()) > limits.max_report_text_bytes) {
    return internal::Reject(reason::kOutOfRange, internal::FieldValue("text", text) + " is " +
                                                     std::to_string(text.str.size()) + " bytes, limit " +
                                                     std::to_string(limits.max_report_text_bytes));
  }
  LatLon position;
  if (auto r = latlon.Check(&position)) return std::move(*r);
  int cell = -1;
  if (auto r = internal::CheckInsideCity(city, position, true, "report_id", report_id.str, &cell)) {
    return std::move(*r);
  }

  Report out;
  out.report_id = std::string(report_id.str);
  out.channel = std::string(channel.str);
  out.ts_ms = ts_ms;
  out.category = std::string(category.str);
  out.text = std::string(text.str);
  out.position = position;
  out.cell = cell;
  return out;
}

}  // namespace cityloop::ingest

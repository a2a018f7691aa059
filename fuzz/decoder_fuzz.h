// The harness of the JSON input decoders' fuzz targets (sensor, report,
// detection, unit, command). One input is one Kafka message value; an input
// holding the separator "\n@@@\n" is two values, decoded one after the other
// by the same decoder. Per input:
//
//   - a decoder that has just decoded another message (the part before the
//     separator, else the decoder's warm-up message) decodes the value;
//   - a fresh decoder decodes it, twice;
//   all three outcomes must be the same (decoders reuse their parser and
//   buffers from message to message: nothing may leak from one to the next);
//   - a rejection has one of the stable reason codes and a short detail (it
//     becomes the DLQ's x-error header); an accepted message keeps the
//     documented limits: ts within the skew and age limits, a position that
//     is a real coordinate inside the grid, a valid cell index, ids present.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz/fuzz_support.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::fuzz {

inline constexpr std::string_view kMessageSeparator = "\n@@@\n";
// Longest Rejection detail accepted (the decoders cut echoed values to 80
// bytes; their tests hold details under 300 to 400 bytes).
inline constexpr size_t kMaxDetailBytes = 1024;

inline std::string Num(double d) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", d);
  return b;
}

inline void CheckRejection(const ingest::Rejection& r) {
  namespace rs = ingest::reason;
  static const std::set<std::string> kReasons = {
      rs::kOversized,       rs::kMalformedJson,   rs::kMissingField,     rs::kWrongType,
      rs::kOutOfRange,      rs::kOutsideCity,     rs::kFutureTimestamp,  rs::kStaleTimestamp,
      rs::kBadTimestamp,    rs::kUnknownLocation, rs::kUnknownCategory,  rs::kMissingHeader,
      rs::kUnknownCamera,   rs::kUnsupportedContent, rs::kEmptyMessage};
  Check(kReasons.count(r.reason) == 1, "unknown rejection reason '" + r.reason + "'");
  Check(!r.detail.empty(), "rejection " + r.reason + " without a detail");
  Check(r.detail.size() <= kMaxDetailBytes,
        "rejection detail of " + std::to_string(r.detail.size()) + " bytes: " + r.detail.substr(0, 200) + "...");
}

// ts within [now - max_past_age, now + max_future_skew].
inline void CheckTimestamp(int64_t ts_ms) {
  const IngestOptions& limits = ExampleConfig().ingest;
  Check(ts_ms <= kNowMs + limits.max_future_skew_ms && ts_ms >= kNowMs - limits.max_past_age_ms,
        "accepted ts " + std::to_string(ts_ms) + " outside the ingest limits");
}

inline void CheckPlace(const LatLon& p, int cell) {
  const CityModel& city = *ExampleCity();
  Check(std::isfinite(p.lat) && std::isfinite(p.lon) && p.lat >= -90 && p.lat <= 90 && p.lon >= -180 && p.lon <= 180,
        "accepted position " + Num(p.lat) + "," + Num(p.lon) + " is not a coordinate");
  Check(cell >= 0 && cell < city.grid().cell_count(), "accepted cell index " + std::to_string(cell));
  const CellInfo* at = city.CellAt(p);
  Check(at != nullptr && &city.Cell(cell) == at, "accepted cell " + std::to_string(cell) + " is not the position's");
}

inline void CheckId(std::string_view name, const std::string& id) {
  Check(!id.empty() && id.size() <= 128, "accepted " + std::string(name) + " of " + std::to_string(id.size()) + " bytes");
}

// Outcome: std::variant<Message, Rejection>. describe(Message) -> std::string
// names every field; check(Message) holds the message's own promises.
template <class Outcome, class Describe>
std::string DescribeOutcome(const Outcome& o, Describe&& describe) {
  if (const auto* r = std::get_if<ingest::Rejection>(&o)) {
    CheckRejection(*r);
    return "rejected " + r->ToString();
  }
  return "accepted " + describe(std::get<0>(o));
}

template <class Decoder, class Describe, class CheckAccepted>
int FuzzJsonDecoder(const uint8_t* data, size_t size, std::string_view warmup, Describe&& describe,
                    CheckAccepted&& check) {
  const std::string_view input = AsText(data, size);
  std::string_view first = warmup;
  std::string_view value = input;
  if (const size_t sep = input.find(kMessageSeparator); sep != std::string_view::npos) {
    first = input.substr(0, sep);
    value = input.substr(sep + kMessageSeparator.size());
  }
  const auto city = ExampleCity();
  Decoder used(city);
  (void)used.Decode(first, kNowMs);
  const auto after_other = used.Decode(value, kNowMs);
  Decoder fresh(city);
  const auto alone = fresh.Decode(value, kNowMs);
  const auto again = fresh.Decode(value, kNowMs);

  if (!std::holds_alternative<ingest::Rejection>(alone)) check(std::get<0>(alone));
  const std::string a = DescribeOutcome(alone, describe);
  const std::string b = DescribeOutcome(after_other, describe);
  const std::string c = DescribeOutcome(again, describe);
  Check(a == b, "the outcome depends on the message decoded before:\n  alone: " + a + "\n  after another: " + b);
  Check(a == c, "the outcome changes when decoded again:\n  first: " + a + "\n  again: " + c);
  return 0;
}

}  // namespace cityloop::fuzz

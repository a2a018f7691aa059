// ReportDecoder: turns one city.reports message (a citizen, 12345-hotline or
// patrol report) into a validated Report, or a Rejection with one of the
// reason codes of sensor_decoder.h. Uses simdjson On Demand over a reused
// padded buffer: one decoder per thread.
#pragma once

#include <array>
#include <memory>
#include <string_view>
#include <variant>

#include "core/city.h"
#include "core/model.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest {

class ReportDecoder : private JsonDecoderBase {
 public:
  using JsonDecoderBase::JsonDecoderBase;  // explicit ReportDecoder(std::shared_ptr<const CityModel> city)
  // Fills every field of Report but input and ingest_ms, which are the
  // caller's; now_ms (the engine clock) is for the future-skew and age checks.
  std::variant<Report, Rejection> Decode(std::string_view value, int64_t now_ms);
};

// The channels a report may come from; any other is out_of_range.
inline constexpr std::array<std::string_view, 6> kReportChannels = {"citizen", "hotline12345", "patrol",
                                                                    "app",     "wechat",       "other"};

}  // namespace cityloop::ingest

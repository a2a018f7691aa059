// UnitDecoder: turns one city.units message (a field unit's status and,
// optionally, its position) into a validated UnitUpdate, or a Rejection with
// one of the reason codes of sensor_decoder.h. Uses simdjson On Demand over a
// reused padded buffer: one decoder per thread.
#pragma once

#include <memory>
#include <string_view>
#include <variant>

#include "core/city.h"
#include "core/model.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest {

class UnitDecoder : private JsonDecoderBase {
 public:
  using JsonDecoderBase::JsonDecoderBase;  // explicit UnitDecoder(std::shared_ptr<const CityModel> city)
  // Fills every field of UnitUpdate but input and ingest_ms, which are the
  // caller's; now_ms (the engine clock) is for the future-skew and age checks.
  std::variant<UnitUpdate, Rejection> Decode(std::string_view value, int64_t now_ms);
};

}  // namespace cityloop::ingest

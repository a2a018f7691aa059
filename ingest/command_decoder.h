// CommandDecoder: turns one cityloop.commands message (an operator action on
// a case) into a validated Command, or a Rejection with one of the reason
// codes of sensor_decoder.h. It checks the message only; whether the action
// is allowed in the case's state, and for the role, is the engine's call.
// Uses simdjson On Demand over a reused padded buffer: one decoder per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <variant>

#include "core/city.h"
#include "core/model.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest {

// The longest `duration` an extend may ask for: a year (a guard against
// typos and deadline overflow, not a policy).
inline constexpr int64_t kMaxCommandDurationMs = 365LL * 86400000;

class CommandDecoder : private JsonDecoderBase {
 public:
  using JsonDecoderBase::JsonDecoderBase;  // explicit CommandDecoder(std::shared_ptr<const CityModel> city)
  // Fills every field of Command but input and ingest_ms, which are the
  // caller's; now_ms (the engine clock) is for the future-skew and age checks.
  std::variant<Command, Rejection> Decode(std::string_view value, int64_t now_ms);
};

}  // namespace cityloop::ingest

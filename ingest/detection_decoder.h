// DetectionDecoder: turns one city.camera.detections message (the output of
// an edge-AI camera) into validated CameraDetections, or a Rejection with one
// of the reason codes of sensor_decoder.h. Uses simdjson On Demand over a
// reused padded buffer: one decoder per thread.
#pragma once

#include <memory>
#include <string_view>
#include <variant>

#include "core/city.h"
#include "core/model.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest {

class DetectionDecoder : private JsonDecoderBase {
 public:
  explicit DetectionDecoder(std::shared_ptr<const CityModel> city);
  ~DetectionDecoder();
  // Fills every field of CameraDetections but input and ingest_ms, which are
  // the caller's; position and cell are the registered camera's. now_ms (the
  // engine clock) is for the future-skew and age checks.
  std::variant<CameraDetections, Rejection> Decode(std::string_view value, int64_t now_ms);

 private:
  class Elements;  // detections[] as read, kept from message to message
  std::unique_ptr<Elements> elements_;
};

}  // namespace cityloop::ingest

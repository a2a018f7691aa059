// FrameDecoder: checks the envelope of one city.camera.frames message — the
// camera_id and ts headers, the optional content-type, the size and the
// camera's registration — and hands the JPEG bytes on undecoded (decoding is
// detect/camera's). Rejections use the reason codes of sensor_decoder.h.
#pragma once

#include <cstdint>
#include <memory>
#include <variant>

#include "core/city.h"
#include "core/model.h"
#include "ingest/kafka.h"
#include "ingest/sensor_decoder.h"

namespace cityloop::ingest {

class FrameDecoder {
 public:
  explicit FrameDecoder(std::shared_ptr<const CityModel> city) : city_(std::move(city)) {}
  // The frame (jpeg views m.value; input and ingest_ms are the caller's).
  // now_ms is for the future-skew and age checks.
  std::variant<CameraFrame, Rejection> Decode(const Message& m, int64_t now_ms) const;

 private:
  std::shared_ptr<const CityModel> city_;
};

}  // namespace cityloop::ingest

// city.camera.detections values through ingest::DetectionDecoder
// (fuzz/decoder_fuzz.h). The warm-up message has more detections than most
// inputs, so stale elements of a longer message would show.
#include "fuzz/decoder_fuzz.h"
#include "ingest/detection_decoder.h"

namespace {

using namespace cityloop;

std::string Describe(const CameraDetections& d) {
  std::string out = d.camera_id + "|" + std::to_string(d.ts_ms) + "|" + fuzz::Num(d.position.lat) + "," +
                    fuzz::Num(d.position.lon) + "|" + std::to_string(d.cell) + "|" + std::to_string(d.detections.size());
  for (const CameraDetection& x : d.detections) {
    out += "|" + x.label + ":" + fuzz::Num(x.score) + ":" + fuzz::Num(x.bbox[0]) + "," + fuzz::Num(x.bbox[1]) + "," +
           fuzz::Num(x.bbox[2]) + "," + fuzz::Num(x.bbox[3]) + ":" + x.track_id;
  }
  return out;
}

void CheckAccepted(const CameraDetections& d) {
  fuzz::CheckId("camera_id", d.camera_id);
  fuzz::Check(fuzz::ExampleCity()->FindCamera(d.camera_id) != nullptr, "accepted camera '" + d.camera_id + "'");
  const int limit = fuzz::ExampleConfig().ingest.max_detections_per_message;
  fuzz::Check(limit <= 0 || d.detections.size() <= static_cast<size_t>(limit),
              "accepted " + std::to_string(d.detections.size()) + " detections");
  for (const CameraDetection& x : d.detections) {
    fuzz::Check(std::isfinite(x.score) && x.score >= 0 && x.score <= 1, "accepted score " + fuzz::Num(x.score));
    for (double v : x.bbox) fuzz::Check(std::isfinite(v), "accepted a bbox value that is not finite");
  }
  fuzz::CheckTimestamp(d.ts_ms);
  fuzz::CheckPlace(d.position, d.cell);
}

constexpr std::string_view kWarmup =
    R"({"camera_id":"cam-031","ts":1764316800000,"detections":[)"
    R"({"label":"vehicle","score":0.91,"bbox":[0.41,0.52,0.10,0.08],"track_id":"t17"},)"
    R"({"label":"person","score":0.5,"bbox":[0.1,0.2,0.05,0.2],"track_id":"t18"},)"
    R"({"label":"fire","score":0.99,"bbox":[0.6,0.6,0.2,0.2],"track_id":"t19"},)"
    R"({"label":"smoke","score":0.7,"bbox":[0.0,0.0,1.0,1.0]},)"
    R"({"label":"person","score":0.6,"bbox":[0.3,0.3,0.1,0.3],"track_id":"t21"},)"
    R"({"label":"vehicle","score":0.8,"bbox":[0.5,0.5,0.2,0.1],"track_id":"t22"}]})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::FuzzJsonDecoder<ingest::DetectionDecoder>(data, size, kWarmup, Describe, CheckAccepted);
}

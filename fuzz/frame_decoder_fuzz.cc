// city.camera.frames messages: ingest::FrameDecoder (the envelope: camera_id,
// ts and content-type headers, size, camera registration), then, for a frame
// it accepts, what the engine does next with the JPEG bytes: the SOF reader
// detect::camera::JpegDimensions and a fresh CameraAnalyzer of that camera
// analysing it twice (a first frame, then the same bytes a second later).
//
// Input: the message's headers as "name: value" lines, an empty line, then
// the value (the JPEG bytes). The header ":key" sets the message key instead.
// Without an empty line the whole input is the value with camera_id cam-031
// and ts now - 1 s, so that raw JPEG bytes reach the analyzer too.
#include <string>
#include <vector>

#include "detect/camera/frame_analyzer.h"
#include "fuzz/decoder_fuzz.h"
#include "ingest/frame_decoder.h"

namespace {

using namespace cityloop;

ingest::Message ToMessage(std::string_view input) {
  ingest::Message m;
  m.topic = "city.camera.frames";
  m.offset = 7;
  m.timestamp_ms = fuzz::kNowMs;
  if (input.find("\n\n") == std::string_view::npos && input.find("\r\n\r\n") == std::string_view::npos) {
    m.headers = {{"camera_id", "cam-031"}, {"ts", std::to_string(fuzz::kNowMs - 1000)}, {"content-type", "image/jpeg"}};
    m.value = std::string(input);
    return m;
  }
  const std::string_view value = fuzz::SplitHeaders(input, [&](std::string_view name, std::string_view v) {
    if (name == ":key") {
      m.key = std::string(v);
    } else {
      m.headers.emplace_back(std::string(name), std::string(v));
    }
  });
  m.value = std::string(value);
  return m;
}

void CheckResult(const detect::camera::FrameResult& r) {
  using detect::camera::FrameOutcome;
  if (r.outcome == FrameOutcome::kRejected) {
    fuzz::Check(!r.reason.empty() && !r.detail.empty(), "a rejected frame without reason or detail");
    fuzz::Check(r.detail.size() <= fuzz::kMaxDetailBytes, "a frame rejection detail of " +
                                                              std::to_string(r.detail.size()) + " bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto city = fuzz::ExampleCity();
  static const ingest::FrameDecoder decoder(city);
  const ingest::Message m = ToMessage(fuzz::AsText(data, size));

  int width = 0, height = 0;
  if (detect::camera::JpegDimensions(m.value, &width, &height)) {
    fuzz::Check(width > 0 && height > 0 && width <= 65535 && height <= 65535, "JpegDimensions out of range");
  }

  auto outcome = decoder.Decode(m, fuzz::kNowMs);
  if (const auto* r = std::get_if<ingest::Rejection>(&outcome)) {
    fuzz::CheckRejection(*r);
    return 0;
  }
  const CameraFrame& f = std::get<CameraFrame>(outcome);
  fuzz::Check(f.jpeg.data() == m.value.data() && f.jpeg.size() == m.value.size(), "the frame does not view the value");
  fuzz::Check(!f.jpeg.empty(), "accepted an empty frame");
  fuzz::Check(static_cast<int64_t>(f.jpeg.size()) <= city->config().camera.max_frame_bytes, "accepted an oversized frame");
  fuzz::CheckTimestamp(f.ts_ms);
  const Camera* camera = city->FindCamera(f.camera_id);
  fuzz::Check(camera != nullptr, "accepted camera '" + f.camera_id + "'");

  detect::camera::CameraAnalyzer analyzer(*camera, city->config().camera, city->config().city.utc_offset_minutes);
  std::vector<detect::camera::FrameEvent> events;
  CheckResult(analyzer.Analyze(f.jpeg, f.ts_ms, &events));
  CheckResult(analyzer.Analyze(f.jpeg, f.ts_ms + 1000, &events));
  (void)analyzer.TakeDirty();
  return 0;
}

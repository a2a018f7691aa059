#include "ingest/frame_decoder.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "core/time_util.h"

namespace cityloop::ingest {

std::variant<CameraFrame, Rejection> FrameDecoder::Decode(const Message& m, int64_t now_ms) const {
  const Config& cfg = city_->config();
  if (static_cast<int64_t>(m.value.size()) > cfg.camera.max_frame_bytes) {
    return Rejection{reason::kOversized, "frame of " + std::to_string(m.value.size()) + " bytes, more than camera.max_frame_bytes " +
                                             std::to_string(cfg.camera.max_frame_bytes)};
  }
  if (m.value.empty()) return Rejection{reason::kEmptyMessage, "the frame has no bytes"};
  const std::string* camera_id = m.header("camera_id");
  if (!camera_id || camera_id->empty()) return Rejection{reason::kMissingHeader, "no camera_id header"};
  const std::string* ts = m.header("ts");
  if (!ts || ts->empty()) return Rejection{reason::kMissingHeader, "no ts header (epoch ms)"};
  // MIME types are case-insensitive.
  const auto is_jpeg = [](const std::string& t) {
    return t.size() == 10 && std::equal(t.begin(), t.end(), "image/jpeg",
                                        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
  };
  if (const std::string* type = m.header("content-type"); type && !is_jpeg(*type)) {
    return Rejection{reason::kUnsupportedContent, "content-type '" + type->substr(0, 64) + "', expected image/jpeg"};
  }
  if (!city_->FindCamera(*camera_id)) {
    return Rejection{reason::kUnknownCamera, "camera_id '" + camera_id->substr(0, 64) + "' is not in city.cameras"};
  }
  CameraFrame f;
  const auto [end, ec] = std::from_chars(ts->data(), ts->data() + ts->size(), f.ts_ms);
  if (ec != std::errc() || end != ts->data() + ts->size()) {
    return Rejection{reason::kBadTimestamp, "ts header '" + ts->substr(0, 32) + "' is not an integer epoch ms"};
  }
  if (f.ts_ms > now_ms + cfg.ingest.max_future_skew_ms) {
    return Rejection{reason::kFutureTimestamp, "ts " + *ts + " is " + std::to_string(f.ts_ms - now_ms) +
                                                   " ms ahead of now (" + FormatRfc3339Ms(now_ms) + ")"};
  }
  if (f.ts_ms < now_ms - cfg.ingest.max_past_age_ms) {
    // In uint64: for a ts near INT64_MIN the age does not fit int64.
    const uint64_t age_ms = static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(f.ts_ms);
    return Rejection{reason::kStaleTimestamp, "ts " + *ts + " is " + std::to_string(age_ms) + " ms old (now " +
                                                  FormatRfc3339Ms(now_ms) + ")"};
  }
  f.camera_id = *camera_id;
  f.jpeg = m.value;
  return f;
}

}  // namespace cityloop::ingest

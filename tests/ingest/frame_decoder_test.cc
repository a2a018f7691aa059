// FrameDecoder: the envelope checks of one city.camera.frames message. Each
// rejection carries its reason code and a detail that says what was wrong;
// a good frame passes with its bytes untouched (the JPEG itself is checked by
// detect/camera, not here).
#include "ingest/frame_decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <variant>

#include "tests/support/test_city.h"

namespace cityloop::ingest {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kNow = 1764316800000;  // 2025-11-28T08:00:00Z
constexpr int64_t kTs = kNow - 2000;

// Not a real JPEG: the decoder never looks inside.
const std::string kJpeg = std::string("\xff\xd8\xff\xe0", 4) + "jpeg bytes" + std::string("\xff\xd9", 2);

Message Frame(std::string value = kJpeg, Headers headers = {{"camera_id", "cam-031"}, {"ts", std::to_string(kTs)}}) {
  Message m;
  m.topic = "city.camera.frames";
  m.key = "cam-031";
  m.value = std::move(value);
  m.headers = std::move(headers);
  return m;
}

class FrameDecoderTest : public ::testing::Test {
 protected:
  explicit FrameDecoderTest(Config config = testing::TestConfig()) : decoder_(testing::TestCity(config)) {}

  std::variant<CameraFrame, Rejection> Decode(const Message& m) const { return decoder_.Decode(m, kNow); }

  // The rejection of m; a failure (and an empty Rejection) if m passed.
  Rejection Rejected(const Message& m) const {
    auto out = Decode(m);
    if (const auto* why = std::get_if<Rejection>(&out)) return *why;
    ADD_FAILURE() << "accepted, expected a rejection";
    return {};
  }

  // The frame of m; a failure (and an empty frame) if it was rejected.
  CameraFrame Accepted(const Message& m) const {
    auto out = Decode(m);
    if (const auto* why = std::get_if<Rejection>(&out)) {
      ADD_FAILURE() << "rejected: " << why->ToString();
      return {};
    }
    return std::get<CameraFrame>(out);
  }

  FrameDecoder decoder_;
};

TEST_F(FrameDecoderTest, AGoodFramePassesWithItsBytesAndTimestamp) {
  const Message m = Frame();
  const CameraFrame f = Accepted(m);
  EXPECT_EQ(f.camera_id, "cam-031");
  EXPECT_EQ(f.ts_ms, kTs);
  EXPECT_EQ(f.jpeg, kJpeg);
  // A view of the message's value, not a copy.
  EXPECT_EQ(f.jpeg.data(), m.value.data());
  EXPECT_EQ(f.jpeg.size(), m.value.size());
}

TEST_F(FrameDecoderTest, HeaderOrderIsIrrelevantAndContentTypeOptional) {
  const std::string ts = std::to_string(kTs);
  for (const Headers& h : {Headers{{"ts", ts}, {"camera_id", "cam-031"}},
                           Headers{{"content-type", "image/jpeg"}, {"ts", ts}, {"camera_id", "cam-031"}},
                           Headers{{"camera_id", "cam-031"}, {"content-type", "image/jpeg"}, {"ts", ts}},
                           Headers{{"x-trace", "abc"}, {"camera_id", "cam-031"}, {"ts", ts}, {"x-other", ""}}}) {
    std::string desc;
    for (const auto& [k, v] : h) desc += k + "=" + v + " ";
    SCOPED_TRACE(desc);
    const Message m = Frame(kJpeg, h);  // the frame views its value
    const CameraFrame f = Accepted(m);
    EXPECT_EQ(f.camera_id, "cam-031");
    EXPECT_EQ(f.ts_ms, kTs);
    EXPECT_EQ(f.jpeg, kJpeg);
  }
}

TEST_F(FrameDecoderTest, TimestampsWithinTheAllowedSkewAndAgePass) {
  // ingest.max_future_skew 5m and max_past_age 30d (the defaults).
  EXPECT_EQ(Accepted(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", std::to_string(kNow + 4 * 60000)}})).ts_ms,
            kNow + 4 * 60000);
  EXPECT_EQ(Accepted(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", std::to_string(kNow - 29LL * 86400000)}})).ts_ms,
            kNow - 29LL * 86400000);
}

TEST_F(FrameDecoderTest, AnEmptyValueIsRejected) {
  const Rejection r = Rejected(Frame(""));
  EXPECT_EQ(r.reason, reason::kEmptyMessage);
  EXPECT_THAT(r.detail, HasSubstr("no bytes"));
}

TEST_F(FrameDecoderTest, AMissingOrEmptyCameraIdHeaderIsRejected) {
  const std::string ts = std::to_string(kTs);
  for (const Headers& h : {Headers{{"ts", ts}}, Headers{{"camera_id", ""}, {"ts", ts}}}) {
    const Rejection r = Rejected(Frame(kJpeg, h));
    EXPECT_EQ(r.reason, reason::kMissingHeader);
    EXPECT_THAT(r.detail, HasSubstr("camera_id"));
  }
}

TEST_F(FrameDecoderTest, AMissingOrEmptyTsHeaderIsRejected) {
  for (const Headers& h : {Headers{{"camera_id", "cam-031"}}, Headers{{"camera_id", "cam-031"}, {"ts", ""}}}) {
    const Rejection r = Rejected(Frame(kJpeg, h));
    EXPECT_EQ(r.reason, reason::kMissingHeader);
    EXPECT_THAT(r.detail, HasSubstr("ts"));
    EXPECT_THAT(r.detail, ::testing::Not(HasSubstr("camera_id")));
  }
}

TEST_F(FrameDecoderTest, ANonIntegerTsIsABadTimestamp) {
  for (const std::string ts : {"yesterday", "1764316798000.5", "1764316798000ms", " 1764316798000",
                               "2025-11-28T08:00:00Z", "99999999999999999999999", "0x1a"}) {
    SCOPED_TRACE(ts);
    const Rejection r = Rejected(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", ts}}));
    EXPECT_EQ(r.reason, reason::kBadTimestamp);
    EXPECT_THAT(r.detail, HasSubstr("'" + ts + "'"));
    EXPECT_THAT(r.detail, HasSubstr("integer epoch ms"));
  }
}

TEST_F(FrameDecoderTest, AFutureTimestampIsRejected) {
  const int64_t ts = kNow + 10 * 60000;  // beyond the 5 minutes allowed
  const Rejection r = Rejected(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", std::to_string(ts)}}));
  EXPECT_EQ(r.reason, reason::kFutureTimestamp);
  EXPECT_THAT(r.detail, HasSubstr(std::to_string(ts)));
  EXPECT_THAT(r.detail, HasSubstr("600000 ms ahead"));
}

TEST_F(FrameDecoderTest, AStaleTimestampIsRejected) {
  const int64_t ts = kNow - 31LL * 86400000;  // beyond the 30 days allowed
  const Rejection r = Rejected(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", std::to_string(ts)}}));
  EXPECT_EQ(r.reason, reason::kStaleTimestamp);
  EXPECT_THAT(r.detail, HasSubstr(std::to_string(ts)));
  EXPECT_THAT(r.detail, HasSubstr(std::to_string(31LL * 86400000) + " ms old"));
}

TEST_F(FrameDecoderTest, AContentTypeOtherThanJpegIsRejected) {
  const std::string ts = std::to_string(kTs);
  for (const std::string type : {"image/png", "", "application/octet-stream"}) {
    SCOPED_TRACE(type);
    const Rejection r = Rejected(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", ts}, {"content-type", type}}));
    EXPECT_EQ(r.reason, reason::kUnsupportedContent);
    EXPECT_THAT(r.detail, HasSubstr("'" + type + "'"));
    EXPECT_THAT(r.detail, HasSubstr("expected image/jpeg"));
  }
  // A long content type is cut in the detail.
  const Rejection r =
      Rejected(Frame(kJpeg, {{"camera_id", "cam-031"}, {"ts", ts}, {"content-type", std::string(1000, 'x')}}));
  EXPECT_EQ(r.reason, reason::kUnsupportedContent);
  EXPECT_LT(r.detail.size(), 200u) << r.detail;
}

TEST_F(FrameDecoderTest, AnUnknownCameraIsRejected) {
  const Rejection r = Rejected(Frame(kJpeg, {{"camera_id", "cam-999"}, {"ts", std::to_string(kTs)}}));
  EXPECT_EQ(r.reason, reason::kUnknownCamera);
  EXPECT_THAT(r.detail, HasSubstr("'cam-999'"));
  EXPECT_THAT(r.detail, HasSubstr("city.cameras"));
  // A long id is cut in the detail.
  const Rejection lng = Rejected(Frame(kJpeg, {{"camera_id", std::string(5000, 'c')}, {"ts", std::to_string(kTs)}}));
  EXPECT_EQ(lng.reason, reason::kUnknownCamera);
  EXPECT_LT(lng.detail.size(), 200u);
}

class FrameDecoderSizeTest : public FrameDecoderTest {
 protected:
  static Config Small() {
    Config c = testing::TestConfig();
    c.camera.max_frame_bytes = 1000;
    return c;
  }
  FrameDecoderSizeTest() : FrameDecoderTest(Small()) {}
};

TEST_F(FrameDecoderSizeTest, AFrameOverMaxFrameBytesIsOversized) {
  const Rejection r = Rejected(Frame(std::string(1001, 'x')));
  EXPECT_EQ(r.reason, reason::kOversized);
  EXPECT_THAT(r.detail, HasSubstr("1001 bytes"));
  EXPECT_THAT(r.detail, HasSubstr("camera.max_frame_bytes 1000"));
  // Exactly the limit passes.
  const Message at_limit = Frame(std::string(1000, 'x'));
  EXPECT_EQ(Accepted(at_limit).jpeg.size(), 1000u);
}

TEST_F(FrameDecoderSizeTest, SizeIsCheckedBeforeTheHeaders) {
  // An oversized frame without headers is oversized, not missing_header:
  // its bytes are never looked at.
  EXPECT_EQ(Rejected(Frame(std::string(5000, 'x'), {})).reason, reason::kOversized);
}

}  // namespace
}  // namespace cityloop::ingest

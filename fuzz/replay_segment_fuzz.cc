// The replay-log reader (replay::LogReader) over one damaged stream, and the
// writer's repair of it (replay::LogWriter::Open cuts a torn tail and
// continues in a new segment). The input becomes the segment file(s) of
// city.sensors/0 in a log with a valid manifest; the log is read to its end:
// damage must be reported (problems()), never crash, and never produce a
// record outside the stream or the asked time range.
//
// Input: byte 0 chooses, the rest is the file content.
//   bits 0-1  layout: 0 the rest is 00000000.seg as is;
//             1 a valid segment header, then chunks (below) framed as records;
//             2 chunks, the first framed as the segment header's payload;
//             3 as 1, and an empty damage chunk (0x00 0x80) starts 00000001.seg
//   bit 2     read in time order (LogOrder::kTime), else log order
//   bit 3     read only timestamps in [1000000000, 2000000000)
//   bit 4     then let a LogWriter continue the log (repair + one record)
//             and read it again: the new record must be there
// A chunk is a u16 little-endian length L and L bytes: a record frame with a
// correct checksum around them (payload: u8 kind | u64 seq | i64 offset |
// i64 timestamp | i64 ingest_ms | u32 key length, key | u16 header count,
// (u32, name, u32, value)* | value), or, when L has bit 15 set, L & 0x7fff
// bytes written unframed (damage).
#include <cstring>
#include <nlohmann/json.hpp>

#include "fuzz/replay_fuzz.h"
#include "replay/crc32c.h"

namespace {

using namespace cityloop;
using fuzz::Check;

constexpr uint32_t kFrameMagic = 0x43524C43;  // "CLRC"

void PutU32(std::string* out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out->append(b, 4);
}

void AppendFrame(std::string* out, std::string_view payload) {
  PutU32(out, kFrameMagic);
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, replay::Crc32c(payload));
  out->append(payload);
}

std::string SegmentStart(uint32_t number, std::string_view header_payload = {}) {
  std::string out = "CLOGSEG1";
  if (header_payload.data() == nullptr) {
    AppendFrame(&out, nlohmann::json{{"topic", fuzz::kTopic}, {"partition", 0}, {"segment", number}, {"version", 1}}
                          .dump());
  } else {
    AppendFrame(&out, header_payload);
  }
  return out;
}

std::string SegmentName(uint32_t number) {
  char name[32];
  std::snprintf(name, sizeof name, "%08u.seg", number);
  return name;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view rest = fuzz::AsText(data + 1, size - 1);
  const std::string dir = fuzz::FreshLogDir();
  const std::string stream = dir + "/" + fuzz::kTopic + "/0/";
  fuzz::WriteFile(dir + "/manifest.json", fuzz::kManifest);

  const int layout = mode & 3;
  std::vector<std::string> segments;
  if (layout == 0) {
    segments.emplace_back(rest);
  } else {
    bool header_from_input = layout == 2;
    segments.emplace_back(layout == 2 ? std::string() : SegmentStart(0));
    while (rest.size() >= 2) {
      const uint16_t len = static_cast<uint16_t>(static_cast<uint8_t>(rest[0]) | (static_cast<uint8_t>(rest[1]) << 8));
      rest.remove_prefix(2);
      const std::string_view chunk = rest.substr(0, len & 0x7fff);
      rest.remove_prefix(chunk.size());
      if (header_from_input) {
        segments.back() = SegmentStart(0, chunk);
        header_from_input = false;
      } else if (len == 0x8000 && layout == 3 && segments.size() == 1) {
        segments.push_back(SegmentStart(1));
      } else if (len & 0x8000) {
        segments.back().append(chunk);
      } else {
        AppendFrame(&segments.back(), chunk);
      }
    }
  }
  for (size_t i = 0; i < segments.size(); ++i) fuzz::WriteFile(stream + SegmentName(static_cast<uint32_t>(i)), segments[i]);

  replay::LogReadOptions options;
  if (mode & 4) options.order = replay::LogOrder::kTime;
  if (mode & 8) {
    options.from_ms = 1000000000;
    options.to_ms = 2000000000;
  }
  const fuzz::ReadSummary first = fuzz::ReadLog(dir, options);
  Check(first.opened, "a log with a valid manifest does not open");

  if (mode & 16) {
    auto writer = replay::LogWriter::Open(dir);
    if (!writer.ok()) return 0;
    ingest::Message m;
    m.topic = fuzz::kTopic;
    m.partition = 0;
    m.offset = 1 << 20;
    m.key = "fuzz-appended";
    m.value = "{}";
    m.timestamp_ms = 1500000000;
    Check((*writer)->Append(m, 1500000001).ok(), "cannot append to a repaired log");
    Check((*writer)->Close().ok(), "cannot close a repaired log");
    writer->reset();
    const fuzz::ReadSummary again = fuzz::ReadLog(dir, options);
    Check(again.opened, "a repaired log does not open");
    size_t found = 0;
    for (const replay::LogRecord& r : again.records) found += r.message.key == "fuzz-appended" && r.message.value == "{}";
    Check(found >= 1, "the record appended after the repair is not read back");
  }
  return 0;
}

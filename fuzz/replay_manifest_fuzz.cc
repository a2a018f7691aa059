// The JSON files of a replay log: manifest.json and the segment indexes
// (<NNNNNNNN>.idx: counts, seq, offset and timestamp ranges, marks), which the
// reader trusts to skip segments and seek (replay::LogReader with a time
// range) and the writer reads to continue a log (replay::LogWriter::Open).
// The segments themselves are valid: two segments of city.sensors/0 written
// once by LogWriter. A damaged manifest may refuse the log; a damaged index
// must not crash; without indexes every record must come out.
//
// Input: manifest.json, then "\n@@@\n" and 00000000.idx, then "\n@@@\n" and
// 00000001.idx (manifest.json is written as given; an index left out is
// no index file).
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/replay_fuzz.h"

namespace {

using namespace cityloop;
using fuzz::Check;

constexpr std::string_view kSeparator = "\n@@@\n";
constexpr int kRecords = 40;

// The bytes of the template log's two segments.
const std::vector<std::string>& TemplateSegments() {
  static const std::vector<std::string> segments = [] {
    const std::string dir = fuzz::ScratchDir() + "/template";
    replay::LogWriterOptions wo;
    wo.segment_bytes = 3000;  // two segments of about 20 records
    auto w = replay::LogWriter::Open(dir, wo);
    Check(w.ok(), "cannot write the template log");
    for (int i = 0; i < kRecords; ++i) {
      ingest::Message m;
      m.topic = fuzz::kTopic;
      m.offset = i;
      m.key = "d" + std::to_string(i % 3);
      m.timestamp_ms = 1764316800000 + int64_t{i} * 1000;
      m.value = R"({"device_id":"wl-0012","kind":"water_level","ts":)" + std::to_string(m.timestamp_ms) +
                R"(,"value":0.42})";
      Check((*w)->Append(m).ok(), "cannot append to the template log");
    }
    Check((*w)->Close().ok(), "cannot close the template log");
    std::vector<std::string> out;
    Check(!std::filesystem::exists(dir + "/" + fuzz::kTopic + "/0/00000002.seg"), "the template log has 3 segments");
    for (const char* name : {"00000000.seg", "00000001.seg"}) {
      std::ifstream in(dir + "/" + fuzz::kTopic + "/0/" + name, std::ios::binary);
      Check(static_cast<bool>(in), std::string("the template log has no ") + name);
      out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
  }();
  return segments;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string>& segments = TemplateSegments();
  std::string_view input = fuzz::AsText(data, size);
  std::vector<std::string_view> parts;
  while (parts.size() < 2) {
    const size_t sep = input.find(kSeparator);
    if (sep == std::string_view::npos) break;
    parts.push_back(input.substr(0, sep));
    input.remove_prefix(sep + kSeparator.size());
  }
  parts.push_back(input);

  const std::string dir = fuzz::FreshLogDir();
  const std::string stream = dir + "/" + fuzz::kTopic + "/0/";
  fuzz::WriteFile(dir + "/manifest.json", parts[0]);
  fuzz::WriteFile(stream + "00000000.seg", segments[0]);
  fuzz::WriteFile(stream + "00000001.seg", segments[1]);
  if (parts.size() > 1) fuzz::WriteFile(stream + "00000000.idx", parts[1]);
  if (parts.size() > 2) fuzz::WriteFile(stream + "00000001.idx", parts[2]);

  (void)replay::LogWriterOf(dir);
  const fuzz::ReadSummary all = fuzz::ReadLog(dir, {});
  if (!all.opened) return 0;  // a manifest that is not one: refused, fine
  // The reader trusts an index to skip a segment (one that claims only
  // timestamps at INT64_MAX is skipped even without a time range), so only
  // an unindexed log must give every record.
  Check(all.records.size() <= kRecords, "more records than the log holds");
  if (parts.size() == 1) Check(all.records.size() == kRecords, "a log without indexes gives " +
                                                                   std::to_string(all.records.size()) + " of its " +
                                                                   std::to_string(kRecords) + " records");

  replay::LogReadOptions ranged;
  ranged.order = replay::LogOrder::kTime;
  ranged.from_ms = 1764316800000 + 25 * 1000;
  ranged.to_ms = 1764316800000 + 35 * 1000;
  (void)fuzz::ReadLog(dir, ranged);

  // The writer continues the log from its last segment and the indexes.
  auto writer = replay::LogWriter::Open(dir);
  if (writer.ok()) (void)(*writer)->Close();
  return 0;
}

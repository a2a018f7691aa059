// city.reports values through ingest::ReportDecoder (fuzz/decoder_fuzz.h).
#include <algorithm>

#include "fuzz/decoder_fuzz.h"
#include "ingest/report_decoder.h"

namespace {

using namespace cityloop;

std::string Describe(const Report& r) {
  return r.report_id + "|" + r.channel + "|" + std::to_string(r.ts_ms) + "|" + r.category + "|" + r.text + "|" +
         fuzz::Num(r.position.lat) + "," + fuzz::Num(r.position.lon) + "|" + std::to_string(r.cell);
}

void CheckAccepted(const Report& r) {
  fuzz::CheckId("report_id", r.report_id);
  fuzz::Check(std::find(ingest::kReportChannels.begin(), ingest::kReportChannels.end(), r.channel) !=
                  ingest::kReportChannels.end(),
              "accepted channel '" + r.channel + "'");
  fuzz::Check(fuzz::ExampleCity()->FindCategory(r.category) != nullptr, "accepted category '" + r.category + "'");
  const int64_t limit = fuzz::ExampleConfig().ingest.max_report_text_bytes;
  fuzz::Check(limit <= 0 || static_cast<int64_t>(r.text.size()) <= limit,
              "accepted text of " + std::to_string(r.text.size()) + " bytes");
  fuzz::CheckTimestamp(r.ts_ms);
  fuzz::CheckPlace(r.position, r.cell);
}

constexpr std::string_view kWarmup =
    R"({"report_id":"r-88121","channel":"hotline12345","ts":"2025-11-28T08:00:00Z","category":"waterlogging","text":"\u8def\u9762\u79ef\u6c34 water on the road, about 30 cm","lat":28.19,"lon":112.98})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::FuzzJsonDecoder<ingest::ReportDecoder>(data, size, kWarmup, Describe, CheckAccepted);
}

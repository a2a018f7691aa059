// city.units values through ingest::UnitDecoder (fuzz/decoder_fuzz.h).
#include "fuzz/decoder_fuzz.h"
#include "ingest/unit_decoder.h"

namespace {

using namespace cityloop;

std::string Describe(const UnitUpdate& u) {
  return u.unit_id + "|" + u.department + "|" + UnitStatusName(u.status) + "|" + std::to_string(u.ts_ms) + "|" +
         std::to_string(u.has_position) + "|" + fuzz::Num(u.position.lat) + "," + fuzz::Num(u.position.lon);
}

void CheckAccepted(const UnitUpdate& u) {
  fuzz::CheckId("unit_id", u.unit_id);
  fuzz::CheckTimestamp(u.ts_ms);
  fuzz::Check(ParseUnitStatus(UnitStatusName(u.status)) == u.status, "accepted an unnamed status");
  if (u.has_position) {
    fuzz::Check(std::isfinite(u.position.lat) && std::isfinite(u.position.lon) && u.position.lat >= -90 &&
                    u.position.lat <= 90 && u.position.lon >= -180 && u.position.lon <= 180,
                "accepted position " + fuzz::Num(u.position.lat) + "," + fuzz::Num(u.position.lon));
  }
}

constexpr std::string_view kWarmup =
    R"({"unit_id":"drain-07","dept":"drainage","status":"available","ts":1764316800000,"lat":28.19,"lon":112.98,"note":"x"})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::FuzzJsonDecoder<ingest::UnitDecoder>(data, size, kWarmup, Describe, CheckAccepted);
}

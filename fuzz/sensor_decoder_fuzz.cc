// city.sensors values through ingest::SensorDecoder (fuzz/decoder_fuzz.h).
#include "fuzz/decoder_fuzz.h"
#include "ingest/sensor_decoder.h"

namespace {

using namespace cityloop;

std::string Describe(const Reading& r) {
  return r.device_id + "|" + r.kind + "|" + std::to_string(r.ts_ms) + "|" + fuzz::Num(r.value) + "|" + r.unit + "|" +
         fuzz::Num(r.position.lat) + "," + fuzz::Num(r.position.lon) + "|" + std::to_string(r.registered) + "|" +
         std::to_string(r.cell);
}

void CheckAccepted(const Reading& r) {
  fuzz::CheckId("device_id", r.device_id);
  fuzz::Check(!r.kind.empty(), "accepted an empty kind");
  fuzz::Check(std::isfinite(r.value), "accepted a value that is not finite");
  if (const SensorKind* sk = fuzz::ExampleCity()->FindSensorKind(r.kind)) {
    fuzz::Check(r.value >= sk->min && r.value <= sk->max, "accepted value " + fuzz::Num(r.value) + " out of range");
  }
  fuzz::Check(r.registered == (fuzz::ExampleCity()->FindDevice(r.device_id) != nullptr), "registered flag wrong");
  fuzz::CheckTimestamp(r.ts_ms);
  fuzz::CheckPlace(r.position, r.cell);
}

constexpr std::string_view kWarmup =
    R"({"device_id":"wl-0012","kind":"water_level","ts":1764316800000,"value":0.42,"unit":"m","lat":28.1941,"lon":112.9823,"extra":{"a":[1,2,{"b":"c"}]}})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz::FuzzJsonDecoder<ingest::SensorDecoder>(data, size, kWarmup, Describe, CheckAccepted);
}

// detect_bench: decode + rule evaluation without Kafka (see docs/PERFORMANCE.md).
//
// The example city's rules (every kind) over D generated devices of the
// example's sensor kinds, placed at random in its grid. Each pass produces
// M readings (JSON as on city.sensors, with lat/lon) in event-time order,
// every device reporting in turn, values mostly normal with occasional
// excursions beyond the rules' levels. Per pass, on one thread:
//
//   baseline  simdjson On Demand parse of every message, reading every field
//             (the least any decoder must do);
//   measured  ingest::SensorDecoder::Decode + detect::RuleSet::OnReading.
//
// Printed: events/s of both, their ratio, rule state per device
// (RuleSet::StateBytes / devices) and the process RSS after every pass, so
// a leak or unbounded state shows as growth from pass to pass.
//
//   ./build/bin/detect_bench [--devices D] [--messages M] [--passes P] [--seed K] [--config PATH]
// Run from the project root. Exit 0 when it ran, 2 on a setup failure.
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench/bench_util.h"
#include "core/city.h"
#include "core/config.h"
#include "detect/rule_set.h"
#include "ingest/sensor_decoder.h"

namespace cityloop {
namespace {

struct Flags {
  int devices = 10000;
  int64_t messages = 1000000;  // per pass
  int passes = 5;
  uint64_t seed = 1;
  std::string config = "deploy/cityloop.example.yaml";
};

[[noreturn]] void Fail(const std::string& what) { bench::Fail("detect_bench", what); }

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  bench::ForEachFlag("detect_bench", argc, argv, [&](const std::string& a, auto value) {
    if (a == "--devices") f.devices = std::stoi(value());
    else if (a == "--messages") f.messages = std::stoll(value());
    else if (a == "--passes") f.passes = std::stoi(value());
    else if (a == "--seed") f.seed = std::stoull(value());
    else if (a == "--config") f.config = value();
    else return false;
    return true;
  });
  if (f.devices < 1 || f.messages < 1 || f.passes < 1) Fail("counts must be positive");
  return f;
}

using bench::RssMiB;

// The example config with its devices replaced by n generated ones.
std::shared_ptr<const CityModel> BenchCity(const Flags& flags) {
  ConfigLoadResult loaded = LoadConfigFile(flags.config);
  if (!loaded.config) Fail("config " + flags.config + ": " + (loaded.errors.empty() ? "" : loaded.errors[0].ToString()));
  Config c = *loaded.config;
  const std::vector<std::string> kinds = {"water_level", "rainfall", "gas_ppm", "manhole_tilt", "smoke",
                                          "pm25",        "noise_db", "traffic_speed", "bridge_strain",
                                          "streetlight_current"};
  const GridIndex grid(c.city.grid);
  std::mt19937_64 rng(flags.seed);
  std::uniform_int_distribution<int> cell(0, grid.cell_count() - 1);
  std::uniform_real_distribution<double> jitter(-0.4, 0.4);
  const double dlat = c.city.grid.cell_size_m / 111320.0;
  c.city.devices.clear();
  for (int i = 0; i < flags.devices; ++i) {
    Device d;
    d.kind = kinds[static_cast<size_t>(i) % kinds.size()];
    char id[32];
    std::snprintf(id, sizeof id, "b-%s-%05d", d.kind.substr(0, 3).c_str(), i);
    d.id = id;
    const LatLon centre = grid.Center(cell(rng));
    d.position = {centre.lat + jitter(rng) * dlat, centre.lon + jitter(rng) * dlat};
    c.city.devices.push_back(d);
  }
  // Rules restricted to devices of the original city would watch nobody here.
  for (auto& r : c.rules.threshold) r.devices.clear(), r.overrides.clear();
  auto city = CityModel::Build(c);
  if (!city.ok()) Fail("city: " + city.status().ToString());
  return *city;
}

// A plausible value of kind; one reading in `spike_every` is beyond the levels.
double ValueFor(const std::string& kind, bool spike, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  const double x = u(rng);
  if (kind == "water_level") return spike ? 0.35 + 0.2 * x : 0.02 + 0.05 * x;
  if (kind == "rainfall") return spike ? 40 + 20 * x : 2 * x;
  if (kind == "gas_ppm") return spike ? 600 + 200 * x : 5 + 20 * x;
  if (kind == "manhole_tilt") return spike ? 20 + 5 * x : 1 + x;
  if (kind == "smoke") return spike ? 12 + 5 * x : 0.5 * x;
  if (kind == "pm25") return spike ? 180 + 20 * x : 30 + 20 * x;
  if (kind == "noise_db") return spike ? 90 + 5 * x : 55 + 10 * x;
  if (kind == "traffic_speed") return spike ? 3 + 3 * x : 30 + 20 * x;
  if (kind == "bridge_strain") return spike ? 1600 + 100 * x : 200 + 100 * x;
  return spike ? 0.05 : 1.2 + 0.3 * x;  // streetlight_current
}

// Pass p's messages in event-time order: rounds of 30 s of city time; in
// each, every device whose kind reports every 30 s sends one reading, and the
// others (60 s kinds) every second round, spread over the round.
std::vector<std::string> Messages(const CityModel& city, const Flags& flags, int pass, int64_t* next_ts) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(flags.messages));
  std::mt19937_64 rng(flags.seed * 7919 + static_cast<uint64_t>(pass));
  std::uniform_int_distribution<int> spike(0, 199);
  const auto& devices = city.config().city.devices;
  constexpr int64_t kRoundMs = 30000;
  char buf[256];
  for (int64_t round = *next_ts / kRoundMs; static_cast<int64_t>(out.size()) < flags.messages; ++round) {
    for (size_t i = 0; i < devices.size() && static_cast<int64_t>(out.size()) < flags.messages; ++i) {
      const Device& d = devices[i];
      const SensorKind* kind = city.FindSensorKind(d.kind);
      const int64_t every = std::max<int64_t>(kRoundMs, kind ? kind->report_interval_ms : kRoundMs);
      if ((round * kRoundMs) % every != 0) continue;
      const int64_t ts = round * kRoundMs + static_cast<int64_t>(i) * kRoundMs / static_cast<int64_t>(devices.size());
      const int n = std::snprintf(buf, sizeof buf,
                                  "{\"device_id\":\"%s\",\"kind\":\"%s\",\"ts\":%lld,\"value\":%.3f,\"unit\":\"-\","
                                  "\"lat\":%.6f,\"lon\":%.6f}",
                                  d.id.c_str(), d.kind.c_str(), static_cast<long long>(ts),
                                  ValueFor(d.kind, spike(rng) == 0, rng), d.position.lat, d.position.lon);
      out.emplace_back(buf, static_cast<size_t>(n));
      *next_ts = ts + 1;
    }
  }
  return out;
}

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// The baseline: parse and read every field, nothing else.
double BareParse(const std::vector<std::string>& messages, double* checksum) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string buffer(size_t{512});
  double sum = 0;
  const auto start = Clock::now();
  for (const std::string& m : messages) {
    std::memcpy(buffer.data(), m.data(), m.size());
    auto doc = parser.iterate(buffer.data(), m.size(), buffer.size());
    for (auto field : doc.get_object()) {
      auto value = field.value();
      if (value.type() == simdjson::ondemand::json_type::number) {
        sum += static_cast<double>(value.get_double());
      } else {
        sum += static_cast<double>(std::string_view(value.get_string()).size());
      }
    }
  }
  *checksum += sum;
  return Seconds(start, Clock::now());
}

// The decoder alone over the messages (to split the measured time).
double DecodeOnly(ingest::SensorDecoder& decoder, const std::vector<std::string>& messages, int64_t now_ms) {
  int64_t accepted = 0;
  const auto start = Clock::now();
  for (const std::string& m : messages) accepted += std::holds_alternative<Reading>(decoder.Decode(m, now_ms));
  const double s = Seconds(start, Clock::now());
  if (accepted != static_cast<int64_t>(messages.size())) Fail("generated readings were rejected");
  return s;
}

int Main(int argc, char** argv) {
  const Flags flags = ParseFlags(argc, argv);
  auto city = BenchCity(flags);
  ingest::SensorDecoder decoder(city);
  detect::RuleSet rules(city, /*live=*/false);
  int64_t next_ts = 1764316800000;
  // Event time is what the rules judge; the decoder's wall-clock window is opened wide.
  const int64_t now_ms = next_ts + 86400000LL * 20;
  std::printf("detect_bench: %d devices, %zu rules, %lld readings per pass, %d passes\n", flags.devices,
              rules.rules().size(), static_cast<long long>(flags.messages), flags.passes);
  std::printf("%-5s %13s %13s %15s %7s %8s %9s %8s\n", "pass", "bare parse/s", "decode/s", "decode+rules/s",
              "ratio", "signals", "B/device", "RSS MiB");
  double checksum = 0;
  std::vector<Signal> signals;
  double best_ratio = 0, best_rate = 0;
  int64_t offset = 0;
  const std::string topic = city->config().kafka.topics.sensors;
  for (int pass = 0; pass < flags.passes; ++pass) {
    const std::vector<std::string> messages = Messages(*city, flags, pass, &next_ts);
    const double bare_s = BareParse(messages, &checksum);
    const double decode_s = DecodeOnly(decoder, messages, now_ms);
    int64_t raised = 0;
    const auto start = Clock::now();
    for (const std::string& m : messages) {
      auto outcome = decoder.Decode(m, now_ms);
      Reading& r = std::get<Reading>(outcome);
      r.input.topic = topic;
      // Kafka hands a consumer runs of one partition: 4 partitions, runs of 500.
      r.input.partition = static_cast<int32_t>((offset / 500) & 3);
      r.input.offset = offset++;
      signals.clear();
      rules.OnReading(r, 0, &signals);
      raised += static_cast<int64_t>(signals.size());
    }
    const double rules_s = Seconds(start, Clock::now());
    const double n = static_cast<double>(messages.size());
    const double ratio = (n / rules_s) / (n / bare_s);
    best_ratio = std::max(best_ratio, ratio);
    best_rate = std::max(best_rate, n / rules_s);
    std::printf("%-5d %13.0f %13.0f %15.0f %7.3f %8lld %9.0f %8.1f\n", pass + 1, n / bare_s, n / decode_s,
                n / rules_s, ratio, static_cast<long long>(raised),
                static_cast<double>(rules.StateBytes()) / flags.devices, RssMiB());
  }
  std::printf("best: %.0f events/s on one core (goal >= 2000000), %.3f x the bare simdjson parse rate\n", best_rate,
              best_ratio);
  std::printf("state: %.0f bytes per device (goal <= 1024)  [checksum %.0f]\n",
              static_cast<double>(rules.StateBytes()) / flags.devices, checksum);
  return 0;
}

}  // namespace
}  // namespace cityloop

int main(int argc, char** argv) { return cityloop::Main(argc, argv); }

// Simulator: a realistic city for the config — readings from every registered
// device with daily patterns, noise and dropouts — with incidents injected on a
// seeded schedule (flooded road, gas leak, tilted manhole cover, smoke,
// pollution episode, dead street lamp). Deterministic for a given seed, start
// and config. Produces to Kafka through KafkaProducer (see simulate command).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/city.h"

namespace cityloop::ingest {

struct SimulatorOptions {
  uint64_t seed = 1;
  int64_t start_ms = 0;          // city time of the first reading
  int64_t duration_ms = 0;       // city time to simulate; 0 = endless
  double rate = 20;              // readings per second of city time, over all devices
  double dropout = 0.01;         // probability a reading is skipped
  int64_t incident_every_ms = 4 * 60000;  // mean gap between injected incidents
};

// One injected incident, as written to --truth (JSON line).
struct InjectedIncident {
  std::string kind;        // flooded_road, gas_leak, manhole_tilt, smoke, pollution, dead_streetlight
  std::string category;    // the catalogue category it should open
  std::string device_id;
  std::string sensor_kind;
  std::string cell_code;
  std::string district;
  std::string department;
  LatLon position;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  std::string ToJson() const;
};

struct SimulatedReading {
  std::string topic;   // the sensors topic
  std::string key;     // device id
  std::string value;   // JSON per CONTRACT.md
  int64_t ts_ms = 0;
};

class Simulator {
 public:
  Simulator(std::shared_ptr<const CityModel> city, SimulatorOptions options);
  ~Simulator();
  // Generates the next reading in event-time order; false when the duration is over.
  bool Next(SimulatedReading* out);
  // Incidents whose start has been reached so far (for --truth), in start order.
  // Each is returned once.
  std::vector<InjectedIncident> TakeStartedIncidents();
  int64_t city_time_ms() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cityloop::ingest

// Runs the city simulator against a Kafka cluster: produces each of its
// records (sensor readings, camera detections, citizen reports) to the
// record's topic with its key (device, camera or report id), paced to the
// clock (real time) or as fast as possible, and appends each injected
// incident to the truth file as a JSON line (format: ingest/simulator.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/city.h"
#include "core/clock.h"
#include "ingest/simulator.h"

namespace cityloop::app {

struct SimulationRun {
  std::string bootstrap;
  std::string truth_path;  // empty = no truth file
  bool paced = true;       // false: as fast as Kafka takes it
  // Paced runs move city time `speed` times faster than the clock, but never
  // produce a reading before its timestamp: a run that starts in the past
  // catches up at `speed`, then goes on in real time.
  double speed = 1;
  ingest::SimulatorOptions sim;
};

struct SimulationStats {
  int64_t produced = 0;  // records, every topic
  int64_t incidents = 0;
  std::map<std::string, int64_t> by_topic;  // records per topic
};

Result<SimulationStats> RunSimulation(std::shared_ptr<const CityModel> city, const SimulationRun& run,
                                      const Clock& clock, const std::atomic<bool>& stop);

}  // namespace cityloop::app

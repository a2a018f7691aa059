// Runs the city simulator against a Kafka cluster: produces each of its
// records (sensor readings, camera detections, citizen reports) to the
// record's topic with its key (device, camera or report id), paced to the
// clock (real time) or as fast as possible, and appends each injected
// incident to the truth file as a JSON line (format: ingest/simulator.h).
//
// With `units`, the city's field units (ingest/unit_fleet.h) report their
// status and position on kafka.topics.units, merged into the same stream in
// city-time order. With `operate`, the run also reads kafka.topics.dispatch
// (its own consumer group) and plays the departments: each order sends its
// recommended unit out, and the operators' commands go to
// kafka.topics.commands. An order is received at the city time the run has
// reached (paced: the clock's; fast: the newest record produced). Runs on the
// calling thread; stop is polled between records and while waiting.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/city.h"
#include "core/clock.h"
#include "ingest/simulator.h"
#include "ingest/unit_fleet.h"

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
  // Unit reports on kafka.topics.units.
  bool units = true;
  // Also take orders from kafka.topics.dispatch and produce the operators'
  // commands (implies units). When the duration is over the run goes on
  // while a unit is out or a command is due, and ends once the units have
  // been idle and no order came for operate_linger_ms of wall time (orders
  // follow the engine, which may still be reading the last input). A fast
  // run reaches the end of its duration long before the engine has read it,
  // so its units set out late in city time (SLA warnings and escalations
  // follow); paced runs respond within the engine's latency.
  bool operate = false;
  std::string operate_group;          // consumer group; empty = "<kafka.group_id>-sim-operators"
  int64_t operate_linger_ms = 10000;
  // Unit timings; seed, start_ms and operate are taken from the fields above.
  ingest::UnitFleetOptions fleet;
};

struct SimulationStats {
  int64_t produced = 0;  // records, every topic
  int64_t incidents = 0;
  std::map<std::string, int64_t> by_topic;  // records per topic
  int64_t unit_reports = 0;
  int64_t commands = 0;
  int64_t orders_taken = 0;
  int64_t orders_ignored = 0;
};

Result<SimulationStats> RunSimulation(std::shared_ptr<const CityModel> city, const SimulationRun& run,
                                      const Clock& clock, const std::atomic<bool>& stop);

}  // namespace cityloop::app

// The subcommands of the cityloop binary. Each returns the process exit code:
// 0 success, 2 bad usage or bad config, 1 runtime failure.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace cityloop::app {

struct GlobalFlags {
  std::string log_format = "text";
  std::string log_level = "info";
};
int InitGlobal(const GlobalFlags& flags);

struct ValidateArgs {
  std::string config;
};
int ValidateCommand(const ValidateArgs& args);

struct BrokerArgs {
  std::string bootstrap_file;
  std::string config;
  int partitions = 0;
  // --control: fault commands on stdin, one per line, each answered on stdout
  // with "control: ok LINE" or "control: error: WHY" (see kBrokerControlHelp).
  bool control = false;
};
// What `cityloop broker --control` understands (its --help shows it).
extern const char* const kBrokerControlHelp;
int BrokerCommand(const BrokerArgs& args, const std::atomic<bool>& stop);

struct RunArgs {
  std::string config;
  bool embedded_kafka = false;
  std::string bootstrap_file;
  std::string bootstrap;
  std::string store;
  std::string listen;
  bool simulate = false;
  uint64_t seed = 1;
  double rate = 20;
  double camera_fps = -1;  // simulator frames per camera per second; < 0 = camera.fps, 0 = none
  bool summary = false;
  bool exit_when_caught_up = false;
  std::string record;  // --record LOG: a replay log of every applied input
};
// SIGHUP sets *reload: the engine then reloads the config's rules.
int RunServiceCommand(const RunArgs& args, const std::atomic<bool>& stop, std::atomic<bool>* reload);

struct SimulateArgs {
  std::string bootstrap;
  std::string config = "deploy/cityloop.example.yaml";
  double rate = 20;
  int64_t duration_s = 0;
  uint64_t seed = 1;
  std::string truth;
  std::string start;
  bool fast = false;
  double speed = 1;
  std::string incident_every;
  double camera_fps = -1;  // < 0 = camera.fps, 0 = no frames
  bool units = true;       // --units / --no-units: field units' status and positions
  bool operate = false;    // --operate: read orders, send units, produce the operators' commands
};
int SimulateCommand(const SimulateArgs& args, const std::atomic<bool>& stop);

// Where a Kafka range starts and ends (record; replay from Kafka).
struct KafkaRangeArgs {
  std::string bootstrap;
  std::string from_offsets;  // TOPIC:PARTITION=OFFSET,...
  std::string from_time;     // RFC 3339 or epoch ms
  std::string to_time;
  std::string topics;        // comma-separated; default: every input topic of the config
};

struct RecordArgs {
  std::string config;
  std::string out;
  KafkaRangeArgs range;
  bool until_caught_up = false;
  uint64_t segment_mb = 64;
};
int RecordCommand(const RecordArgs& args, const std::atomic<bool>& stop);

struct ReplayArgs {
  std::string config;
  std::string log;
  KafkaRangeArgs range;  // with --bootstrap: spool this range into <out>/log, then replay it
  std::string out;
  std::string store;
  std::string speed = "max";
  size_t batch = 100000;
  std::string order = "auto";
  std::string reorder_window = "1s";
  std::string from;  // within the log: record timestamps from / to
  std::string to;
  std::string progress = "auto";
  bool events = false;
};
int ReplayCommand(const ReplayArgs& args, const std::atomic<bool>& stop);

struct DiffArgs {
  std::string dir_a, dir_b;
  std::string json;  // write the JSON report here ("-": stdout instead of the text)
  size_t max_listed = 50;
};
int DiffCommand(const DiffArgs& args);

struct ExportArgs {
  std::string config;
  std::string store;
  std::string out;
};
int ExportCommand(const ExportArgs& args);

}  // namespace cityloop::app

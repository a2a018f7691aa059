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
};
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

}  // namespace cityloop::app

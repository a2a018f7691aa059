// Replay: runs a replay log through the very pipeline the service runs, into
// a fresh store, with the clock driven by the log. Only the source and the
// clock differ from the service (DESIGN.md, Time):
// - an engine recording (run --record) replays in its recorded order, each
//   input at its recorded ingest time and the recorded idle clock advances
//   at their places, so the live run is reproduced exactly;
// - a recording from Kafka (cityloop record, replay --from-*) replays in time
//   order (replay::LogOrder::kTime), ingest time = the record's Kafka
//   timestamp, event time from the log alone.
// Either way the output is a function of (log, config): any speed and any
// batch size give byte-identical cases.jsonl, kpi.json and digest.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/city.h"
#include "core/metrics.h"
#include "replay/replay_log.h"
#include "replay/run_output.h"

namespace cityloop::app {

enum class ReplayOrder { kAuto, kLog, kTime };

struct ReplayOptions {
  std::string log_dir;
  std::string out_dir;
  std::string store_dir;  // default: <out_dir>/store; must not hold a store already
  double speed = 0;       // 0: as fast as possible; 1: real time; N: N times real time
  // Messages per micro-batch. Output does not depend on it; large batches
  // write each device's state once for many of its readings.
  size_t batch_size = 100000;
  ReplayOrder order = ReplayOrder::kAuto;  // auto: log order for engine recordings, else time
  int64_t reorder_window_ms = 1000;
  std::vector<std::string> topics;  // empty: every input topic in the log
  int64_t from_ms = std::numeric_limits<int64_t>::min();
  int64_t to_ms = std::numeric_limits<int64_t>::max();
  // Progress on stderr: a bar on a terminal, plain lines otherwise, or none.
  enum class Progress { kAuto, kBar, kLines, kNone } progress = Progress::kAuto;
  std::string config_path;  // named in summary.json
  bool write_events = false;  // also <out_dir>/events.jsonl: every output event, as digested
};

struct ReplaySummary {
  uint64_t events_in = 0;
  uint64_t clock_advances = 0;
  uint64_t events_out = 0;
  uint64_t dead_letters = 0;
  uint64_t out_of_order = 0;
  int64_t first_ms = 0, last_ms = 0;  // ingest-time span of the log
  double seconds = 0;
  std::string order;   // "log" or "time"
  std::string writer;  // "engine" or "record"
  std::string digest;
  replay::RunOutputCounts output;
  std::vector<replay::LogProblem> problems;
};

// Replays options.log_dir and writes cases.jsonl, kpi.json, digest and
// summary.json into options.out_dir. stop (may be null) ends it early; the
// output then covers what was replayed.
Result<ReplaySummary> RunReplay(std::shared_ptr<const CityModel> city, const ReplayOptions& options,
                                MetricsRegistry* metrics, const std::atomic<bool>* stop = nullptr);

// The lines RunReplay prints when it is done.
std::string FormatReplaySummary(const ReplaySummary& s, const ReplayOptions& options);

}  // namespace cityloop::app

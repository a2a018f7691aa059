// Child processes of the cityloop binary for end-to-end tests: the embedded
// broker alone (`cityloop broker --control`, so a test can take it down or
// make requests fail) and the engine (`cityloop run`), with what a test asks
// of a running engine (its port, /readyz, /metrics). Test thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/http_get.h"
#include "tests/support/test_support.h"

namespace cityloop::testing {

// The steady-clock now in ms.
int64_t SteadyMs();

// `cityloop broker --config C --control` in its own process.
class BrokerProcess {
 public:
  BrokerProcess(const TempDir& dir, const std::string& config);
  bool started() const { return !bootstrap_.empty(); }
  const std::string& bootstrap() const { return bootstrap_; }
  // Sends one control line and waits for its answer; "" when it was
  // applied, else the broker's error (or "no answer").
  std::string Control(const std::string& line);
  ChildProcess& child() { return *child_; }
  std::string log() const { return ReadFile(log_path_); }

 private:
  std::string log_path_;
  std::unique_ptr<ChildProcess> child_;
  std::string bootstrap_;
  int answered_ = 0;
};

// `cityloop run --config C [--bootstrap B] --store S --listen 127.0.0.1:0 [extra]`
// as a child process appending to log_path (no --bootstrap when B is empty,
// e.g. with --embedded-kafka in extra); env as for ChildProcess.
class EngineProcess {
 public:
  EngineProcess(const std::string& config, const std::string& bootstrap, const std::string& store,
                const std::string& log_path, const std::vector<std::string>& extra = {},
                const std::vector<std::string>& env = {});
  ChildProcess& child() { return child_; }
  // The HTTP port, from this run's log lines; 0 when the engine exited or
  // the deadline passed first.
  uint16_t WaitForPort(std::chrono::milliseconds deadline = std::chrono::seconds(60));
  // Milliseconds from exec to the first /readyz 200; -1 when the engine
  // exited or the deadline passed first.
  int64_t WaitReady(std::chrono::milliseconds deadline = std::chrono::seconds(60));
  HttpReply Get(const std::string& target);
  // A series of this engine's /metrics (e.g. "cityloop_ingest_messages_total"),
  // -1 when absent or unreachable.
  double Metric(const std::string& series);
  // The sum of a metric family over its label sets, -1 when unreachable.
  double MetricTotal(const std::string& name);
  // Polls /metrics every 10 ms (a catching-up engine reads tens of thousands
  // of inputs a second) until `series` >= value: true; false when the engine
  // exited or the deadline passed first.
  bool WaitMetricAtLeast(const std::string& series, double value,
                         std::chrono::milliseconds deadline = std::chrono::seconds(90));
  int64_t started_ms() const { return started_ms_; }  // steady clock
  // This run's lines of the log.
  std::string log() const;

 private:
  std::string log_path_;
  size_t log_from_;
  int64_t started_ms_;
  ChildProcess child_;
  uint16_t port_ = 0;
};

}  // namespace cityloop::testing

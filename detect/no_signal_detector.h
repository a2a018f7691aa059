// NoSignalDetector: a rules[] entry of kind no_signal. A device that has
// reported at least once and then stays silent for factor x its expected
// report interval raises one signal; its next reading clears the silence.
//
//   reporting --watermark of its source passes last_ts + k x interval--> silent (Signal)
//   silent --any newer reading--> reporting
//
// Expected interval of a device: overrides.<device> -> the rule's interval ->
// city.sensor_kinds.<kind>.report_interval -> 60 s.
//
// Event time: each device's deadline runs on the watermark of the source
// (topic/partition) it last reported on (DeadlineQueue), so a partition that
// lags behind never makes its devices look silent while another partition's
// time runs ahead.
//
// Restore: source ids (EventTime::Source) are dense, assigned in first-seen
// order and not stable across restarts, and Restore() gets no context. So
// the state persists the source as text (topic, partition) together with the
// last reading's time, kind, cell and position; a restored device in the
// reporting phase goes onto a "re-arm" list, and the first OnReading or
// OnWatermark afterwards interns its source through ctx.time and sets its
// deadline from the current config (last_ts + k x interval). A restored
// silent device needs no deadline: it waits for its next reading.
//
// A reading older than (or as old as) the device's newest one is ignored.
// no_signal is not gated (flapping does not watch it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/rule.h"

namespace cityloop::detect {

struct NoSignalState {
  enum class Phase : uint8_t { kReporting = 0, kSilent = 1 };
  Phase phase = Phase::kReporting;
  int64_t last_ts_ms = 0;  // newest reading applied
  int cell = -1;           // of the newest reading (unregistered devices)
  LatLon position;
  int32_t partition = 0;   // the source of the newest reading, as text: restart-stable
  std::string topic;
  std::string kind;        // sensor kind of the newest reading
  int64_t allowed_ms = 0;  // factor x interval for kind; a cache, not persisted (0: to compute)
  std::string Encode() const;
  static std::optional<NoSignalState> Decode(std::string_view text);
  size_t Bytes() const;
};

struct NoSignalStats {
  int64_t evaluated = 0;     // readings applied
  int64_t out_of_order = 0;  // readings not newer than the device's newest
  int64_t fired = 0;         // silences detected
  int64_t cleared = 0;       // silences ended by a reading
};

class NoSignalDetector : public DeviceRule<NoSignalRule, NoSignalState> {
 public:
  static constexpr std::string_view kPrefix = "nosig/";
  static constexpr int64_t kDefaultIntervalMs = 60000;
  NoSignalDetector(const NoSignalRule& rule, const CityModel& city, DeviceTable& devices)
      : DeviceRule(rule, city, devices, kPrefix) {}

  // sensors: [] watches every kind; else just the listed kinds.
  bool WatchesEverySensor() const override { return config().sensor_kinds.empty(); }
  std::vector<std::string> WatchedSensorKinds() const override { return config().sensor_kinds; }
  void OnReading(const Reading& r, uint32_t device, RuleContext& ctx) override;
  bool WatchesWatermark() const override { return true; }
  void OnWatermark(RuleContext& ctx) override;
  // Restores the state; a reporting device goes onto the re-arm list.
  Status Restore(std::string_view subject, std::string_view value) override;
  // The states, plus the deadlines and the re-arm list.
  size_t StateBytes() const override;

  // Expected report interval of a device of kind (see above).
  int64_t IntervalFor(const CityModel& city, const std::string& device_id, std::string_view kind) const;
  // When the device is due to be declared silent, if it is armed.
  std::optional<int64_t> DeadlineOf(std::string_view device_id) const {
    return deadlines_.DeadlineOf(devices_, device_id);
  }
  const NoSignalStats& stats() const { return stats_; }
  // Restored devices still waiting for their deadline to be re-armed.
  size_t pending_rearm() const { return rearm_.size(); }

 private:
  bool Applies(const Reading& r) const;
  int64_t DeadlineFor(const CityModel& city, uint32_t device, const NoSignalState& st) const;
  void Rearm(RuleContext& ctx);
  void RaiseSilence(uint32_t device, int64_t deadline_ms, RuleContext& ctx);

  DeadlineQueue deadlines_;
  std::vector<uint32_t> rearm_;  // restored reporting devices without a deadline yet
  NoSignalStats stats_;
};

std::vector<std::unique_ptr<Rule>> BuildNoSignalRules(const RulesOptions& rules, const CityModel& city,
                                                      DeviceTable& devices);

}  // namespace cityloop::detect

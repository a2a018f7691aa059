// ThresholdDetector: a rules[] entry of kind threshold, evaluated on event
// time. For each device it keeps a small state machine:
//
//   normal --value beyond raise--> pending --held for `for`--> alarm (Signal)
//   pending --value not beyond raise--> normal
//   alarm --value back beyond clear (hysteresis)--> normal
//
// A reading older than the newest one applied for the device does not move
// it (counted as out of order); a repeated timestamp is a duplicate and
// ignored. Alarm transitions go through the RuleContext's gate (flapping).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "detect/rule.h"

namespace cityloop::detect {

struct ThresholdState {
  enum class Phase : uint8_t { kNormal = 0, kPending = 1, kAlarm = 2 };
  Phase phase = Phase::kNormal;
  int64_t since_ms = 0;    // when the value first went beyond raise
  int64_t last_ts_ms = 0;  // newest reading applied
  double peak = 0;         // most extreme value while pending/alarm
  std::string Encode() const;
  static std::optional<ThresholdState> Decode(std::string_view text);
  size_t Bytes() const { return 0; }
};

struct DeviceRuleStats {
  int64_t evaluated = 0;     // readings applied
  int64_t out_of_order = 0;  // readings older than the device's newest, or repeating its timestamp
  int64_t fired = 0;
};

class ThresholdDetector : public DeviceRule<ThresholdRule, ThresholdState> {
 public:
  static constexpr std::string_view kPrefix = "thr/";
  ThresholdDetector(const ThresholdRule& rule, const CityModel& city, DeviceTable& devices)
      : DeviceRule(rule, city, devices, kPrefix) {}

  std::vector<std::string> WatchedSensorKinds() const override { return {config().sensor_kind}; }
  void OnReading(const Reading& r, uint32_t device, RuleContext& ctx) override;

  const DeviceRuleStats& stats() const { return stats_; }

 private:
  struct Params {
    double raise;
    double clear;
    int64_t min_duration_ms;
  };
  Params ParamsFor(const std::string& device_id) const;
  bool Active(int64_t ts_ms) const;

  DeviceRuleStats stats_;
};

}  // namespace cityloop::detect

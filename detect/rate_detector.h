// RateDetector: a rules[] entry of kind rate, evaluated on event time. Per
// device it keeps the readings of the last `per` (a SampleBuffer) and, on
// each reading at `now`, the change over the look-back:
//
//   change = value(now) - value(oldest reading in [now - per, now])
//   scaled = change * per / (now - oldest_ts)      ("per `per`")
//
// judged only when now - oldest_ts >= min_span (per / 2 when 0). A rise rule
// (kAbove) measures scaled, a fall rule (kBelow) -scaled: the magnitude.
//
//   normal --magnitude >= rate--> alarm (one Signal)
//   alarm --magnitude < clear--> normal            (hysteresis)
//
// overrides.<device> replaces the rate of that device; its clear level is
// then min(clear, that rate). A reading at or before the device's newest
// timestamp is out of order (or a duplicate): counted and ignored. Alarm
// transitions go through the RuleContext's gate (flapping).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/rule.h"
#include "detect/window_aggregate.h"

namespace cityloop::detect {

struct RateState {
  enum class Phase : uint8_t { kNormal = 0, kAlarm = 1 };
  Phase phase = Phase::kNormal;
  SampleBuffer samples;  // the readings of the last `per`, oldest first
  std::string Encode() const;
  static std::optional<RateState> Decode(std::string_view bytes);
  size_t Bytes() const { return samples.Bytes(); }
};

struct RateRuleStats {
  int64_t evaluated = 0;     // readings applied
  int64_t out_of_order = 0;  // at or before the device's newest timestamp
  int64_t unjudged = 0;      // applied, but the look-back spanned less than min_span
  int64_t fired = 0;
};

class RateDetector : public DeviceRule<RateRule, RateState> {
 public:
  static constexpr std::string_view kPrefix = "rate/";
  RateDetector(const RateRule& rule, const CityModel& city, DeviceTable& devices);

  std::vector<std::string> WatchedSensorKinds() const override { return {config().sensor_kind}; }
  void OnReading(const Reading& r, uint32_t device, RuleContext& ctx) override;
  // Restores the state, with the sample capacity of the current config.
  Status Restore(std::string_view subject, std::string_view value) override;

  const RateRuleStats& stats() const { return stats_; }

 private:
  struct Params {
    double rate;
    double clear;
  };
  Params ParamsFor(const std::string& device_id) const;

  size_t capacity_;
  int64_t min_span_ms_;
  RateRuleStats stats_;
};

// The RuleFactory body of kind rate: one RateDetector per rules.rate entry.
std::vector<std::unique_ptr<Rule>> BuildRateRules(const RulesOptions& rules, const CityModel& city,
                                                  DeviceTable& devices);

}  // namespace cityloop::detect

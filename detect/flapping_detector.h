// FlappingDetector: a rules[] entry of kind flapping. It sees the alarm <->
// normal transitions of the rules it watches (rules: [ids]) for each device,
// through the RuleSet's TransitionGate, which forwards every transition of a
// rule to each FlappingDetector that Watches() it.
//
//   stable --more than `transitions` transitions within `within`--> flapping (one Signal)
//   flapping --no transition for `within` (event time)--> stable (counted, no signal)
//
// While a device flaps, every raised transition of a watched rule for it is
// suppressed (OnTransition returns true): the flapping signal stands for
// them. A suppressed raise still counts as a transition, and so does the
// clear that follows it.
//
// The window: a transition at t counts while t > newest - within (so N + 1
// transitions spanning less than `within` flap). Transitions may arrive out
// of order across rules; they are kept sorted, and at most transitions + 1
// of them (all that the decision needs).
//
// Event time: the stability deadline (last transition + within) runs on the
// watermark of the source of the input behind the newest transition
// (ctx.source of OnTransition). The source id is not persisted (dense ids are
// not stable across restarts, and the context names no source), so a device
// restored while flapping is re-armed conservatively: it turns stable once
// the lowest watermark of all sources (EventTime::MinWatermark) passes its
// deadline, or its next transition re-arms it on that transition's source.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/rule.h"

namespace cityloop::detect {

struct FlappingState {
  enum class Phase : uint8_t { kStable = 0, kFlapping = 1 };
  struct Transition {
    int64_t ts_ms = 0;
    uint16_t rule = 0;  // index into the rule's config().rules
  };
  Phase phase = Phase::kStable;
  int64_t flapping_since_ms = 0;   // the transition that made it flap
  int64_t last_transition_ms = 0;  // newest transition seen
  std::vector<Transition> recent;  // sorted by ts, within `within` of the newest
  std::string Encode() const;
  static std::optional<FlappingState> Decode(std::string_view text);
  size_t Bytes() const { return recent.capacity() * sizeof(Transition); }
};

struct FlappingStats {
  int64_t transitions = 0;  // watched transitions seen
  int64_t suppressed = 0;   // raised transitions suppressed
  int64_t fired = 0;        // devices that started flapping
  int64_t recovered = 0;    // devices stable again after `within` quiet
};

class FlappingDetector : public DeviceRule<FlappingRule, FlappingState> {
 public:
  static constexpr std::string_view kPrefix = "flap/";
  FlappingDetector(const FlappingRule& rule, const CityModel& city, DeviceTable& devices)
      : DeviceRule(rule, city, devices, kPrefix) {}

  // Whether rule_id is one of the watched rules.
  bool Watches(std::string_view rule_id) const { return RuleIndex(rule_id).has_value(); }
  // rule_id's alarm for device went on (raised) or off at event time ts;
  // ctx is the context of the rule that transitioned (its source, signals).
  // Returns true when the alarm must be suppressed: the device flaps.
  bool OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised, RuleContext& ctx);
  // Turns devices quiet for `within` stable again.
  bool WatchesWatermark() const override { return true; }
  void OnWatermark(RuleContext& ctx) override;
  // Restores the state; a flapping device is judged on the lowest watermark until re-armed.
  Status Restore(std::string_view subject, std::string_view value) override;
  // The states, plus the stability deadlines and the unsourced list.
  size_t StateBytes() const override;

  bool IsFlapping(std::string_view device_id) const;
  const FlappingStats& stats() const { return stats_; }

 private:
  std::optional<uint16_t> RuleIndex(std::string_view rule_id) const;
  void Record(FlappingState& st, int64_t ts_ms, uint16_t rule) const;
  void RaiseFlapping(uint32_t device, const FlappingState& st, RuleContext& ctx);
  void BecomeStable(uint32_t device);

  DeadlineQueue stable_at_;  // flapping devices: last transition + within, on their source
  std::vector<uint32_t> unsourced_;  // restored flapping devices: judged on the lowest watermark
  FlappingStats stats_;
};

std::vector<std::unique_ptr<Rule>> BuildFlappingRules(const RulesOptions& rules, const CityModel& city,
                                                      DeviceTable& devices);

}  // namespace cityloop::detect

// WindowDetector: a rules[] entry of kind window: an aggregate of a device's
// readings over epoch-aligned tumbling or sliding event-time windows
// ([end - size, end), end a multiple of slide; see window_aggregate.h),
// judged when the watermark of the device's source reaches the window's end.
//
//   normal --a judged window meets the condition--> alarm (one Signal)
//   alarm --a judged window does not--> normal
//
// The condition is aggregate >= level (above) or <= level (below), level per
// device from overrides. Windows are judged in order, each exactly once.
//
// Which windows are judged:
//  * A device's first reading opens its windows: the first one judged ends
//    after min(ts, watermark of its source), so readings that arrive later
//    but in time (within the allowed lateness) still count.
//  * count is judged for every window from then on, empty ones too (count
//    0), whatever min_samples says: that is what `count below` is for.
//  * The other aggregates judge a window only when it holds at least
//    max(1, min_samples) readings; emptier windows leave the state alone.
//
// Readings may arrive out of order: one is added as long as some window that
// contains it is not judged yet; later ones are counted in late_samples, a
// repeated timestamp in duplicates (the first value stays), and one that
// falls in no window (slide > size) in outside.
//
// Timers: each device has at most one deadline in a DeadlineQueue, the end
// of its oldest window not yet judged, on the watermark of its source (the
// partition of its newest reading). A device whose windows need nothing more
// (no readings ahead, aggregate not count) holds no deadline until its next
// reading.
//
// Persistence and restore: the state (buffer, phase, next window end, and
// the newest reading's position, cell and input ref, whose topic/partition
// names the source) goes through DeviceStates. A restored device is not yet
// bound to a source id (ids are dense per run): it is bound, and its deadline
// re-registered, as soon as any reading of that topic/partition reaches this
// rule (or the device's own). Until then its windows are judged on the lowest
// watermark of all sources, which never runs ahead of its own source once
// event time has been restored, so no judgement is lost when a device never
// reports again.
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

struct WindowState {
  enum class Phase : uint8_t { kNormal = 0, kAlarm = 1 };
  Phase phase = Phase::kNormal;
  int64_t next_end = EventTime::kNone;  // end of the oldest window not yet judged
  SampleBuffer samples;                 // what the open windows need
  // The newest reading's place and input, for the signals.
  LatLon position;
  int cell = -1;
  InputRef input;
  int64_t ingest_ms = 0;
  // Runtime only, not persisted: the source id the deadline runs on.
  uint16_t source = 0;
  bool bound = false;    // source is valid
  bool pending = false;  // restored, waiting to learn its source id

  std::string Encode() const;
  static std::optional<WindowState> Decode(std::string_view bytes);
  size_t Bytes() const { return samples.Bytes(); }
};

struct WindowRuleStats {
  int64_t evaluated = 0;     // readings added to a buffer
  int64_t duplicates = 0;    // repeated a timestamp already held
  int64_t late_samples = 0;  // their windows were judged already
  int64_t outside = 0;       // in no window (a gap between hopping windows)
  int64_t judged = 0;        // windows judged
  int64_t skipped = 0;       // windows with fewer than min_samples readings
  int64_t fired = 0;
};

class WindowDetector : public DeviceRule<WindowRule, WindowState> {
 public:
  static constexpr std::string_view kPrefix = "win/";
  WindowDetector(const WindowRule& rule, const CityModel& city, DeviceTable& devices);

  std::vector<std::string> WatchedSensorKinds() const override { return {config().sensor_kind}; }
  void OnReading(const Reading& r, uint32_t device, RuleContext& ctx) override;
  bool WatchesWatermark() const override { return true; }
  void OnWatermark(RuleContext& ctx) override;
  // Restores the state, then binds the device to its source or leaves it pending.
  Status Restore(std::string_view subject, std::string_view value) override;
  // The states, plus the deadlines and the pending list.
  size_t StateBytes() const override;

  std::optional<int64_t> DeadlineOf(std::string_view device_id) const {
    return deadlines_.DeadlineOf(devices_, device_id);
  }
  const WindowRuleStats& stats() const { return stats_; }
  const WindowSpec& spec() const { return spec_; }

 private:
  // Judges every window of device ending at or before watermark, in order,
  // then evicts what no open window needs and re-registers the deadline.
  void JudgeDue(uint32_t device, WindowState& st, int64_t watermark, RuleContext& ctx);
  void Judge(uint32_t device, WindowState& st, int64_t end, RuleContext& ctx);
  void Bind(uint32_t device, WindowState& st, uint16_t source);
  // A reading of a source not seen since the restore: binds the restored
  // devices of that source.
  void LearnSource(const Reading& r, uint16_t source);
  double LevelFor(const std::string& device_id) const;

  WindowSpec spec_;
  bool valid_;
  size_t capacity_;
  DeadlineQueue deadlines_;
  std::vector<uint32_t> pending_;         // restored devices not bound yet
  std::vector<std::string> source_names_;  // by source id, learned from readings while pending_
  WindowRuleStats stats_;
};

// The RuleFactory body of kind window: one WindowDetector per rules.window entry.
std::vector<std::unique_ptr<Rule>> BuildWindowRules(const RulesOptions& rules, const CityModel& city,
                                                    DeviceTable& devices);

}  // namespace cityloop::detect

// RuleSet: every detection rule of the config, with the engine's event time.
// Inputs (readings, camera detections, reports) go in; Signals come out. For
// each input it:
//   1. observes its event time on its source (topic/partition); an input older
//      than the source's watermark is late and, under late_events: drop, is
//      not applied (the caller dead-letters it);
//   2. hands it to the rules that watch it (by sensor kind, detections);
//   3. offers the moved watermark to every rule (windows close, silences show);
//   4. offers every signal raised to the correlation rules.
// Rules are built by kind from the RuleRegistry. Reload() swaps in a new rule
// set, keeping the objects (and state) of rules whose config did not change
// and releasing the state of removed or changed ones.
//
// Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/city.h"
#include "core/event_time.h"
#include "core/model.h"
#include "detect/camera/camera_analytics.h"
#include "detect/rule.h"

namespace cityloop::detect {

enum class Admission { kOnTime, kLateApplied, kLateDropped };

struct ReloadSummary {
  int kept = 0;     // unchanged: state kept
  int added = 0;
  int changed = 0;  // same id, new settings: state reset
  int removed = 0;  // state released
};

// Key prefix of the event-time entries in the state column family.
inline constexpr std::string_view kEventTimePrefix = "wm/";

class RuleSet : private TransitionGate {
 public:
  // live: event time also advances from the wall clock (streaming service);
  // false for replay.
  RuleSet(std::shared_ptr<const CityModel> city, bool live);
  ~RuleSet() override;

  Admission OnReading(const Reading& r, int64_t wall_ms, std::vector<Signal>* out);
  Admission OnDetections(const CameraDetections& d, int64_t wall_ms, std::vector<Signal>* out);
  // One camera frame: admitted on its event time, analysed (camera analytics),
  // and what it raised offered to the correlations. *result says whether it
  // was analysed, skipped or is no JPEG (then the caller dead-letters it).
  Admission OnFrame(const CameraFrame& f, int64_t wall_ms, std::vector<Signal>* out, camera::FrameResult* result);
  // A report is a signal by itself: appends it, then what correlations make of it.
  Admission OnReport(const Report& rep, int64_t wall_ms, std::vector<Signal>* out);
  // An input no rule watches (unit positions, operator commands): only its
  // event time counts, so SLA timers move with every topic.
  Admission Observe(const InputRef& input, int64_t ts_ms, int64_t wall_ms, std::vector<Signal>* out);
  // The alarms that ended (sensor rules back to normal) since the last call, in order.
  void TakeRecoveries(std::vector<Recovery>* out);
  // Live mode: moves idle sources on from the wall clock and offers the
  // watermark to the rules.
  // Returns whether any source's event time moved.
  bool Tick(int64_t wall_ms, std::vector<Signal>* out);

  ReloadSummary Reload(std::shared_ptr<const CityModel> city);

  // State changed since the last call (deletions first), event time included.
  void TakeDirty(std::vector<StateEntry>* out);
  // Loads one persisted entry of any prefix in StatePrefixes(). An entry of a
  // rule that no longer exists is scheduled for deletion.
  Status Restore(std::string_view key, std::string_view value, int64_t wall_ms);
  static std::vector<std::string> StatePrefixes();

  const EventTime& time() const { return time_; }
  camera::CameraAnalytics& camera() { return camera_; }
  const std::vector<std::unique_ptr<Rule>>& rules() const { return rules_; }
  const Rule* Find(std::string_view id) const;
  size_t StateBytes() const;
  size_t device_count() const { return devices_.size(); }

 private:
  bool OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised) override;
  RuleContext Context(std::vector<Signal>* out);
  Admission Admit(const InputRef& input, int64_t ts_ms, int64_t wall_ms, uint16_t* source, bool* moved);
  // Admits one input, runs apply(ctx) on its source, then the watermark and
  // the correlations: the common frame of every input kind.
  template <typename Apply>
  Admission Run(const InputRef& input, int64_t ts_ms, int64_t wall_ms, std::vector<Signal>* out, Apply apply);
  void OfferWatermark(std::vector<Signal>* out);
  // Offers out[from..] to the correlation rules; appends what they raise.
  void Correlate(size_t from, std::vector<Signal>* out);
  void Index();
  void Release(const Rule& rule);

  std::vector<std::shared_ptr<const CityModel>> cities_;  // every model a kept rule may still refer to
  EventTime time_;
  DeviceTable devices_;
  std::vector<std::unique_ptr<Rule>> rules_;
  // Dispatch tables, rebuilt by Index().
  std::vector<std::pair<std::string, std::vector<Rule*>>> by_sensor_kind_;
  std::vector<Rule*> every_sensor_, detections_, correlations_, timed_;
  std::vector<class FlappingDetector*> flapping_;
  std::vector<StateEntry> released_;  // deletions not yet taken
  std::vector<Recovery> recoveries_;  // not yet taken
  RuleContext* current_ = nullptr;    // during a dispatch, for the gate
  std::string last_topic_;                  // topic of the previous input...
  std::vector<int> sources_of_last_topic_;  // ...and its partitions' sources (-1: not yet known)
  int64_t offered_watermark_ = EventTime::kNone;
  camera::CameraAnalytics camera_;
  int64_t camera_expired_at_ = EventTime::kNone;  // the lowest watermark camera events were last expired at
};

// Registers the built-in kinds (threshold, rate, window, no_signal,
// flapping, correlation, camera) in registry.
void RegisterBuiltinRules(RuleRegistry& registry);

}  // namespace cityloop::detect

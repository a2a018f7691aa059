// RuleHarness: drives one detect::Rule the way the RuleSet does, on event
// time alone (no wall clock): a reading is observed on its partition's
// source, handed to the rule, then the watermark is offered to the rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/event_time.h"
#include "detect/rule.h"
#include "tests/support/test_city.h"

namespace cityloop::testing {

inline constexpr int64_t kT0 = 1764316800000;  // 2025-11-28T08:00Z, 16:00 in the test city
inline constexpr int64_t kSec = 1000;
inline constexpr int64_t kMin = 60000;

// Alarm transitions as a gate saw them: (event time after kT0, raised).
using Transitions = std::vector<std::pair<int64_t, bool>>;

// A TransitionGate that records every transition it sees, and lets them all
// through or (suppress) suppresses every raise. Set it with
// RuleHarness::set_gate.
class RecordingGate : public detect::TransitionGate {
 public:
  explicit RecordingGate(bool suppress = false) : suppress_(suppress) {}
  bool OnTransition(std::string_view /*rule_id*/, uint32_t /*device*/, int64_t ts_ms, bool raised) override {
    seen_.emplace_back(ts_ms - kT0, raised);
    return suppress_ && raised;
  }
  const Transitions& seen() const { return seen_; }

 private:
  bool suppress_;
  Transitions seen_;
};

class RuleHarness {
 public:
  explicit RuleHarness(const Config& config = TestConfig(), int64_t allowed_lateness_ms = 0)
      : city_(TestCity(config)), time_(allowed_lateness_ms, 10000, /*live=*/false) {}

  const CityModel& city() const { return *city_; }
  detect::DeviceTable& devices() { return devices_; }
  EventTime& time() { return time_; }

  // Feeds one reading (cell and position from the device registry when it is
  // registered) on partition `partition`; returns the signals raised, from
  // the reading and from the watermark it moved. A late reading is skipped
  // (as with late_events: drop) and counted in late().
  std::vector<Signal> Feed(detect::Rule& rule, const std::string& device, const std::string& kind, int64_t ts,
                           double value, int partition = 0) {
    Reading r;
    r.device_id = device;
    r.kind = kind;
    r.ts_ms = ts;
    r.value = value;
    if (const Device* d = city_->FindDevice(device)) {
      r.position = d->position;
      r.registered = true;
    }
    return FeedReading(rule, std::move(r), partition);
  }

  // Feeds a reading the caller built (e.g. an unregistered device at a
  // position) like Feed: its cell comes from its position, its input is the
  // next offset of `partition`.
  std::vector<Signal> FeedReading(detect::Rule& rule, Reading r, int partition = 0) {
    const CellInfo* cell = city_->CellAt(r.position);
    r.cell = cell ? cell->index : 0;
    r.input = {"city.sensors", partition, offset_++};
    const uint16_t source = time_.Source("city.sensors", partition);
    std::vector<Signal> out;
    if (time_.Observe(source, r.ts_ms, 0)) {
      ++late_;
      return out;
    }
    detect::RuleContext ctx = Context(&out);
    ctx.source = source;
    ctx.watermark_ms = time_.Watermark(source);
    rule.OnReading(r, devices_.Intern(r.device_id), ctx);
    Offer(rule, &out);
    return out;
  }

  // Moves event time of `partition` to ts as if another device had reported
  // there; returns the signals the rule raised on the new watermark.
  std::vector<Signal> AdvanceTo(detect::Rule& rule, int64_t ts, int partition = 0) {
    time_.Observe(time_.Source("city.sensors", partition), ts, 0);
    std::vector<Signal> out;
    Offer(rule, &out);
    return out;
  }

  // Offers a signal (from another rule or a report) to a correlation rule.
  std::vector<Signal> Offer(detect::Rule& rule, const Signal& s) {
    std::vector<Signal> out;
    detect::RuleContext ctx = Context(&out);
    ctx.watermark_ms = time_.MinWatermark();
    rule.OnSignal(s, ctx);
    return out;
  }

  // The context the RuleSet gives a rule for an input on `partition`: that
  // source and its watermark; signals go to out. For calling a rule (or a
  // flapping detector's OnTransition) directly.
  detect::RuleContext ContextFor(std::vector<Signal>* out, int partition = 0) {
    detect::RuleContext ctx = Context(out);
    ctx.source = time_.Source("city.sensors", partition);
    ctx.watermark_ms = time_.Watermark(ctx.source);
    return ctx;
  }

  // A restart in small: takes the entries `from` changed (TakeDirty) and
  // restores each into `to` (a fresh rule of the same config), with the
  // subject as the store hands it back (the key after "<prefix><rule>/").
  // Returns the first failure; *count gets the number of entries moved.
  static Status CarryOverState(detect::Rule& from, detect::Rule& to, size_t* count = nullptr) {
    std::vector<detect::StateEntry> dirty;
    from.TakeDirty(&dirty);
    if (count != nullptr) *count = dirty.size();
    const std::string prefix = std::string(from.state_prefix()) + from.id() + "/";
    for (const detect::StateEntry& e : dirty) {
      if (e.key.rfind(prefix, 0) != 0) return Status::Internal("state key outside the rule: " + e.key);
      if (!e.value) continue;
      if (Status st = to.Restore(e.key.substr(prefix.size()), *e.value); !st.ok()) return st;
    }
    return Status::Ok();
  }

  void set_gate(detect::TransitionGate* gate) { gate_ = gate; }
  int late() const { return late_; }

 private:
  detect::RuleContext Context(std::vector<Signal>* out) {
    detect::RuleContext ctx;
    ctx.city = city_.get();
    ctx.devices = &devices_;
    ctx.time = &time_;
    ctx.signals = out;
    ctx.gate = gate_;
    return ctx;
  }
  void Offer(detect::Rule& rule, std::vector<Signal>* out) {
    detect::RuleContext ctx = Context(out);
    ctx.watermark_ms = time_.MaxWatermark();
    rule.OnWatermark(ctx);
  }

  std::shared_ptr<const CityModel> city_;
  detect::DeviceTable devices_;
  EventTime time_;
  detect::TransitionGate* gate_ = nullptr;
  int64_t offset_ = 0;
  int late_ = 0;
};

}  // namespace cityloop::testing

// Rule: one configured detection rule (an entry of rules[] in the config)
// together with the state it keeps per device (or camera, or cell). The
// RuleSet (detect/rule_set.h) owns every Rule, hands each input to the rules
// that watch it, advances event time, and persists the state they changed.
//
// Rules are registered by kind name in a registry (RuleRegistry): the config
// kind "threshold" builds a ThresholdRule evaluator, and so on. Hot reload
// keeps a Rule object whose config did not change, state and all.
//
// Everything here is owned and called by one engine thread.
#pragma once

#include <charconv>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/event_time.h"
#include "core/model.h"
#include "core/status.h"

namespace cityloop::detect {

// State encoders write "v1 v2 ..." with these: std::to_chars, the shortest
// text that reads back to the same value (a double exactly), and no locale.
template <typename T>
void AppendStateField(std::string* out, T v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  if (!out->empty()) out->push_back(' ');
  out->append(buf, r.ptr);
}

// Dense numbering of device (and camera) ids, shared by every rule, so that an
// input costs one hash look-up however many rules watch it. Ids are never
// removed; the table lives as long as the engine.
class DeviceTable {
 public:
  uint32_t Intern(std::string_view id);
  std::optional<uint32_t> Find(std::string_view id) const;
  const std::string& Id(uint32_t index) const { return ids_[index]; }
  size_t size() const { return ids_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> index_;
  std::vector<std::string> ids_;
};

// Rules that watch the alarms of other rules (flapping) see every
// alarm <-> normal transition through this gate, and may suppress the alarm.
class TransitionGate {
 public:
  virtual ~TransitionGate() = default;
  // rule_id's alarm for device went on (raised) or off at event time ts.
  // Returns true when the alarm must not raise a signal (the device flaps).
  virtual bool OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised) = 0;
};

// What a rule sees while it runs and where its decisions go.
struct RuleContext {
  const CityModel* city = nullptr;
  const DeviceTable* devices = nullptr;
  // Rules may intern sources (EventTime::Source) to re-arm restored timers.
  EventTime* time = nullptr;
  // OnReading/OnDetections: the input's source (topic/partition) in `time`.
  uint16_t source = 0;
  // The watermark of `source` (OnReading), the highest of all sources
  // (OnWatermark) or the lowest (OnSignal): event time up to which input is
  // complete.
  int64_t watermark_ms = EventTime::kNone;
  std::vector<Signal>* signals = nullptr;  // out: signals raised
  TransitionGate* gate = nullptr;     // may be null: nothing watches transitions
  // Reports a transition to the gate; true when the alarm is suppressed.
  bool Transition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised) const {
    return gate != nullptr && gate->OnTransition(rule_id, device, ts_ms, raised);
  }
};

// One state entry to write ("<prefix><rule>/<subject>" -> value), or to
// delete when value is nullopt.
struct StateEntry {
  std::string key;
  std::optional<std::string> value;
};

class Rule {
 public:
  virtual ~Rule() = default;

  // The config of the rule: id, category, priority, opens_case.
  virtual const RuleBase& base() const = 0;
  const std::string& id() const { return base().id; }
  // Key prefix of this kind's entries in the state column family, e.g. "thr/".
  virtual std::string_view state_prefix() const = 0;
  // Whether the rule's config equals other's (same kind, same settings): an
  // unchanged rule keeps its state over a reload.
  virtual bool SameConfig(const Rule& other) const = 0;

  // Inputs. Each kind overrides what it consumes; the RuleSet only calls a
  // rule for the inputs its Watches*() declare.
  virtual std::vector<std::string> WatchedSensorKinds() const { return {}; }  // empty: none
  virtual bool WatchesEverySensor() const { return false; }
  virtual bool WatchesDetections() const { return false; }
  virtual bool WatchesSignals() const { return false; }
  // device: r.device_id interned in ctx.devices.
  virtual void OnReading(const Reading& /*r*/, uint32_t /*device*/, RuleContext& /*ctx*/) {}
  virtual void OnDetections(const CameraDetections& /*d*/, uint32_t /*camera*/, RuleContext& /*ctx*/) {}
  // A signal raised by another rule or a report (never one from a correlation).
  virtual void OnSignal(const Signal& /*s*/, RuleContext& /*ctx*/) {}
  // The watermark moved to ctx.watermark_ms: close windows, notice silences.
  // Only called on rules whose WatchesWatermark() is true (it moves on
  // almost every reading).
  virtual bool WatchesWatermark() const { return false; }
  virtual void OnWatermark(RuleContext& /*ctx*/) {}

  // Persistence. TakeDirty appends the entries changed since the last call.
  virtual void TakeDirty(std::vector<StateEntry>* out) = 0;
  // Loads one persisted entry; subject is the key after "<prefix><rule>/".
  virtual Status Restore(std::string_view subject, std::string_view value) = 0;
  // Every key the rule holds in the store (for release when it is removed).
  virtual void ForEachStateKey(const std::function<void(std::string)>& visit) const = 0;
  // Bytes of state held in memory (for the benchmark and /metrics).
  virtual size_t StateBytes() const = 0;
};

// Builds rule objects from a config's rules section, by kind.
using RuleFactory = std::function<std::vector<std::unique_ptr<Rule>>(const RulesOptions&, const CityModel&,
                                                                     DeviceTable&)>;
class RuleRegistry {
 public:
  static RuleRegistry& Global();
  void Register(std::string kind, RuleFactory factory);
  // Every rule of the config, in kind registration order, each kind in config order.
  std::vector<std::unique_ptr<Rule>> Build(const RulesOptions& rules, const CityModel& city,
                                           DeviceTable& devices) const;
  std::vector<std::string> kinds() const;

 private:
  std::vector<std::pair<std::string, RuleFactory>> factories_;
};

// The common part of a Signal raised from a reading by rule `rule`.
Signal SignalFromReading(const RuleBase& rule, const CityModel& city, const Reading& r);
// What every signal of a rule carries: source, category, priority, rule id, opens_case.
Signal RuleSignal(const RuleBase& rule, const CityModel& city, SignalSource source);
// For device-level rules whose signals are not raised from a reading
// (no_signal, flapping): the common part of a Signal about device_id raised by rule: source sensor,
// category, priority, rule id, opens_case, and cell/position from the device
// registry when the device is registered (otherwise cell -1).
Signal SignalForDevice(const RuleBase& rule, const CityModel& city, const std::string& device_id);
// Priority of the rule, else of its category, else normal.
Priority RulePriority(const RuleBase& rule, const CityModel& city);

// Per-device state of a device-level rule: a dense vector indexed by the
// DeviceTable index, dirty tracking, and the key/value encoding glue. State
// must provide `std::string Encode() const`, `static std::optional<State>
// Decode(std::string_view)` and `size_t Bytes() const`.
template <typename State>
class DeviceStates {
 public:
  // The state of device, created on first use.
  State& At(uint32_t device) {
    if (device >= states_.size()) {
      states_.resize(device + 1);
      present_.resize(device + 1, 0);
      dirty_flag_.resize(device + 1, 0);
    }
    present_[device] = 1;
    return states_[device];
  }
  const State* Find(uint32_t device) const {
    return device < states_.size() && present_[device] ? &states_[device] : nullptr;
  }
  bool Has(uint32_t device) const { return device < present_.size() && present_[device]; }
  void MarkDirty(uint32_t device) {
    if (!dirty_flag_[device]) {
      dirty_flag_[device] = 1;
      dirty_.push_back(device);
    }
  }
  // Calls visit(device, state) for every present device.
  template <typename Visit>
  void ForEach(Visit visit) {
    for (uint32_t d = 0; d < states_.size(); ++d) {
      if (present_[d]) visit(d, states_[d]);
    }
  }
  void TakeDirty(std::string_view prefix, const std::string& rule_id, const DeviceTable& devices,
                 std::vector<StateEntry>* out) {
    for (uint32_t d : dirty_) {
      dirty_flag_[d] = 0;
      out->push_back({Key(prefix, rule_id, devices.Id(d)), states_[d].Encode()});
    }
    dirty_.clear();
  }
  Status Restore(DeviceTable& devices, std::string_view subject, std::string_view value) {
    auto s = State::Decode(value);
    if (!s) return Status::DataLoss("bad rule state for device " + std::string(subject));
    At(devices.Intern(subject)) = std::move(*s);
    return Status::Ok();
  }
  void ForEachKey(std::string_view prefix, const std::string& rule_id, const DeviceTable& devices,
                  const std::function<void(std::string)>& visit) const {
    for (uint32_t d = 0; d < states_.size(); ++d) {
      if (present_[d]) visit(Key(prefix, rule_id, devices.Id(d)));
    }
  }
  size_t Bytes() const {
    size_t n = states_.capacity() * sizeof(State) + present_.capacity() + dirty_flag_.capacity();
    for (uint32_t d = 0; d < states_.size(); ++d) {
      if (present_[d]) n += states_[d].Bytes();
    }
    return n;
  }
  static std::string Key(std::string_view prefix, const std::string& rule_id, const std::string& subject) {
    std::string k(prefix);
    k.append(rule_id).append("/").append(subject);
    return k;
  }

 private:
  std::vector<State> states_;
  std::vector<uint8_t> present_;
  std::vector<uint8_t> dirty_flag_;
  std::vector<uint32_t> dirty_;
};

// A Rule built from one config struct (ThresholdRule, RateRule, ...): holds
// it, and compares it for SameConfig.
template <typename Config>
class ConfiguredRule : public Rule {
 public:
  explicit ConfiguredRule(Config config) : config_(std::move(config)) {}
  const RuleBase& base() const override { return config_; }
  const Config& config() const { return config_; }
  bool SameConfig(const Rule& other) const override {
    const auto* o = dynamic_cast<const ConfiguredRule<Config>*>(&other);
    return o != nullptr && o->config_ == config_;
  }

 private:
  Config config_;
};

// A rule whose state is one State per device (or camera): the persistence
// glue over DeviceStates. Subclasses implement the inputs; a subclass that
// needs more on Restore (re-arming timers) overrides it and calls this one.
template <typename Config, typename State>
class DeviceRule : public ConfiguredRule<Config> {
 public:
  DeviceRule(const Config& config, const CityModel& city, DeviceTable& devices, std::string_view prefix)
      : ConfiguredRule<Config>(config), city_(city), devices_(devices), prefix_(prefix) {}

  std::string_view state_prefix() const override { return prefix_; }
  void TakeDirty(std::vector<StateEntry>* out) override { states_.TakeDirty(prefix_, this->id(), devices_, out); }
  Status Restore(std::string_view subject, std::string_view value) override {
    return states_.Restore(devices_, subject, value);
  }
  void ForEachStateKey(const std::function<void(std::string)>& visit) const override {
    states_.ForEachKey(prefix_, this->id(), devices_, visit);
  }
  size_t StateBytes() const override { return states_.Bytes(); }

  // The state of a device by id, or nullptr (for tests and the console).
  const State* StateFor(std::string_view device_id) const {
    auto d = devices_.Find(device_id);
    return d ? states_.Find(*d) : nullptr;
  }

 protected:
  const CityModel& city_;
  DeviceTable& devices_;
  DeviceStates<State> states_;

 private:
  std::string_view prefix_;
};

// One Detector per config entry of a kind: the body of most RuleFactories.
template <typename Detector, typename Config>
std::vector<std::unique_ptr<Rule>> BuildEach(const std::vector<Config>& configs, const CityModel& city,
                                             DeviceTable& devices) {
  std::vector<std::unique_ptr<Rule>> out;
  for (const Config& c : configs) out.push_back(std::make_unique<Detector>(c, city, devices));
  return out;
}

// Event-time timers of a device-level rule: at most one deadline per device,
// due when the watermark of the device's source passes it. Moving a deadline
// later (every reading of a no_signal device does) costs no tree operation:
// the queued entry stays where it was and is moved when it comes up.
class DeadlineQueue {
 public:
  // Sets (or moves) device's deadline; source is the device's input source.
  void Set(uint32_t device, uint16_t source, int64_t deadline_ms);
  void Cancel(uint32_t device);
  std::optional<int64_t> DeadlineOf(uint32_t device) const;
  // The deadline of a device by id (none when devices does not know it).
  std::optional<int64_t> DeadlineOf(const DeviceTable& devices, std::string_view device_id) const {
    auto d = devices.Find(device_id);
    return d ? DeadlineOf(*d) : std::nullopt;
  }
  // Removes and visits (device, deadline) for every deadline at or before
  // the watermark of its device's source, earliest first.
  void PopDue(const EventTime& time, const std::function<void(uint32_t, int64_t)>& visit);
  size_t size() const { return live_; }  // deadlines set
  size_t Bytes() const { return queue_.size() * 48 + at_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    int64_t deadline = EventTime::kNone;  // kNone: none set
    int64_t queued = EventTime::kNone;    // the key of its entry in queue_ (<= deadline), kNone: none
    uint16_t source = 0;
  };
  void Enqueue(uint32_t device, Slot& slot);
  size_t live_ = 0;
  std::set<std::pair<int64_t, uint32_t>> queue_;
  std::vector<Slot> at_;  // by device
};

// Whether a rule restricted to `devices` (empty = all) applies to id.
bool AppliesTo(const std::vector<std::string>& devices, std::string_view id);

}  // namespace cityloop::detect

// ThresholdDetector: the per-device threshold rules of the config (rules[]
// with kind: threshold), evaluated on event time. For each (rule, device) it
// keeps a small state machine:
//
//   normal --value beyond raise--> pending --held for `for`--> alarm (Signal)
//   pending --value not beyond raise--> normal
//   alarm --value back beyond clear (hysteresis)--> normal
//
// A reading older than the last one seen for the pair does not move it (it is
// counted as out of order). State is persisted by the caller in the same
// WriteBatch as the input offsets: TakeDirty() after each batch, Restore() on
// start. Owned and called by one engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/model.h"

namespace cityloop::detect {

// Key prefix of this detector's entries in the state column family.
inline constexpr std::string_view kThresholdStatePrefix = "thr/";

struct ThresholdState {
  enum class Phase : uint8_t { kNormal = 0, kPending = 1, kAlarm = 2 };
  Phase phase = Phase::kNormal;
  int64_t since_ms = 0;   // when the value first went beyond raise
  int64_t last_ts_ms = 0; // newest reading applied
  double peak = 0;        // most extreme value while pending/alarm
};

struct DetectorStats {
  int64_t evaluated = 0;    // (rule, reading) evaluations
  int64_t out_of_order = 0; // readings older than the pair's last one
  int64_t fired = 0;
};

class ThresholdDetector {
 public:
  explicit ThresholdDetector(std::shared_ptr<const CityModel> city);

  // Applies r to every rule watching its kind and device; appends a Signal
  // for each rule whose condition has now held for its minimum duration.
  void OnReading(const Reading& r, std::vector<Signal>* out);

  // State changed since the last call: key -> encoded state.
  std::vector<std::pair<std::string, std::string>> TakeDirty();
  // Loads one persisted entry (key with kThresholdStatePrefix).
  Status Restore(std::string_view key, std::string_view value);

  const ThresholdState* StateFor(std::string_view rule_id, std::string_view device_id) const;
  const DetectorStats& stats() const { return stats_; }
  // Whether any rule watches this sensor kind.
  bool Watches(std::string_view kind) const;

 private:
  struct Params {
    double raise;
    double clear;
    int64_t min_duration_ms;
  };
  Params ParamsFor(const ThresholdRule& rule, const std::string& device_id) const;
  bool Active(const ThresholdRule& rule, int64_t ts_ms) const;
  size_t RuleIndex(std::string_view rule_id) const;  // rules_.size() when unknown
  Signal MakeSignal(const ThresholdRule& rule, const Reading& r, const ThresholdState& st, const Params& p) const;

  struct Entry {
    ThresholdState state;
    bool dirty = false;
  };
  using DeviceStates = std::unordered_map<std::string, Entry>;  // by device id

  std::shared_ptr<const CityModel> city_;
  const std::vector<ThresholdRule>& rules_;
  std::unordered_map<std::string, std::vector<size_t>> rules_by_kind_;  // kind -> rule indexes
  std::vector<DeviceStates> states_;                                    // by rule index
  // Entries changed since TakeDirty (map nodes are stable across rehashing).
  std::vector<std::pair<size_t, DeviceStates::value_type*>> dirty_;
  DetectorStats stats_;
};

std::string EncodeThresholdState(const ThresholdState& s);
std::optional<ThresholdState> DecodeThresholdState(std::string_view text);

}  // namespace cityloop::detect

// CorrelationDetector: a rules[] entry of kind correlation. It remembers the
// recent signals of each member (by rule id or category) for `within`, and
// when every member has a signal within `within` of the newest one and inside
// the spatial scope (same cell, neighbouring cells, same district, radius)
// it raises one combined Signal naming the member signals. A member signal is
// used in at most one combination.
//
// Signals are offered in the order they were raised, which across topics is
// not event-time order: a member's signal is forgotten once the lowest
// watermark of all input partitions AND every other member's newest signal
// are more than `within` past it (or beyond kMaxRemembered per member) — a
// partition that lags holds it, and so does a topic not read at all yet,
// which has no watermark.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/rule.h"

namespace cityloop::detect {

class CorrelationDetector : public ConfiguredRule<CorrelationRule> {
 public:
  static constexpr std::string_view kPrefix = "corr/";
  CorrelationDetector(const CorrelationRule& rule, const CityModel& city, DeviceTable& devices);

  std::string_view state_prefix() const override { return kPrefix; }
  bool WatchesSignals() const override { return true; }
  void OnSignal(const Signal& s, RuleContext& ctx) override;
  void TakeDirty(std::vector<StateEntry>* out) override;
  Status Restore(std::string_view subject, std::string_view value) override;
  void ForEachStateKey(const std::function<void(std::string)>& visit) const override;
  size_t StateBytes() const override;

  // A remembered member signal: what a combination needs of it.
  struct Seen {
    std::string id;
    std::string rule_id;
    int cell = -1;
    LatLon position;
    int64_t ts_ms = 0;
    int64_t ingest_ms = 0;
    double value = 0;
  };

 private:
  bool Matches(const CorrelationMember& m, const Signal& s) const;
  bool InScope(const Seen& a, const Seen& b) const;
  void Forget(size_t member, int64_t lowest_watermark);
  // At most this many remembered signals per member (a member whose partner
  // never fires must not grow without bound).
  static constexpr size_t kMaxRemembered = 256;

  const CityModel& city_;
  std::vector<std::deque<Seen>> recent_;  // by member index, oldest first
  std::vector<int64_t> newest_;           // by member index: newest signal time seen (kNone: none yet)
  std::vector<uint8_t> dirty_;            // by member index
};

}  // namespace cityloop::detect

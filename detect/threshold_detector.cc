#include "detect/threshold_detector.h"

#include <cstdio>

#include "core/time_util.h"

namespace cityloop::detect {
namespace {

bool Beyond(ThresholdDirection dir, double v, double level) {
  return dir == ThresholdDirection::kAbove ? v >= level : v <= level;
}

bool MoreExtreme(ThresholdDirection dir, double v, double than) {
  return dir == ThresholdDirection::kAbove ? v > than : v < than;
}

}  // namespace

std::string ThresholdState::Encode() const {
  std::string out;
  AppendStateField(&out, static_cast<int>(phase));
  AppendStateField(&out, since_ms);
  AppendStateField(&out, last_ts_ms);
  AppendStateField(&out, peak);
  return out;
}

std::optional<ThresholdState> ThresholdState::Decode(std::string_view text) {
  ThresholdState s;
  int phase = 0;
  long long since = 0, last = 0;
  double peak = 0;
  std::string copy(text);
  if (std::sscanf(copy.c_str(), "%d %lld %lld %lg", &phase, &since, &last, &peak) != 4 || phase < 0 || phase > 2) {
    return std::nullopt;
  }
  s.phase = static_cast<Phase>(phase);
  s.since_ms = since;
  s.last_ts_ms = last;
  s.peak = peak;
  return s;
}

ThresholdDetector::Params ThresholdDetector::ParamsFor(const std::string& device_id) const {
  const ThresholdRule& rule = config();
  Params p{rule.raise, rule.clear, rule.min_duration_ms};
  if (rule.overrides.empty()) return p;
  if (auto it = rule.overrides.find(device_id); it != rule.overrides.end()) {
    if (it->second.raise) p.raise = *it->second.raise;
    if (it->second.clear) p.clear = *it->second.clear;
    else if (it->second.raise) p.clear = *it->second.raise;
    if (it->second.min_duration_ms) p.min_duration_ms = *it->second.min_duration_ms;
  }
  return p;
}

bool ThresholdDetector::Active(int64_t ts_ms) const {
  if (!config().active_hours) return true;
  const auto [from, to] = *config().active_hours;
  const int h = LocalHour(ts_ms, city_.config().city.utc_offset_minutes);
  return from <= to ? (h >= from && h < to) : (h >= from || h < to);
}

void ThresholdDetector::OnReading(const Reading& r, uint32_t device, RuleContext& ctx) {
  const ThresholdRule& rule = config();
  if (!AppliesTo(rule.devices, r.device_id)) return;
  const bool fresh = !states_.Has(device);
  ThresholdState& st = states_.At(device);
  if (!fresh && r.ts_ms <= st.last_ts_ms) {
    ++stats_.out_of_order;
    return;
  }
  ++stats_.evaluated;
  st.last_ts_ms = r.ts_ms;
  const Params p = ParamsFor(r.device_id);
  // Outside its active hours a rule holds nothing: a lamp that is off by day is normal.
  const bool active = Active(r.ts_ms);
  const bool beyond = active && Beyond(rule.direction, r.value, p.raise);
  switch (st.phase) {
    case ThresholdState::Phase::kNormal:
      if (beyond) {
        st.phase = ThresholdState::Phase::kPending;
        st.since_ms = r.ts_ms;
        st.peak = r.value;
      }
      break;
    case ThresholdState::Phase::kPending:
      if (!beyond) {
        st.phase = ThresholdState::Phase::kNormal;
      } else if (MoreExtreme(rule.direction, r.value, st.peak)) {
        st.peak = r.value;
      }
      break;
    case ThresholdState::Phase::kAlarm:
      if (!active || !Beyond(rule.direction, r.value, p.clear)) {
        st.phase = ThresholdState::Phase::kNormal;
        ctx.Transition(rule.id, device, r.ts_ms, /*raised=*/false);
      } else if (MoreExtreme(rule.direction, r.value, st.peak)) {
        st.peak = r.value;
      }
      break;
  }
  if (st.phase == ThresholdState::Phase::kPending && r.ts_ms - st.since_ms >= p.min_duration_ms) {
    st.phase = ThresholdState::Phase::kAlarm;
    if (!ctx.Transition(rule.id, device, r.ts_ms, /*raised=*/true)) {
      ++stats_.fired;
      Signal s = SignalFromReading(rule, city_, r);
      s.id = rule.id + ":" + r.device_id + ":" + std::to_string(st.since_ms);
      s.ts_ms = st.since_ms;
      s.value = st.peak;
      s.threshold = p.raise;
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s %s %g (peak %g) for %llds", r.kind.c_str(),
                    rule.direction == ThresholdDirection::kAbove ? ">=" : "<=", p.raise, st.peak,
                    static_cast<long long>((r.ts_ms - st.since_ms) / 1000));
      s.explanation = buf;
      ctx.signals->push_back(std::move(s));
    }
  }
  // Every applied reading moves last_ts, so the device is persisted with the batch's offsets.
  states_.MarkDirty(device);
}

}  // namespace cityloop::detect

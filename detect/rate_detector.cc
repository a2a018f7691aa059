#include "detect/rate_detector.h"

#include <algorithm>
#include <cstdio>

namespace cityloop::detect {
namespace {

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string RateState::Encode() const {
  return EncodeState([&](StateWriter& w) {
    w.Byte(static_cast<uint8_t>(phase));
    samples.EncodeTo(w);
  });
}

std::optional<RateState> RateState::Decode(std::string_view bytes) {
  return DecodeState(bytes, [](StateReader& r) -> std::optional<RateState> {
    uint8_t phase = 0;
    if (!r.Byte(&phase) || phase > 1) return std::nullopt;
    auto samples = SampleBuffer::DecodeFrom(r);
    if (!samples) return std::nullopt;
    RateState s;
    s.phase = static_cast<Phase>(phase);
    s.samples = std::move(*samples);
    return s;
  });
}

RateDetector::RateDetector(const RateRule& rule, const CityModel& city, DeviceTable& devices)
    : DeviceRule(rule, city, devices, kPrefix) {
  const SensorKind* kind = city.FindSensorKind(rule.sensor_kind);
  capacity_ = SampleCapacityFor(rule.per_ms, kind ? kind->report_interval_ms : 0);
  min_span_ms_ = rule.min_span_ms > 0 ? rule.min_span_ms : rule.per_ms / 2;
}

RateDetector::Params RateDetector::ParamsFor(const std::string& device_id) const {
  const RateRule& rule = config();
  Params p{rule.rate, rule.clear};
  if (rule.overrides.empty()) return p;
  if (auto it = rule.overrides.find(device_id); it != rule.overrides.end()) {
    p.rate = it->second;
    p.clear = std::min(rule.clear, it->second);
  }
  return p;
}

void RateDetector::OnReading(const Reading& r, uint32_t device, RuleContext& ctx) {
  const RateRule& rule = config();
  if (!AppliesTo(rule.devices, r.device_id) || rule.per_ms <= 0) return;
  const bool fresh = !states_.Has(device);
  RateState& st = states_.At(device);
  if (fresh) st.samples = SampleBuffer(capacity_);
  if (!st.samples.empty() && r.ts_ms <= st.samples.newest().ts_ms) {
    ++stats_.out_of_order;
    return;
  }
  ++stats_.evaluated;
  st.samples.Insert(r.ts_ms, r.value);
  st.samples.EvictBefore(r.ts_ms - rule.per_ms);
  states_.MarkDirty(device);

  const Sample& oldest = st.samples.oldest();
  const int64_t span = r.ts_ms - oldest.ts_ms;
  if (span <= 0 || span < min_span_ms_) {
    ++stats_.unjudged;
    return;
  }
  const double change = r.value - oldest.value;
  const double scaled = change * static_cast<double>(rule.per_ms) / static_cast<double>(span);
  const bool rise = rule.direction == ThresholdDirection::kAbove;
  const double magnitude = rise ? scaled : -scaled;
  const Params p = ParamsFor(r.device_id);

  if (st.phase == RateState::Phase::kAlarm) {
    if (magnitude < p.clear) {
      st.phase = RateState::Phase::kNormal;
      ctx.Transition(rule.id, device, r.ts_ms, /*raised=*/false);
    }
    return;
  }
  if (magnitude < p.rate) return;
  st.phase = RateState::Phase::kAlarm;
  if (ctx.Transition(rule.id, device, r.ts_ms, /*raised=*/true)) return;
  ++stats_.fired;
  Signal s = SignalFromReading(rule, city_, r);
  s.id = rule.id + ":" + r.device_id + ":" + std::to_string(r.ts_ms);
  s.value = scaled;
  s.threshold = p.rate;
  const std::string per = FormatSpanMs(rule.per_ms);
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %s %g per %s (>= %g)", r.kind.c_str(), rise ? "rose" : "fell", magnitude,
                per.c_str(), p.rate);
  s.explanation = buf;
  s.attributes["per"] = per;
  s.attributes["change"] = FormatNumber(change);
  s.attributes["span"] = FormatSpanMs(span);
  ctx.signals->push_back(std::move(s));
}

Status RateDetector::Restore(std::string_view subject, std::string_view value) {
  Status s = DeviceRule::Restore(subject, value);
  if (s.ok()) states_.At(devices_.Intern(subject)).samples.set_capacity(capacity_);
  return s;
}

std::vector<std::unique_ptr<Rule>> BuildRateRules(const RulesOptions& rules, const CityModel& city,
                                                  DeviceTable& devices) {
  return BuildEach<RateDetector>(rules.rate, city, devices);
}

}  // namespace cityloop::detect

#include "detect/flapping_detector.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "detect/window_aggregate.h"

namespace cityloop::detect {
namespace {

// Reads one integer at *p (up to end) followed by `sep` or the end; moves *p past both.
template <typename T>
bool ReadInt(const char** p, const char* end, char sep, T* out) {
  const auto [next, ec] = std::from_chars(*p, end, *out);
  if (ec != std::errc()) return false;
  if (next == end) {
    *p = next;
    return true;
  }
  if (*next != sep) return false;
  *p = next + 1;
  return true;
}

}  // namespace

// "phase since last n ts:rule ts:rule ..."
std::string FlappingState::Encode() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%d %lld %lld %zu", static_cast<int>(phase),
                static_cast<long long>(flapping_since_ms), static_cast<long long>(last_transition_ms),
                recent.size());
  std::string out(buf);
  for (const Transition& t : recent) {
    std::snprintf(buf, sizeof buf, " %lld:%u", static_cast<long long>(t.ts_ms), static_cast<unsigned>(t.rule));
    out.append(buf);
  }
  return out;
}

std::optional<FlappingState> FlappingState::Decode(std::string_view text) {
  FlappingState s;
  const char* p = text.data();
  const char* end = p + text.size();
  int phase = 0;
  size_t n = 0;
  if (!ReadInt(&p, end, ' ', &phase) || phase < 0 || phase > 1 || !ReadInt(&p, end, ' ', &s.flapping_since_ms) ||
      !ReadInt(&p, end, ' ', &s.last_transition_ms) || !ReadInt(&p, end, ' ', &n) || n > 4096) {
    return std::nullopt;
  }
  s.phase = static_cast<Phase>(phase);
  s.recent.resize(n);
  for (Transition& t : s.recent) {
    if (p == end || !ReadInt(&p, end, ':', &t.ts_ms) || p == end || !ReadInt(&p, end, ' ', &t.rule)) {
      return std::nullopt;
    }
  }
  if (p != end) return std::nullopt;
  return s;
}

std::optional<uint16_t> FlappingDetector::RuleIndex(std::string_view rule_id) const {
  const std::vector<std::string>& rules = config().rules;
  for (size_t i = 0; i < rules.size(); ++i) {
    if (rules[i] == rule_id) return static_cast<uint16_t>(i);
  }
  return std::nullopt;
}

void FlappingDetector::Record(FlappingState& st, int64_t ts_ms, uint16_t rule) const {
  auto& recent = st.recent;
  const auto at = std::upper_bound(recent.begin(), recent.end(), ts_ms,
                                   [](int64_t ts, const FlappingState::Transition& t) { return ts < t.ts_ms; });
  recent.insert(at, {ts_ms, rule});
  st.last_transition_ms = std::max(st.last_transition_ms, ts_ms);
  // Keep those within `within` of the newest, and no more than the decision needs.
  const int64_t horizon = st.last_transition_ms - config().within_ms;
  const auto keep = std::find_if(recent.begin(), recent.end(),
                                 [horizon](const FlappingState::Transition& t) { return t.ts_ms > horizon; });
  recent.erase(recent.begin(), keep);
  const size_t cap = static_cast<size_t>(std::max(config().transitions, 0)) + 1;
  if (recent.size() > cap) recent.erase(recent.begin(), recent.end() - static_cast<std::ptrdiff_t>(cap));
}

bool FlappingDetector::OnTransition(std::string_view rule_id, uint32_t device, int64_t ts_ms, bool raised,
                                    RuleContext& ctx) {
  const std::optional<uint16_t> rule = RuleIndex(rule_id);
  if (!rule) return false;
  ++stats_.transitions;
  const bool fresh = !states_.Has(device);
  FlappingState& st = states_.At(device);
  if (fresh) st.last_transition_ms = ts_ms;
  Record(st, ts_ms, *rule);
  if (st.phase == FlappingState::Phase::kStable &&
      st.recent.size() > static_cast<size_t>(std::max(config().transitions, 0))) {
    st.phase = FlappingState::Phase::kFlapping;
    st.flapping_since_ms = st.last_transition_ms;
    RaiseFlapping(device, st, ctx);
  }
  if (st.phase == FlappingState::Phase::kFlapping) {
    // Stable once quiet for `within`, on the source of the newest transition's input.
    stable_at_.Set(device, ctx.source, st.last_transition_ms + config().within_ms);
  }
  states_.MarkDirty(device);
  const bool suppress = raised && st.phase == FlappingState::Phase::kFlapping;
  if (suppress) ++stats_.suppressed;
  return suppress;
}

void FlappingDetector::RaiseFlapping(uint32_t device, const FlappingState& st, RuleContext& ctx) {
  ++stats_.fired;
  if (ctx.signals == nullptr || ctx.city == nullptr) return;
  const FlappingRule& rule = config();
  const std::string& id = devices_.Id(device);
  // The watched rules that toggled in the window, in config order.
  std::vector<bool> toggled(rule.rules.size(), false);
  for (const FlappingState::Transition& t : st.recent) {
    if (t.rule < toggled.size()) toggled[t.rule] = true;
  }
  std::string rules;
  for (size_t i = 0; i < toggled.size(); ++i) {
    if (!toggled[i]) continue;
    if (!rules.empty()) rules.append(",");
    rules.append(rule.rules[i]);
  }
  const size_t count = st.recent.size();
  Signal s = SignalForDevice(rule, *ctx.city, id);
  s.ts_ms = st.recent.front().ts_ms;
  s.fired_ms = st.last_transition_ms;
  s.id = rule.id + ":" + id + ":" + std::to_string(s.ts_ms);
  s.value = static_cast<double>(count);
  s.threshold = rule.transitions;
  s.explanation = id + " toggled " + std::to_string(count) + " times in " + FormatSpanMs(rule.within_ms) + " (" +
                  rules + ")";
  s.attributes["rules"] = rules;
  s.attributes["transitions"] = std::to_string(count);
  ctx.signals->push_back(std::move(s));
}

void FlappingDetector::BecomeStable(uint32_t device) {
  FlappingState& st = states_.At(device);
  st.phase = FlappingState::Phase::kStable;
  st.recent.clear();
  states_.MarkDirty(device);
  ++stats_.recovered;
}

void FlappingDetector::OnWatermark(RuleContext& ctx) {
  if (ctx.time == nullptr) return;
  if (stable_at_.size() > 0) stable_at_.PopDue(*ctx.time, [this](uint32_t device, int64_t) { BecomeStable(device); });
  if (unsourced_.empty()) return;
  const int64_t lowest = ctx.time->MinWatermark();
  const int64_t within = config().within_ms;
  std::erase_if(unsourced_, [&](uint32_t device) {
    const FlappingState* st = states_.Find(device);
    // Gone stable, or re-armed on a source by a transition since the restore.
    if (st == nullptr || st->phase != FlappingState::Phase::kFlapping || stable_at_.DeadlineOf(device)) return true;
    if (lowest == EventTime::kNone || st->last_transition_ms + within > lowest) return false;
    BecomeStable(device);
    return true;
  });
}

Status FlappingDetector::Restore(std::string_view subject, std::string_view value) {
  Status st = DeviceRule::Restore(subject, value);
  if (!st.ok()) return st;
  const uint32_t device = devices_.Intern(subject);
  stable_at_.Cancel(device);
  if (states_.Find(device)->phase == FlappingState::Phase::kFlapping) unsourced_.push_back(device);
  return st;
}

size_t FlappingDetector::StateBytes() const {
  return DeviceRule::StateBytes() + stable_at_.Bytes() + unsourced_.capacity() * sizeof(uint32_t);
}

bool FlappingDetector::IsFlapping(std::string_view device_id) const {
  const FlappingState* st = StateFor(device_id);
  return st != nullptr && st->phase == FlappingState::Phase::kFlapping;
}

std::vector<std::unique_ptr<Rule>> BuildFlappingRules(const RulesOptions& rules, const CityModel& city,
                                                      DeviceTable& devices) {
  return BuildEach<FlappingDetector>(rules.flapping, city, devices);
}

}  // namespace cityloop::detect

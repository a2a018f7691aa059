#include "detect/no_signal_detector.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/time_util.h"
#include "detect/window_aggregate.h"

namespace cityloop::detect {
namespace {

// Heap bytes a string holds beyond its inline buffer.
size_t HeapBytes(const std::string& s) { return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0; }

// Splits on single spaces, keeping empty fields.
std::vector<std::string_view> SplitFields(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t space = text.find(' ', start);
    out.push_back(text.substr(start, space == std::string_view::npos ? std::string_view::npos : space - start));
    if (space == std::string_view::npos) return out;
    start = space + 1;
  }
}

template <typename T>
bool ParseField(std::string_view text, T* out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// "08:14:00": local time of day at the city's UTC offset.
std::string LocalClock(int64_t ts_ms, int utc_offset_minutes) {
  constexpr int64_t kDay = 86400000;
  const int64_t of_day = (((ts_ms + utc_offset_minutes * int64_t{60000}) % kDay) + kDay) % kDay / 1000;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", static_cast<int>(of_day / 3600), static_cast<int>(of_day / 60 % 60),
                static_cast<int>(of_day % 60));
  return buf;
}

}  // namespace

std::string NoSignalState::Encode() const {
  std::string out;
  out.reserve(64 + kind.size() + topic.size());
  AppendStateField(&out, static_cast<int>(phase));
  AppendStateField(&out, last_ts_ms);
  AppendStateField(&out, cell);
  AppendStateField(&out, position.lat);
  AppendStateField(&out, position.lon);
  AppendStateField(&out, static_cast<int>(partition));
  out.append(" ").append(kind).append(" ").append(topic);
  return out;
}

std::optional<NoSignalState> NoSignalState::Decode(std::string_view text) {
  // phase last_ts cell lat lon partition kind topic (kind and topic hold no spaces).
  const std::vector<std::string_view> f = SplitFields(text);
  NoSignalState s;
  int phase = 0;
  if (f.size() != 8 || !ParseField(f[0], &phase) || phase < 0 || phase > 1 || !ParseField(f[1], &s.last_ts_ms) ||
      !ParseField(f[2], &s.cell) || !ParseField(f[3], &s.position.lat) || !ParseField(f[4], &s.position.lon) ||
      !ParseField(f[5], &s.partition)) {
    return std::nullopt;
  }
  s.phase = static_cast<Phase>(phase);
  s.kind = std::string(f[6]);
  s.topic = std::string(f[7]);
  return s;
}

size_t NoSignalState::Bytes() const { return HeapBytes(topic) + HeapBytes(kind); }

int64_t NoSignalDetector::IntervalFor(const CityModel& city, const std::string& device_id,
                                      std::string_view kind) const {
  const NoSignalRule& rule = config();
  if (auto it = rule.overrides.find(device_id); it != rule.overrides.end()) return it->second;
  if (rule.interval_ms) return *rule.interval_ms;
  if (const SensorKind* k = city.FindSensorKind(kind)) return k->report_interval_ms;
  return kDefaultIntervalMs;
}

int64_t NoSignalDetector::DeadlineFor(const CityModel& city, uint32_t device, const NoSignalState& st) const {
  const double allowed = config().factor * static_cast<double>(IntervalFor(city, devices_.Id(device), st.kind));
  return st.last_ts_ms + std::llround(allowed);
}

bool NoSignalDetector::Applies(const Reading& r) const {
  const std::vector<std::string>& kinds = config().sensor_kinds;
  return (kinds.empty() || std::find(kinds.begin(), kinds.end(), r.kind) != kinds.end()) &&
         AppliesTo(config().devices, r.device_id);
}

void NoSignalDetector::Rearm(RuleContext& ctx) {
  if (rearm_.empty() || ctx.time == nullptr || ctx.city == nullptr) return;
  for (uint32_t d : rearm_) {
    const NoSignalState* st = states_.Find(d);
    if (st == nullptr || st->phase != NoSignalState::Phase::kReporting || deadlines_.DeadlineOf(d)) continue;
    deadlines_.Set(d, ctx.time->Source(st->topic, st->partition), DeadlineFor(*ctx.city, d, *st));
  }
  rearm_.clear();
}

void NoSignalDetector::OnReading(const Reading& r, uint32_t device, RuleContext& ctx) {
  if (!Applies(r)) return;
  Rearm(ctx);
  const bool fresh = !states_.Has(device);
  NoSignalState& st = states_.At(device);
  if (!fresh && r.ts_ms <= st.last_ts_ms) {
    ++stats_.out_of_order;
    return;
  }
  ++stats_.evaluated;
  if (st.phase == NoSignalState::Phase::kSilent) {
    st.phase = NoSignalState::Phase::kReporting;
    ++stats_.cleared;
  }
  st.last_ts_ms = r.ts_ms;
  st.cell = r.cell;
  st.position = r.position;
  st.partition = r.input.partition;
  if (st.topic != r.input.topic) st.topic = r.input.topic;
  if (st.kind != r.kind) {
    st.kind = r.kind;
    st.allowed_ms = 0;
  }
  if (st.allowed_ms == 0) st.allowed_ms = DeadlineFor(*ctx.city, device, st) - st.last_ts_ms;
  deadlines_.Set(device, ctx.source, st.last_ts_ms + st.allowed_ms);
  states_.MarkDirty(device);
}

void NoSignalDetector::OnWatermark(RuleContext& ctx) {
  Rearm(ctx);
  if (ctx.time == nullptr || deadlines_.size() == 0) return;
  deadlines_.PopDue(*ctx.time, [&](uint32_t device, int64_t deadline) { RaiseSilence(device, deadline, ctx); });
}

void NoSignalDetector::RaiseSilence(uint32_t device, int64_t deadline_ms, RuleContext& ctx) {
  const NoSignalRule& rule = config();
  const CityModel& city = *ctx.city;
  NoSignalState& st = states_.At(device);
  st.phase = NoSignalState::Phase::kSilent;
  states_.MarkDirty(device);
  ++stats_.fired;

  const std::string& id = devices_.Id(device);
  const int64_t interval = IntervalFor(city, id, st.kind);
  Signal s = SignalForDevice(rule, city, id);
  if (city.FindDevice(id) == nullptr) {
    s.cell = st.cell;
    s.position = st.position;
  }
  s.id = rule.id + ":" + id + ":" + std::to_string(st.last_ts_ms);
  s.sensor_kind = st.kind;
  s.ts_ms = deadline_ms;
  s.fired_ms = deadline_ms;
  s.value = static_cast<double>(deadline_ms - st.last_ts_ms);  // silent for, when confirmed
  s.threshold = rule.factor * static_cast<double>(interval);
  char buf[64];
  std::snprintf(buf, sizeof buf, " x %g", rule.factor);
  s.explanation = id + " (" + st.kind + ") silent since " +
                  LocalClock(st.last_ts_ms, city.config().city.utc_offset_minutes) + ", expected every " +
                  FormatSpanMs(interval) + buf;
  s.attributes["last_seen"] = FormatRfc3339Ms(st.last_ts_ms);
  s.attributes["expected_interval"] = FormatSpanMs(interval);
  ctx.signals->push_back(std::move(s));
}

Status NoSignalDetector::Restore(std::string_view subject, std::string_view value) {
  Status st = DeviceRule::Restore(subject, value);
  if (!st.ok()) return st;
  // The deadline is re-armed from the persisted source text once a context is at hand.
  const uint32_t device = devices_.Intern(subject);
  deadlines_.Cancel(device);
  if (states_.Find(device)->phase == NoSignalState::Phase::kReporting) rearm_.push_back(device);
  return st;
}

size_t NoSignalDetector::StateBytes() const {
  return DeviceRule::StateBytes() + deadlines_.Bytes() + rearm_.capacity() * sizeof(uint32_t);
}

std::vector<std::unique_ptr<Rule>> BuildNoSignalRules(const RulesOptions& rules, const CityModel& city,
                                                      DeviceTable& devices) {
  return BuildEach<NoSignalDetector>(rules.no_signal, city, devices);
}

}  // namespace cityloop::detect

#include "detect/window_detector.h"

#include <algorithm>
#include <cstdio>

namespace cityloop::detect {
namespace {

// "08:10" (or "08:10:30") local time of day at a fixed UTC offset.
std::string LocalClock(int64_t epoch_ms, int utc_offset_minutes) {
  const int64_t day_ms = 86400000;
  const int64_t local = epoch_ms + int64_t{utc_offset_minutes} * 60000;
  const int64_t in_day = local - FloorDiv(local, day_ms) * day_ms;
  const auto h = static_cast<int>(in_day / 3600000);
  const auto m = static_cast<int>(in_day / 60000 % 60);
  const auto s = static_cast<int>(in_day / 1000 % 60);
  char buf[16];
  if (s != 0) {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", h, m, s);
  } else {
    std::snprintf(buf, sizeof buf, "%02d:%02d", h, m);
  }
  return buf;
}

std::string SourceName(const InputRef& input) { return input.topic + "/" + std::to_string(input.partition); }

}  // namespace

std::string WindowState::Encode() const {
  return EncodeState([&](StateWriter& w) {
    w.Byte(static_cast<uint8_t>(phase));
    w.Signed(next_end);
    w.Double(position.lat);
    w.Double(position.lon);
    w.Signed(cell);
    w.String(input.topic);
    w.Signed(input.partition);
    w.Signed(input.offset);
    w.Signed(ingest_ms);
    samples.EncodeTo(w);
  });
}

std::optional<WindowState> WindowState::Decode(std::string_view bytes) {
  return DecodeState(bytes, [](StateReader& r) -> std::optional<WindowState> {
    WindowState s;
    uint8_t phase = 0;
    int64_t cell = 0, partition = 0;
    if (!r.Byte(&phase) || phase > 1 || !r.Signed(&s.next_end) || !r.Double(&s.position.lat) ||
        !r.Double(&s.position.lon) || !r.Signed(&cell) || !r.String(&s.input.topic) || !r.Signed(&partition) ||
        !r.Signed(&s.input.offset) || !r.Signed(&s.ingest_ms)) {
      return std::nullopt;
    }
    auto samples = SampleBuffer::DecodeFrom(r);
    if (!samples) return std::nullopt;
    s.phase = static_cast<Phase>(phase);
    s.cell = static_cast<int>(cell);
    s.input.partition = static_cast<int32_t>(partition);
    s.samples = std::move(*samples);
    return s;
  });
}

WindowDetector::WindowDetector(const WindowRule& rule, const CityModel& city, DeviceTable& devices)
    : DeviceRule(rule, city, devices, kPrefix), spec_{rule.size_ms, rule.slide()} {
  valid_ = spec_.size_ms > 0 && spec_.slide_ms > 0;
  const SensorKind* kind = city.FindSensorKind(rule.sensor_kind);
  // The buffer holds the open windows: a window, a slide, and the lateness.
  const int64_t span = spec_.size_ms + spec_.slide_ms + city.config().event_time.allowed_lateness_ms;
  capacity_ = SampleCapacityFor(span, kind ? kind->report_interval_ms : 0);
}

double WindowDetector::LevelFor(const std::string& device_id) const {
  const WindowRule& rule = config();
  if (rule.overrides.empty()) return rule.level;
  auto it = rule.overrides.find(device_id);
  return it == rule.overrides.end() ? rule.level : it->second;
}

void WindowDetector::Bind(uint32_t device, WindowState& st, uint16_t source) {
  st.source = source;
  st.bound = true;
  st.pending = false;
  deadlines_.Set(device, source, st.next_end);
}

void WindowDetector::LearnSource(const Reading& r, uint16_t source) {
  if (source < source_names_.size() && !source_names_[source].empty()) return;
  if (source >= source_names_.size()) source_names_.resize(source + 1);
  source_names_[source] = SourceName(r.input);
  std::erase_if(pending_, [&](uint32_t device) {
    WindowState& st = states_.At(device);
    if (!st.pending) return true;  // bound by a reading of its own
    if (SourceName(st.input) != source_names_[source]) return false;
    Bind(device, st, source);
    return true;
  });
}

void WindowDetector::OnReading(const Reading& r, uint32_t device, RuleContext& ctx) {
  const WindowRule& rule = config();
  if (!valid_ || !AppliesTo(rule.devices, r.device_id)) return;
  if (!pending_.empty()) LearnSource(r, ctx.source);
  const bool fresh = !states_.Has(device);
  WindowState& st = states_.At(device);
  if (fresh) {
    st.samples = SampleBuffer(capacity_);
    const int64_t wm = ctx.watermark_ms == EventTime::kNone ? r.ts_ms : std::min(r.ts_ms, ctx.watermark_ms);
    st.next_end = FirstEndAfter(spec_, wm);
  }
  st.position = r.position;
  st.cell = r.cell;
  st.input = r.input;
  st.ingest_ms = r.ingest_ms;
  states_.MarkDirty(device);

  const int64_t last_end = LastEndContaining(spec_, r.ts_ms);
  if (last_end <= r.ts_ms) {
    ++stats_.outside;
  } else if (last_end < st.next_end) {
    ++stats_.late_samples;
  } else if (const uint64_t dropped = st.samples.dropped(); st.samples.Insert(r.ts_ms, r.value)) {
    ++stats_.evaluated;
  } else if (st.samples.dropped() == dropped) {
    ++stats_.duplicates;
  }
  if (!st.bound || st.source != ctx.source || !deadlines_.DeadlineOf(device)) Bind(device, st, ctx.source);
}

void WindowDetector::OnWatermark(RuleContext& ctx) {
  if (ctx.time == nullptr) return;
  if (!pending_.empty()) {
    // Restored devices whose source is not known yet: judged on the lowest watermark.
    const int64_t lowest = ctx.time->MinWatermark();
    std::erase_if(pending_, [&](uint32_t device) {
      WindowState& st = states_.At(device);
      if (!st.pending) return true;
      if (lowest != EventTime::kNone) JudgeDue(device, st, lowest, ctx);
      return false;
    });
  }
  deadlines_.PopDue(*ctx.time, [&](uint32_t device, int64_t /*deadline*/) {
    WindowState& st = states_.At(device);
    JudgeDue(device, st, ctx.time->Watermark(st.source), ctx);
  });
}

void WindowDetector::JudgeDue(uint32_t device, WindowState& st, int64_t watermark, RuleContext& ctx) {
  const bool count = config().aggregate == Aggregate::kCount;
  const int64_t before = st.next_end;
  while (st.next_end <= watermark) {
    const int64_t end = st.next_end;
    if (!count) {
      // Skip windows holding no reading: straight to the first one that holds the next.
      const Sample* next = st.samples.FirstAtOrAfter(spec_.Start(end));
      if (next == nullptr) {
        st.next_end = FirstEndAfter(spec_, watermark);
        break;
      }
      if (next->ts_ms >= end) {
        // Not past the windows still open: a reading may yet arrive for them.
        st.next_end = std::min(FirstEndAfter(spec_, next->ts_ms), FirstEndAfter(spec_, watermark));
        continue;
      }
    }
    Judge(device, st, end, ctx);
    st.next_end = end + spec_.slide_ms;
  }
  if (st.next_end != before) {
    st.samples.EvictBefore(spec_.Start(st.next_end));
    states_.MarkDirty(device);
  }
  if (st.bound && (count || !st.samples.empty())) deadlines_.Set(device, st.source, st.next_end);
}

void WindowDetector::Judge(uint32_t device, WindowState& st, int64_t end, RuleContext& ctx) {
  const WindowRule& rule = config();
  const int64_t start = spec_.Start(end);
  int n = 0;
  const double value = st.samples.Compute(rule.aggregate, rule.percentile, start, end, &n);
  if (rule.aggregate != Aggregate::kCount && n < std::max(1, rule.min_samples)) {
    ++stats_.skipped;
    return;
  }
  ++stats_.judged;
  const std::string& device_id = devices_.Id(device);
  const double level = LevelFor(device_id);
  const bool above = rule.direction == ThresholdDirection::kAbove;
  const bool meets = above ? value >= level : value <= level;
  if (st.phase == WindowState::Phase::kAlarm) {
    if (!meets) {
      st.phase = WindowState::Phase::kNormal;
      ctx.Transition(rule.id, device, end, /*raised=*/false);
    }
    return;
  }
  if (!meets) return;
  st.phase = WindowState::Phase::kAlarm;
  if (ctx.Transition(rule.id, device, end, /*raised=*/true)) return;
  ++stats_.fired;

  Reading r;  // what a reading would carry: the device's newest place and input
  r.device_id = device_id;
  r.kind = rule.sensor_kind;
  r.position = st.position;
  r.cell = st.cell;
  r.input = st.input;
  r.ingest_ms = st.ingest_ms;
  r.ts_ms = start;
  r.value = value;
  Signal s = SignalFromReading(rule, city_, r);
  s.fired_ms = end;
  s.threshold = level;
  s.id = rule.id + ":" + device_id + ":" + std::to_string(end);

  char name[32];
  if (rule.aggregate == Aggregate::kPercentile) {
    std::snprintf(name, sizeof name, "p%g", rule.percentile);
  } else {
    std::snprintf(name, sizeof name, "%s", AggregateName(rule.aggregate));
  }
  const int offset = city_.config().city.utc_offset_minutes;
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s(%s) over [%s, %s) = %g %s %g (%d readings)", name, rule.sensor_kind.c_str(),
                LocalClock(start, offset).c_str(), LocalClock(end, offset).c_str(), value, above ? ">=" : "<=",
                level, n);
  s.explanation = buf;
  s.attributes["aggregate"] = name;
  s.attributes["window"] = spec_.slide_ms == spec_.size_ms
                               ? FormatSpanMs(spec_.size_ms)
                               : FormatSpanMs(spec_.size_ms) + "/" + FormatSpanMs(spec_.slide_ms);
  s.attributes["count"] = std::to_string(n);
  ctx.signals->push_back(std::move(s));
}

Status WindowDetector::Restore(std::string_view subject, std::string_view value) {
  const std::optional<uint32_t> known = devices_.Find(subject);
  const WindowState* before = known ? states_.Find(*known) : nullptr;
  const bool was_pending = before != nullptr && before->pending;
  if (Status s = DeviceRule::Restore(subject, value); !s.ok()) return s;
  const uint32_t device = devices_.Intern(subject);
  WindowState& st = states_.At(device);
  st.samples.set_capacity(capacity_);
  deadlines_.Cancel(device);
  // Bound at once when a reading of its source came by already, else pending.
  const std::string name = SourceName(st.input);
  for (size_t id = 0; id < source_names_.size(); ++id) {
    if (source_names_[id] == name) {
      Bind(device, st, static_cast<uint16_t>(id));
      return Status::Ok();
    }
  }
  st.pending = true;
  if (!was_pending) pending_.push_back(device);
  return Status::Ok();
}

size_t WindowDetector::StateBytes() const {
  return DeviceRule::StateBytes() + deadlines_.Bytes() + pending_.capacity() * sizeof(uint32_t);
}

std::vector<std::unique_ptr<Rule>> BuildWindowRules(const RulesOptions& rules, const CityModel& city,
                                                    DeviceTable& devices) {
  return BuildEach<WindowDetector>(rules.window, city, devices);
}

}  // namespace cityloop::detect

#include "core/event_time.h"

#include <algorithm>
#include <charconv>

namespace cityloop {

uint16_t EventTime::Source(std::string_view topic, int32_t partition) {
  std::string name(topic);
  name.append("/").append(std::to_string(partition));
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  const auto id = static_cast<uint16_t>(sources_.size());
  sources_.push_back({});
  sources_.back().name = name;
  by_name_.emplace(std::move(name), id);
  return id;
}

void EventTime::Raise(SourceState& s, int64_t watermark) {
  if (watermark > s.watermark) s.watermark = watermark;
}

bool EventTime::Observe(uint16_t source, int64_t ts_ms, int64_t wall_ms) {
  SourceState& s = sources_[source];
  s.last_wall_ms = wall_ms;
  s.idle_base_event_ms = kNone;
  if (s.watermark != kNone && ts_ms < s.watermark) return true;
  if (ts_ms > s.max_event_ms) {
    s.max_event_ms = ts_ms;
    s.dirty = true;
    Raise(s, ts_ms - lateness_);
  }
  return false;
}

bool EventTime::AdvanceIdle(int64_t wall_ms) {
  if (!live_) return false;
  bool moved = false;
  for (SourceState& s : sources_) {
    if (s.max_event_ms == kNone || wall_ms - s.last_wall_ms < idle_timeout_) continue;
    // Idle: event time runs on with the wall clock from where the source went quiet.
    if (s.idle_base_event_ms == kNone) s.idle_base_event_ms = s.max_event_ms;
    const int64_t now_event = s.idle_base_event_ms + (wall_ms - s.last_wall_ms);
    const int64_t before = s.watermark;
    Raise(s, now_event - lateness_);
    moved |= s.watermark != before;
  }
  return moved;
}

int64_t EventTime::WatermarkOf(std::string_view topic, int32_t partition) const {
  auto it = by_name_.find(std::string(topic) + "/" + std::to_string(partition));
  return it == by_name_.end() ? kNone : sources_[it->second].watermark;
}

int64_t EventTime::MinWatermark() const {
  int64_t out = kNone;
  for (const SourceState& s : sources_) {
    if (s.watermark == kNone) continue;
    out = out == kNone ? s.watermark : std::min(out, s.watermark);
  }
  return out;
}

int64_t EventTime::MaxWatermark() const {
  int64_t out = kNone;
  for (const SourceState& s : sources_) out = std::max(out, s.watermark);
  return out;
}

std::vector<std::pair<std::string, std::string>> EventTime::TakeDirty() {
  std::vector<std::pair<std::string, std::string>> out;
  for (SourceState& s : sources_) {
    if (!s.dirty) continue;
    s.dirty = false;
    out.emplace_back(s.name, std::to_string(s.max_event_ms));
  }
  return out;
}

bool EventTime::Restore(std::string_view subject, std::string_view value, int64_t wall_ms) {
  const size_t slash = subject.rfind('/');
  int32_t partition = 0;
  int64_t ts = 0;
  if (slash == std::string_view::npos) return false;
  const std::string_view p = subject.substr(slash + 1);
  if (std::from_chars(p.data(), p.data() + p.size(), partition).ec != std::errc()) return false;
  if (std::from_chars(value.data(), value.data() + value.size(), ts).ec != std::errc()) return false;
  SourceState& s = sources_[Source(subject.substr(0, slash), partition)];
  s.max_event_ms = std::max(s.max_event_ms, ts);
  s.last_wall_ms = wall_ms;
  Raise(s, s.max_event_ms - lateness_);
  return true;
}

}  // namespace cityloop

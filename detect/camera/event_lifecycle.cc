#include "detect/camera/event_lifecycle.h"

#include <algorithm>
#include <cstdio>

namespace cityloop::detect::camera {

const char* TransitionName(EventTransition::Kind k) {
  switch (k) {
    case EventTransition::Kind::kStart: return "start";
    case EventTransition::Kind::kUpdate: return "update";
    case EventTransition::Kind::kEnd: return "end";
  }
  return "start";
}

EventTransition EventLifecycle::Make(EventTransition::Kind k, int64_t ts_ms) const {
  return {k, start_ms_, ts_ms, value_, peak_, peak_box_};
}

std::optional<EventTransition> EventLifecycle::Observe(int64_t ts_ms, const Evidence& e, const LifecycleTimes& t) {
  if (!e.present) return Expire(ts_ms, t);
  if (phase_ == Phase::kPending && ts_ms - last_evidence_ms_ > t.pending_gap_ms) phase_ = Phase::kIdle;
  if (phase_ == Phase::kIdle) {
    *this = EventLifecycle();
    phase_ = Phase::kPending;
    start_ms_ = ts_ms;
  }
  last_evidence_ms_ = ts_ms;
  value_ = e.value;
  if (e.value >= peak_ || peak_box_ == ImageBox{}) {
    peak_ = std::max(peak_, e.value);
    peak_box_ = e.box;
  }
  if (phase_ == Phase::kPending) {
    if (ts_ms - start_ms_ < t.dwell_ms) return std::nullopt;
    phase_ = Phase::kActive;
    last_update_ms_ = ts_ms;
    reported_peak_ = peak_;
    return Make(EventTransition::Kind::kStart, ts_ms);
  }
  if (peak_ > reported_peak_ * 1.25 && ts_ms - last_update_ms_ >= t.update_every_ms) {
    last_update_ms_ = ts_ms;
    reported_peak_ = peak_;
    return Make(EventTransition::Kind::kUpdate, ts_ms);
  }
  return std::nullopt;
}

std::optional<EventTransition> EventLifecycle::Expire(int64_t now_ms, const LifecycleTimes& t) {
  if (phase_ == Phase::kPending && now_ms - last_evidence_ms_ > t.pending_gap_ms) {
    phase_ = Phase::kIdle;
    return std::nullopt;
  }
  if (phase_ != Phase::kActive || now_ms - last_evidence_ms_ < t.cooldown_ms) return std::nullopt;
  phase_ = Phase::kIdle;
  return Make(EventTransition::Kind::kEnd, last_evidence_ms_);
}

std::string EventLifecycle::Encode() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%d %lld %lld %lld %.9g %.9g %.9g %.6f %.6f %.6f %.6f", static_cast<int>(phase_),
                static_cast<long long>(start_ms_), static_cast<long long>(last_evidence_ms_),
                static_cast<long long>(last_update_ms_), value_, peak_, reported_peak_, peak_box_[0], peak_box_[1],
                peak_box_[2], peak_box_[3]);
  return buf;
}

std::optional<EventLifecycle> EventLifecycle::Decode(std::string_view text) {
  EventLifecycle l;
  int phase = 0;
  long long start = 0, last = 0, update = 0;
  const std::string copy(text);
  if (std::sscanf(copy.c_str(), "%d %lld %lld %lld %lg %lg %lg %lg %lg %lg %lg", &phase, &start, &last, &update,
                  &l.value_, &l.peak_, &l.reported_peak_, &l.peak_box_[0], &l.peak_box_[1], &l.peak_box_[2],
                  &l.peak_box_[3]) != 11 ||
      phase < 0 || phase > 2) {
    return std::nullopt;
  }
  l.phase_ = static_cast<Phase>(phase);
  l.start_ms_ = start;
  l.last_evidence_ms_ = last;
  l.last_update_ms_ = update;
  return l;
}

}  // namespace cityloop::detect::camera
